"""One place for the statistics every layer shares: the bootstrap, the CDF distance over ordered options and the
ranked probability score (RPS), with the scale in the argument.

It sits at the bottom of the house (numpy only): the reward (per-sample, in a training loop), the distributional
metrics and the reports all call these, so the same number is computed one way.

Scales: ``raw`` is the sum over the K ordered options, ``normalised`` divides by K - 1 so that scales of different
sizes share [0, 1] (a point mass on the first option against one on the last scores 1).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

SCALES = ("raw", "normalised")
#: Bootstrap draws per vectorised chunk: memory stays ~CHUNK x rows. Draws are taken chunk by chunk from one
#: generator, which gives the same indices as drawing them all at once (numpy's integers are a stream).
CHUNK = 100


# ---------------------------------------------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------------------------------------------


def bootstrap(values: Any, reps: int = 1000, *, seed: int = 0, rng: np.random.Generator | None = None,
              statistic: Callable[[np.ndarray], Any] | None = None, level: float = 0.95):
    """Percentile bootstrap interval of a statistic over rows resampled with replacement.

    ``values``: (n,) or (n, m); a row is the resampling unit (an item: all its columns move together, which is
    what makes a difference of two paired columns a *paired* bootstrap). ``statistic(sample) -> scalar or (m,)``;
    None is the column mean (vectorised). Draws whose statistic is not finite (a correlation of a constant draw)
    are left out. ``rng`` continues a caller's generator (several intervals from one seed); else
    ``default_rng(seed)``.

    Returns ``(lo, hi)``, floats for (n,) values and (m,) arrays for (n, m); ``None`` when ``reps`` is 0 (no
    intervals); nan bounds when there are no rows or no finite draw.
    """
    if reps <= 0:
        return None
    x = np.asarray(values, dtype=float)
    if not len(x):
        nan = np.full(x.shape[1:] if statistic is None else (), np.nan)[()]
        return nan, nan
    width = x.shape[1:] if statistic is None else np.shape(statistic(x))
    rng = rng if rng is not None else np.random.default_rng(seed)
    n, draws = len(x), []
    for start in range(0, reps, CHUNK):
        idx = rng.integers(0, n, size=(min(CHUNK, reps - start), n))
        if statistic is None:
            draws.append(x[idx].mean(axis=1))
        else:
            draws.append(np.array([statistic(x[i]) for i in idx], dtype=float).reshape((len(idx), *width)))
    stats = np.concatenate(draws)
    if statistic is not None:
        stats = stats[np.isfinite(stats.reshape(len(stats), -1)).all(axis=1)]
        if not len(stats):
            return np.full(width, np.nan)[()], np.full(width, np.nan)[()]
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(stats, [tail, 100 - tail], axis=0)
    return (float(lo), float(hi)) if np.ndim(lo) == 0 else (lo, hi)


def paired_bootstrap(a: Any, b: Any, reps: int = 1000, *, seed: int = 0,
                     rng: np.random.Generator | None = None) -> tuple[float, float, float]:
    """Mean of ``b - a`` over paired rows (the same items scored by two systems) and its percentile 95% interval,
    resampling the pairs (the same draw for both systems). Returns ``(mean, lo, hi)``; nan bounds when ``reps`` is
    0, all nan when there is no pair."""
    diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if not len(diff):
        return float("nan"), float("nan"), float("nan")
    ci = bootstrap(diff, reps, seed=seed, rng=rng)
    return (float(diff.mean()), *(ci if ci is not None else (float("nan"), float("nan"))))


# ---------------------------------------------------------------------------------------------------------------
# Distances between distributions over ordered options
# ---------------------------------------------------------------------------------------------------------------


def _check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, not {scale!r}")


def _divisor(p: np.ndarray, k: Any) -> Any:
    k = p.shape[-1] if k is None else np.asarray(k)
    return np.maximum(k - 1, 1)


def cdf_distance(p: Any, t: Any, k: Any = None, *, scale: str = "raw") -> np.ndarray:
    """Wasserstein-1 distance over ordered options, ``sum_k |CDF_p(k) - CDF_t(k)|`` (paper Eq. 3), row-wise.

    ``p``, ``t``: (n, K) or (K,) distributions (rows padded with zeros past their own K are fine); ``k``: the
    option counts (n,) for ``scale="normalised"`` (÷ (K - 1)); None takes the width of ``p``.
    Returns (n,) (or a 0-d array for one row). 0 when p = t; raw at most K - 1.
    """
    _check_scale(scale)
    p, t = np.asarray(p, dtype=float), np.asarray(t, dtype=float)
    d = np.abs(np.cumsum(p, axis=-1) - np.cumsum(t, axis=-1)).sum(axis=-1)
    return d if scale == "raw" else d / _divisor(p, k)


def rps(p: Any, t: Any, k: Any = None, *, scale: str = "raw"):
    """Ranked probability score, ``sum_k (CDF_p(k) - CDF_t(k))^2`` over ordered options (0 when p = t, proper).

    Arrays (n, K) give (n,) row-wise values, ``k`` as in :func:`cdf_distance`. One row given as plain Python
    sequences (the reward, per sample inside a training loop) is scored in pure Python and returns a float: the
    same sum without numpy's per-call cost. ``scale="normalised"`` divides by K - 1 (K: ``k``, else the length).
    """
    if isinstance(p, (list, tuple)) and isinstance(t, (list, tuple)) and scale in SCALES:
        cp = ct = total = 0.0  # one row in pure Python: the reward's per-sample path, no numpy call
        for a, b in zip(p, t):
            cp += a
            ct += b
            d = cp - ct
            total += d * d
        return total if scale == "raw" else total / max((len(p) if k is None else int(k)) - 1, 1)
    _check_scale(scale)
    p, t = np.asarray(p, dtype=float), np.asarray(t, dtype=float)
    d = np.cumsum(p, axis=-1) - np.cumsum(t, axis=-1)
    total = (d * d).sum(axis=-1)
    return total if scale == "raw" else total / _divisor(p, k)


def jensen_shannon(p: Any, t: Any) -> np.ndarray:
    """Row-wise Jensen-Shannon divergence, base 2 (0 = identical, 1 = disjoint); (n, K) -> (n,)."""
    p, t = np.asarray(p, dtype=float), np.asarray(t, dtype=float)
    m = (p + t) / 2

    def kl(a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, a * np.log2(a / b), 0.0).sum(axis=-1)

    return (kl(p, m) + kl(t, m)) / 2

