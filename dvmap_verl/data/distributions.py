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
weighted_  list<float64>       with ``--weights``: the sum of the survey weights of each option's respondents
counts                         (beside the raw counts; entropy and consensus stay on the raw counts: weights do
                               not change whether respondents agree)
weighted_n float64             with ``--weights``: the sum of weighted_counts
========== =================== ===============================================================================

Scope: the training countries on the training and cross-value questions, the cross-country countries on the
training questions, before any per-country cap (the paper's countries and questions unless the design and the
question bank say otherwise). The authors' release has no respondent data: there the only real
distribution is a (country, question) cell's answers over the release's rows (what its ``frequency`` column holds),
computed by :func:`cell_distributions`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dvmap_verl.data.bank import QuestionBank, default_bank
from dvmap_verl.data.countries import PAPER_DESIGN, CountryDesign
from dvmap_verl.data.dataset import arrow_strings, profile_keys
from dvmap_verl.data.schema import ATTRIBUTE_NAMES
from dvmap_verl.errors import InputError

LEVELS = ("profile", "coarse", "country_question")
MAX_K = 8
#: Attributes of the ``coarse`` level, between a profile and its whole country (for hierarchical smoothing).
COARSE_ATTRIBUTES = ("Gender", "Life Stage")


def row_sums(m: np.ndarray) -> np.ndarray:
    """``m.sum(axis=1)`` (int64 for integer ``m``): for a few integer columns, column by column (a reduction along
    a short row axis is numpy's slow case: 0.15 s on the 7 million x 8 counts of a wide scope, this 0.10 s)."""
    if m.dtype.kind not in "iub" or m.ndim != 2 or not m.shape[1]:
        return m.sum(axis=1)
    out = m[:, 0].astype(np.int64)
    for j in range(1, m.shape[1]):
        out += m[:, j]
    return out


def row_max(m: np.ndarray) -> np.ndarray:
    """``m.max(axis=1, initial=0)`` for non-negative integer ``m``, column by column (see :func:`row_sums`)."""
    if m.dtype.kind not in "iu" or m.ndim != 2 or not m.shape[1]:
        return m.max(axis=1, initial=0)
    out = np.maximum(m[:, 0], 0)
    for j in range(1, m.shape[1]):
        np.maximum(out, m[:, j], out=out)
    return out


def row_nonzero(m: np.ndarray) -> np.ndarray:
    """``np.count_nonzero(m, axis=1)``, column by column (see :func:`row_sums`)."""
    if m.ndim != 2 or not m.shape[1]:
        return np.count_nonzero(m, axis=1)
    out = (m[:, 0] != 0).astype(np.int64)
    for j in range(1, m.shape[1]):
        out += m[:, j] != 0
    return out


def entropy(counts: np.ndarray) -> np.ndarray:
    """Row-wise Shannon entropy (nats) of count vectors (NaN for an empty row).

    ``H = log n - sum(c log c) / n``: for whole counts ``c log c`` is looked up in a table (one gather per cell
    instead of a division and a masked log over a million rows). Only rows with two or more options answered are
    computed (a row with one is exactly 0): at the profile level most rows hold one respondent."""
    counts = np.asarray(counts)
    total = row_sums(counts)
    h = np.where(total > 0, 0.0, np.nan)
    mixed = np.flatnonzero(row_max(counts) != total)  # one option: exactly 0, not a rounding residue
    if not len(mixed):
        return h
    counts, total = counts[mixed], total[mixed]
    whole = counts.dtype.kind in "iu" and (counts.min() >= 0 and counts.max() < 1 << 22)
    if whole:
        c = np.arange(int(counts.max()) + 1, dtype=np.float64)
        xlogx = c * np.log(np.maximum(c, 1.0))  # 0 log 0 = 0
        s = xlogx[counts].sum(axis=1)
    else:
        c = counts.astype(np.float64)
        s = np.where(c > 0, c * np.log(np.where(c > 0, c, 1.0)), 0.0).sum(axis=1)
    safe = total.astype(np.float64)
    h[mixed] = np.log(safe) - s / safe
    return h


def _group_counts(group: np.ndarray, answers: np.ndarray, weights: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Counts[(group, question), option] over every answered (respondent, question); returns (present keys, counts,
    weighted counts: the sums of the respondents' weights, or None without weights)."""
    n_groups = int(group.max()) + 1 if len(group) else 0
    nq = answers.shape[1]
    answered = answers >= 0
    key = (group.astype(np.int64)[:, None] * nq + np.arange(nq))[answered]
    # Count into the (group, question) pairs that occur, not into every possible one: with 100 questions and every
    # country, most of the groups x questions x options cells would be zeros.
    seen = np.bincount(key, minlength=n_groups * nq)
    present = np.flatnonzero(seen)
    rank = np.cumsum(seen > 0)
    del seen
    cell = rank[key]  # in place from here: each full-size temporary of a wide scope is ~80 MB
    del rank, key
    cell -= 1
    cell *= MAX_K
    cell += answers[answered]
    counts = np.bincount(cell, minlength=len(present) * MAX_K).reshape(len(present), MAX_K)
    if weights is None:
        return present, counts, None
    w = np.broadcast_to(weights[:, None], answers.shape)[answered]
    return present, counts, np.bincount(cell, weights=w, minlength=len(present) * MAX_K).reshape(len(present), MAX_K)


COLUMNS = ["level", "profile_id", "country", "gender", "life_stage", "q_id", "options", "counts", "n", "entropy",
           "consensus"]


class Coded:
    """A string column as integer codes into its distinct values (-1: null): a million rows stay cheap."""

    def __init__(self, codes: np.ndarray, values):
        self.codes = np.asarray(codes, dtype=np.int32)  # int32: half the memory over millions of rows
        self.values = np.asarray(list(values), dtype=object)

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, rows) -> np.ndarray:
        """The strings (None for null) at ``rows``."""
        codes = self.codes[rows]
        out = self.values[np.maximum(codes, 0)] if len(self.values) else np.full(len(codes), None, dtype=object)
        return np.where(codes >= 0, out, None)

    def __eq__(self, value) -> np.ndarray:  # type: ignore[override]
        hit = np.flatnonzero(self.values == value)
        return self.codes == (hit[0] if len(hit) else -2)

    def arrow(self, encoded: bool = False) -> pa.Array:
        """As Arrow strings (``encoded``: dictionary-encoded, no per-row strings made)."""
        codes = pa.array(self.codes, mask=self.codes < 0)
        out = pa.DictionaryArray.from_arrays(codes, pa.array(self.values, pa.string()))
        return out if encoded else out.dictionary_decode()

    @staticmethod
    def concat(parts: list["Coded"]) -> "Coded":
        first = parts[0].values if parts else None
        if parts and all(len(p.values) == len(first) and (p.values == first).all() for p in parts) and \
                pd.Index(first).is_unique:
            return Coded(np.concatenate([p.codes for p in parts]), first)  # one vocabulary: the codes hold
        values = pd.unique(np.concatenate([p.values for p in parts])) if parts else np.empty(0, dtype=object)
        index = pd.Index(values)
        codes = [np.where(p.codes >= 0, index.get_indexer(p.values)[np.maximum(p.codes, 0)] if len(p.values)
                          else -1, -1) for p in parts]
        return Coded(np.concatenate(codes) if codes else np.empty(0, np.int64), values)


class _Lookup:
    """Positions of integer keys among distinct ``keys`` (``get_indexer``, -1 where absent): by binary search when
    ``keys`` are sorted (the profile level, counted in key order: no hash table over millions of rows), else by a
    pandas index."""

    def __init__(self, keys: np.ndarray):
        self.keys = keys
        self.sorted = bool(len(keys) < 2 or (np.diff(keys) > 0).all())
        self.index = None if self.sorted else pd.Index(keys)

    def get_indexer(self, wanted: np.ndarray) -> np.ndarray:
        if not self.sorted:
            return self.index.get_indexer(wanted)
        at = np.minimum(np.searchsorted(self.keys, wanted), max(len(self.keys) - 1, 0))
        hit = (self.keys[at] == wanted) if len(self.keys) else np.zeros(len(wanted), bool)
        return np.where(hit, at, -1)


class Distributions:
    """The documented table held column-wise (string columns as :class:`Coded`, counts as an n x MAX_K matrix): a
    full WVS file has over a million (profile, question) rows, too many for per-row Python objects.
    ``respondent`` is one respondent of each row's group (for its attributes)."""

    def __init__(self, level: Coded, profile_id: Coded, country: Coded, gender: Coded, life_stage: Coded,
                 q_id: Coded, counts: np.ndarray, respondent: np.ndarray, bank: QuestionBank | None = None,
                 weighted: np.ndarray | None = None):
        self.level, self.profile_id, self.country = level, profile_id, country
        self.gender, self.life_stage, self.q_id = gender, life_stage, q_id
        self.counts, self.respondent = counts, respondent
        self.bank = bank or default_bank()
        self.weighted = weighted  # n x MAX_K sums of survey weights, or None
        k_of = np.array([self.bank.by_id[q].k for q in q_id.values], dtype=np.int64)
        self.k = k_of[q_id.codes] if len(q_id) else np.zeros(0, np.int64)
        self.n = row_sums(counts)
        self.consensus = row_nonzero(counts) == 1
        self._index: dict[str, tuple] = {}

    def __len__(self) -> int:
        return len(self.counts)

    def entropy(self) -> np.ndarray:
        return entropy(self.counts)

    def table(self, encoded: bool = False) -> pa.Table:
        """The documented Arrow table, built from codes and flat arrays (no per-row Python objects).

        ``encoded``: string columns (and the options' strings) stay dictionary-encoded, as written to parquet (a
        reader without the stored Arrow schema gets plain strings; see :func:`dataset.write_table`)."""
        k = self.k
        offsets = pa.array(np.concatenate([[0], np.cumsum(k)]).astype(np.int32))
        mask = np.arange(MAX_K)[None, :] < k[:, None]
        counts = pa.ListArray.from_arrays(offsets, pa.array(np.asarray(self.counts[mask], dtype=np.int64)))
        qids = list(self.q_id.values)
        flat_options = pa.array([o for q in qids for o in self.bank.by_id[q].options], pa.string())
        q_start = np.concatenate([[0], np.cumsum([self.bank.by_id[q].k for q in qids])])[:-1]
        # Each value's option: its question's first option in flat_options, plus its place within the row.
        shift = (q_start[self.q_id.codes] - offsets.to_numpy()[:-1]).astype(np.int32) if len(qids) else \
            np.zeros(len(k), np.int32)
        option_at = pa.array(np.repeat(shift, k) + np.arange(int(k.sum()), dtype=np.int32))
        options = pa.ListArray.from_arrays(offsets, pa.DictionaryArray.from_arrays(option_at, flat_options)
                                           if encoded else flat_options.take(option_at))
        text = {name: getattr(self, attr).arrow(encoded) for name, attr in (
            ("level", "level"), ("profile_id", "profile_id"), ("country", "country"), ("gender", "gender"),
            ("life_stage", "life_stage"), ("q_id", "q_id"))}
        cols = {**text, "options": options, "counts": counts, "n": pa.array(self.n.astype(np.int64)),
                "entropy": pa.array(self.entropy()), "consensus": pa.array(self.consensus)}
        if self.weighted is not None:
            cols["weighted_counts"] = pa.ListArray.from_arrays(offsets, pa.array(self.weighted[mask]))
            cols["weighted_n"] = pa.array(self.weighted.sum(axis=1))
        return pa.table(cols)

    def frame(self) -> pd.DataFrame:
        """The documented table as pandas (lists per row): for small inputs and tests."""
        return self.table().to_pandas()

    def rows(self, level: str, keys: list[pd.Series]) -> np.ndarray:
        """Row positions at ``level`` of the groups named by ``keys`` (per level: profile key + question; country,
        gender, life stage + question), -1 where there is none; matched on integer codes."""
        columns = ([self.profile_id] if level == "profile" else [self.country, self.gender, self.life_stage]) + [
            self.q_id]
        if level not in self._index:
            at = np.flatnonzero(self.level == level)
            code = self._combine([c.codes[at] for c in columns], columns)
            self._index[level] = (_Lookup(code), at, [pa.array(c.values, pa.string()) for c in columns])
        index, at, uniques = self._index[level]
        # Each key's code among its column's values, hashed in Arrow (no Python string per row: a wide scope looks
        # up a million split rows).
        codes = [pc.index_in(arrow_strings(k), value_set=u).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
                 for k, u in zip(keys, uniques)]
        found = index.get_indexer(self._combine(codes, columns))
        found[np.any(np.stack(codes) < 0, axis=0)] = -1  # a key never seen at this level
        return np.where(found >= 0, at[np.maximum(found, 0)], -1)

    @staticmethod
    def _combine(codes: list[np.ndarray], columns: list[Coded]) -> np.ndarray:
        out = np.zeros(len(codes[0]), dtype=np.int64)
        for c, col in zip(codes, columns):
            out = out * (len(col.values) + 2) + (np.asarray(c, dtype=np.int64) + 1)
        return out

    def counts_column(self, rows: np.ndarray, weighted: bool = False) -> pd.arrays.ArrowExtensionArray:
        """Each row's counts in option order as an Arrow list column (no per-row Python lists: a wide scope has a
        million split rows); ``weighted``: its weighted counts (float64)."""
        counts = (self.weighted if weighted else self.counts)[rows]
        k = self.k[rows]
        offsets = pa.array(np.concatenate([[0], np.cumsum(k)]).astype(np.int32))
        values = counts[np.arange(MAX_K)[None, :] < k[:, None]]
        return pd.arrays.ArrowExtensionArray(pa.ListArray.from_arrays(offsets, pa.array(values)))

    def counts_lists(self, rows: np.ndarray, weighted: bool = False) -> list[list]:
        """Each row's counts in option order (``weighted``: its weighted counts)."""
        counts = self.weighted if weighted else self.counts
        return [c[:kk].tolist() for c, kk in zip(counts[rows], self.k[rows])]


def _coded(column: pd.Series) -> Coded:
    """A respondent column as codes (categories decoded once, not per row)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return Coded(column.cat.codes.to_numpy(), column.cat.categories.astype(str))
    codes, uniques = pd.factorize(column.astype(str))
    return Coded(codes, uniques)


def compute_distributions(respondents: pd.DataFrame, questions: list[str], design: CountryDesign | None = None,
                          bank: QuestionBank | None = None, weights: np.ndarray | None = None) -> Distributions:
    """Every in-scope (group, question) at the three levels. ``design``/``bank``: the countries' and questions'
    roles (default: the paper's); ``weights``: each respondent's survey weight, for the weighted counts."""
    design, bank = design or PAPER_DESIGN, bank or default_bank()
    if not len(respondents) or not questions:
        none = Coded(np.empty(0, np.int64), [])
        return Distributions(none, none, none, none, none, Coded(np.empty(0, np.int64), []),
                             np.zeros((0, MAX_K), np.int64), np.zeros(0, np.int64), bank,
                             None if weights is None else np.zeros((0, MAX_K)))
    answers = respondents[questions].to_numpy(dtype=np.int16)
    country, gender, stage = (_coded(respondents[c]) for c in ("Country", "Gender", "Life Stage"))
    # Hash each distinct profile once (not each respondent): the same keys as the splits' profile_id.
    profile = respondents.groupby(list(ATTRIBUTE_NAMES), sort=False, observed=True).ngroup().to_numpy()
    first = np.full(int(profile.max()) + 1, -1, dtype=np.int64)
    first[profile[::-1]] = np.arange(len(profile))[::-1]
    profile_key = profile_keys(respondents.iloc[first][list(ATTRIBUTE_NAMES)])
    groupings = {
        "profile": profile,
        "coarse": (country.codes * (len(gender.values) + 1) + gender.codes) * (len(stage.values) + 1) + stage.codes,
        "country_question": country.codes,
    }
    train_c = np.isin(country.values, design.train)
    cross_c = np.isin(country.values, design.unseen)
    q_train = np.isin(questions, bank.train)
    q_value = np.isin(questions, bank.cross_value)
    # In scope: (country, question) cells of the design; answers outside it are left out before counting (the
    # same rows as counting every pair and dropping the rest, without the full-size count matrix).
    scope = (train_c[:, None] & (q_train | q_value)[None, :]) | (cross_c[:, None] & q_train[None, :])
    answers = np.where(scope[country.codes], answers, np.int16(-1))
    parts = []
    nq = len(questions)
    for i, (level, group) in enumerate(groupings.items()):
        group = pd.factorize(group)[0]
        present, counts, weighted = _group_counts(group, answers, weights)
        g, q = np.divmod(present, nq)
        first_of = np.full(int(group.max()) + 1, -1, dtype=np.int64)
        first_of[group[::-1]] = np.arange(len(group))[::-1]  # a respondent of each group, for its labels
        rep = first_of[g]
        null = np.full(len(rep), -1, dtype=np.int64)
        parts.append([
            Coded(np.full(len(rep), i), LEVELS),
            Coded(profile[rep], profile_key) if level == "profile" else Coded(null, profile_key),
            Coded(country.codes[rep], country.values),
            Coded(gender.codes[rep] if level != "country_question" else null, gender.values),
            Coded(stage.codes[rep] if level != "country_question" else null, stage.values),
            Coded(q, questions), _compact(counts), rep, weighted])
        del counts
    # Column by column, each level's part dropped once joined: a wide scope holds millions of rows per column.
    cols = [_join([p.pop(0) for p in parts], Coded.concat if c < 6 else np.concatenate) for c in range(8)]
    weighted = None if weights is None else np.concatenate([p.pop(0) for p in parts])
    return Distributions(*cols[:6], cols[6], cols[7], bank, weighted)


def _join(pieces: list, how):
    out = how(pieces)
    pieces.clear()
    return out


def _compact(counts: np.ndarray) -> np.ndarray:
    """Answer counts as int32 (half the memory of bincount's int64; a count is at most the respondents)."""
    return counts.astype(np.int32) if len(counts) and counts.max() < 2**31 else counts


def answer_distributions(respondents: pd.DataFrame, questions: list[str]) -> pd.DataFrame:
    """:func:`compute_distributions` as the documented table in pandas (options/counts as lists per row)."""
    return compute_distributions(respondents, questions).frame()


def disagreement_rows(dist: Distributions, respondents: pd.DataFrame, cap: int | None = None,
                      seed: int = 0) -> pd.DataFrame:
    """The H > 0 (profile, question) pairs as release-format rows: the majority answer as ``answer`` (ties go to
    the lower option; with survey weights, the weighted majority), the counts kept in ``counts``. There no point
    answer is right for every respondent. ``cap``: at most this many profiles per country, drawn as
    :func:`dvmap_verl.data.splits.cap_profiles` draws them (the same rows), before the rows are built."""
    rows = np.flatnonzero((dist.level == "profile") & ~dist.consensus)
    if cap is not None and len(rows):
        rows = rows[_capped(dist.country.codes[rows], dist.country.values, dist.profile_id.codes[rows],
                            dist.profile_id.values, cap, seed)]
    attrs = respondents.iloc[dist.respondent[rows]][list(ATTRIBUTE_NAMES)].astype(str).reset_index(drop=True)
    out = pd.DataFrame({
        "profile_id": pd.factorize(dist.profile_id[rows])[0].astype(np.int32),
        "Q_id": dist.q_id[rows],
        "answer_index": (dist.counts if dist.weighted is None else dist.weighted)[rows].argmax(axis=1).astype(np.int64),
        "n_respondents": dist.n[rows].astype(np.int32),
    })
    out = pd.concat([out, attrs], axis=1)
    out["profile_key"] = dist.profile_id[rows]
    return out


def _capped(country: np.ndarray, countries: np.ndarray, key: np.ndarray, keys: np.ndarray, cap: int,
            seed: int) -> np.ndarray:
    """Mask of the rows whose profile is among ``cap`` per country: per country in sorted (string) order, a seeded
    permutation of its distinct profile keys in string order, cut at ``cap`` (one generator for all countries).
    ``country``/``key`` are codes into ``countries``/``keys``: the strings are sorted once, not compared per row."""
    rng = np.random.default_rng(seed)
    key_rank = np.empty(len(keys), np.int64)
    key_rank[np.argsort(keys.astype(str), kind="stable")] = np.arange(len(keys))
    pairs = np.unique(np.asarray(country, np.int64) * len(keys) + key)  # distinct (country, key)
    pair_country, pair_key = np.divmod(pairs, len(keys))
    chosen = np.zeros(len(keys), dtype=bool)
    for c in sorted(np.unique(pair_country), key=lambda c: str(countries[c])):
        own = pair_key[pair_country == c]
        own = own[np.argsort(key_rank[own], kind="stable")]  # the country's keys in string order
        chosen[rng.permutation(own)[:cap]] = True
    return chosen[key]


def smoothed_targets(counts: list, consensus: np.ndarray, coarse: list, smoothing: float) -> list[list[float]]:
    """Per row: counts / n; consensus rows are mixed ``(1 - smoothing) * point + smoothing * coarse cell``."""
    if not 0.0 <= smoothing <= 1.0:
        raise InputError(f"target smoothing must be in [0, 1], got {smoothing}")
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


def summary(dist: Distributions) -> dict[str, Any]:
    prof = dist.level == "profile"
    shared = prof & (dist.n >= 2)
    return {"rows": {lvl: int((dist.level == lvl).sum()) for lvl in LEVELS},
            "profile_pairs_shared": int(shared.sum()),
            "profile_pairs_disagreeing": int((prof & ~dist.consensus).sum()),
            "disagreeing_share_of_shared": float((~dist.consensus[shared]).mean()) if shared.any() else 0.0}
