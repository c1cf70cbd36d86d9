"""Evaluation: metrics by hand, the transformers and OpenAI backends end to end, resume, baselines and the report."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dvmap_verl.evaluation import metrics as M
from dvmap_verl.evaluation.backends import GenerationSettings, make_backend
from dvmap_verl.evaluation.baselines import items_frame, run_baselines
from dvmap_verl.evaluation.evaluate import (DEFAULT_FLIP, PREDICTIONS, EvalConfig, load_items, read_predictions, run_eval)
from dvmap_verl.evaluation.report import build_report
from fake_openai import FakeServer

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------ metrics by hand


def _frame(rows):
    cols = ["item", "sample", "pred", "truth", "k", "country", "q_id", "category"]
    return M.point_scores(pd.DataFrame(rows, columns=cols))


def test_point_metrics_by_hand():
    df = _frame([
        (0, 0, 0, 0, 4, "A", "Q1", "c"),   # right
        (1, 0, 1, 0, 4, "A", "Q1", "c"),   # one step off: LC 1 - 1/3
        (2, 0, -1, 1, 4, "A", "Q1", "c"),  # unresolved: wrong, LC 0
        (3, 0, 0, 2, 3, "B", "Q49", "d"),  # two steps off on K = 3: LC 0
    ])
    s = M.summary(df)
    assert s["acc"] == pytest.approx(1 / 4)
    assert s["lc"] == pytest.approx((1 + 2 / 3 + 0 + 0) / 4)
    assert s["unparsed_rate"] == pytest.approx(1 / 4)
    # Cell A/Q1: predicted {0: .5, 1: .5} vs real {0: 2/3, 1: 1/3}: WD = |.5 - 2/3| = 1/6.
    # Cell B/Q49: predicted {0: 1} vs real {2: 1}: CDF gaps 1, 1, 0 -> WD 2 (normalised 2 / 2 = 1).
    assert s["wd"] == pytest.approx((1 / 6 + 2) / 2)
    assert s["wd_norm"] == pytest.approx((1 / 6 / 3 + 1) / 2)
    assert s["cells"] == 2


def test_distribution_functions():
    p = np.array([[1.0, 0, 0], [0.5, 0.5, 0]])
    r = np.array([[0, 0, 1.0], [0.5, 0.5, 0]])
    assert M.wasserstein(p, r).tolist() == [2.0, 0.0]
    jsd = M.jensen_shannon(p, r)
    assert jsd[0] == pytest.approx(1.0) and jsd[1] == pytest.approx(0.0)


def test_bootstrap_interval_brackets_the_mean():
    rng = np.random.default_rng(0)
    n = 400
    df = _frame([(i, 0, int(rng.random() < 0.6), 1, 2, "A", "Q8", "c") for i in range(n)])
    s = M.summary(df, bootstrap=500)
    lo, hi = s["ci95"]["correct"]
    assert lo < s["acc"] < hi and hi - lo < 0.15


def test_flip_rate_and_entropy_correlation():
    orig = _frame([(i, 0, p, 0, 4, "A", q, c) for i, (p, q, c) in
                   enumerate([(0, "Q1", "social"), (1, "Q1", "social"), (2, "Q46", "happy"), (3, "Q46", "happy")])])
    orig["pair"] = orig["item"]
    cf = orig.copy()
    cf["item"] += 10
    cf["pred"] = [0, 2, 2, 0]  # pairs 1 and 3 flip
    out = M.flip_rate(orig, cf)
    assert out["flip_rate"] == 0.5 and out["pairs"] == 4
    assert {r["category"]: r["flip_rate"] for r in out["by_category"]} == {"happy": 0.5, "social": 0.5}
    # Questions with more spread-out truths are harder here: r must come out negative.
    rows = []
    for q, (truths, right) in {"Q1": ([0] * 10, 9), "Q2": ([0] * 7 + [1] * 3, 6), "Q3": ([0, 1, 2, 3] * 3, 3)}.items():
        for j, t in enumerate(truths):
            rows.append((len(rows), 0, t if j < right else (t + 1) % 4, t, 4, "A", q, "c"))
    ev = M.entropy_vs_accuracy(_frame(rows))
    assert ev["pearson_r"] < -0.9


# ------------------------------------------------------------------------------------------------ baselines


@pytest.fixture(scope="module")
def dev_split(release_dev_path, tmp_path_factory):
    """Release dev split divided by profile: 400 profiles train, 60 test (no profile in both)."""
    from dvmap_verl.data.release import prepare_release

    out = tmp_path_factory.mktemp("dev_import")
    prepare_release(release_dev_path, out, quiet=True)
    items = items_frame(pd.read_parquet(out / "val.parquet"))
    profiles = np.random.default_rng(0).permutation(items["profile_id"].unique())
    test_p = set(profiles[:60])
    train = items[~items["profile_id"].isin(test_p)].reset_index(drop=True)
    test = items[items["profile_id"].isin(test_p)].reset_index(drop=True)
    test["item"] = np.arange(len(test))
    return out, train, test


def test_baselines_on_release_dev_with_profile_disjoint_split(dev_split):
    _, train, test = dev_split
    assert not set(train["profile_id"]) & set(test["profile_id"])
    scores = {name: M.summary(M.point_scores(p)) for name, p in run_baselines(train, test).items()}
    mean_k = test["k"].mean()
    assert scores["uniform"]["acc"] == pytest.approx((1 / test["k"]).mean())
    assert scores["uniform"]["acc"] < 1 / mean_k + 0.05
    for name in ("majority_question", "majority_country_question", "logistic_regression"):
        assert scores[name]["acc"] > scores["uniform"]["acc"] + 0.15, name
    # The per-question lookup is literally the training mode.
    preds = run_baselines(train, test, ["majority_question"])["majority_question"]
    mode = train.groupby("q_id")["truth"].agg(lambda s: s.value_counts().sort_index().idxmax())
    assert (preds["pred"].to_numpy() == test["q_id"].map(mode).to_numpy()).all()


def test_unseen_question_falls_back_to_uniform(dev_split):
    _, train, test = dev_split
    test = test.copy()
    test.loc[test["q_id"] == "Q1", "q_id"] = "Q999"
    preds = run_baselines(train[train["q_id"] != "Q1"], test, ["majority_question"])["majority_question"]
    fb = preds[preds["q_id"] == "Q999"]
    assert fb["fallback"].all() and fb.groupby("item")["weight"].sum().round(9).eq(1.0).all()


# ------------------------------------------------------------------------------------------------ HF backend


REPLY = "<answer>Very important</answer>"


@pytest.fixture(scope="module")
def taught_model(tmp_path_factory, dev_split):
    """The tiny local model, taught to answer "Very important" (random weights would never parse)."""
    from dvmap_verl.training.tiny import build_model, build_tokenizer, teach_fixed_reply

    out, _, _ = dev_split
    model_dir = tmp_path_factory.mktemp("taught")
    build_model(model_dir, build_tokenizer(model_dir))
    val = pd.read_parquet(out / "val.parquet").sample(3, random_state=1)
    teach_fixed_reply(model_dir, REPLY, prompts=[[dict(m) for m in p] for p in val["prompt"]], steps=60)
    return model_dir


def test_hf_backend_end_to_end_with_resume_and_report(taught_model, dev_split, tmp_path):
    out, _, _ = dev_split
    run = tmp_path / "run"
    config = EvalConfig(backend="hf", model=str(taught_model), data=[str(out / "val.parquet")], samples=2,
                        limit=12, max_tokens=12, temperature=0.0, flip_attribute=DEFAULT_FLIP[0],
                        flip_map=DEFAULT_FLIP[1], train=str(out / "val.parquet"))
    backend = make_backend("hf", str(taught_model), config.generation(), batch_size=6)
    status = run_eval(backend, run, config, quiet=True)
    items = pd.read_parquet(run / "items.parquet")
    n_cf = int(items["counterfactual"].sum())
    assert n_cf == int(items.loc[~items["counterfactual"], "income_bracket"].isin(["High income", "Low income"]).sum())
    assert status == {"requested": 2 * len(items), "resumed_from": 0, "written": 2 * len(items), "failed": 0,
                      "errors": []}
    preds = read_predictions(run / PREDICTIONS)
    # A fixed-answer model: one completion for every prompt, whose last answer block is the taught answer.
    assert preds["completion"].nunique() == 1 and set(preds["answer"]) == {"Very important"}
    # The reward's resolver decides: "Very important" resolves exactly where it is an option.
    has_vi = items.set_index("item")["options"].map(lambda o: "Very important" in list(o))
    parsed = preds.set_index(["item", "sample"])["pred"] >= 0
    assert (parsed == has_vi.reindex(parsed.index.get_level_values(0)).to_numpy()).all()
    # The reply never reached an end-of-sequence token: it ran to max_tokens (12 tokens) and says so.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(taught_model))
    assert len(tok(preds["completion"].iloc[0], add_special_tokens=False)["input_ids"]) == 12
    assert set(preds["finish_reason"]) == {"length"} and set(preds["reply"]) == {"text"}
    # Counterfactual prompts differ from their originals only in the income sentence.
    cf = items[items["counterfactual"]].iloc[0]
    orig = items.set_index("item").loc[cf["pair"]]
    a, b = json.loads(orig["messages"])[-1]["content"], json.loads(cf["messages"])[-1]["content"]
    assert a != b and a.replace(orig["income_bracket"], cf["income_bracket"]) == b

    # Resume: nothing to do; a line cut short by a kill is dropped and generated again, never duplicated.
    assert run_eval(backend, run, config, quiet=True)["requested"] == 0
    lines = (run / PREDICTIONS).read_bytes().splitlines(keepends=True)
    (run / PREDICTIONS).write_bytes(b"".join(lines[:-3]) + lines[-3][: len(lines[-3]) // 2])
    again = run_eval(backend, run, config, quiet=True)
    assert again["requested"] == 3 and again["written"] == 3
    final = read_predictions(run / PREDICTIONS)
    assert len(final) == 2 * len(items) == len(final.drop_duplicates(["item", "sample"]))

    report = build_report(run, bootstrap=200)
    m = report["model"]
    # Its accuracy is the share of the run's items whose truth is that answer, read here straight from the VeRL
    # parquet's ground truth (matched by prompt), not through the run's items or the scorer.
    verl = pd.read_parquet(out / "val.parquet")
    truth_of = {p[-1]["content"]: rm["ground_truth"] for p, rm in zip(verl["prompt"], verl["reward_model"])}
    truths = [truth_of[json.loads(msgs)[-1]["content"]] for msgs in items.loc[~items["counterfactual"], "messages"]]
    share = sum(t == "Very important" for t in truths) / len(truths)
    assert 0 < share < 1
    assert m["n_items"] == len(items) - n_cf and m["acc"] == pytest.approx(share) and m["coverage"] == 1.0
    assert report["replies"]["all"]["truncated"] == 2 * len(items)
    assert set(report["baselines"]) == {"uniform", "majority_question", "majority_country_question",
                                        "logistic_regression"}
    assert report["flip"]["attribute"] == "Income Bracket"
    for name in ("report.md", "metrics.json", "accuracy_by_country.png", "model_vs_baselines.png",
                 "entropy_vs_accuracy.png"):
        assert (run / name).stat().st_size > 0, name
    text = (run / "report.md").read_text()
    assert "| majority_country_question |" in text and "## Robustness: value flip rate" in text

    with pytest.raises(ValueError, match=r"holds a run with other settings.*limit: was 12, now 5"):
        run_eval(backend, run, EvalConfig(backend="hf", model=str(taught_model), data=config.data, limit=5),
                 quiet=True)


# ------------------------------------------------------------------------------------------------ OpenAI backend


def test_openai_backend_retries_every_failure_kind(dev_split, tmp_path):
    out, _, _ = dev_split
    config = EvalConfig(backend="openai", model="fake", data=[str(out / "val.parquet")], samples=2, limit=30)
    # The client timeout is far above a normal reply's latency and far below the slow reply's, so a loaded box
    # cannot turn a normal reply into a timeout (which would add attempts).
    with FakeServer(fail_every=3, slow_seconds=6.0) as server:
        backend = make_backend("openai", "fake", config.generation(), base_url=server.base_url, concurrency=8,
                               timeout=2.5, max_retries=4)
        backend.backoff = 0.01
        status = run_eval(backend, tmp_path / "run", config, quiet=True)
    assert status["failed"] == 0 and status["written"] == 60
    assert max(server.attempts.values()) == 3  # failed twice, served on the third attempt
    assert sum(v > 1 for v in server.attempts.values()) >= 15
    assert server.bodies[0]["chat_template_kwargs"] == {"enable_thinking": False}
    preds = read_predictions(tmp_path / "run" / PREDICTIONS)
    items = pd.read_parquet(tmp_path / "run" / "items.parquet")
    assert len(preds) == 60 and (preds["pred"] == 0).all()  # the server always names the first option
    acc = M.summary(M.point_scores(preds.merge(items.drop(columns="messages"), on="item")))["acc"]
    assert acc == pytest.approx((items["truth"] == 0).mean())


def test_openai_backend_reports_permanent_failures(dev_split, tmp_path):
    """A 4xx reply is not retried: each request fails for good at once and the run records it."""
    out, _, _ = dev_split
    config = EvalConfig(backend="openai", model="fake", data=[str(out / "val.parquet")], limit=4)
    with FakeServer(fail_every=0) as server:
        backend = make_backend("openai", "fake", config.generation(), base_url=server.base_url, max_retries=3)
        backend.url = server.base_url + "/no-such-route"
        status = run_eval(backend, tmp_path / "run", config, quiet=True)
    assert status["failed"] == 4 and status["written"] == 0 and "HTTP 404" in status["errors"][0]
    assert sum(server.attempts.values()) == 0  # nothing reached the chat route


def test_openai_resume_after_the_client_is_killed(dev_split, tmp_path):
    out, _, _ = dev_split
    run = tmp_path / "run"
    args = [sys.executable, "-m", "dvmap_verl.cli", "eval", "--backend", "openai", "--model", "fake",
            "--data", str(out / "val.parquet"), "--out", str(run), "--limit", "40", "--samples", "2",
            "--concurrency", "2", "--no-report", "--quiet"]
    with FakeServer(fail_every=0, delay=0.05) as server:
        proc = subprocess.Popen(args + ["--base-url", server.base_url], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            path = run / PREDICTIONS
            if path.exists() and path.read_bytes().count(b"\n") >= 10:
                break
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_at = len(read_predictions(run / PREDICTIONS))
        assert 10 <= killed_at < 80
        res = subprocess.run(args + ["--base-url", server.base_url], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
    final = read_predictions(run / PREDICTIONS)
    raw_lines = (run / PREDICTIONS).read_text().splitlines()
    assert len(final) == len(raw_lines) == 80  # nothing lost, nothing written twice
    assert final.set_index(["item", "sample"]).index.is_unique
    assert f"{80 - killed_at} new, {killed_at} resumed" in res.stdout


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_baselines_and_report(tmp_path):
    from dvmap_verl.data import synth
    from dvmap_verl.data.prepare import prepare_wvs

    synth.write(synth.generate(4000, seed=5), tmp_path / "wvs.csv")
    data = tmp_path / "data"
    prepare_wvs(tmp_path / "wvs.csv", data, quiet=True)
    run = tmp_path / "base"
    res = subprocess.run([sys.executable, "-m", "dvmap_verl.cli", "baselines", "--train", str(data / "train.parquet"),
                          "--test", str(data / "cross_demographic.parquet"), str(data / "cross_value.parquet"),
                          "--out", str(run)], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "majority_country_question: acc" in res.stdout and "NOTE: SYNTHETIC DATA" in res.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert "model" not in metrics and metrics["synthetic"] is True
    base = metrics["baselines"]
    assert base["logistic_regression"]["acc"] > base["uniform"]["acc"]
    # The 7 cross-value questions are unseen in training: the lookups fall back to uniform there.
    n_cv = len(pd.read_parquet(data / "cross_value.parquet"))
    n_all = n_cv + len(pd.read_parquet(data / "cross_demographic.parquet"))
    assert base["majority_question"]["fallback_rate"] == pytest.approx(n_cv / n_all)
    assert "Synthetic data." in (run / "report.md").read_text()
    assert (run / "attribute_importance.png").exists()
    res = subprocess.run([sys.executable, "-m", "dvmap_verl.cli", "report", str(tmp_path / "nope")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "no items.parquet" in res.stderr
    res = subprocess.run([sys.executable, "-m", "dvmap_verl.cli", "baselines", "--train", str(tmp_path / "t.parquet"),
                          "--test", str(data / "val.parquet"), "--out", str(tmp_path / "b2")], capture_output=True,
                         text=True)
    assert res.returncode == 2 and "t.parquet: no such file" in res.stderr and not (tmp_path / "b2").exists()
    res = subprocess.run([sys.executable, "-m", "dvmap_verl.cli", "eval", "--backend", "hf", "--model", "x",
                          "--data", str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "e2")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "missing.parquet: no such file" in res.stderr and not (tmp_path / "e2").exists()


def test_load_items_reads_release_folders_and_rejects_others(release_dev_path, tmp_path):
    items = load_items([release_dev_path], limit=50)
    assert len(items) == 50 and items["split"].eq("val").all()
    bad = tmp_path / "x.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(bad)
    with pytest.raises(Exception, match="x.parquet"):
        load_items([bad])
    assert math.isfinite(float(items["frequency"].iloc[0]))


def test_report_can_score_by_the_release_rule(tmp_path, synthetic_data):
    """`--correctness release`: the authors' rule, case-sensitive and closing tag required; the resolver reads the
    same completions by option. Eight importance items, four completion patterns with verdicts worked by hand."""
    from dvmap_verl.evaluation.evaluate import prepare_run

    importance = ["Very important", "Rather important", "Not very important", "Not at all important"]
    verl = pd.read_parquet(synthetic_data(4000, seed=11) / "val.parquet")
    keep = [list(e["options"]) == importance for e in verl["extra_info"]]
    subset = tmp_path / "importance.parquet"
    verl[keep].head(8).to_parquet(subset)
    run = tmp_path / "run"
    items = prepare_run(run, EvalConfig(backend="none", model="m", data=[str(subset)]))
    assert len(items) == 8

    def pattern(i: int, t: int) -> tuple[str, int]:  # (completion, the option index the resolver reads)
        truth = importance[t]
        return [(f"<answer>{truth}</answer>", t),            # release: equal -> right; resolver: right
                (f"<answer>{truth.lower()}</answer>", t),    # release: case differs -> wrong; resolver: right
                (f"<answer>{truth}", t),                     # release: no closing tag -> wrong; resolver: right
                (f"<answer>{importance[(t + 1) % 4]}</answer>", (t + 1) % 4)][i % 4]  # another option: both wrong

    with open(run / PREDICTIONS, "w") as fh:
        for i, t in zip(items["item"], items["truth"]):
            text, pred = pattern(i, t)
            fh.write(json.dumps({"item": int(i), "sample": 0, "completion": text, "answer": None,
                                 "pred": pred}) + "\n")
    resolver = build_report(run, bootstrap=0, importance=False)["model"]
    release = build_report(run, bootstrap=0, importance=False, correctness="release")["model"]
    assert resolver["correctness"] == "resolver" and release["correctness"] == "release"
    # Patterns 0-2 right for the resolver (6 of 8); only pattern 0 right by their rule (2 of 8); none skipped.
    assert resolver["acc"] == release["resolver_acc"] == 0.75
    assert release["acc"] == resolver["release_acc"] == 0.25
    assert release["release_skipped"] == resolver["release_skipped"] == 0
