"""The registered metrics computed on data: what each level's ``fn(p, t, k, items)`` is given, and how its per-row
values are averaged (metric_registry.py says what the rows mean).

Point rows come from a scored predictions table (one row per (item, sample), metrics.point_scores); probability
rows from item distributions (distributional.item_probabilities).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from dvmap_verl.evaluation.arrays import MAX_K, one_hot
from dvmap_verl.evaluation.metric_registry import Metric, metrics

CELL = ("country", "q_id")
#: Groupings a cell lies inside: their breakdown tables also show the cell metrics.
CELL_GROUPINGS = ("country", "q_id", "category", "split")


@dataclass(frozen=True)
class Rows:
    """What a metric's ``fn`` sees at one level: distributions ``p`` and targets ``t`` (n x MAX_K), option counts
    ``k`` (n,), the rows' table ``items`` and the weight (n,) each row's value has in the average."""

    p: np.ndarray
    t: np.ndarray
    k: np.ndarray
    items: pd.DataFrame
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.k)


def answer_counts(df: pd.DataFrame, codes: np.ndarray, n: int) -> np.ndarray:
    """(n, MAX_K) weighted counts of the resolved answers (``pred`` >= 0) of the rows coded ``codes``."""
    pred = df["pred"].to_numpy().astype(int)
    ok = pred >= 0
    weight = df["weight"].to_numpy(dtype=float) if "weight" in df else np.ones(len(df))
    counts = np.zeros((n, MAX_K))
    np.add.at(counts, (codes[ok], pred[ok]), weight[ok])
    return counts


def uniform(k: np.ndarray) -> np.ndarray:
    k = np.asarray(k, dtype=int)
    return (np.arange(MAX_K)[None, :] < k[:, None]) / np.maximum(k, 1)[:, None]


def point_items(df: pd.DataFrame) -> Rows:
    """One row per item (sorted by item): the distribution of its resolved answers (uniform where none resolved,
    ``unreadable``), and its weighted shares ``correct``, ``lc``, ``parsed``; ``weight`` its samples' weight."""
    items = df.drop_duplicates("item").sort_values("item").reset_index(drop=True)
    codes = pd.Index(items["item"]).get_indexer(df["item"])
    w = df["weight"].to_numpy(dtype=float) if "weight" in df else np.ones(len(df))
    total = np.bincount(codes, weights=w, minlength=len(items))
    for col in ("correct", "lc", "parsed"):
        if col in df:
            items[col] = np.bincount(codes, weights=w * df[col].to_numpy(dtype=float), minlength=len(items)) / total
    items["weight"] = total
    counts = answer_counts(df, codes, len(items))
    resolved = counts.sum(axis=1, keepdims=True)
    k = items["k"].to_numpy().astype(int)
    items["unreadable"] = resolved[:, 0] <= 0
    p = np.where(resolved > 0, counts / np.where(resolved > 0, resolved, 1), uniform(k))
    return Rows(p, one_hot(items["truth"].to_numpy()), k, items, total)


def _cell_codes(frame: pd.DataFrame, cell: Sequence[str]) -> tuple[np.ndarray, int]:
    # groupby().ngroup() codes the cells without materialising tuples (MultiIndex.factorize does, slowly).
    codes = frame.groupby(list(dict.fromkeys(cell)), sort=False, observed=True, dropna=False).ngroup().to_numpy()
    return codes, int(codes.max()) + 1 if len(codes) else 0


def _cell_rows(frame: pd.DataFrame, codes: np.ndarray, n: int, p: np.ndarray, cell: Sequence[str],
               truth_rows: np.ndarray) -> Rows:
    """Cells with an answer distribution ``p`` (n x MAX_K; nan rows are left out) against their true answers."""
    real = np.zeros((n, MAX_K))
    np.add.at(real, (codes[truth_rows], frame["truth"].to_numpy().astype(int)[truth_rows]), 1.0)
    k = np.zeros(n, dtype=int)
    np.maximum.at(k, codes, frame["k"].to_numpy().astype(int))
    with np.errstate(invalid="ignore", divide="ignore"):
        t = real / real.sum(axis=1, keepdims=True)
    ok = np.isfinite(p).all(axis=1) & np.isfinite(t).all(axis=1)
    first = np.unique(codes, return_index=True)[1]  # each cell's first row, in code order
    table = frame.iloc[first][list(dict.fromkeys(cell))].reset_index(drop=True)
    table["items"] = np.bincount(codes[truth_rows], minlength=n)
    return Rows(p[ok], t[ok], k[ok], table[ok].reset_index(drop=True), np.ones(int(ok.sum())))


def point_cells(df: pd.DataFrame, cell: Sequence[str] = CELL) -> Rows:
    """Cells with at least one resolved answer: the distribution of their resolved answers (all samples, by weight)
    against that of their items' truths (each item once)."""
    codes, n = _cell_codes(df, cell)
    counts = answer_counts(df, codes, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = counts / counts.sum(axis=1, keepdims=True)
    return _cell_rows(df, codes, n, p, cell, ~df.duplicated("item").to_numpy())


def probability_items(items: pd.DataFrame, p: np.ndarray) -> Rows:
    """One row per item: its readout distribution against the truth's point mass, all weighing the same."""
    return Rows(p, one_hot(items["truth"].to_numpy()), items["k"].to_numpy().astype(int), items,
                np.ones(len(items)))


def probability_cells(items: pd.DataFrame, p: np.ndarray, cell: Sequence[str] = CELL) -> Rows:
    """Cells: the mean distribution of their items against the distribution of their items' truths."""
    codes, n = _cell_codes(items, cell)
    mean_p = np.zeros((n, MAX_K))
    np.add.at(mean_p, codes, p)
    mean_p /= np.maximum(np.bincount(codes, minlength=n), 1)[:, None]
    return _cell_rows(items, codes, n, mean_p, cell, np.ones(len(items), bool))


def row_values(metric: Metric, rows: Rows) -> np.ndarray:
    """``metric.fn`` on ``rows``: (n,) values (one for a split-level metric); a wrong shape is an error naming it."""
    if metric.level == "split":
        v = np.asarray(metric.fn(rows.p, rows.t, rows.k, rows.items), dtype=float).reshape(-1)
        want = 1
    else:
        v = np.asarray(metric.fn(rows.p, rows.t, rows.k, rows.items), dtype=float)
        want = len(rows)
    if v.shape != (want,):  # the metric's own bug (a plugin's, usually): name it and where its code lives
        from dvmap_verl.errors import EnvironmentProblem

        module = getattr(metric.fn, "__module__", None) or "an unknown module"
        raise EnvironmentProblem(f"metric {metric.name!r} (its function in {module}; source: "
                                 f"{metric.source or 'not given'}) returned shape {v.shape} for {len(rows)} "
                                 f"{metric.level} rows; it must return {want} value(s): fix or remove that metric "
                                 f"(a plugin: DVMAP_PLUGINS or its entry point)")
    return v


def average(values: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Weighted mean of the finite values; nan when there is none."""
    ok = np.isfinite(values)
    if not ok.any():
        return float("nan")
    w = np.ones(len(values)) if weight is None or len(weight) != len(values) else weight
    return float((values[ok] * w[ok]).sum() / w[ok].sum())


def score(metric: Metric, item_rows: Rows, cell_rows: Rows) -> float:
    """One number for a metric: its rows' values averaged (items weighted, cells equally)."""
    rows = cell_rows if metric.level == "cell" else item_rows
    if not len(rows):
        return float("nan")
    v = row_values(metric, rows)
    return float(v[0]) if metric.level == "split" else average(v, rows.weight)


def point_summary(df: pd.DataFrame) -> dict[str, float]:
    """Every point metric of a scored predictions table, and ``cells`` (cells with a resolved answer)."""
    if df.empty:
        return {m.name: float("nan") for m in metrics(needs_probs=False)} | {"cells": 0}
    item_rows, cell_rows = point_items(df), point_cells(df)
    return {m.name: score(m, item_rows, cell_rows) for m in metrics(needs_probs=False)} | {"cells": len(cell_rows)}


def probability_summary(items: pd.DataFrame, p: np.ndarray) -> dict[str, float]:
    """Every probability metric of item distributions; a metric with no finite row is left out."""
    item_rows, cell_rows = probability_items(items, p), probability_cells(items, p)
    out = {m.name: score(m, item_rows, cell_rows) for m in metrics(needs_probs=True)}
    return {k: v for k, v in out.items() if np.isfinite(v)}


def item_values(rows: Rows, needs_probs: bool = False) -> pd.DataFrame:
    """The item-level metrics' per-item values (one column each), beside ``rows.items``."""
    return rows.items.assign(**{m.name: row_values(m, rows) for m in metrics("item", needs_probs=needs_probs)})


def _group_mean(values: pd.DataFrame, weight: np.ndarray, keys: pd.Series) -> pd.DataFrame:
    ok = np.isfinite(values.to_numpy(dtype=float))
    w = np.where(ok, weight[:, None], 0.0)
    num = pd.DataFrame(np.where(ok, values.to_numpy(dtype=float), 0.0) * w, columns=values.columns)
    den = pd.DataFrame(w, columns=values.columns)
    num_g, den_g = num.groupby(keys.to_numpy(), sort=True).sum(), den.groupby(keys.to_numpy(), sort=True).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return num_g / den_g.where(den_g > 0)


def breakdown(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per value of ``by``: ``n`` items and every point metric (the cell metrics when ``by`` is one of
    :data:`CELL_GROUPINGS`, whose cells lie inside one group), in registry order."""
    item_rows = point_items(df)
    keys = pd.Series(item_rows.items[by].to_numpy())  # values, not categories (no unobserved group)
    present = keys.notna().to_numpy()
    table = pd.DataFrame({"n": keys[present].value_counts().sort_index()})
    item_ms = metrics("item", needs_probs=False)
    vals = pd.DataFrame({m.name: row_values(m, item_rows) for m in item_ms})
    table = table.join(_group_mean(vals[present].reset_index(drop=True), item_rows.weight[present],
                                   keys[present].reset_index(drop=True)))
    if by in CELL_GROUPINGS:
        cells = point_cells(df, (by, *CELL))
        cell_ms = metrics("cell", needs_probs=False)
        cvals = pd.DataFrame({m.name: row_values(m, cells) if len(cells) else np.zeros(0) for m in cell_ms})
        table = table.join(_group_mean(cvals, cells.weight, cells.items[by]))
    order = [m.name for m in metrics(needs_probs=False) if m.name in table]
    table = table[["n", *order]]
    table["n"] = table["n"].astype(int)
    table.index.name = by  # metrics.json's records are keyed by the grouping's own name, not "index"
    return table.sort_index()
