"""The metrics ``report`` and ``compare`` show, as registry entries (see metric_registry.py for what ``fn`` sees).

Point metrics (``needs_probs=False``) score the point answers: at item level ``items`` holds each item's share of
correct samples (``correct``), its Likert consistency (``lc``) and its share of resolved answers (``parsed``); at
cell level ``p`` is the distribution of the cell's resolved answers and ``t`` that of the cell's true answers.
Probability metrics (``needs_probs=True``) score the readout's distributions: ``p`` the item's (or the mean of the
cell's items'), ``t`` the truth's point mass (or the cell's true answers); they make the report's "Distributional"
section. The order here is the column order of the tables.
"""

from __future__ import annotations

import numpy as np

from dvmap_verl import stats
from dvmap_verl.evaluation.arrays import respondent_targets
from dvmap_verl.evaluation.metric_registry import Metric, register_metric


def _column(name: str):
    return lambda p, t, k, items: items[name].to_numpy(dtype=float)


def _profile(items, min_n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each item's respondent distribution (an imported item's exact ``target``; arrays.respondent_targets) and a
    mask of the items that have one: a benchmark target, or ``counts`` of at least ``min_n`` respondents."""
    target, n, exact = respondent_targets(items)
    return target, exact | (n >= min_n)


def _on_profile(score, min_n: int = 2):
    """A score against the profile's respondents, nan on items with fewer than ``min_n`` (one is no distribution)."""
    def fn(p, t, k, items):
        target, known = _profile(items, min_n)
        out = np.full(len(p), np.nan)
        if known.any():
            out[known] = score(p[known], target[known], k[known])
        return out
    return fn


def _ece(p, t, k, items):
    from dvmap_verl.evaluation.distributional import calibration  # lazily: distributional imports the registry

    return calibration(p, t.argmax(axis=1))["ece"]


_POINT = [
    Metric("acc", _column("correct"), "item", True, False, "share of samples whose answer is the truth "
           "(unresolved counts as wrong)", "paper §5.1", label="Acc"),
    Metric("lc", _column("lc"), "item", True, False, "Likert consistency, 1 - |pred - truth| / (K - 1) "
           "(unresolved: 0)", "paper §5.1", label="LC"),
    Metric("wd", lambda p, t, k, items: stats.cdf_distance(p, t), "cell", False, False,
           "Wasserstein distance of the cell's resolved answers to its true answers", "paper Eq. 3", label="WD"),
    Metric("wd_norm", lambda p, t, k, items: stats.cdf_distance(p, t, k, scale="normalised"), "cell", False, False,
           "WD / (K - 1): comparable across scale sizes", "paper Eq. 3, normalised"),
    Metric("one_minus_jsd", lambda p, t, k, items: 1 - stats.jensen_shannon(p, t), "cell", True, False,
           "1 - Jensen-Shannon divergence (base 2) of the same two distributions", "paper §5.1"),
    Metric("unparsed_rate", lambda p, t, k, items: 1 - items["parsed"].to_numpy(dtype=float), "item", False, False,
           "share of samples with no resolvable answer", "this project"),
]

_PROBABILITY = [
    Metric("expected_acc", lambda p, t, k, items: (p * t).sum(axis=1), "item", True, True,
           "probability mass on the truth", "this project"),
    Metric("respondent_acc", _on_profile(lambda p, t, k: (p * t).sum(axis=1), min_n=1), "item", True, True,
           "expected share of the profile's respondents a sampled answer matches", "this project"),
    Metric("rps", lambda p, t, k, items: stats.rps(p, t, k, scale="normalised"), "item", False, True,
           "ranked probability score against the truth, / (K - 1)", "Epstein 1969"),
    Metric("brier", lambda p, t, k, items: ((p - t) ** 2).sum(axis=1), "item", False, True,
           "multi-class Brier score", "Brier 1950"),
    Metric("ece", _ece, "split", False, True, "expected calibration error of the argmax, 10 bins", "Guo et al. 2017"),
    Metric("rps_profile", _on_profile(lambda p, t, k: stats.rps(p, t, k, scale="normalised")), "item", False, True,
           "RPS / (K - 1) against the profile's respondents (n >= 2)", "this project"),
    Metric("wd_profile", _on_profile(lambda p, t, k: stats.cdf_distance(p, t, k, scale="normalised")), "item",
           False, True, "WD / (K - 1) against the profile's respondents (n >= 2)", "this project"),
    Metric("jsd_profile", _on_profile(lambda p, t, k: stats.jensen_shannon(p, t)), "item", False, True,
           "JSD against the profile's respondents (n >= 2)", "this project"),
    Metric("cell_wd", lambda p, t, k, items: stats.cdf_distance(p, t), "cell", False, True,
           "WD of the cell's mean distribution to its true answers", "paper Eq. 3 on probabilities"),
    Metric("cell_wd_norm", lambda p, t, k, items: stats.cdf_distance(p, t, k, scale="normalised"), "cell", False,
           True, "cell WD / (K - 1)", "paper Eq. 3 on probabilities"),
]

#: The distributional-alignment benchmark's metric, added through this entry alone (report and compare iterate
#: the registry): 0.5 * sum_k |p_k - t_k| between a cell's answers and its people's, averaged over cells.
_TV = Metric("tv", lambda p, t, k, items: 0.5 * np.abs(p - t).sum(axis=1), "cell", False, False,
             "total variation distance of the cell's resolved answers to its true answers",
             "Meister et al. 2024, distributional alignment benchmark", label="TV")

for _m in (*_POINT, *_PROBABILITY, _TV):
    register_metric(_m)
