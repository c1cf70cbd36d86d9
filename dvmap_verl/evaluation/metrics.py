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
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

MAX_K = 16  # options per item the evaluation holds (imported benchmarks reach 11: 0-10 scales)


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


def _wmean(df: pd.DataFrame, col: str) -> float:
    w = df["weight"].to_numpy()
    return float((df[col].to_numpy() * w).sum() / w.sum())


def _cell_distributions(df: pd.DataFrame, cell_cols: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell: predicted and real option distributions (rows normalised) and K."""
    # groupby().ngroup() codes the cells without materialising tuples (MultiIndex.factorize does, slowly).
    codes = df.groupby(cell_cols, sort=False, observed=True, dropna=False).ngroup().to_numpy()
    n = int(codes.max()) + 1 if len(codes) else 0
    pred = df["pred"].to_numpy()
    parsed = pred >= 0
    weight = df["weight"].to_numpy() if "weight" in df else np.ones(len(df))
    pred_counts = np.zeros((n, MAX_K))
    np.add.at(pred_counts, (codes[parsed], pred[parsed]), weight[parsed])
    # Real distribution: each item once.
    first = ~df.duplicated("item").to_numpy()
    real_counts = np.zeros((n, MAX_K))
    np.add.at(real_counts, (codes[first], df["truth"].to_numpy()[first]), 1.0)
    k = np.zeros(n, dtype=int)
    np.maximum.at(k, codes, df["k"].to_numpy())
    with np.errstate(invalid="ignore", divide="ignore"):
        p = pred_counts / pred_counts.sum(1, keepdims=True)
        r = real_counts / real_counts.sum(1, keepdims=True)
    return p, r, k


def wasserstein(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Paper Eq. 3 row-wise: sum_k |CDF_p(k) - CDF_r(k)| (rows are distributions over ordered options)."""
    return np.abs(np.cumsum(p, axis=1) - np.cumsum(r, axis=1)).sum(axis=1)


def jensen_shannon(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Row-wise Jensen-Shannon divergence, base 2 (0 = identical, 1 = disjoint)."""
    m = (p + r) / 2

    def kl(a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(a > 0, a * np.log2(a / b), 0.0)
        return t.sum(axis=1)

    return (kl(p, m) + kl(r, m)) / 2


def distribution_metrics(df: pd.DataFrame, cell_cols: Iterable[str] = ("country", "q_id")) -> dict[str, float]:
    """WD, normalised WD and 1 - JSD averaged over (country, question) cells with at least one resolved answer."""
    if df.empty:
        return {"wd": float("nan"), "wd_norm": float("nan"), "one_minus_jsd": float("nan"), "cells": 0}
    p, r, k = _cell_distributions(df, list(cell_cols))
    ok = np.isfinite(p).all(axis=1) & np.isfinite(r).all(axis=1)
    if not ok.any():
        return {"wd": float("nan"), "wd_norm": float("nan"), "one_minus_jsd": float("nan"), "cells": 0}
    wd = wasserstein(p[ok], r[ok])
    return {
        "wd": float(wd.mean()),
        "wd_norm": float((wd / np.maximum(k[ok] - 1, 1)).mean()),
        "one_minus_jsd": float(1 - jensen_shannon(p[ok], r[ok]).mean()),
        "cells": int(ok.sum()),
    }


def summary(df: pd.DataFrame, *, bootstrap: int = 0, seed: int = 0) -> dict[str, Any]:
    """Headline metrics of a scored predictions table (see :func:`point_scores`)."""
    if df.empty:
        return {"n_items": 0, "n_samples": 0}
    out: dict[str, Any] = {
        "n_items": int(df["item"].nunique()),
        "n_samples": int(len(df)),
        "acc": _wmean(df, "correct"),
        "lc": _wmean(df, "lc"),
        "unparsed_rate": 1 - _wmean(df, "parsed"),
    }
    out.update(distribution_metrics(df))
    if bootstrap:
        out["ci95"] = bootstrap_ci(df, ("correct", "lc"), bootstrap, seed)
    return out


def bootstrap_ci(df: pd.DataFrame, columns: Iterable[str], reps: int = 1000, seed: int = 0) -> dict[str, list[float]]:
    """Percentile 95% intervals, resampling items (all samples of an item move together)."""
    rng = np.random.default_rng(seed)
    cols = list(columns)
    weighted = df[cols].mul(df["weight"], axis=0).assign(_w=df["weight"], item=df["item"])
    sums = weighted.groupby("item").sum()
    per_item = sums[cols].div(sums["_w"], axis=0)
    values = per_item.to_numpy()
    n = len(values)
    idx = rng.integers(0, n, size=(reps, n))
    # Mean of resampled items, in chunks to bound memory.
    means = np.concatenate([values[idx[i:i + 100]].mean(axis=1) for i in range(0, reps, 100)])
    lo, hi = np.percentile(means, [2.5, 97.5], axis=0)
    return {c: [float(a), float(b)] for c, a, b in zip(per_item.columns, lo, hi)}


def breakdown(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """Acc, LC and unparsed rate per value of ``by`` (WD per group when ``by`` is coarser than a cell)."""
    w = df[["correct", "lc", "parsed"]].mul(df["weight"], axis=0).assign(weight=df["weight"], key=df[by])
    sums = w.groupby("key", observed=True).sum()
    table = pd.DataFrame({
        "n": df.groupby(by, observed=True)["item"].nunique(),
        "acc": sums["correct"] / sums["weight"],
        "lc": sums["lc"] / sums["weight"],
        "unparsed_rate": 1 - sums["parsed"] / sums["weight"],
    })
    g = df.groupby(by, observed=True)
    if by in ("country", "q_id", "category", "split"):
        table["wd"] = [distribution_metrics(part)["wd"] for _, part in g]
    table.index.name = by  # metrics.json's records are keyed by the grouping's own name, not "index"
    return table.sort_index()


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
