"""What people actually answered: answer counts per (profile, question) and at coarser levels.

DVMap keeps a (profile, question) pair only when its respondents agree (H = 0) and then forgets how many they were.
This module keeps the counts of *every* pair in the benchmark's scope, disagreeing ones included, as the targets of
distributional evaluation and of distribution-anchored training. ``distributions.parquet`` (one row per group and
question):

========== =================== ===============================================================================
column     type                meaning
========== =================== ===============================================================================
level      string              ``profile`` (11 attributes), ``coarse`` (country, gender, life stage) or
                               ``country_question``
profile_id string / null       the profile's stable key (``extra_info.profile_id`` of the splits); null above
                               the profile level
country    string              the corpus's country name
gender     string / null       set at the ``profile`` and ``coarse`` levels
life_stage string / null       set at the ``profile`` and ``coarse`` levels
q_id       string              question id
options    list<string>        the options, in scale order
counts     list<int64>         respondents per option, in option order
n          int64               respondents who answered (sum of counts)
entropy    float64             Shannon entropy of counts / n, in nats
consensus  bool                H = 0: every respondent gave the same answer (DVMap keeps only these)
========== =================== ===============================================================================

Scope: the training countries on the training and cross-value questions, the cross-country countries on the
training questions, before any per-country cap. The authors' release has no respondent data: there the only real
distribution is a (country, question) cell's answers over the release's rows (what its ``frequency`` column holds),
computed by :func:`cell_distributions`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from dvmap_verl.data import schema
from dvmap_verl.data.dataset import profile_keys
from dvmap_verl.data.schema import ATTRIBUTE_NAMES, QUESTION_BY_ID

LEVELS = ("profile", "coarse", "country_question")
MAX_K = 8
#: Attributes of the ``coarse`` level, between a profile and its whole country (for hierarchical smoothing).
COARSE_ATTRIBUTES = ("Gender", "Life Stage")


def in_scope(country: str, qid: str) -> bool:
    if country in schema.TRAIN_COUNTRIES:
        return qid in schema.TRAIN_QUESTIONS or qid in schema.CROSS_VALUE_QUESTIONS
    return country in schema.CROSS_COUNTRIES and qid in schema.TRAIN_QUESTIONS


def entropy(counts: np.ndarray) -> np.ndarray:
    """Row-wise Shannon entropy (nats) of count vectors."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = counts / total
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return np.where(total[:, 0] > 0, h, np.nan)


def _group_counts(group: np.ndarray, answers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts[(group, question), option] over every answered (respondent, question); returns (present keys, counts)."""
    n_groups = int(group.max()) + 1 if len(group) else 0
    nq = answers.shape[1]
    answered = answers >= 0
    key = (group.astype(np.int64)[:, None] * nq + np.arange(nq))[answered]
    flat = np.bincount(key * MAX_K + answers[answered].astype(np.int64), minlength=n_groups * nq * MAX_K)
    counts = flat.reshape(n_groups * nq, MAX_K)
    present = np.flatnonzero(counts.sum(axis=1))
    return present, counts[present]


def answer_distributions(respondents: pd.DataFrame, questions: list[str]) -> pd.DataFrame:
    """Every in-scope (group, question) at the three levels, as the documented table (options/counts as lists)."""
    frames = []
    if not len(respondents) or not questions:
        return pd.DataFrame(columns=["level", "profile_id", "country", "gender", "life_stage", "q_id", "options",
                                     "counts", "n", "entropy", "consensus"])
    answers = respondents[questions].to_numpy(dtype=np.int16)
    country = respondents["Country"].astype(str).to_numpy(dtype=object)
    gender = respondents["Gender"].astype(str).to_numpy(dtype=object)
    stage = respondents["Life Stage"].astype(str).to_numpy(dtype=object)
    keys = profile_keys(respondents[list(ATTRIBUTE_NAMES)])
    groupings = {
        "profile": pd.factorize(keys)[0],
        "coarse": pd.factorize(pd.Series(country) + "\x1f" + gender + "\x1f" + stage)[0],
        "country_question": pd.factorize(country)[0],
    }
    nq = len(questions)
    for level, group in groupings.items():
        present, counts = _group_counts(group, answers)
        g, q = present // nq, present % nq
        first = np.full(int(group.max()) + 1, -1, dtype=np.int64)
        first[group[::-1]] = np.arange(len(group))[::-1]  # a respondent of each group, for its labels
        rep = first[g]
        qids = np.asarray(questions, dtype=object)[q]
        frame = pd.DataFrame({
            "level": level,
            "profile_id": keys[rep] if level == "profile" else None,
            "country": country[rep],
            "gender": gender[rep] if level != "country_question" else None,
            "life_stage": stage[rep] if level != "country_question" else None,
            "q_id": qids,
        })
        k = np.array([len(QUESTION_BY_ID[x].options) for x in qids], dtype=np.int64)
        frame["_k"] = k
        frame["_counts"] = list(counts)
        frames.append(frame[[in_scope(c, x) for c, x in zip(frame["country"], frame["q_id"])]])
    out = pd.concat(frames, ignore_index=True)
    counts = np.stack(out.pop("_counts").to_list()) if len(out) else np.zeros((0, MAX_K), np.int64)
    k = out.pop("_k").to_numpy()
    out["options"] = [list(QUESTION_BY_ID[x].options) for x in out["q_id"]]
    out["counts"] = [c[:kk].tolist() for c, kk in zip(counts, k)]
    out["n"] = counts.sum(axis=1).astype(np.int64)
    out["entropy"] = entropy(counts)
    out["consensus"] = (counts > 0).sum(axis=1) == 1
    return out


def distributions_table(dist: pd.DataFrame) -> pa.Table:
    schema_ = pa.schema([("level", pa.string()), ("profile_id", pa.string()), ("country", pa.string()),
                         ("gender", pa.string()), ("life_stage", pa.string()), ("q_id", pa.string()),
                         ("options", pa.list_(pa.string())), ("counts", pa.list_(pa.int64())), ("n", pa.int64()),
                         ("entropy", pa.float64()), ("consensus", pa.bool_())])
    return pa.Table.from_pandas(dist[schema_.names], schema=schema_, preserve_index=False)


def profile_counts(dist: pd.DataFrame, profile_id: pd.Series, q_id: pd.Series) -> list[list[int] | None]:
    """Each (profile, question)'s counts from a distributions table (None where it has none)."""
    prof = dist[dist["level"] == "profile"]
    lookup = dict(zip(zip(prof["profile_id"], prof["q_id"]), prof["counts"]))
    return [lookup.get((p, q)) for p, q in zip(profile_id.astype(str), q_id.astype(str))]


def disagreement_rows(dist: pd.DataFrame, respondents: pd.DataFrame) -> pd.DataFrame:
    """The H > 0 (profile, question) pairs as release-format rows: the majority answer as ``answer`` (ties go to
    the lower option), the counts kept in ``counts``. There no point answer is right for every respondent."""
    prof = dist[(dist["level"] == "profile") & ~dist["consensus"]].reset_index(drop=True)
    if prof.empty:
        return pd.DataFrame(columns=["profile_id", "Q_id", "answer_index", "n_respondents", "counts",
                                     *ATTRIBUTE_NAMES, "profile_key"])
    attrs = respondents[list(ATTRIBUTE_NAMES)].astype(str).copy()
    attrs["profile_key"] = profile_keys(attrs)
    attrs = attrs.drop_duplicates("profile_key").set_index("profile_key")
    ids = pd.factorize(prof["profile_id"])[0]
    rows = pd.DataFrame({
        "profile_id": ids.astype(np.int32),
        "Q_id": prof["q_id"].to_numpy(),
        "answer_index": [int(np.argmax(c)) for c in prof["counts"]],
        "n_respondents": prof["n"].to_numpy(dtype=np.int32),
        "counts": prof["counts"].to_list(),
    })
    rows = pd.concat([rows, attrs.loc[prof["profile_id"].to_numpy()].reset_index(drop=True)], axis=1)
    rows["profile_key"] = prof["profile_id"].to_numpy()
    return rows


def smoothed_targets(counts: list, consensus: np.ndarray, coarse: list, smoothing: float) -> list[list[float]]:
    """Per row: counts / n; consensus rows are mixed ``(1 - smoothing) * point + smoothing * coarse cell``."""
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"target smoothing must be in [0, 1], got {smoothing}")
    out = []
    for c, cons, cc in zip(counts, consensus, coarse):
        t = np.asarray(c, dtype=np.float64)
        t = t / t.sum()
        if cons and smoothing > 0 and cc is not None:
            base = np.asarray(cc, dtype=np.float64)
            t = (1 - smoothing) * t + smoothing * base / base.sum()
        out.append(t.tolist())
    return out


def cell_distributions(df: pd.DataFrame, cell: tuple[str, ...] = ("Country", "Q_id")) -> list[list[float]]:
    """Release rows: each row's (country, question) cell as a distribution over its options (the share of the
    cell's rows giving each answer, i.e. the release's ``frequency`` of every option, not only the row's own)."""
    opts = df["Options"].astype(str).str.split(", ")
    idx = [o.index(a) if a in o else -1 for o, a in zip(opts, df["answer"].astype(str))]
    keys = df[list(cell)].astype(str).agg("\x1f".join, axis=1)
    codes, _ = pd.factorize(keys)
    k = np.array([len(o) for o in opts])
    n_cells = int(codes.max()) + 1 if len(codes) else 0
    counts = np.zeros((n_cells, MAX_K))
    ok = np.asarray(idx) >= 0
    np.add.at(counts, (codes[ok], np.asarray(idx)[ok]), 1.0)
    dist = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    return [dist[c, :kk].tolist() for c, kk in zip(codes, k)]


def summary(dist: pd.DataFrame) -> dict[str, Any]:
    prof = dist[dist["level"] == "profile"]
    shared = prof[prof["n"] >= 2]
    return {"rows": {lvl: int((dist["level"] == lvl).sum()) for lvl in LEVELS},
            "profile_pairs_shared": int(len(shared)),
            "profile_pairs_disagreeing": int((~prof["consensus"]).sum()),
            "disagreeing_share_of_shared": float((~shared["consensus"]).mean()) if len(shared) else 0.0}
