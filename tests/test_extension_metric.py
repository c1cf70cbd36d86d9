"""Extending the evaluation from outside the package: a metric registered here (no package file edited) reaches
metrics.json, report.md, compare.md and the compare table of real `dvmap report` / `dvmap compare` runs; and the
package's own `tv` entry, added the same way, with values worked out independently."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dvmap_verl.cli import main
from dvmap_verl.evaluation.evaluate import PREDICTIONS, EvalConfig, prepare_run
from dvmap_verl.evaluation.metric_registry import Metric, register_metric, unregister_metric


def max_abs_diff(p, t, k, items):
    """Largest gap between the answer distribution and the target over the options."""
    return np.abs(p - t).max(axis=1)


@pytest.fixture
def toy_metric():
    register_metric(Metric("max_abs_diff", max_abs_diff, "item", False, False, "max_k |p_k - t_k|", "a test"))
    yield
    unregister_metric("max_abs_diff")


def make_run(folder: Path, data: Path, preds_for, limit: int = 120) -> pd.DataFrame:
    """A run of one answer per item, without a training split (no baselines: fast)."""
    config = EvalConfig(backend="none", model=folder.name, data=[str(data / "cross_demographic.parquet")],
                        limit=limit)
    items = prepare_run(folder, config)
    with open(folder / PREDICTIONS, "w") as fh:
        for r in items.itertuples():
            pred = int(preds_for(r))
            fh.write(json.dumps({"item": r.item, "sample": 0, "completion": f"<answer>{r.options[pred]}</answer>",
                                 "answer": r.options[pred], "pred": pred}) + "\n")
    return items


def cell_tv(items: pd.DataFrame, pred: pd.Series) -> float:
    """TV per (country, question) cell between the answers and the truths, by crosstab, averaged over cells."""
    frame = items.assign(pred=pred)
    answers = pd.crosstab([frame["country"], frame["q_id"]], frame["pred"], normalize="index")
    truths = pd.crosstab([frame["country"], frame["q_id"]], frame["truth"], normalize="index")
    answers, truths = answers.align(truths, fill_value=0.0)
    return float((0.5 * (answers - truths).abs().sum(axis=1)).mean())


def test_a_metric_registered_outside_the_package_reaches_report_and_compare(synthetic_data, tmp_path, toy_metric,
                                                                           capsys):
    data = synthetic_data(3000, seed=8)
    items = make_run(tmp_path / "right", data, lambda r: r.truth)
    make_run(tmp_path / "wrong", data, lambda r: (r.truth + 1) % len(r.options))
    n = len(items)

    for run in ("right", "wrong"):
        assert main(["report", str(tmp_path / run), "--bootstrap", "0"]) == 0
    right = json.loads((tmp_path / "right" / "metrics.json").read_text())
    wrong = json.loads((tmp_path / "wrong" / "metrics.json").read_text())
    # One answer per item: p is the answer's point mass, t the truth's; equal (gap 0) or disjoint (gap 1).
    assert right["model"]["max_abs_diff"] == 0.0 and wrong["model"]["max_abs_diff"] == 1.0
    assert right["metric_definitions"]["max_abs_diff"]["description"] == "max_k |p_k - t_k|"
    assert {r["max_abs_diff"] for r in wrong["model"]["by"]["country"]} == {1.0}
    # tv: every answer the truth gives identical cells (0); the shifted answers, worked out by crosstab.
    shifted = items.apply(lambda r: (r.truth + 1) % len(r.options), axis=1)
    assert right["model"]["tv"] == 0.0
    assert wrong["model"]["tv"] == pytest.approx(cell_tv(items, shifted))
    report = (tmp_path / "wrong" / "report.md").read_text()
    headline = report.split("## Headline")[1].split("\n\n")[1]
    assert "| system | acc | lc | wd | wd_norm | one_minus_jsd | unparsed_rate | tv | max_abs_diff |" in headline
    assert "| `max_abs_diff` | item | lower | max_k \\|p_k - t_k\\| | a test |" in report  # its | escaped

    assert main(["compare", str(tmp_path / "right"), str(tmp_path / "wrong"), "--out", str(tmp_path / "cmp"),
                 "--bootstrap", "200"]) == 0
    console = capsys.readouterr().out.splitlines()  # the compare table `dvmap compare` prints
    header = next(line for line in console if "max_abs_diff" in line)
    assert header.split() == ["acc", "lc", "wd", "wd_norm", "one_minus_jsd", "unparsed_rate", "tv", "max_abs_diff",
                              "items"]
    assert next(line for line in console if line.startswith("wrong ")).split()[8] == "1.000"
    out = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    (d,) = out["differences"]
    # Every item goes from gap 0 to gap 1: the paired difference is +1 on every item, so is every resample's.
    assert (d["shared_items"], d["d_max_abs_diff"], d["d_max_abs_diff_lo"], d["d_max_abs_diff_hi"]) == (n, 1, 1, 1)
    assert d["d_acc"] == -1.0 and d["d_tv"] == pytest.approx(cell_tv(items, shifted))
    # The probability metrics' differences: one sampled answer per item is its point mass, so the mass on the
    # truth (expected accuracy) goes from 1 to 0 on every item.
    (dd,) = out["distributional_differences"]
    assert (dd["d_expected_acc"], dd["d_expected_acc_lo"], dd["d_expected_acc_hi"]) == (-1, -1, -1)
    head = pd.DataFrame(out["headline"]).set_index(["split", "system"])
    assert head.loc[("all", "right"), "max_abs_diff"] == 0.0 and head.loc[("all", "wrong"), "max_abs_diff"] == 1.0
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| system | acc | lc | wd | wd_norm | one_minus_jsd | unparsed_rate | tv | max_abs_diff | items |" in md
    assert "| Δ TV | Δ max_abs_diff |" in md and "| +1.000 [+1.000, +1.000] |" in md


def test_registry_refuses_clashing_names():
    fn = max_abs_diff
    with pytest.raises(ValueError, match="'acc' is already registered"):
        register_metric(Metric("acc", fn))
    with pytest.raises(ValueError, match="'items' is reserved"):  # the compare table's item count
        register_metric(Metric("items", fn))
    with pytest.raises(ValueError, match="level must be one of"):
        register_metric(Metric("per_token", fn, level="token"))
    # "Acc" beside acc (heading "Acc"): compare.md would show two columns headed "Δ Acc"
    with pytest.raises(ValueError, match=r"metric 'Acc' \(heading 'Acc'\) differs only by case from the registered "
                                         r"'acc'"):
        register_metric(Metric("Acc", fn))
    with pytest.raises(ValueError, match=r"metric 'my_acc' \(heading 'acc'\) differs only by case"):
        register_metric(Metric("my_acc", fn, label="acc"))
