"""The peer benchmarks' own metrics, each with its source's definition, registered beside ours.

Rows are items: ``p`` the model's distribution and ``t`` the item's target, both n x MAX_K (rows sum to 1 over the
first ``k`` options); ``items`` the matching rows of the items table, for the options' ordinal positions
(``ordinal``: one per option, ``nan`` for a non-ordinal option), ``is_ordinal`` and, for WorldValuesBench, the
scale (``scale_min``, ``scale_max``). Without ``ordinal`` the options' order is the scale (positions 1..K).

- ``goqa_similarity`` (GlobalOpinionQA, Durmus et al. 2023): 1 - Jensen-Shannon *distance*
  (``scipy.spatial.distance.jensenshannon`` with its default natural-log base, as the public reimplementations;
  the paper's base is not stated). 1 = identical; the floor of disjoint distributions is 1 - sqrt(ln 2) = 0.167.
- ``opinionqa_representativeness`` (OpinionQA, Santurkar et al. 2023): 1 - WD(ordinal values; p, t) /
  (max - min ordinal), with WD ``scipy.stats.wasserstein_distance(ordinal, ordinal, p, t)``; averaged over items
  it is the paper's Rep = 1 - mean WD.
- ``subpop_ordinal_emd`` (SubPOP, Suh et al. 2025, ``survey_utils.ordinal_emd``): options sorted by ordinal,
  negative (non-ordinal) options dropped and both distributions renormalised, sum |dCDF| x gap / (max - min).
- ``wvb_w1`` (WorldValuesBench, Zhao et al. 2024, ``evaluate.py``): the Wasserstein-1 distance of the scores
  rescaled to [0, 1] by the question's answer scale, (s - min) / (max - min).

The three ordinal metrics are ``nan`` on a non-ordinal item (``is_ordinal`` false: no, or fewer than two distinct,
ordinal positions): they are not computed there, and the report counts those items.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pandas as pd

from dvmap_verl.evaluation.arrays import pad_rows
from dvmap_verl.evaluation.metric_registry import Metric, get_metric, metrics, register_metric

NOT_ORDINAL = "not computed on non-ordinal items (no, or fewer than two distinct, ordinal positions)"


def js_similarity(p: np.ndarray, t: np.ndarray, k: np.ndarray | None = None, items: Any = None) -> np.ndarray:
    """1 - sqrt(JSD) with natural logarithms, row-wise (the options beyond k hold 0 in both rows)."""
    p = p / p.sum(axis=1, keepdims=True)
    t = t / t.sum(axis=1, keepdims=True)
    m = (p + t) / 2

    def kl(a: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, a * np.log(a / m), 0.0).sum(axis=1)

    return 1.0 - np.sqrt(np.maximum((kl(p) + kl(t)) / 2, 0.0))


def _row_positions(items: Any, i: int, k: int) -> tuple[np.ndarray, bool]:
    if items is None or "ordinal" not in items:
        return np.arange(1.0, k + 1), k >= 2
    row = items.iloc[i]
    pos = np.asarray(list(row["ordinal"])[:k], dtype=float)
    ordinal = bool(row["is_ordinal"]) if "is_ordinal" in items else True
    return pos, ordinal


def wasserstein_1(values: np.ndarray, p: np.ndarray, t: np.ndarray) -> float:
    """W1 between two distributions on the same (unsorted, possibly tied) values: the integral of |CDF_p - CDF_t|,
    as ``scipy.stats.wasserstein_distance(values, values, p, t)``."""
    order = np.argsort(values, kind="stable")
    v, cp, ct = values[order], np.cumsum(p[order]), np.cumsum(t[order])
    return float((np.abs(cp - ct)[:-1] * np.diff(v)).sum())


def _ordinal_rows(p, t, k, items, scale: Callable[[Any, int, np.ndarray], tuple[float, float]] | None = None):
    """Per row: W1 over the ordinal options (non-ordinal options dropped, both renormalised) divided by the
    range (max - min ordinal, or the scale's), ``nan`` where the item is not ordinal."""
    out = np.full(len(p), np.nan)
    for i in range(len(p)):
        ki = int(k[i])
        pos, ordinal = _row_positions(items, i, ki)
        keep = ~np.isnan(pos)
        if not ordinal or len(np.unique(pos[keep])) < 2:
            continue
        pi, ti = p[i, :ki][keep], t[i, :ki][keep]
        if pi.sum() <= 0 or ti.sum() <= 0:
            continue
        lo, hi = scale(items, i, pos[keep]) if scale else (pos[keep].min(), pos[keep].max())
        out[i] = wasserstein_1(pos[keep], pi / pi.sum(), ti / ti.sum()) / (hi - lo)
    return out


def opinionqa_representativeness(p, t, k, items=None) -> np.ndarray:
    return 1.0 - _ordinal_rows(p, t, k, items)


def subpop_ordinal_emd(p, t, k, items=None) -> np.ndarray:
    return _ordinal_rows(p, t, k, items)


def _wvb_scale(items, i: int, pos: np.ndarray) -> tuple[float, float]:
    if items is not None and {"scale_min", "scale_max"} <= set(items.columns):
        lo, hi = float(items.iloc[i]["scale_min"]), float(items.iloc[i]["scale_max"])
        if math.isfinite(lo) and math.isfinite(hi) and hi > lo:
            return lo, hi
    return float(pos.min()), float(pos.max())


def wvb_w1(p, t, k, items=None) -> np.ndarray:
    """W1 on scores rescaled by the answer scale: W1 of (s - min)/(max - min) = W1(s) / (max - min)."""
    return _ordinal_rows(p, t, k, items, _wvb_scale)


def total_variation(p, t, k=None, items=None) -> np.ndarray:
    return 0.5 * np.abs(p - t).sum(axis=1)


#: name -> (function, higher is better, benchmark, description, source)
BENCHMARK_METRICS: dict[str, tuple[Callable, bool, str, str, str]] = {
    "goqa_similarity": (js_similarity, True, "globalopinionqa",
                        "GlobalOpinionQA similarity: 1 - Jensen-Shannon distance (natural log)",
                        "Durmus et al. 2023; scipy.spatial.distance.jensenshannon (base e)"),
    "opinionqa_representativeness": (opinionqa_representativeness, True, "opinionqa",
                                     "OpinionQA representativeness: 1 - WD over ordinal values / (max - min); "
                                     + NOT_ORDINAL, "Santurkar et al. 2023, representativeness.ipynb"),
    "subpop_ordinal_emd": (subpop_ordinal_emd, False, "subpop",
                           "SubPOP ordinal EMD: sum |dCDF| x gap / (max - min), non-ordinal options dropped; "
                           + NOT_ORDINAL, "Suh et al. 2025, subpop/utils/survey_utils.py ordinal_emd"),
    "wvb_w1": (wvb_w1, False, "worldvaluesbench",
               "WorldValuesBench W1 on scores rescaled to [0, 1] by the answer scale; " + NOT_ORDINAL,
               "Zhao et al. 2024, WorldValuesBench evaluate.py"),
}
for _name, (_fn, _higher, _bench, _desc, _src) in BENCHMARK_METRICS.items():
    register_metric(Metric(_name, _fn, level="item", higher_is_better=_higher, needs_probs=False,
                           description=_desc, source=_src, tags=("benchmark", _bench)), replace=True)
# Scored against the item's target too (a benchmark entry: report's and compare's peer sections), no one
# benchmark's own; the generic ``tv`` scores against the truth instead.
register_metric(Metric("total_variation", total_variation, level="item", higher_is_better=False, needs_probs=False,
                       description="total variation 0.5 sum |p - t| against the item's target distribution",
                       source="Meister et al. 2024 (distributional alignment benchmark)", tags=("benchmark",)),
                replace=True)


# ---------------------------------------------------------------------------------------------------------------
# Floors and the report's section
# ---------------------------------------------------------------------------------------------------------------


def benchmark_floors(t: np.ndarray, n: np.ndarray, k: np.ndarray, items: Any, fn: Callable, draws: int = 100,
                     seed: int = 0) -> dict[str, float]:
    """A metric's ``uniform`` floor (1/K on every option) and ``sampling`` floor: the mean over ``draws`` of the
    metric between the empirical distribution of n_i answers drawn from the target and the target (n_i: the
    benchmark's draw count of the item, ``extra_info.n``)."""
    width = t.shape[1]
    uniform = (np.arange(width)[None, :] < k[:, None]) / k[:, None]
    rng = np.random.default_rng(seed)
    total = 0.0
    tt = np.clip(t, 0, None) / t.sum(axis=1, keepdims=True)
    for _ in range(draws):
        c = rng.multinomial(np.maximum(n, 1).astype(np.int64), tt).astype(float)
        total += float(np.nanmean(fn(c / c.sum(axis=1, keepdims=True), t, k, items)))
    # "simulations", not "draws": README and stats.json call the benchmark's answers per item its draws (n_i)
    return {"uniform": float(np.nanmean(fn(uniform, t, k, items))), "sampling": total / draws, "simulations": draws}


def benchmark_section(model: pd.DataFrame, seed: int = 0, draws: int = 100) -> dict[str, Any] | None:
    """Per benchmark of a run's imported items: each registered benchmark metric (mean over the items where it is
    computed, how many were not and why), total variation, the mean refusal share, and the floors. ``model``:
    the scored predictions (one row per item and sample, with the items' columns). None when no item carries a
    ``target`` (not an imported benchmark)."""
    from dvmap_verl.evaluation.distributional import MAX_K, item_probabilities

    if model is None or model.empty or "target" not in model or "benchmark" not in model:
        return None
    items, p, readout = item_probabilities(model)
    # A run may mix imported items with DVMap's own (eval --data a.parquet b.parquet): only imported ones count here.
    imported = items["benchmark"].map(lambda b: isinstance(b, str) and bool(b)).to_numpy(dtype=bool)
    if not imported.any():
        return None
    items, p = items[imported].reset_index(drop=True), p[imported]
    t = pad_rows(items["target"].tolist(), MAX_K)
    k = items["k"].to_numpy().astype(int)
    n = items["n"].to_numpy(dtype=float)
    out: dict[str, Any] = {"readout": readout, "by_benchmark": {}}
    for bench in sorted(items["benchmark"].astype(str).unique()):
        m = (items["benchmark"].astype(str) == bench).to_numpy()
        sub = items[m].reset_index(drop=True)
        res = {"items": int(m.sum()), "unreadable_items": int(sub["unreadable"].sum()), "refusal_share_mean": float(np.nanmean(sub["refusal_share"]))
               if sub["refusal_share"].notna().any() else None, "metrics": {}}
        # the registry's peer-benchmark entries, total variation among them (a plugin may add more)
        fns = {m.name: (m.fn, m.higher_is_better) for m in metrics(benchmark=True)}
        for name, (fn, higher) in fns.items():
            v = fn(p[m], t[m], k[m], sub)
            res["metrics"][name] = {
                "value": float(np.nanmean(v)) if np.isfinite(v).any() else None,
                "scored_items": int(np.isfinite(v).sum()), "not_computed": int((~np.isfinite(v)).sum()),
                "higher_is_better": higher,
                "floors": benchmark_floors(t[m], n[m], k[m], sub, fn, draws, seed) if np.isfinite(v).any() else {},
                "own": bench in getattr(get_metric(name), "tags", ()),
            }
        out["by_benchmark"][bench] = res
    return out


def benchmark_item_values(items: pd.DataFrame, p: np.ndarray) -> pd.DataFrame | None:
    """Per imported item (rows of ``items`` with a ``benchmark`` name and a ``target``): ``benchmark`` and the value
    of every benchmark-tagged registry metric against the item's target (nan where not computed), in the rows'
    order with their index; None when no item is imported. ``p``: (n_items, MAX_K) item distributions."""
    from dvmap_verl.evaluation.arrays import MAX_K

    if items is None or "target" not in items or "benchmark" not in items:
        return None
    m = items["benchmark"].map(lambda b: isinstance(b, str) and bool(b)).to_numpy(dtype=bool)
    if not m.any():
        return None
    sub = items[m].reset_index(drop=True)
    t, k = pad_rows(sub["target"].tolist(), MAX_K), sub["k"].to_numpy().astype(int)
    out = pd.DataFrame({"benchmark": sub["benchmark"].astype(str).to_numpy()}, index=items.index[m])
    for metric in metrics(benchmark=True):
        out[metric.name] = np.asarray(metric.fn(p[m], t, k, sub), dtype=float)
    return out


def benchmark_markdown(section: dict[str, Any] | None) -> list[str]:
    """The report's "Peer benchmarks" section."""
    if not section:
        return []
    lines = ["## Peer benchmarks", "",
             f"Readout: {section['readout']}. Each benchmark's own metric is marked *; the ordinal metrics are not "
             f"computed on non-ordinal items (counted). Floors: uniform (1/K) and sampling (the benchmark's draw "
             f"count of answers from the target, against the target).", "",
             "| benchmark | metric | value | items scored | not computed | uniform floor | sampling floor |",
             "|---|---|---:|---:|---:|---:|---:|"]
    fmt = (lambda x: "" if x is None else f"{x:.4f}")
    for bench, res in section["by_benchmark"].items():
        if res.get("unreadable_items"):
            lines[4:4] = [f"_{bench}: {res['unreadable_items']} of {res['items']} item(s) had no readable answer and "
                          f"count as uniform (there, every score is the uniform floor's)._", ""]
        for name, r in res["metrics"].items():
            fl = r["floors"]
            lines.append(f"| {bench} | {name}{' *' if r['own'] else ''} | {fmt(r['value'])} | {r['scored_items']} "
                         f"| {r['not_computed']} | {fmt(fl.get('uniform'))} | {fmt(fl.get('sampling'))} |")
    return lines + [""]
