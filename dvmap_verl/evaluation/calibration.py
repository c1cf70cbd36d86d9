"""Temperature calibration of the log-prob readout (``dvmap eval --calibrate-temperature SPLIT``).

Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks", §4.2) with one temperature T for
the whole run: a record's calibrated distribution over an item's K options is ``softmax(logp / T)``, ``logp`` the
record's raw summed log-probability of each option's text (``logprobs`` in ``predictions.jsonl``, written by the
``logprob`` and ``logprob-after-reasoning`` readouts; T = 1 gives back ``probs``). T is fitted on the records of the
items of one held-out split (the ``split`` column; counterfactual items never count) by minimising the mean ranked
probability score (``rps``, default) or total variation (``tv``) against each item's target, with
``scipy.optimize.minimize_scalar`` (bounded Brent) on log T in [log 0.01, log 100]. The fit is recorded in
``run.json`` under ``calibration``; the report applies it to every other item and shows ECE, TV and RPS before and
after. The records keep their raw log-probs, so the fit can be redone from them.

Target of an item: an imported benchmark item's exact ``target`` distribution, else its respondents' answer
distribution where it has counts (``counts``: a WVS profile), else the one-hot of its answer (``truth``). RPS is
sum_k (CDF_p(k) - CDF_t(k))^2 / (K - 1) (as in :mod:`distributional`); TV is sum_k |p_k - t_k| / 2; ECE is over 10
equal-width bins of the argmax's probability against the truth (:func:`distributional.calibration`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dvmap_verl.errors import InputError

OBJECTIVES = ("rps", "tv")
#: The fitted temperature lies in this range (a fit at an end is flagged ``at_bound``).
T_BOUNDS = (0.01, 100.0)


def check_calibration_settings(readout: str, objective: str) -> None:
    """Raises :class:`InputError` unless the readout records log-probs and the objective is known."""
    from dvmap_verl.evaluation.readouts import get_readout, readout_names

    if not get_readout(readout).needs_scoring:  # only a scoring readout records option log-probs
        scoring = [n for n in readout_names(selectable=True) if get_readout(n).needs_scoring]
        raise InputError(f"--calibrate-temperature fits a temperature on option log-probs: it needs --readout "
                         f"{' or '.join(scoring)}, not {readout!r}")
    if objective not in OBJECTIVES:
        raise InputError(f"--calibrate-on {objective!r}: expected one of {OBJECTIVES}")


def check_calibration_split(items: pd.DataFrame, split: str) -> None:
    """Raises :class:`InputError` unless ``split`` holds some of the run's items and others remain to apply T to
    (checked before a model loads)."""
    splits = items.loc[~items["counterfactual"].astype(bool), "split"].astype(str)
    if not (splits == str(split)).any():
        raise InputError(f"--calibrate-temperature {split!r}: no item of the run is in that split (splits: "
                         f"{sorted(splits.unique())})")
    if (splits == str(split)).all():
        raise InputError(f"--calibrate-temperature {split!r}: every item is in that split, none is left to apply "
                         f"the temperature to; give --data another split too")


# ---------------------------------------------------------------------------------------------------------------
# The fit
# ---------------------------------------------------------------------------------------------------------------


def scaled_probs(logprobs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(logprobs / temperature)`` row-wise; ``logprobs`` (n, W), -inf where an option is absent (padding,
    or a log-prob of -inf); a row with no finite entry stays all zero."""
    x = np.asarray(logprobs, dtype=float) / temperature
    top = np.max(np.where(np.isfinite(x), x, -np.inf), axis=1, keepdims=True)
    ok = np.isfinite(top)
    e = np.where(np.isfinite(x) & ok, np.exp(x - np.where(ok, top, 0.0)), 0.0)
    return e / np.maximum(e.sum(axis=1, keepdims=True), 1e-300)


def losses(p: np.ndarray, target: np.ndarray, k: np.ndarray, objective: str) -> np.ndarray:
    """Per row: RPS (divided by K - 1) or TV between ``p`` and ``target`` (both (n, W), zero-padded)."""
    if objective == "tv":
        return 0.5 * np.abs(p - target).sum(axis=1)
    d = np.cumsum(p, axis=1) - np.cumsum(target, axis=1)
    return (d * d).sum(axis=1) / np.maximum(k - 1, 1)


def fit_temperature(logprobs: np.ndarray, target: np.ndarray, k: np.ndarray, objective: str = "rps"
                    ) -> dict[str, Any]:
    """The temperature T minimising the mean ``objective`` of ``softmax(logprobs / T)`` against ``target``.

    ``logprobs``: (n, W) raw log-probs, -inf padded; ``target``: (n, W) distributions; ``k``: (n,) options per row.
    Returns ``temperature``, ``objective``, ``records`` (n), ``loss_before`` (T = 1), ``loss_after`` and
    ``at_bound`` (T at an end of :data:`T_BOUNDS`: the optimum may lie beyond). Raises :class:`InputError` for an
    unknown objective or no rows."""
    from scipy.optimize import minimize_scalar

    if objective not in OBJECTIVES:
        raise InputError(f"unknown calibration objective {objective!r}; known: {OBJECTIVES}")
    if not len(logprobs):
        raise InputError("no records with log-probs to fit a temperature on")

    def mean_loss(log_t: float) -> float:
        return float(losses(scaled_probs(logprobs, math.exp(log_t)), target, k, objective).mean())

    lo, hi = math.log(T_BOUNDS[0]), math.log(T_BOUNDS[1])
    res = minimize_scalar(mean_loss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-7})
    t = float(math.exp(res.x))
    return {"temperature": t, "objective": objective, "records": int(len(logprobs)),
            "loss_before": mean_loss(0.0), "loss_after": float(res.fun),
            "at_bound": bool(min(res.x - lo, hi - res.x) < 1e-3)}


# ---------------------------------------------------------------------------------------------------------------
# From a run's records
# ---------------------------------------------------------------------------------------------------------------


def record_logprobs(values: pd.Series, k: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(logprobs (n, width) -inf padded, readable (n,)): a record's ``logprobs`` (adversarial: read from a file) is
    readable when it is a list of K numbers or nulls (null: -inf) with at least one finite number."""
    out = np.full((len(values), width), -np.inf)
    ok = np.zeros(len(values), dtype=bool)
    for i, (v, kk) in enumerate(zip(values, k)):
        if not isinstance(v, (list, tuple, np.ndarray)) or len(v) != kk:
            continue
        if not all(x is None or (type(x) in (int, float) and not math.isnan(x)) for x in v):
            continue
        row = np.array([-np.inf if x is None else float(x) for x in v])
        row[np.isposinf(row)] = -np.inf  # +inf is no log-probability: read as absent rather than certain
        if np.isfinite(row).any():
            out[i, :kk], ok[i] = row, True
    return out, ok


def item_targets(frame: pd.DataFrame, width: int) -> np.ndarray:
    """Per row: its item's respondent distribution where known (an imported benchmark item's exact ``target``, else
    ``counts`` normalised: :func:`arrays.respondent_targets`), else the one-hot of ``truth``; (n, width)."""
    from dvmap_verl.evaluation.arrays import respondent_targets

    truth = frame["truth"].to_numpy().astype(int)
    out = np.zeros((len(frame), width))
    out[np.arange(len(frame)), truth] = 1.0
    target, n, exact = respondent_targets(frame, width)
    known = exact | (n > 0)
    out[known] = target[known]
    return out


def _fit_rows(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    k = frame["k"].to_numpy().astype(int)
    width = int(k.max()) if len(k) else 1
    values = frame["logprobs"] if "logprobs" in frame else pd.Series([None] * len(frame), index=frame.index)
    logp, ok = record_logprobs(values, k, width)
    return logp, item_targets(frame, width), k, ok


def calibrate_run(run_dir: str | Path, split: str, objective: str = "rps") -> dict[str, Any]:
    """Fit T on the records of ``split``'s items in a run folder and record it in ``run.json`` (``calibration``),
    under the folder's lock. Raises :class:`InputError` when the split holds no item of the run or none of its
    records has log-probs (``run.json`` is then left as it was)."""
    from dvmap_verl.evaluation.runs import run_lock

    with run_lock(run_dir):
        return _calibrate(Path(run_dir), split, objective)


def _calibrate(run_dir: Path, split: str, objective: str) -> dict[str, Any]:
    from dvmap_verl.evaluation.evaluate import ITEMS, PREDICTIONS, REJECTED, scan_predictions
    from dvmap_verl.evaluation.runs import RunFolder, run_samples

    items = pd.read_parquet(run_dir / ITEMS)
    folder = RunFolder(run_dir, PREDICTIONS, REJECTED, fingerprint_key="items_fingerprint")
    run = folder.run_record() or {}
    held = items[(items["split"].astype(str) == str(split)) & ~items["counterfactual"].astype(bool)]
    if held.empty:
        raise InputError(f"--calibrate-temperature {split!r}: no item of the run is in that split (splits: "
                         f"{sorted(items['split'].astype(str).unique())})")
    preds = scan_predictions(run_dir / PREDICTIONS, n_options=items["options"].map(len).tolist(),
                             n_samples=run_samples(run)).frame
    frame = preds[preds["item"].isin(held["item"])].merge(held.drop(columns=["messages"], errors="ignore"),
                                                          on="item")
    logp, target, k, ok = _fit_rows(frame)
    if not ok.any():
        raise InputError(f"--calibrate-temperature {split!r}: none of the {len(frame)} record(s) of that split "
                         f"holds raw log-probs (`logprobs`); rerun dvmap eval with --readout logprob")
    fit = fit_temperature(logp[ok], target[ok], k[ok], objective)
    fit.update(split=str(split), items=int(frame["item"][ok].nunique()), unreadable_records=int((~ok).sum()))
    folder.write_run({**run, "calibration": fit})
    return fit


def calibration_report(model: pd.DataFrame, fit: dict[str, Any]) -> dict[str, Any]:
    """ECE, TV and RPS before (T = 1) and after (the fitted T) on the items outside the fitting split.

    ``model``: the report's scored records (one row per record: ``item``, ``split``, ``truth``, ``k``,
    ``logprobs``, optionally ``counts``). An item's distribution is the mean over its readable records."""
    from dvmap_verl.evaluation.distributional import calibration

    rest = model[model["split"].astype(str) != str(fit.get("split"))]
    logp, target, k, ok = _fit_rows(rest)
    rest, logp, target, k = rest[ok], logp[ok], target[ok], k[ok]
    out: dict[str, Any] = {**fit, "eval_items": int(rest["item"].nunique()),
                           "eval_unreadable_records": int((~ok).sum())}
    if rest.empty:
        return out
    codes, uniq = pd.factorize(rest["item"])
    first = pd.Series(np.arange(len(rest))).groupby(codes).first().to_numpy()
    n = np.bincount(codes)[:, None]
    for name, t in (("before", 1.0), ("after", float(fit["temperature"]))):
        p = np.zeros((len(uniq), logp.shape[1]))
        np.add.at(p, codes, scaled_probs(logp, t))
        p /= n
        tgt, kk = target[first], k[first]
        out[name] = {"temperature": t, "ece": calibration(p, rest["truth"].to_numpy().astype(int)[first])["ece"],
                     "tv": float(losses(p, tgt, kk, "tv").mean()), "rps": float(losses(p, tgt, kk, "rps").mean())}
    return out


def calibration_markdown(section: dict[str, Any]) -> list[str]:
    """The report's "Calibrated log-prob readout" section."""
    lines = ["## Calibrated log-prob readout", "",
             f"One temperature T = {section['temperature']:.4f} fitted on the {section['records']:,} record(s) of "
             f"split `{section['split']}` ({section['items']:,} item(s)) by minimising the mean "
             f"{section['objective'].upper()} (from {section['loss_before']:.4f} at T = 1 to "
             f"{section['loss_after']:.4f}); softmax(logp / T) over each item's options, applied to the "
             f"{section.get('eval_items', 0):,} item(s) of the other splits."
             + (" **T lies at a bound of the search range: the optimum may lie beyond.**" if section.get("at_bound")
                else ""), ""]
    if "before" in section:
        lines += ["| readout | T | ECE | TV | RPS |", "|---|---|---|---|---|"]
        lines += [f"| {name} | {v['temperature']:.4f} | {v['ece']:.4f} | {v['tv']:.4f} | {v['rps']:.4f} |"
                  for name, v in (("log-prob (raw)", section["before"]), ("log-prob (calibrated)", section["after"]))]
        lines.append("")
    return lines
