"""Distributional metrics, floors and calibration: how close a model's answer distribution comes to people's.

Per item the model yields P (a probability over the options: its readout) and the data yields the truth (the
profile's answer) and, where the respondents are known, the profile's answer counts (``extra_info.counts``, written
by ``dvmap prepare wvs``; the release has none). Metrics, all row-wise over options padded to ``MAX_K``:

- ``expected_acc``: P[truth], the probability mass on the truth (a sampled answer's expected accuracy);
- ``respondent_acc``: sum_k P_k T_k, the expected share of the profile's respondents a sampled answer matches;
- ``rps``: ranked probability score against the truth, sum_k (CDF_P(k) - CDF_truth(k))^2 / (K - 1) (ordinal and
  proper; 0 is perfect);
- ``rps_profile``, ``wd_profile`` (sum_k |CDF_P - CDF_T| / (K - 1)) and ``jsd_profile`` (base 2) against the
  profile's distribution T, on items with n >= 2 respondents (one respondent is not a distribution);
- ``cell_wd`` (the paper's WD, now from probabilities): per (country, question) cell, the mean P of its items
  against the distribution of the cell's truths, averaged over cells; ``cell_wd_norm`` divides by K - 1;
- calibration of the argmax answer: ``ece`` (10 equal-width confidence bins) and ``brier`` (multi-class).

Floors put a number on a scale:

- sampling floor: the metric of a perfect model read out by sampling as many answers as the target holds (n
  respondents for a profile, the cell's items for a cell): the finite-sample noise alone. A probability readout
  that equals the truth scores 0 and can beat it; a sampling readout cannot, on average;
- split-half human floor: one random half of the respondents (or of the cell's items) scored against the other
  half, averaged over draws: how much two samples of the same people disagree;
- accuracy ceiling on H > 0 profiles: the majority share, the best any point answer can do against a random
  respondent of a profile that disagrees with itself (compare ``respondent_acc``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dvmap_verl import stats
from dvmap_verl.evaluation import metric_values as V
from dvmap_verl.evaluation.arrays import MAX_K, one_hot, pad_rows, respondent_targets

ECE_BINS = 10


# ---------------------------------------------------------------------------------------------------------------
# Row-wise scores
# ---------------------------------------------------------------------------------------------------------------


def rps(p: np.ndarray, t: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Ranked probability score divided by K - 1 (0 best, 1 worst): ``stats.rps(..., scale="normalised")``."""
    return stats.rps(p, t, k, scale="normalised")


def wd_norm(p: np.ndarray, t: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Wasserstein-1 over ordered options divided by K - 1: ``stats.cdf_distance(..., scale="normalised")``."""
    return stats.cdf_distance(p, t, k, scale="normalised")


def calibration(p: np.ndarray, truth: np.ndarray, bins: int = ECE_BINS) -> dict[str, Any]:
    """ECE and reliability bins of the argmax answer, and the multi-class Brier score."""
    if not len(p):
        return {"ece": float("nan"), "brier": float("nan"), "bins": []}
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == truth).astype(float)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            gap = abs(conf[m].mean() - correct[m].mean())
            ece += m.mean() * gap
            rows.append({"lo": b / bins, "hi": (b + 1) / bins, "count": int(m.sum()),
                         "confidence": float(conf[m].mean()), "accuracy": float(correct[m].mean())})
    brier = ((p - one_hot(truth, p.shape[1])) ** 2).sum(axis=1).mean()
    return {"ece": float(ece), "brier": float(brier), "bins": rows}


# ---------------------------------------------------------------------------------------------------------------
# Floors
# ---------------------------------------------------------------------------------------------------------------


def _draw_counts(rng: np.random.Generator, t: np.ndarray, n: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0, None)
    t = t / t.sum(axis=1, keepdims=True)
    return rng.multinomial(n.astype(np.int64), t).astype(float)


def _split_half(rng: np.random.Generator, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A uniformly random half (floor(n/2) respondents, without replacement) of every row, and the other half."""
    counts = counts.astype(np.int64)
    left = counts.sum(axis=1)
    want = left // 2
    half = np.zeros_like(counts)
    for j in range(counts.shape[1]):  # sequential hypergeometric draws, vectorised over rows
        rest = left - counts[:, j]
        take = rng.hypergeometric(counts[:, j], rest, want) if j < counts.shape[1] - 1 else want
        take = np.where(left > 0, take, 0)
        half[:, j] = take
        want = want - take
        left = rest
    return half.astype(float), (counts - half).astype(float)


def _metrics(p: np.ndarray, t: np.ndarray, k: np.ndarray) -> dict[str, np.ndarray]:
    return {"rps": rps(p, t, k), "wd": wd_norm(p, t, k), "jsd": stats.jensen_shannon(p, t)}


def sampling_floor(t: np.ndarray, n: np.ndarray, k: np.ndarray, draws: int = 20, seed: int = 0) -> dict[str, float]:
    """Mean over draws and rows of each metric between n draws from t and t itself."""
    if not len(t):
        return {}
    rng = np.random.default_rng(seed)
    acc = {"rps": 0.0, "wd": 0.0, "jsd": 0.0}
    for _ in range(draws):
        c = _draw_counts(rng, t, n)
        for name, v in _metrics(c / c.sum(axis=1, keepdims=True), t, k).items():
            acc[name] += float(v.mean()) / draws
    return acc


def split_half_floor(counts: np.ndarray, k: np.ndarray, draws: int = 20, seed: int = 0) -> dict[str, float]:
    """Mean over draws and rows (n >= 2) of each metric between two random halves of the same respondents."""
    ok = counts.sum(axis=1) >= 2
    if not ok.any():
        return {}
    rng = np.random.default_rng(seed)
    counts, k = counts[ok], k[ok]
    acc = {"rps": 0.0, "wd": 0.0, "jsd": 0.0}
    for _ in range(draws):
        a, b = _split_half(rng, counts)
        for name, v in _metrics(a / a.sum(axis=1, keepdims=True), b / b.sum(axis=1, keepdims=True), k).items():
            acc[name] += float(v.mean()) / draws
    return acc


# ---------------------------------------------------------------------------------------------------------------
# From a scored predictions table
# ---------------------------------------------------------------------------------------------------------------


def item_probabilities(df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, str]:
    """One row per item and its probability vector, as the records' readout reads them
    (:meth:`~dvmap_verl.evaluation.readouts.Readout.item_mass`; by default the mean of the records' ``probs`` where
    they have them, else the empirical distribution of the parsed samples), uniform where the readout yields no
    mass (counted in ``unreadable``). Returns (items, P (n_items x MAX_K), readout name)."""
    from dvmap_verl.evaluation.readouts import Readout, find_readout

    items = df.drop_duplicates("item").sort_values("item").reset_index(drop=True)
    codes = pd.Index(items["item"]).get_indexer(df["item"])
    name = records_readout(df)
    p = (find_readout(name) or Readout()).item_mass(df, codes, len(items), MAX_K)
    total = p.sum(axis=1, keepdims=True)
    k = items["k"].to_numpy().astype(int)
    items["unreadable"] = total[:, 0] <= 0
    p = np.where(total > 0, p / np.where(total > 0, total, 1), V.uniform(k))
    return items, p, name


def records_readout(df: pd.DataFrame) -> str:
    """The readout that made a run's records: the first ``readout`` a record names; else ``probabilities`` when
    records carry ``probs`` (a baseline), ``sampling`` when they do not."""
    if "readout" in df and df["readout"].notna().any():
        return str(df["readout"].dropna().iloc[0])
    return "probabilities" if "probs" in df and df["probs"].notna().any() else "sampling"


def _profile_targets(items: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Counts (n_items x MAX_K; zeros where unknown) and n per item."""
    if "counts" not in items:
        return np.zeros((len(items), MAX_K)), np.zeros(len(items))
    counts = pad_rows(items["counts"].tolist())
    return counts, counts.sum(axis=1)


def _cell_targets(items: pd.DataFrame, cell: tuple[str, ...] = ("country", "q_id")):
    codes = items.groupby(list(cell), sort=False, observed=True, dropna=False).ngroup().to_numpy()
    n_cells = int(codes.max()) + 1 if len(codes) else 0
    real = np.zeros((n_cells, MAX_K))
    np.add.at(real, (codes, items["truth"].to_numpy().astype(int)), 1.0)
    k = np.zeros(n_cells, dtype=int)
    np.maximum.at(k, codes, items["k"].to_numpy().astype(int))
    return codes, real, k


def score_distributions(items: pd.DataFrame, p: np.ndarray) -> dict[str, Any]:
    """Every probability metric of the registry (metric_registry.py) on one set of item distributions (no floors),
    with ``items``, ``profile_items`` (items with n >= 2 respondents) and ``cells``."""
    out: dict[str, Any] = {"items": int(len(items))}
    if not len(items):
        return out
    out.update(V.probability_summary(items, p))
    _, n, exact = respondent_targets(items)
    out["profile_items"] = int((exact | (n >= 2)).sum())
    out["cells"] = len(V.probability_cells(items, p))
    return out


def floors(items: pd.DataFrame, draws: int = 20, seed: int = 0) -> dict[str, Any]:
    """Sampling and split-half floors of the profile and cell metrics, and the accuracy ceiling on H > 0 items."""
    k = items["k"].to_numpy().astype(int)
    counts, n = _profile_targets(items)
    shared = n >= 2
    out: dict[str, Any] = {"draws": draws}
    samp = sampling_floor(counts[shared] / np.maximum(n[shared, None], 1), n[shared], k[shared], draws, seed)
    half = split_half_floor(counts[shared], k[shared], draws, seed)
    out["sampling"] = {f"{m}_profile": v for m, v in samp.items()}
    out["human_split_half"] = {f"{m}_profile": v for m, v in half.items()}
    codes, real, kc = _cell_targets(items)
    cell_n = real.sum(axis=1)
    cs = sampling_floor(real / np.maximum(cell_n[:, None], 1), cell_n, kc, draws, seed + 1)
    ch = split_half_floor(real, kc, draws, seed + 1)
    if cs:
        out["sampling"]["cell_wd_norm"] = cs["wd"]
    if ch:
        out["human_split_half"]["cell_wd_norm"] = ch["wd"]
    disagree = (counts > 0).sum(axis=1) >= 2
    out["disagreement_items"] = int(disagree.sum())
    if disagree.any():
        out["acc_ceiling_disagreement"] = float((counts[disagree].max(axis=1) / n[disagree]).mean())
    return out


def disagreement_scores(items: pd.DataFrame, p: np.ndarray) -> dict[str, float]:
    """On H > 0 items: the model's respondent accuracy and its argmax's, beside the ceiling (majority share)."""
    target, _, _ = respondent_targets(items)  # an imported item's exact target, not its rounded counts
    d = (target > 0).sum(axis=1) >= 2
    if not d.any():
        return {}
    t = target[d]
    arg = p[d].argmax(axis=1)
    return {"items": int(d.sum()), "respondent_acc": float((p[d] * t).sum(axis=1).mean()),
            "argmax_respondent_acc": float(t[np.arange(len(t)), arg].mean()),
            "ceiling": float(t.max(axis=1).mean())}


def distributional_report(model: pd.DataFrame | None, baselines: dict[str, pd.DataFrame], *, draws: int = 20,
                          seed: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """The report's "distributional" section, and what its plots need (item distributions, calibration bins)."""
    out: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    reference = None
    if model is not None and not model.empty:
        items, p, readout = item_probabilities(model)
        reference = items
        out["readout"] = readout
        out["model"] = score_distributions(items, p)
        out["model"]["unreadable_items"] = int(items["unreadable"].sum())
        out["calibration"] = calibration(p, items["truth"].to_numpy().astype(int))
        out["disagreement"] = disagreement_scores(items, p)
        if "split" in items:
            out["by_split"] = {str(s): score_distributions(items[m.to_numpy()], p[m.to_numpy()])
                               for s, m in ((s, items["split"] == s) for s in items["split"].unique())}
        extras.update(items=items, p=p)
    out["baselines"] = {}
    for name, frame in baselines.items():
        b_items, b_p, _ = item_probabilities(frame)
        out["baselines"][name] = score_distributions(b_items, b_p)
        if reference is None:
            reference = b_items
    if reference is not None:
        out["floors"] = floors(reference, draws, seed)
    return out, extras
