"""The metric registry: every metric ``report`` and ``compare`` show is an entry here (as lm-eval registers its
metrics). Adding a metric is one :func:`register_metric` call; report tables, ``metrics.json``, ``compare`` tables
and paired differences iterate :func:`metrics`.

A metric's ``fn(p, t, k, items)`` scores rows: ``p`` the system's distributions (n x MAX_K, rows sum to 1 over
the first k options), ``t`` the target distributions (same shape), ``k`` the option counts (n,), ``items`` the
matching rows of the items table (or ``None``) for metrics that need more (ordinal positions, say). It returns
per-row values (n,), ``nan`` where the metric is not defined for a row (an ordinal metric on a non-ordinal item).
``level`` says what a row is: ``item`` (one evaluation item: the model's answer distribution against the item's
target), ``cell`` (a country x question cell: the distribution of answers against the cell's), ``split``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

LEVELS = ("item", "cell", "split")


@dataclass(frozen=True)
class Metric:
    name: str                      # the key in metrics.json and the column in report/compare tables
    fn: Callable[..., np.ndarray]  # fn(p, t, k, items) -> per-row values
    level: str = "item"
    higher_is_better: bool = False
    needs_probs: bool = False      # True: only meaningful on a readout that gives distributions
    description: str = ""          # one line for report.md
    source: str = ""               # paper section or the peer's definition
    tags: tuple[str, ...] = field(default_factory=tuple)


_REGISTRY: dict[str, Metric] = {}


def register_metric(metric: Metric, *, replace: bool = False) -> Metric:
    """Add ``metric``; a second entry of the same name is an error unless ``replace``."""
    if metric.level not in LEVELS:
        raise ValueError(f"metric {metric.name!r}: level must be one of {LEVELS}, not {metric.level!r}")
    if metric.name in _REGISTRY and not replace:
        raise ValueError(f"metric {metric.name!r} is already registered")
    _REGISTRY[metric.name] = metric
    return metric


def get_metric(name: str) -> Optional[Metric]:
    return _REGISTRY.get(name)


def metrics(level: str | None = None) -> list[Metric]:
    """Registered metrics in registration order, optionally of one level."""
    return [m for m in _REGISTRY.values() if level is None or m.level == level]


# The peer benchmarks' own metrics (GlobalOpinionQA, OpinionQA, SubPOP, WorldValuesBench) register themselves.
from dvmap_verl.evaluation import benchmark_metrics  # noqa: E402,F401
