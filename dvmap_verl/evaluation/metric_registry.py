"""The metric registry: every metric ``report`` and ``compare`` show is an entry here (as lm-eval registers its
metrics). Adding a metric is one :func:`register_metric` call; report tables, ``metrics.json``, ``compare`` tables
and paired differences iterate :func:`metrics` (metric_values.py computes them; builtin_metrics.py holds the
project's own entries, registered first).

A metric's ``fn(p, t, k, items)`` scores rows: ``p`` the system's distributions (n x MAX_K, rows sum to 1 over
the first k options), ``t`` the target distributions (same shape), ``k`` the option counts (n,), ``items`` the
matching rows of the items table (or ``None``) for metrics that need more (ordinal positions, say). It returns
per-row values (n,), ``nan`` where the metric is not defined for a row (an ordinal metric on a non-ordinal item).
``level`` says what a row is: ``item`` (one evaluation item: the model's answer distribution against the item's
target, the truth's point mass), ``cell`` (a country x question cell: the distribution of answers against the
cell's true answers), ``split`` (all items at once; ``fn`` returns one value).

``needs_probs``: False scores the point answers (``p`` is the distribution of an item's or a cell's resolved
answers; ``items`` also holds each item's ``correct``, ``lc`` and ``parsed`` shares): it is a headline column of
``report`` and ``compare`` and gets a paired difference. True scores the readout's probabilities (an item's
``p`` is its readout distribution; a cell's the mean of its items'): the report's "Distributional" section.
A row's value counts in the average where it is finite; item values are weighted by the item's samples for point
metrics, equally for probability metrics; cells equally.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

LEVELS = ("item", "cell", "split")
#: Keys the tables and metrics.json already use beside the metrics (counts, names): no metric may take them.
RESERVED = frozenset({"n", "n_items", "n_samples", "items", "cells", "profile_items", "unreadable_items", "readout",
                      "system", "split", "run", "shared_items", "items_ref", "items_run", "ci95", "by"})


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
    label: str = ""                # column heading in compare.md's differences (default: the name)

    @property
    def heading(self) -> str:
        return self.label or self.name


_REGISTRY: dict[str, Metric] = {}


def register_metric(metric: Metric, *, replace: bool = False) -> Metric:
    """Add ``metric``; a second entry of the same name is an error unless ``replace``."""
    if metric.level not in LEVELS:
        raise ValueError(f"metric {metric.name!r}: level must be one of {LEVELS}, not {metric.level!r}")
    if metric.name in RESERVED:
        raise ValueError(f"metric name {metric.name!r} is reserved (a count or name beside the metrics); reserved: "
                         f"{sorted(RESERVED)}")
    if metric.name in _REGISTRY and not replace:
        raise ValueError(f"metric {metric.name!r} is already registered")
    clash = [m.name for m in _REGISTRY.values() if m.name != metric.name
             and {metric.name.casefold(), metric.heading.casefold()} & {m.name.casefold(), m.heading.casefold()}]
    if clash:  # two columns headed alike (e.g. "Acc" beside acc) would be told apart by no reader
        raise ValueError(f"metric {metric.name!r} (heading {metric.heading!r}) differs only by case from the "
                         f"registered {clash[0]!r} (heading {_REGISTRY[clash[0]].heading!r}); choose another name")
    _REGISTRY[metric.name] = metric
    return metric


def unregister_metric(name: str) -> None:
    """Remove an entry (a test's toy metric); unknown names are ignored."""
    _REGISTRY.pop(name, None)


def get_metric(name: str) -> Optional[Metric]:
    return _REGISTRY.get(name)


def metrics(level: str | None = None, *, needs_probs: bool | None = None,
            benchmark: bool | None = False) -> list[Metric]:
    """Registered metrics in registration order, optionally of one level and of one kind (point or probability).

    ``benchmark``: a peer benchmark's own metric (tagged ``"benchmark"``) scores an imported item's target
    distribution, which only ``dvmap import-benchmark`` items have; the report shows those in its "Peer benchmarks"
    section. They are left out by default (False), alone with True, included with None."""
    return [m for m in _REGISTRY.values()
            if (level is None or m.level == level) and (needs_probs is None or m.needs_probs == needs_probs)
            and (benchmark is None or ("benchmark" in m.tags) == benchmark)]


# The project's own entries, first in every table (the module imports Metric and register_metric from here).
from dvmap_verl.evaluation import builtin_metrics  # noqa: E402,F401

# The peer benchmarks' own metrics (GlobalOpinionQA, OpinionQA, SubPOP, WorldValuesBench) register themselves.
from dvmap_verl.evaluation import benchmark_metrics  # noqa: E402,F401
