"""One run protocol (eval, eval-pairs, import-run) and one reader for every JSONL read back: each test is a case
from the issues "One guarded run protocol" and "Hostile files and odd arguments", asserting the exact outcome."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dvmap_verl.evaluation import pairs as P
from dvmap_verl.evaluation.backends import Request
from dvmap_verl.evaluation.evaluate import (PREDICTIONS, REJECTED, EvalConfig, PredictionWriter, prepare_run,
                                            run_eval, scan_predictions)
from dvmap_verl.evaluation.readouts import Scores
from dvmap_verl.evaluation.report import build_report
from dvmap_verl.evaluation.runs import RunSettingsError, load_json_object, read_jsonl, run_lock

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "dvmap_verl.cli"]
ODD = "a\u2028b\u2029c\u0085d"  # what str.splitlines() splits and b"\n" does not


def _cli(*args, timeout=300):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def _hashes(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones included) -> its sha256."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


class StubBackend:
    """Answers every request with ``answer(request)``; counts the requests it was sent."""

    name = "stub"

    def __init__(self, answer=lambda r: "<answer>A</answer>", logprobs=lambda r: (-1.0, -2.0)):
        self.answer, self.logprobs, self.sent = answer, logprobs, 0

    def run(self, requests, on_result, on_error):
        for r in requests:
            self.sent += 1
            on_result(r, self.answer(r))

    def score(self, requests, on_result, on_error):
        for r in requests:
            self.sent += 1
            on_result(r, Scores(tuple(self.logprobs(r)), (1, 1)))


@pytest.fixture(scope="module")
def data(synthetic_data) -> Path:
    return synthetic_data(3000)


@pytest.fixture()
def run(data, tmp_path):
    """A run folder of 8 val items, every record right (pred = truth), written as dvmap writes them."""
    out = tmp_path / "run"
    config = EvalConfig(backend="stub", model="stub", data=[str(data / "val.parquet")], limit=8, samples=1)
    items = prepare_run(out, config)
    options = items["options"].tolist()
    backend = StubBackend(answer=lambda r: f"<answer>{options[r.item][int(items['truth'][r.item])]}</answer>")
    assert run_eval(backend, out, config, quiet=True, items=items)["written"] == 8
    return out, items


def _append(path: Path, *lines: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(b"".join(lines))


def _record(item: int, **kw) -> dict:
    return {"item": item, "sample": 0, "completion": "x", "answer": None, "pred": -1, **kw}


# --------------------------------------------------------------------------------------------- the reader


def test_hostile_prediction_lines_are_set_aside_counted_and_named(run):
    out, items = run
    path = out / PREDICTIONS
    k0 = int(items["k"][0])
    deep = b'{"item": 0, "sample": 1, "completion": "x", "pred": 0, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    big = b'{"item": 0, "sample": 2, "completion": "x", "pred": ' + b"7" * 5000 + b"}\n"
    hostile = [deep, big,
               json.dumps(_record(1, sample=3, pred=k0 + 3)).encode() + b"\n",  # "pred": 7 on a 4-option item
               json.dumps(_record(1, sample=4, pred=99)).encode() + b"\n",
               b'{"item": 2, "sample": 5, "completion": "x", "pred": 0, "probs": [Infinity, 0, 0, 0]}\n',
               json.dumps(_record(2, sample=6, pred=0, probs=[1.5, -0.5] + [0.0] * (int(items["k"][2]) - 2))).encode()
               + b"\n",
               json.dumps(_record(2, sample=7, pred=0, probs=[1.0])).encode() + b"\n",
               b'{"item": 2, "sample": 8, "completion": "x", "pred": 0, "probs": [NaN, 0, 0, 0]}\n']
    _append(path, *hostile)
    # items 0-2 of the limited set all have K = int(items.k[i]); the stub wrote pred = truth, so Acc = LC = 1.
    report = build_report(out, bootstrap=0, importance=False)
    assert report["model"]["n_samples"] == 8 and report["model"]["acc"] == 1.0 and report["model"]["lc"] == 1.0
    warning = next(w for w in report["warnings"] if "unreadable" in w)
    assert f"{path}: skipped 8 unreadable line(s) (line 9, 10, 11, 12, 13, ... 3 more)" in warning
    assert "line 9: nested 100,001 deep (at most 32)" in warning
    assert "line 10: an integer of 5,000 digits (at most 30)" in warning
    assert f"line 11: pred {k0 + 3} outside the item's options [0, {k0})" in warning
    scan = scan_predictions(path, n_items=len(items), n_options=items["k"].tolist())
    assert scan.reasons == {9: "nested 100,001 deep (at most 32)", 10: "an integer of 5,000 digits (at most 30)",
                            11: f"pred {k0 + 3} outside the item's options [0, {k0})",
                            12: f"pred 99 outside the item's options [0, {int(items['k'][1])})",
                            13: "Infinity is not JSON", 14: "probs holds a negative value",
                            15: f"probs holds 1 values for {int(items['k'][2])} options", 16: "NaN is not JSON"}
    assert "Warning." in (out / "report.md").read_text()


def test_a_resume_sets_invalid_records_aside_and_redoes_them(run):
    out, items = run
    path = out / PREDICTIONS
    lines = path.read_bytes().splitlines(keepends=True)
    bad = json.dumps(_record(0, sample=0, pred=99)).encode() + b"\n"
    path.write_bytes(b"".join([bad] + lines[1:]))  # item 0's record replaced by an out-of-range pred
    config = EvalConfig(backend="stub", model="stub", data=json.loads((out / "run.json").read_text())["config"]["data"],
                        limit=8, samples=1)
    status = run_eval(StubBackend(), out, config, quiet=True, items=items)
    assert status["requested"] == 1 and status["set_aside"]["lines"] == [1]
    assert (out / REJECTED).read_bytes() == bad


def test_writers_escape_what_readers_split_on(run, tmp_path):
    out, items = run
    # Written: ASCII only, the three separators escaped; read back: one record, the completion intact.
    writer = PredictionWriter(tmp_path / "p.jsonl", items)
    writer.write(Request(0, 0, ()), f"<answer>{ODD}</answer>")
    writer.close()
    raw = (tmp_path / "p.jsonl").read_bytes()
    assert raw.isascii() and raw.count(b"\n") == 1 and b"\\u2028" in raw and b"\\u0085" in raw
    assert read_jsonl(tmp_path / "p.jsonl").records[0]["completion"] == f"<answer>{ODD}</answer>"
    # Read: a line written raw (as older versions did, ensure_ascii=False) is still one record.
    (tmp_path / "raw.jsonl").write_bytes(json.dumps(_record(0, completion=ODD), ensure_ascii=False).encode() + b"\n")
    scan = read_jsonl(tmp_path / "raw.jsonl")
    assert len(scan.records) == 1 and scan.records[0]["completion"] == ODD and not scan.skipped


# --------------------------------------------------------------------------------------------- eval-pairs


def _pairs(n: int, tag: str = "") -> pd.DataFrame:
    return pd.DataFrame({"question": [f"q{i}{tag}" for i in range(n)], "chosen": [f"yes{i}" for i in range(n)],
                         "rejected": [f"no{i}" for i in range(n)], "country": ["A", "B"] * (n // 2),
                         "pair_id": np.arange(n)})


def _pair_config(path: Path) -> P.PairsConfig:
    return P.PairsConfig(backend="hf", model="stub-model", data=str(path))


def test_eval_pairs_refuses_another_data_file_folder_byte_identical(tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    _pairs(4).to_parquet(a)
    _pairs(4, tag="-other").to_parquet(b)
    out = tmp_path / "run"
    with run_lock(out):  # as `dvmap eval-pairs` runs it
        P.run_pairs(StubBackend(), out, _pair_config(a), P.load_pairs(a), quiet=True)
    P.pairs_report(out, bootstrap=0)
    before = _hashes(out)
    # The check runs before any model loads: "stub-model" is no model, and is never opened.
    res = _cli("eval-pairs", "--data", b, "--backend", "hf", "--model", "stub-model", "--out", out, "--quiet")
    assert res.returncode == 2
    assert f"{out} holds a run with other settings or data" in res.stderr
    assert f"data: {b} (4 pairs) is not the table this folder scored ({a}, 4 pairs)" in res.stderr
    assert _hashes(out) == before
    # Through the API as well (run_pairs guards itself).
    with pytest.raises(RunSettingsError, match="is not the table this folder scored"):
        P.run_pairs(StubBackend(), out, _pair_config(b), P.load_pairs(b), quiet=True)
    assert _hashes(out) == before


def test_pair_consistency_and_paa_by_hand(tmp_path):
    """Four pairs; the stub judge always answers A; log-probs chosen -1 vs rejected -2 on pairs 0, 2, the reverse
    on pairs 1, 3. By hand: likelihood PAA = 2/4; judge: order 0 (chosen is A) scores 1, order 1 (chosen is B)
    scores 0, so every pair scores 0.5 (PAA 0.5) and no pair is picked the same way in both orders (consistency
    0); no pick is unparsed."""
    path = tmp_path / "p.parquet"
    _pairs(4).to_parquet(path)
    out = tmp_path / "run"
    stub = StubBackend(logprobs=lambda r: (-1.0, -2.0) if r.item % 2 == 0 else (-2.0, -1.0))
    P.run_pairs(stub, out, _pair_config(path), P.load_pairs(path), quiet=True)
    m = P.pairs_report(out, bootstrap=0)
    like, judge = m["readouts"]["likelihood"], m["readouts"]["judge"]
    assert like["paa"] == 0.5 and like["ci95"] is None
    assert judge["paa"] == 0.5 and judge["consistency"] == 0.0 and judge["unparsed"] == 0.0 and judge["ci95"] is None
    assert [r["paa"] for r in like["by"]["country"]] == [1.0, 0.0]  # country A: pairs 0, 2; B: pairs 1, 3
    # A judge that always picks the chosen answer: consistent in both orders, PAA 1.
    out2 = tmp_path / "run2"
    faithful = StubBackend(answer=lambda r: "<answer>A</answer>" if r.sample == 0 else "<answer>B</answer>")
    P.run_pairs(faithful, out2, _pair_config(path), P.load_pairs(path), quiet=True)
    m2 = P.pairs_report(out2, bootstrap=0)
    assert m2["readouts"]["judge"]["paa"] == 1.0 and m2["readouts"]["judge"]["consistency"] == 1.0
    # --bootstrap 0 on the console: no intervals, no traceback.
    import io

    console = io.StringIO()
    P.print_summary(m2, file=console)
    assert "judge: PAA 1.000 (no interval) over 4 pairs, consistent 100.0%" in console.getvalue()
    text = (out2 / "report.md").read_text()
    assert "(95% CI no interval)" in text


def test_eval_pairs_repairs_before_appending_and_never_redoes_odd_completions(tmp_path):
    path = tmp_path / "p.parquet"
    _pairs(2).to_parquet(path)
    out = tmp_path / "run"
    stub = StubBackend(answer=lambda r: f"<answer>A</answer> {ODD}")
    P.run_pairs(stub, out, _pair_config(path), P.load_pairs(path), quiet=True)
    assert stub.sent == 2 + 4  # 2 likelihood, 2 x 2 judge prompts
    results = out / P.RESULTS
    assert results.read_bytes().isascii() and len(results.read_bytes().split(b"\n")) == 7
    # A rerun: nothing is asked again (the completions with U+2028/U+2029/U+0085 read back as one line each).
    again = StubBackend()
    P.run_pairs(again, out, _pair_config(path), P.load_pairs(path), quiet=True)
    assert again.sent == 0
    # A torn last line and a line that is not an object: set aside, and the redone record lands on its own line.
    lines = results.read_bytes().splitlines(keepends=True)
    torn = lines[-1][: len(lines[-1]) // 2]
    results.write_bytes(b"".join(lines[:-1]) + b"[1, 2]\n" + torn)
    report = P.pairs_report(out, bootstrap=0)
    assert any(f"{results}: skipped 2 unreadable line(s) (line 6, 7)" in w for w in report["warnings"])
    assert any("partial run: judge has 3 of 4 records" in w for w in report["warnings"])
    redo = StubBackend(answer=stub.answer)
    status = P.run_pairs(redo, out, _pair_config(path), P.load_pairs(path), quiet=True)
    assert redo.sent == 1 and status["set_aside"]["lines"] == [6, 7]
    assert (out / P.REJECTED).read_bytes() == b"[1, 2]\n" + torn + b"\n"
    scan = read_jsonl(results)
    assert len(scan.records) == 6 and not scan.skipped
    assert scan.records[-1] == json.loads(lines[-1])


# --------------------------------------------------------------------------------------------- run.json, args


@pytest.mark.parametrize("content,why", [("[1, 2]", "holds a JSON list, not the object dvmap writes"),
                                         ("{not json", "not valid JSON")])
def test_a_broken_run_json_is_named(run, content, why):
    out, _ = run
    (out / "run.json").write_text(content)
    res = _cli("report", out, "--bootstrap", "0")
    assert res.returncode == 2 and f"{out / 'run.json'}: {why}" in res.stderr and "Traceback" not in res.stderr
    res = _cli("eval", "--backend", "hf", "--model", "no-model", "--data", _run_data(out), "--out", out, "--limit", "8",
               "--no-report")
    assert res.returncode == 2 and f"{out / 'run.json'}: {why}" in res.stderr


def _run_data(out: Path) -> str:
    return str(pd.read_parquet(out / "items.parquet")["source_file"].iloc[0])


@pytest.mark.parametrize("value", ["nan", "-1", "inf", "2.5"])
def test_temperatures_are_checked_where_parsed(value, tmp_path):
    for cmd in ("eval", "eval-pairs"):
        res = _cli(cmd, "--backend", "hf", "--model", "m", "--data", tmp_path / "x.parquet", "--out", tmp_path / "o",
                   "--temperature", value)
        assert res.returncode == 2 and f"must be a finite number in [0, 2], got {value}" in res.stderr
    assert not (tmp_path / "o").exists()


def test_no_nan_reaches_run_json(data, tmp_path):
    config = EvalConfig(backend="stub", model="stub", data=[str(data / "val.parquet")], limit=2,
                        temperature=float("nan"))
    with pytest.raises(RunSettingsError, match=r"setting\(s\) \['temperature'\] are NaN or infinite"):
        prepare_run(tmp_path / "o", config)
    assert not (tmp_path / "o" / "run.json").exists() and not (tmp_path / "o" / "items.parquet").exists()


def test_the_same_data_file_twice_is_read_once(data, tiny_model_dir, tmp_path):
    ten = tmp_path / "ten.parquet"
    pd.read_parquet(data / "val.parquet").head(10).to_parquet(ten)
    (tmp_path / "sub").mkdir()
    again = tmp_path / "sub" / ".." / "ten.parquet"
    res = _cli("eval", "--backend", "hf", "--model", tiny_model_dir, "--data", ten, again,
               "--out", tmp_path / "o", "--max-tokens", "2", "--no-report", "--quiet")
    assert res.returncode == 0, res.stderr
    assert f"NOTE: --data {again} is {ten} again; it is read once" in res.stderr
    assert json.loads((tmp_path / "o" / "run.json").read_text())["n_items"] == 10
    assert len((tmp_path / "o" / PREDICTIONS).read_bytes().splitlines()) == 10


def test_smoke_paths_are_escaped_for_hydra_or_refused(tmp_path):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    odd = tmp_path / "runs,a[1]=b"
    res = _cli("smoke", "--dry-run", "--out", odd)
    assert res.returncode == 0, res.stderr
    train = next(line for line in res.stdout.splitlines() if "main_ppo" in line)
    import shlex

    overrides = dict(a.split("=", 1) for a in shlex.split(train) if a.startswith("trainer.default_local_dir="))
    parsed = OverridesParser.create().parse_override("x=" + overrides["trainer.default_local_dir"]).value()
    assert parsed == str(odd.resolve() / "checkpoints")
    res = _cli("smoke", "--dry-run", "--out", tmp_path / "it's")
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0
    assert f"--out {(tmp_path / ('it' + chr(39) + 's')).resolve()}: Hydra cannot carry this path" in res.stderr


# --------------------------------------------------------------------------------------------- outputs


def test_curves_reads_hostile_dumps_and_replaces_its_own_event_file(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from dvmap_verl.training.curves import build_curves

    dumps = tmp_path / "rollouts"
    dumps.mkdir()
    good = [{"output": "ab", "score": 1.0, "acc": 1.0}, {"output": f"{ODD}", "score": 0.0, "acc": 0.0}]
    for step in (1, 2):
        (dumps / f"{step}.jsonl").write_bytes(
            b"".join(json.dumps(r).encode() + b"\n" for r in good)
            + b'{"output": "x", "acc": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
            + b'{"output": "x", "acc": ' + b"9" * 5000 + b"}\n" + b'{"output": "x", "acc": Infinity}\n')
    for _ in range(2):
        frame = build_curves(dumps, tmp_path / "curves")
    assert frame["rollouts"].tolist() == [2, 2] and frame["acc"].tolist() == [0.5, 0.5]
    assert frame["skipped_lines"].tolist() == [3, 3]
    assert "line 3: nested 100,001 deep" in frame["skipped_why"][0]
    events = list((tmp_path / "curves" / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(events[0]))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("dvmap/acc")] == [(1, 0.5), (2, 0.5)]
    # Into a shared TensorBoard folder, verl's own event file is left alone.
    shared = tmp_path / "tb"
    shared.mkdir()
    (shared / "events.out.tfevents.1.host.verl").write_bytes(b"verl")
    for _ in range(2):
        build_curves(dumps, tmp_path / "curves", tensorboard=shared)
    names = sorted(p.name for p in shared.iterdir())
    assert len(names) == 2 and "events.out.tfevents.1.host.verl" in names


def test_report_clears_a_killed_runs_tmp_and_keys_breakdowns_by_name(run):
    out, _ = run
    stale = out / ".report.md.999999999-abcd1234.tmp"  # pid 999999999: no such process
    stale.write_bytes(b"")
    live = out / f".report.md.{os.getpid()}-abcd1234.tmp"  # a running writer's: kept
    live.write_bytes(b"")
    build_report(out, bootstrap=0, importance=False)
    assert not stale.exists() and live.exists()
    metrics = json.loads((out / "metrics.json").read_text())
    for group in ("q_id", "country", "split"):
        first = metrics["model"]["by"][group][0]
        assert group in first and "index" not in first


# --------------------------------------------------------------------------------------------- errors name files


def test_every_input_error_names_its_file(run, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    res = _cli("import-run", "--release-csv", empty, "--benchmark", tmp_path, "--out", tmp_path / "imp")
    assert res.returncode == 2 and f"{empty}: empty file (no header, no rows)" in res.stderr
    fake = tmp_path / "fake.parquet"
    fake.write_text("question,chosen\n")
    res = _cli("eval", "--backend", "hf", "--model", "m", "--data", fake, "--out", tmp_path / "o")
    assert res.returncode == 2 and f"{fake}: not a readable parquet file (Parquet magic bytes not found" in res.stderr
    out, _ = run
    zero = tmp_path / "zero.parquet"
    pd.read_parquet(_run_data(out)).head(0).to_parquet(zero)
    res = _cli("eval", "--backend", "hf", "--model", "m", "--data", zero, "--out", tmp_path / "o")
    assert res.returncode == 2 and f"{zero}: the split is empty (0 rows)" in res.stderr
    assert not (tmp_path / "o").exists()


def test_load_json_object_names_the_file(tmp_path):
    path = tmp_path / "stats.json"
    path.write_text('{"a": ' + "[" * 50 + "]" * 50 + "}")
    with pytest.raises(ValueError, match=f"{path}: not valid JSON \\(nested 51 deep"):
        load_json_object(path)
    path.write_text('{"config": [1]}')
    with pytest.raises(ValueError, match='its "config" is a JSON list'):
        load_json_object(path)


# --------------------------------------------------------------------------------------------- checkpoints


def _evaluate_checkpoint():
    spec = importlib.util.spec_from_file_location("evaluate_checkpoint", REPO / "eval" / "evaluate_checkpoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checkpoint_evaluation_re_merges_a_changed_checkpoint(tmp_path, monkeypatch):
    ec = _evaluate_checkpoint()
    merged = []

    def fake_merge(checkpoint, target):
        merged.append(Path(checkpoint))
        Path(target).mkdir(parents=True)
        (Path(target) / "config.json").write_text(json.dumps({"step": len(merged)}))

    monkeypatch.setattr(ec, "merge_fsdp_checkpoint", fake_merge)
    actor = tmp_path / "ckpt" / "global_step_3" / "actor"
    actor.mkdir(parents=True)
    (actor / "fsdp_config.json").write_text("{}")
    (actor / "model_world_size_1_rank_0.pt").write_bytes(b"v1")
    out = tmp_path / "out"
    model = ec.ensure_merged(actor.parent, out)
    source = json.loads((model / ec.SOURCE).read_text())
    assert source["path"] == str(actor.resolve()) and source["step"] == 3
    assert set(source["files"]) == {"fsdp_config.json", "model_world_size_1_rank_0.pt"}
    ec.ensure_merged(actor.parent, out)
    assert len(merged) == 1  # unchanged: reused
    (actor / "model_world_size_1_rank_0.pt").write_bytes(b"v2, longer")  # the checkpoint was rewritten
    ec.ensure_merged(actor.parent, out)
    assert len(merged) == 2 and json.loads((model / "config.json").read_text()) == {"step": 2}
    assert not list(out.glob(".merged_model.staging-*"))
    # A changed checkpoint under a run that already holds the old weights' predictions: refused, nothing merged.
    (out / PREDICTIONS).write_text("")
    (actor / "model_world_size_1_rank_0.pt").write_bytes(b"v3, longer still")
    with pytest.raises(ValueError, match="holds predictions of .* \\(step 3\\); the checkpoint is now"):
        ec.ensure_merged(actor.parent, out)
    assert len(merged) == 2


def test_bootstrap_zero_means_no_intervals_in_report_and_compare(run, tmp_path):
    import shutil

    from dvmap_verl.evaluation.compare import compare_runs

    out, _ = run
    report = build_report(out, bootstrap=0, importance=False)
    assert "ci95" not in report["model"] and "95% bootstrap CI" not in (out / "report.md").read_text()
    twin = tmp_path / "twin"
    shutil.copytree(out, twin)
    res = compare_runs([out, twin], tmp_path / "cmp", bootstrap=0, baselines=False)
    d = res["differences"][0]
    assert d["d_acc"] == 0.0 and math.isnan(d["d_acc_lo"]) and math.isnan(d["d_acc_hi"])
    text = (tmp_path / "cmp" / "compare.md").read_text()
    row = next(line for line in text.split("## Difference")[1].splitlines() if line.startswith("| twin"))
    # One column per point metric of the registry: Acc, LC, WD (as before), WD/(K-1), 1 - JSD, unparsed rate, TV.
    assert row == "| twin | 8 |" + " +0.000 |" * 7


def test_a_pair_run_from_before_fingerprints_still_resumes(tmp_path):
    path = tmp_path / "p.parquet"
    _pairs(2).to_parquet(path)
    out = tmp_path / "run"
    P.run_pairs(StubBackend(), out, _pair_config(path), P.load_pairs(path), quiet=True)
    record = json.loads((out / "run.json").read_text())
    del record["data_fingerprint"]  # as run.json was written before this version
    (out / "run.json").write_text(json.dumps(record))
    again = StubBackend()
    P.run_pairs(again, out, _pair_config(path), P.load_pairs(path), quiet=True)
    assert again.sent == 0
    other = tmp_path / "o.parquet"
    _pairs(2, tag="-x").to_parquet(other)
    (out / "run.json").write_text(json.dumps(record))
    with pytest.raises(RunSettingsError, match="is not the table this folder scored"):
        P.run_pairs(StubBackend(), out, _pair_config(other), P.load_pairs(other), quiet=True)


# --------------------------------------------------------------------------------------------- fixeval gaps


def test_a_sample_beyond_the_runs_samples_is_set_aside(run, tmp_path):
    """A 1-sample run of 8 right records, item 7's record removed and a wrong `sample 3` of item 6 appended: the
    report keeps 7 records (acc 1.0, not 7/8 of item means mixed with a 0), names the line, and still says the run
    is partial (7 of 8); compare reads the same 7; a resume moves the line aside and asks only item 7 again."""
    from dvmap_verl.evaluation.compare import load_run
    from dvmap_verl.evaluation.runs import run_samples

    out, items = run
    path = out / PREDICTIONS
    lines = path.read_bytes().splitlines(keepends=True)
    assert [json.loads(x)["item"] for x in lines] == list(range(8))
    wrong = (int(items["truth"][6]) + 1) % int(items["k"][6])
    stray = json.dumps(_record(6, sample=3, pred=wrong)).encode() + b"\n"
    path.write_bytes(b"".join(lines[:7]) + stray)  # line 8 is the stray record
    report = build_report(out, bootstrap=0, importance=False)
    assert report["model"]["n_samples"] == 7 and report["model"]["acc"] == 1.0
    warnings = "\n".join(report["warnings"])
    assert "line 8: sample 3 out of range (the run asked 1 sample(s) per item: 0-0)" in warnings
    assert "partial run: 7 of 8 (item, sample) pairs have a prediction" in warnings
    scored, _, _ = load_run(out)
    assert len(scored) == 7 and scored["correct"].sum() == 7
    config = EvalConfig(backend="stub", model="stub", data=json.loads((out / "run.json").read_text())["config"]["data"],
                        limit=8, samples=1)
    status = run_eval(StubBackend(), out, config, quiet=True, items=items)
    assert status["requested"] == 1 and status["set_aside"]["lines"] == [8]
    assert (out / REJECTED).read_bytes() == stray
    # Baselines-only runs record samples 0 (no bound); probability readouts run 1 sample.
    assert [run_samples(r) for r in ({"config": {"samples": 0}}, {"config": {"samples": None}}, {"config": {}},
                                     {"config": {"samples": True}}, {"config": {"samples": 1}}, None)] == \
        [None, None, None, None, 1, None]


@pytest.mark.slow
def test_a_replica_that_cannot_load_its_model_is_one_line_and_claims_no_folder(data, tmp_path):
    """--replicas 2 with a model that cannot load (a repo id, offline): the same `dvmap: error:` line and exit 2 as
    one engine, no Ray traceback, no run folder."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(REPO))
    errors = {}
    for replicas in ("1", "2"):
        out = tmp_path / f"r{replicas}"
        res = subprocess.run(CLI + ["eval", "--backend", "hf", "--model", "dvmap-test/no_such_model", "--data",
                                    str(data / "val.parquet"), "--limit", "4", "--out", str(out), "--no-report",
                                    "--replicas", replicas], capture_output=True, text=True, timeout=240, env=env)
        assert res.returncode == 2, res.stderr[-3000:]
        assert "Traceback" not in res.stderr and "RayActorError" not in res.stderr, res.stderr[-3000:]
        errors[replicas] = [x for x in res.stderr.splitlines() if x.startswith("dvmap: error:")]
        assert not out.exists()
    assert len(errors["2"]) == 1 and errors["2"] == errors["1"]
    # A repo id (a local path that is not there is refused before Ray starts: test_newcomer) offline: the option
    # and the hub's own reason, once.
    assert errors["2"][0].startswith("dvmap: error: --model dvmap-test/no_such_model: cannot load it with "
                                     "transformers (We couldn't connect to 'https://huggingface.co' to load")


def test_cause_message_unwraps_ray_errors():
    ray_exceptions = pytest.importorskip("ray.exceptions")
    from dvmap_verl.evaluation.backends.replicas import cause_message

    died = ray_exceptions.RayActorError(error_msg=(
        "The actor died because of an error raised in its creation task, \x1b[36mray::_BackendActor.__init__()"
        "\x1b[39m (pid=1, ip=10.0.0.1)\n  File \"/x/replicas.py\", line 35, in __init__\n    self.backend = "
        "make_backend(kind, model, settings, **options)\n           ^^^^^^^^^^^^\nOSError: m is not a local folder"
        "\nand not a model id"), actor_init_failed=True)
    assert cause_message(died) == "m is not a local folder\nand not a model id"
    task = ray_exceptions.RayTaskError("f", "Traceback ...", ValueError("bad --model"))
    assert cause_message(task) == "bad --model"
    assert cause_message(ray_exceptions.RayActorError(error_msg="The actor died unexpectedly")) == \
        "The actor died unexpectedly"


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the block ends: nothing listens there


def test_a_server_down_at_the_start_claims_no_folder(data, tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    out = tmp_path / "run"
    common = ["eval", "--backend", "openai", "--base-url", url, "--data", data / "val.parquet", "--limit", "4",
              "--out", out, "--no-report"]
    res = _cli(*common, "--model", "m", timeout=120)
    assert res.returncode == 2 and f"dvmap: error: cannot connect to {url}" in res.stderr, res.stderr[-2000:]
    assert not out.exists()
    res = _cli(*common, "--model", "m2", timeout=120)  # a corrected rerun is a new run, not a refused resume
    assert res.returncode == 2 and f"dvmap: error: cannot connect to {url}" in res.stderr, res.stderr[-2000:]
    assert "was 'm'" not in res.stderr and not out.exists()
    out.mkdir()  # a folder that held a file of the user's keeps exactly that
    (out / "notes.txt").write_text("mine\n")
    before = _hashes(out)
    res = _cli(*common, "--model", "m", timeout=120)
    assert res.returncode == 2 and _hashes(out) == before == {"notes.txt": hashlib.sha256(b"mine\n").hexdigest()}


@pytest.mark.parametrize("value", ["nan", "-1", "inf", "0", "-inf"])
def test_timeouts_are_checked_where_parsed(value, tmp_path):
    res = _cli("eval", "--backend", "openai", "--model", "m", "--data", tmp_path / "x.parquet", "--out",
               tmp_path / "o", f"--timeout={value}")
    assert res.returncode == 2 and f"argument --timeout: must be a finite number of seconds > 0, got {value}" in \
        res.stderr, res.stderr
    assert not (tmp_path / "o").exists()


_MODEL_MISSING = {"object": "error", "message": "The model `m` does not exist.", "code": 404}


def _nothing_kept(out: Path, n: int) -> str:
    return (f"dvmap: all {n} request(s) failed and none was answered; nothing was kept in {out}, so this command "
            f"can be rerun with other settings")


@pytest.mark.parametrize("status", [404, 200])
def test_a_run_whose_every_request_failed_claims_no_folder(status, data, tmp_path):
    from fake_openai import Body, FakeServer

    out = tmp_path / "run"
    with FakeServer(fail_every=0, shape=lambda seed, attempt, options: Body(_MODEL_MISSING, status=status)) as srv:
        common = ["eval", "--backend", "openai", "--base-url", srv.base_url, "--max-retries", "0", "--data",
                  data / "val.parquet", "--limit", "3", "--out", out, "--quiet"]
        for model in ("m", "m2"):  # the corrected rerun is a new run, not a resume refused for its settings
            res = _cli(*common, "--model", model, timeout=120)
            lines = res.stderr.rstrip().splitlines()
            assert res.returncode == 1, res.stderr[-2000:]
            assert [line.split(":")[0] for line in lines[:3]] == ["  failed"] * 3
            assert all("The model `m` does not exist. (code 404)" in line for line in lines[:3]), lines
            assert lines[3:] == [_nothing_kept(out, 3)], lines
            assert "was 'm'" not in res.stderr and not out.exists()
        out.mkdir()  # a folder that held a file of the user's keeps exactly that
        (out / "notes.txt").write_text("mine\n")
        res = _cli(*common, "--model", "m", timeout=120)
        assert res.returncode == 1 and _nothing_kept(out, 3) in res.stderr
        assert _hashes(out) == {"notes.txt": hashlib.sha256(b"mine\n").hexdigest()}


def test_a_resumed_run_whose_requests_all_fail_keeps_its_folder(data, tmp_path):
    from fake_openai import Body, FakeServer

    out = tmp_path / "run"
    common = ["--max-retries", "0", "--data", data / "val.parquet", "--limit", "3", "--out", out, "--quiet",
              "--no-report", "--model", "m"]
    # First run, one request at a time: the first two are answered, the third gets an error.
    answered = {"n": 0}

    def first_two(seed, attempt, options):
        answered["n"] += 1
        return None if answered["n"] <= 2 else Body(_MODEL_MISSING, status=404)

    with FakeServer(fail_every=0, shape=first_two) as srv:
        res = _cli("eval", "--backend", "openai", "--base-url", srv.base_url, "--concurrency", "1", *common)
    assert res.returncode == 1 and len((out / PREDICTIONS).read_text().splitlines()) == 2, res.stderr[-2000:]
    before = _hashes(out)
    with FakeServer(fail_every=0, shape=lambda seed, attempt, options: Body(_MODEL_MISSING, status=404)) as srv:
        res = _cli("eval", "--backend", "openai", "--base-url", srv.base_url, *common)
    assert res.returncode == 1 and "nothing was kept" not in res.stderr, res.stderr[-2000:]
    assert "(0 new, 2 resumed, 1 failed)" in res.stdout
    after = _hashes(out)  # run.json records the resume; the predictions and items are kept byte for byte
    assert sorted(after) == sorted(before) == [".lock", "items.parquet", "predictions.jsonl", "run.json"]
    kept = (PREDICTIONS, "items.parquet")
    assert {k: after[k] for k in kept} == {k: before[k] for k in kept}


def test_a_run_timing_out_against_a_closed_port_claims_no_folder(data, tmp_path):
    out = tmp_path / "run"
    common = ["eval", "--backend", "openai", "--base-url", f"http://127.0.0.1:{_closed_port()}/v1", "--timeout",
              "1e-9", "--max-retries", "0", "--data", data / "val.parquet", "--limit", "3", "--out", out,
              "--quiet", "--model"]
    res = _cli(*common, "m", timeout=120)
    assert res.returncode == 1 and res.stderr.strip().splitlines()[-1] == _nothing_kept(out, 3), res.stderr[-2000:]
    assert not out.exists()
    res = _cli(*common, "m2", timeout=120)
    assert res.returncode == 1 and "was 'm'" not in res.stderr and not out.exists(), res.stderr[-2000:]


def test_out_of_range_names_the_field():
    from dvmap_verl.evaluation.runs import prediction_problem

    rec = {"item": 0, "sample": 0, "pred": 0, "completion": ""}
    assert prediction_problem({**rec, "sample": -1}, n_items=6) == \
        "sample -1 out of range (samples are numbered from 0)"
    assert prediction_problem({**rec, "item": 6}, n_items=6) == "item 6 out of range (items 0-5)"
    assert prediction_problem({**rec, "item": -1}, n_items=6) == "item -1 out of range (items 0-5)"
    assert prediction_problem({**rec, "item": -1}) == "item -1 out of range (items are numbered from 0)"
    assert prediction_problem(rec, n_items=6) is None
