"""`dvmap compare`: runs side by side; paired bootstrap differences on shared items, worked out by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dvmap_verl.evaluation.compare import compare_runs, paired_bootstrap
from dvmap_verl.evaluation.evaluate import PREDICTIONS, EvalConfig, prepare_run
from dvmap_verl.errors import InputError

CLI = [sys.executable, "-m", "dvmap_verl.cli"]


@pytest.fixture(scope="module")
def data(synthetic_data) -> Path:
    return synthetic_data(3000, seed=8)


def make_run(folder: Path, data: Path, preds_for, limit: int = 400, template: str | None = None) -> pd.DataFrame:
    config = EvalConfig(backend="none", model=folder.name, data=[str(data / "cross_demographic.parquet")],
                        limit=limit, template=template, train=str(data / "train.parquet"))
    items = prepare_run(folder, config)
    with open(folder / PREDICTIONS, "w") as fh:
        for r in items.itertuples():
            pred = preds_for(r)
            fh.write(json.dumps({"item": r.item, "sample": 0, "completion": f"<answer>{r.options[pred]}</answer>",
                                 "answer": r.options[pred], "pred": int(pred)}) + "\n")
    return items


def test_paired_bootstrap_by_hand():
    rng = np.random.default_rng(0)
    assert paired_bootstrap(np.zeros(50), 200, rng) == (0.0, 0.0, 0.0)
    d = np.r_[np.ones(30), np.zeros(70)]
    mean, lo, hi = paired_bootstrap(d, 2000, rng)
    assert mean == 0.3 and lo < 0.3 < hi and hi - lo == pytest.approx(2 * 1.96 * np.sqrt(0.3 * 0.7 / 100), abs=0.03)


def test_identical_runs_differ_by_zero_and_a_known_shift_is_exact(data, tmp_path):
    def wrong(r):
        return (r.truth + 1) % len(r.options)

    base = make_run(tmp_path / "base", data, wrong)
    make_run(tmp_path / "same", data, wrong)
    fixed = set(base["item"].iloc[:40])  # exactly 40 of 400 items turned right
    make_run(tmp_path / "better", data, lambda r: r.truth if r.item in fixed else wrong(r))
    out = compare_runs([tmp_path / "base", tmp_path / "same", tmp_path / "better"], tmp_path / "cmp",
                       bootstrap=500)
    same, better = out["differences"]
    assert same["shared_items"] == 400 and same["d_acc"] == 0.0 and same["d_acc_lo"] <= 0.0 <= same["d_acc_hi"]
    assert same["d_lc"] == 0.0 and same["d_wd"] == 0.0
    assert better["d_acc"] == pytest.approx(40 / 400) and better["d_acc_lo"] > 0
    # Per country: each country's gain is its share of the fixed items.
    per = pd.DataFrame(out["by_country"]["better"]).set_index("country")
    counts = base[base["item"].isin(fixed)].groupby("country").size()
    for country, row in per.iterrows():
        assert row["d_acc"] == pytest.approx(counts.get(country, 0) / row["items"])
    head = pd.DataFrame(out["headline"])
    assert {"baseline: majority_country_question", "base", "better"} <= set(head["system"])
    for name in ("compare.md", "compare.json", "gain_by_country.png", "gain_by_question.png"):
        assert (tmp_path / "cmp" / name).stat().st_size > 0


def test_runs_on_other_items_are_compared_on_their_intersection(data, tmp_path):
    make_run(tmp_path / "a", data, lambda r: r.truth, limit=400)
    # Another subset and another prompt template: items still match by (split, profile, question).
    make_run(tmp_path / "b", data, lambda r: r.truth, limit=300, template="direct")
    res = subprocess.run(CLI + ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "c"),
                                "--names", "structured", "direct", "--bootstrap", "200"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads((tmp_path / "c" / "compare.json").read_text())
    d = out["differences"][0]
    assert 0 < d["shared_items"] < 300 and d["d_acc"] == 0.0
    assert "NOTE: direct vs structured: compared on the" in res.stdout and "Acc +0.000" in res.stdout
    bad = subprocess.run(CLI + ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "x"),
                                "--names", "only-one"], capture_output=True, text=True)
    assert bad.returncode == 2 and "one distinct name per run" in bad.stderr


def test_two_items_sharing_a_key_are_named_with_their_run():
    from dvmap_verl.evaluation.compare import per_item

    scored = pd.DataFrame({"item": [0, 1], "split": ["subpop"] * 2, "profile_id": ["SEX=Male"] * 2,
                           "q_id": ["natparks"] * 2, "k": [3, 3], "truth": [0, 1], "pred": [0, 0],
                           "correct": [1.0, 0.0], "lc": [1.0, 0.5], "parsed": [1.0, 1.0],
                           "country": ["SEX=Male"] * 2, "category": ["c"] * 2})
    with pytest.raises(InputError, match=r"runs/sp_dup: two items share the \(split, profile, question\) key "
                                         r"\('subpop', 'SEX=Male', 'natparks'\)"):
        per_item(scored, "runs/sp_dup")


def test_a_run_with_unreadable_answers_is_named_with_its_share(data, tmp_path):
    make_run(tmp_path / "base", data, lambda r: r.truth, limit=20)
    items = make_run(tmp_path / "blank", data, lambda r: r.truth, limit=20)
    with open(tmp_path / "blank" / PREDICTIONS, "w") as fh:  # 5 of the 20 items: a reply with no answer
        for r in items.itertuples():
            bad = r.item < 5
            fh.write(json.dumps({"item": r.item, "sample": 0, "completion": "I cannot say" if bad else
                                 f"<answer>{r.options[r.truth]}</answer>", "answer": None if bad else
                                 r.options[r.truth], "pred": -1 if bad else int(r.truth)}) + "\n")
    out = compare_runs([tmp_path / "base", tmp_path / "blank"], tmp_path / "cmp", bootstrap=0)
    dist = {r["system"]: r["unreadable_items"] for r in out["distributional"]}
    assert dist == {"base": 0, "blank": 5}
    note = "blank: 5 of 20 items (25%) had no readable answer and count as uniform"
    assert any(n.startswith(note) for n in out["notes"]) and note in (tmp_path / "cmp" / "compare.md").read_text()
