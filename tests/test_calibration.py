"""Temperature calibration of the log-prob readout: softmax(logp / T) by hand, the fit recovering a known
temperature, adversarial log-prob records, and a run fitted on one split and reported on another with worked values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dvmap_verl.errors import InputError
from dvmap_verl.evaluation import calibration as C
from dvmap_verl.evaluation.evaluate import PREDICTIONS, EvalConfig, prepare_run, read_predictions, run_eval
from dvmap_verl.evaluation.readouts import Scores
from dvmap_verl.evaluation.report import build_report

NEG = -np.inf


def test_scaled_probs_and_losses_by_hand():
    logp = np.array([[0.0, -math.log(2), NEG], [NEG, NEG, NEG]])
    assert C.scaled_probs(logp, 1.0).ravel().tolist() == pytest.approx([2 / 3, 1 / 3, 0.0, 0.0, 0.0, 0.0])
    # T = 2: weights 1 and 2^-1/2, so P = 1 / (1 + 0.70711) = 0.58579 and 0.41421.
    assert C.scaled_probs(logp, 2.0)[0].tolist() == pytest.approx([0.585786, 0.414214, 0.0], abs=1e-6)
    p, t, k = np.array([[0.5, 0.5, 0.0]]), np.array([[1.0, 0.0, 0.0]]), np.array([3])
    # RPS: CDF differences -0.5, 0, 0 -> 0.25 / (K - 1) = 0.125; TV: (0.5 + 0.5) / 2 = 0.5.
    assert C.losses(p, t, k, "rps").tolist() == [0.125]
    assert C.losses(p, t, k, "tv").tolist() == [0.5]


def _synthetic(t0: float, n: int = 300, seed: int = 0):
    """Logits for 2-5 options (-inf padded), targets softmax(logits / t0)."""
    rng = np.random.default_rng(seed)
    k = rng.integers(2, 6, n)
    logits = np.where(np.arange(5)[None, :] < k[:, None], rng.normal(0, 2, (n, 5)), NEG)
    e = np.where(np.isfinite(logits), np.exp(logits / t0), 0.0)
    return logits, e / e.sum(axis=1, keepdims=True), k


@pytest.mark.parametrize("t0", [0.4, 1.7, 6.0])
def test_the_fit_recovers_a_known_temperature(t0):
    logits, target, k = _synthetic(t0)
    fit = C.fit_temperature(logits, target, k, "rps")
    assert abs(fit["temperature"] - t0) < 1e-3
    assert fit["loss_after"] < 1e-9 and fit["loss_before"] > 1e-3 and not fit["at_bound"]
    assert fit["records"] == 300 and fit["objective"] == "rps"
    tv = C.fit_temperature(logits, target, k, "tv")
    assert abs(tv["temperature"] - t0) < 1e-3


def test_a_temperature_beyond_the_range_is_flagged():
    logits, target, k = _synthetic(500.0)  # nearly uniform targets: T far above the 100 bound
    fit = C.fit_temperature(logits, target, k)
    assert fit["at_bound"] and fit["temperature"] == pytest.approx(100.0, rel=1e-3)


def test_unreadable_logprob_records_are_counted_not_read():
    values = [[-1.0, -2.0], "x", [-1.0], [None, -2.0], [None, None], [True, -1.0], [float("nan"), -1.0],
              [float("inf"), -1.0], None]
    logp, ok = C.record_logprobs(values, np.array([2] * len(values)), 2)
    assert ok.tolist() == [True, False, False, True, False, False, False, True, False]
    assert logp[3].tolist() == [NEG, -2.0] and logp[7].tolist() == [NEG, -1.0]  # +inf is read as absent
    with pytest.raises(InputError, match="no records"):
        C.fit_temperature(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0, dtype=int))
    with pytest.raises(InputError, match="--readout logprob"):
        C.check_calibration_settings("sampling", "rps")
    with pytest.raises(InputError, match="--calibrate-on 'kl'"):
        C.check_calibration_settings("logprob", "kl")


T0 = 2.0


class TargetBackend:
    """Log-probs T0 * log(q): q the respondents' distribution on the disagreement split, and 0.7 one-hot(truth)
    + 0.3 uniform elsewhere; softmax(logp / T0) is q exactly."""

    name = "target"

    def __init__(self, items):
        self.items = items

    def q(self, item: int) -> np.ndarray:
        row = self.items.iloc[item]
        k = int(row["k"])
        if row["split"] == "disagreement":
            c = np.asarray(row["counts"], dtype=float)[:k]
            return c / c.sum()
        return 0.7 * np.eye(k)[int(row["truth"])] + 0.3 / k

    def run(self, requests, on_result, on_error):  # a Backend generates too (never called by the logprob readout)
        raise AssertionError("the logprob readout does not generate")

    def score(self, requests, on_result, on_error):
        for r in requests:
            with np.errstate(divide="ignore"):
                on_result(r, Scores(tuple(T0 * np.log(self.q(r.item))), (1,) * len(r.continuations)))


def test_a_run_fitted_on_one_split_and_reported_on_the_others(tmp_path, synthetic_data):
    data = synthetic_data(3000)
    config = EvalConfig(backend="stub", model="m", data=[str(data / "disagreement.parquet"), str(data / "val.parquet")],
                        limit=40, readout="logprob", calibrate_temperature="disagreement")
    out = tmp_path / "run"
    items = prepare_run(out, config)
    C.check_calibration_split(items, "disagreement")
    backend = TargetBackend(items)
    run_eval(backend, out, config, quiet=True, items=items)
    fit = C.calibrate_run(out, "disagreement")
    held = items["split"] == "disagreement"
    assert 0 < held.sum() < len(items)
    assert abs(fit["temperature"] - T0) < 1e-3 and fit["items"] == held.sum() == fit["records"]
    assert json.loads((out / "run.json").read_text())["calibration"]["temperature"] == fit["temperature"]
    preds = read_predictions(out / PREDICTIONS)
    assert len(preds) == len(items) and all(isinstance(v, list) for v in preds["logprobs"])

    section = build_report(out, bootstrap=0, importance=False)["temperature_calibration"]
    rest = items[~held]
    k = rest["k"].to_numpy()
    # After: P = 0.7 one-hot + 0.3 uniform against the one-hot truth: TV = 0.3 (K - 1) / K, and ECE the same
    # (every argmax is right, with confidence 0.7 + 0.3 / K).
    assert section["eval_items"] == len(rest)
    assert section["after"]["tv"] == pytest.approx(np.mean(0.3 * (k - 1) / k), abs=1e-6)
    assert section["after"]["ece"] == pytest.approx(np.mean(0.3 * (k - 1) / k), abs=1e-6)
    # Before (T = 1): P proportional to q^2, q_truth = 0.7 + 0.3 / K, the others 0.3 / K.
    top, other = (0.7 + 0.3 / k) ** 2, (0.3 / k) ** 2
    p_truth = top / (top + (k - 1) * other)
    assert section["before"]["tv"] == pytest.approx(np.mean(1 - p_truth), abs=1e-6)
    md = (out / "report.md").read_text()
    assert "## Calibrated log-prob readout" in md and "| log-prob (calibrated) | 2.0000 |" in md


def test_a_split_the_run_lacks_is_refused_before_anything_runs(tmp_path, synthetic_data):
    from dvmap_verl.evaluation.evaluate import build_items

    data = synthetic_data(3000)
    items = build_items(EvalConfig(backend="stub", model="m", data=[str(data / "val.parquet")], limit=5))
    with pytest.raises(InputError, match=r"--calibrate-temperature 'test': no item of the run is in that split "
                                         r"\(splits: \['val'\]\)"):
        C.check_calibration_split(items, "test")
    with pytest.raises(InputError, match="every item is in that split"):
        C.check_calibration_split(items, "val")


def _imported_frame():
    """Row 0: an OpinionQA-like group, weighted target [0.4, 0, 0.6] but only 1 respondent (counts [0, 0, 1]);
    row 1: a WVS profile (no benchmark) with counts [1, 3]; row 2: no counts at all (truth 1 of 2)."""
    import pandas as pd

    return pd.DataFrame({"benchmark": ["opinionqa", None, None], "target": [[0.4, 0.0, 0.6], None, None],
                         "counts": [[0.0, 0.0, 1.0], [1.0, 3.0], None], "truth": [2, 1, 1], "k": [3, 2, 2]})


def test_an_imported_items_exact_target_is_the_calibration_target_not_its_rounded_counts():
    t = C.item_targets(_imported_frame(), 3)
    assert t.tolist() == [[0.4, 0.0, 0.6], [0.25, 0.75, 0.0], [0.0, 1.0, 0.0]]


def test_profile_metrics_score_against_the_exact_target():
    from dvmap_verl.evaluation.arrays import MAX_K
    from dvmap_verl.evaluation.metric_registry import get_metric

    items = _imported_frame().iloc[:1]
    p = np.zeros((1, MAX_K))
    p[0, 0] = 1.0
    k = np.array([3])
    # CDF of p [1, 1, 1], of the target [0.4, 0.4, 1]: (0.6^2 + 0.6^2 + 0) / (K - 1) = 0.36 (counts would give nan:
    # one respondent; counts/30-style rounding would give 0.444)
    assert get_metric("rps_profile").fn(p, None, k, items)[0] == pytest.approx(0.36)
    # WD / (K - 1): (0.6 + 0.6) / 2 = 0.6
    assert get_metric("wd_profile").fn(p, None, k, items)[0] == pytest.approx(0.6)
    p2 = np.zeros((1, MAX_K))
    p2[0, 2] = 1.0
    assert get_metric("respondent_acc").fn(p2, None, k, items)[0] == pytest.approx(0.6)


def test_calibrate_on_without_calibrate_temperature_is_refused_in_one_line(tmp_path, capsys):
    from dvmap_verl.cli import main

    assert main(["eval", "--backend", "hf", "--model", "m", "--data", str(tmp_path / "x.parquet"), "--out",
                 str(tmp_path / "run"), "--readout", "logprob", "--calibrate-on", "tv"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["dvmap: error: --calibrate-on tv chooses what --calibrate-temperature SPLIT minimises; give "
                   "--calibrate-temperature too, or leave --calibrate-on out"]
    assert not (tmp_path / "run").exists()
