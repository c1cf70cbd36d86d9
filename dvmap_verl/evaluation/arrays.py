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
