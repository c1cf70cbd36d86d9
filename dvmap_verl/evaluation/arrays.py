"""Option-distribution arrays shared by the metrics: rows padded to ``MAX_K`` options (the WVS-7 scales have at
most 8; imported benchmarks reach 11, the 0-10 scales), one-hot rows and ragged lists padded into a matrix."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

MAX_K = 16  # options per item the evaluation holds; import-benchmark sets wider items aside, named


def one_hot(index: Any, width: int = MAX_K) -> np.ndarray:
    """(n,) option indices -> (n, width) rows with a 1 at each index."""
    index = np.asarray(index, dtype=int)
    out = np.zeros((len(index), width))
    out[np.arange(len(index)), index] = 1.0
    return out


def pad_rows(rows: Sequence[Any], width: int = MAX_K) -> np.ndarray:
    """Ragged vectors (None or NaN for a missing one) -> (n, width), zeros past each row's own length."""
    out = np.zeros((len(rows), width))
    for i, r in enumerate(rows):
        if r is not None and not (isinstance(r, float) and np.isnan(r)):
            v = np.asarray(r, dtype=float)[:width]
            out[i, :len(v)] = v
    return out


def _exact_target(items: Any, i: int) -> np.ndarray | None:
    """An imported item's exact ``target`` (a benchmark item: non-empty ``benchmark``), or None."""
    bench = items["benchmark"].iloc[i]
    if not isinstance(bench, str) or not bench:
        return None
    t = items["target"].iloc[i]
    if not isinstance(t, (list, tuple, np.ndarray)) or not 0 < len(t) <= MAX_K:
        return None
    t = np.asarray(t, dtype=float)
    return t / t.sum() if np.isfinite(t).all() and (t >= 0).all() and t.sum() > 0 else None


def respondent_targets(items: Any, width: int = MAX_K) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each item's respondent distribution, (n_items, width): an imported benchmark item's exact ``target``
    where it has one (``counts`` there is the target rounded to whole answers, for the sampling floor only), else
    ``counts`` normalised (zeros where unknown). Also ``n`` (respondents: ``counts`` summed, 0 where unknown) and
    ``exact`` (bool: the row came from ``target``, a distribution however few its respondents)."""
    n_items = 0 if items is None else len(items)
    out, exact = np.zeros((n_items, width)), np.zeros(n_items, bool)
    counts = pad_rows(items["counts"].tolist(), width) if n_items and "counts" in items else out.copy()
    n = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(n[:, None] > 0, counts / np.where(n > 0, n, 1)[:, None], 0.0)
    if n_items and "target" in items and "benchmark" in items:
        for i in range(n_items):
            t = _exact_target(items, i)
            if t is not None and len(t) <= width:
                out[i], exact[i] = 0.0, True
                out[i, :len(t)] = t
    return out, n, exact
