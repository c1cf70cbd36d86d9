"""The paper's metrics (§5.1) and more, computed column-wise on a predictions table.

A predictions table has one row per (item, sample) with at least: ``item`` (int), ``pred`` (option index, -1 when no
option could be resolved), ``truth`` (option index), ``k`` (number of options), and the grouping columns
(``split``, ``country``, ``q_id``, ``category`` and the attribute keys). An optional ``weight`` column weighs rows
(the uniform baseline is K pseudo-samples of weight 1/K); without it every row weighs 1.

- Acc: mean 1(pred = truth); an unresolved answer counts as wrong.
- LC (Likert consistency): 1 - mean |pred - truth| / (K - 1); an unresolved answer counts as the worst (LC 0).
- WD (Wasserstein, paper Eq. 3): per (country, question) cell, sum_k |CDF_pred(k) - CDF_real(k)| between the
  distribution of resolved predictions and the real answer distribution of the cell's items; averaged over cells.
  ``wd_norm`` divides by K - 1 so that cells of different scale sizes are comparable.
- 1 - JSD: one minus the Jensen-Shannon divergence (base 2) of the same two distributions.

These, and any metric registered later, are entries of the metric registry (builtin_metrics.py); this module
gives them a predictions table.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from dvmap_verl import stats
from dvmap_verl.evaluation import metric_values as V
from dvmap_verl.evaluation.arrays import MAX_K  # noqa: F401  (re-exported: callers read M.MAX_K)


def point_scores(df: pd.DataFrame) -> pd.DataFrame:
    """Add per-row ``correct``, ``lc`` and ``parsed`` columns."""
    pred = df["pred"].to_numpy()
    truth = df["truth"].to_numpy()
    k = df["k"].to_numpy()
    parsed = pred >= 0
    out = df.copy()
    out["parsed"] = parsed.astype(float)
    out["correct"] = (parsed & (pred == truth)).astype(float)
    lc = 1.0 - np.abs(pred - truth) / np.maximum(k - 1, 1)
    out["lc"] = np.where(parsed, lc, 0.0)
    if "weight" not in out:
        out["weight"] = 1.0
    return out


def wasserstein(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Paper Eq. 3 row-wise: sum_k |CDF_p(k) - CDF_r(k)| (:func:`dvmap_verl.stats.cdf_distance`, raw scale)."""
    return stats.cdf_distance(p, r)


jensen_shannon = stats.jensen_shannon


def summary(df: pd.DataFrame, *, bootstrap: int = 0, seed: int = 0) -> dict[str, Any]:
    """Headline metrics of a scored predictions table (see :func:`point_scores`): every point metric of the
    registry (metric_registry.py), ``cells``, and with ``bootstrap`` draws the 95% intervals of Acc and LC."""
    if df.empty:
        return {"n_items": 0, "n_samples": 0}
    out: dict[str, Any] = {"n_items": int(df["item"].nunique()), "n_samples": int(len(df))}
    out.update(V.point_summary(df))
    if bootstrap:
        out["ci95"] = bootstrap_ci(df, ("correct", "lc"), bootstrap, seed)
    return out


def bootstrap_ci(df: pd.DataFrame, columns: Iterable[str], reps: int = 1000, seed: int = 0) -> dict[str, list[float]]:
    """Percentile 95% intervals, resampling items (all samples of an item move together)."""
    cols = list(columns)
    weighted = df[cols].mul(df["weight"], axis=0).assign(_w=df["weight"], item=df["item"])
    sums = weighted.groupby("item").sum()
    per_item = sums[cols].div(sums["_w"], axis=0)
    lo, hi = stats.bootstrap(per_item.to_numpy(), reps, seed=seed)
    return {c: [float(a), float(b)] for c, a, b in zip(per_item.columns, lo, hi)}


def breakdown(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """``n`` items and every registered point metric per value of ``by`` (metric_values.breakdown)."""
    return V.breakdown(df, by)


def option_entropy(df: pd.DataFrame, by: str = "q_id") -> pd.Series:
    """Shannon entropy (nats) of the real answer distribution per ``by`` (each item once)."""
    items = df.drop_duplicates("item")
    counts = items.groupby([by, "truth"], observed=True).size().unstack(fill_value=0)
    p = counts.to_numpy() / counts.to_numpy().sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return pd.Series(h, index=counts.index, name="entropy")


def entropy_vs_accuracy(df: pd.DataFrame) -> dict[str, Any]:
    """Per question: option entropy and accuracy, and their Pearson r (paper §5.3: r = -0.857)."""
    sums = df[["correct"]].mul(df["weight"], axis=0).assign(weight=df["weight"], q_id=df["q_id"]) \
        .groupby("q_id", observed=True).sum()
    acc = sums["correct"] / sums["weight"]
    ent = option_entropy(df)
    table = pd.concat([ent, acc.rename("acc")], axis=1).dropna()
    defined = len(table) >= 3 and table["entropy"].std() > 0 and table["acc"].std() > 0
    r = float(np.corrcoef(table["entropy"], table["acc"])[0, 1]) if defined else float("nan")
    return {"pearson_r": r, "per_question": table.reset_index().to_dict("records")}


def flip_rate(original: pd.DataFrame, flipped: pd.DataFrame, by: str = "category") -> dict[str, Any]:
    """Value flip rate: share of (item, counterfactual) pairs whose modal prediction differs (paper §5.6)."""
    def modal(df):
        resolved = df[df["pred"] >= 0]
        if resolved.empty:
            return pd.Series(dtype=float)
        return resolved.groupby("pair")["pred"].agg(lambda s: s.value_counts().idxmax())

    a, b = modal(original), modal(flipped)
    both = a.index.intersection(b.index)
    changed = (a[both] != b[both]).astype(float)
    groups = original.drop_duplicates("pair").set_index("pair")[by].reindex(both)
    per = changed.groupby(groups).agg(["mean", "size"]).rename(columns={"mean": "flip_rate", "size": "pairs"})
    return {"flip_rate": float(changed.mean()) if len(changed) else float("nan"), "pairs": int(len(both)),
            "by_" + by: per.reset_index().to_dict("records")}
