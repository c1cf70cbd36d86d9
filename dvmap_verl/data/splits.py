"""Corpus and triple-generalization benchmark splits (paper §4.3), profile-disjoint and seeded.

Defaults reproduce the paper's sizes on the full WVS file: 400 profiles per training country (x ~15.6 questions
= 62,400 rows: 90% corpus = 56,160 vs the paper's 56,152; 10% cross-demographic = 6,240, the paper's number),
64 profiles per unseen country (~7,990 vs 7,973) and 105 per training country on the 7 unseen questions
(~7,350 vs 7,340). The paper's exact sample is not public; these caps are our reading of its sizes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from dvmap_verl.data import schema
from dvmap_verl.data.archetypes import Archetypes
from dvmap_verl.data.bank import QuestionBank, default_bank
from dvmap_verl.data.dataset import profile_keys
from dvmap_verl.data.schema import ATTRIBUTE_NAMES
from dvmap_verl.errors import InputError


@dataclass
class SplitConfig:
    max_profiles_per_country: int | None = 400
    cross_country_max_profiles_per_country: int | None = 64
    cross_value_max_profiles_per_country: int | None = 105
    # The H > 0 evaluation split: disagreeing profiles per country (seeded), so a full file gives a split of the
    # benchmark splits' size (~1,000 rows per country), not every disagreeing pair of the survey.
    disagreement_max_profiles_per_country: int | None = 100
    val_frac: float = 0.115  # the release's dev split is 12.8% of its corpus = 11.5% of all training-country profiles
    cross_demographic_frac: float = 0.10
    seed: int = 0

    def __post_init__(self):
        for name in ("val_frac", "cross_demographic_frac"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise InputError(f"{name} must be in [0, 1), got {v}")
        if self.val_frac + self.cross_demographic_frac >= 1.0:
            raise InputError("val_frac + cross_demographic_frac must leave profiles for training")
        for name in ("max_profiles_per_country", "cross_country_max_profiles_per_country",
                     "cross_value_max_profiles_per_country", "disagreement_max_profiles_per_country"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                setattr(self, name, None)  # 0 or negative: no cap

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sample_profiles(rows: pd.DataFrame, cap: int | None, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per country (code, ascending), a seeded random order of its distinct profile ids, cut at ``cap``."""
    country = rows["Country"].to_numpy().astype(np.int64)
    ids = rows["profile_id"].to_numpy().astype(np.int64)
    width = int(ids.max()) + 1 if len(ids) else 1
    pairs = np.unique(country * width + ids)  # sorted: by country, then profile id (np.unique per country)
    by_country, profile = np.divmod(pairs, width)
    out = {}
    for c, start, stop in _runs(by_country):
        order = rng.permutation(profile[start:stop])
        out[int(c)] = order if cap is None else order[:cap]
    return out


def _runs(sorted_keys: np.ndarray):
    """(key, start, stop) of each run of equal values in a sorted array."""
    if not len(sorted_keys):
        return []
    edges = np.flatnonzero(np.diff(sorted_keys)) + 1
    starts, stops = np.concatenate([[0], edges]), np.concatenate([edges, [len(sorted_keys)]])
    return [(sorted_keys[a], a, b) for a, b in zip(starts, stops)]


def make_splits(arch: Archetypes, config: SplitConfig | None = None,
                train_countries: tuple[str, ...] = schema.TRAIN_COUNTRIES,
                cross_countries: tuple[str, ...] = schema.CROSS_COUNTRIES,
                bank: QuestionBank | None = None) -> dict[str, pd.DataFrame]:
    """Release-format rows for each split in :data:`schema.SPLITS` (frequency computed within each split).
    ``bank``: the questions (their split roles, wording and order); default the paper's."""
    config = config or SplitConfig()
    bank = bank or default_bank()
    rng = np.random.default_rng(config.seed)
    pairs = arch.pairs
    # Work on category codes: string comparisons over a million pairs would dominate the whole preparation.
    countries = pd.Categorical(arch.profiles["Country"])
    country = countries.codes[pairs["profile_id"].to_numpy()]  # positional: profile_id is the profile's row
    rows = pd.DataFrame({"profile_id": pairs["profile_id"].to_numpy(), "Country": country})
    questions = pd.Categorical(pairs["Q_id"])
    qid = questions.codes

    def codes(categories, wanted):
        return [i for i, c in enumerate(categories) if c in set(wanted)]

    in_train_c = np.isin(country, codes(countries.categories, train_countries))
    train_q = np.isin(qid, codes(questions.categories, bank.train))

    pool = rows[in_train_c & train_q]
    assignment: dict[int, str] = {}
    for country_name, ids in _sample_profiles(pool, config.max_profiles_per_country, rng).items():
        n = len(ids)
        n_cd = int(round(n * config.cross_demographic_frac))
        n_val = int(round(n * config.val_frac))
        for i, pid in enumerate(ids):
            assignment[int(pid)] = "cross_demographic" if i < n_cd else "val" if i < n_cd + n_val else "train"
    part = pool["profile_id"].map(assignment)
    chosen = {name: pool.index[(part == name).to_numpy()] for name in ("train", "val", "cross_demographic")}

    cc_pool = rows[np.isin(country, codes(countries.categories, cross_countries)) & train_q]
    cc_ids = _sample_profiles(cc_pool, config.cross_country_max_profiles_per_country, rng)
    chosen["cross_country"] = cc_pool.index[cc_pool["profile_id"].isin(_concat(cc_ids)).to_numpy()]

    cv_pool = rows[in_train_c & np.isin(qid, codes(questions.categories, bank.cross_value))]
    cv_ids = _sample_profiles(cv_pool, config.cross_value_max_profiles_per_country, rng)
    chosen["cross_value"] = cv_pool.index[cv_pool["profile_id"].isin(_concat(cv_ids)).to_numpy()]

    # Only the chosen rows get their profile's attributes and a stable profile key.
    used = np.unique(pairs["profile_id"].to_numpy()[np.concatenate([c.to_numpy() for c in chosen.values()])])
    profiles = arch.profiles.iloc[used][["profile_id", *ATTRIBUTE_NAMES]].copy()
    profiles["profile_key"] = profile_keys(profiles)
    profiles = profiles.set_index("profile_id")
    out = {}
    for name in schema.SPLITS:
        sel = pairs.iloc[chosen[name]].reset_index(drop=True)
        attrs = profiles.loc[sel["profile_id"].to_numpy()].reset_index(drop=True)
        out[name] = finish_split(pd.concat([sel, attrs], axis=1), bank)
    return out


def _concat(ids: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate(list(ids.values())) if ids else np.empty(0, dtype=np.int64)


def finish_split(df: pd.DataFrame, bank: QuestionBank | None = None) -> pd.DataFrame:
    """Add question text, options, answer label and the within-split frequency; order by profile then question
    (in bank order). ``scale10`` marks binned numeric scales."""
    bank = bank or default_bank()
    # Per question, not per row: each question's fields are looked up once and spread by its category code.
    qcat = pd.Categorical(df["Q_id"].astype(str))
    known = [bank.by_id.get(c) for c in qcat.categories]
    order = np.array([bank.order.get(c, np.nan) for c in qcat.categories] + [np.nan], dtype=np.float64)
    rank = order[qcat.codes]  # code -1 (no Q_id) -> the NaN at the end, sorted last as sort_values puts NaN
    perm = np.lexsort((np.where(np.isnan(rank), np.inf, rank), df["profile_id"].to_numpy()))
    df = df.iloc[perm].reset_index(drop=True)
    codes = qcat.codes[perm]

    def spread(values: list, at: np.ndarray):
        # Taken in Arrow (no Python string per row); a code -1 (no Q_id, no valid answer) takes the None at the end.
        strings = pa.array(values + [None], pa.string()).take(pa.array(np.where(at < 0, len(values), at)))
        return pd.array(strings, dtype="str")

    df["Category"] = spread([q.category if q else None for q in known], codes)
    df["Question"] = spread([q.text if q else None for q in known], codes)
    df["Options"] = spread([", ".join(q.options) if q else None for q in known], codes)
    df["scale10"] = np.array([bool(q.scale10) if q else False for q in known] + [False], dtype=bool)[codes]
    offset = np.cumsum([0] + [q.k if q else 0 for q in known])
    labels = [o for q in known if q for o in q.options]
    idx = df["answer_index"].to_numpy(dtype=np.int64)
    k = np.append(np.diff(offset), 0)[codes]
    ok = (idx >= 0) & (idx < k)
    df["answer"] = spread(labels, np.where(ok, offset[np.maximum(codes, 0)] + idx, -1))
    df["frequency"] = add_frequency(df)
    return df


def add_frequency(df: pd.DataFrame) -> pd.Series:
    """Share of each row's answer among the rows of its (Country, Q_id) cell, as the release computes it (NaN for
    a row missing any of the three). Counted on the columns' codes."""
    if df.empty:
        return pd.Series([], dtype=float)
    c, q, a = (pd.factorize(df[col])[0].astype(np.int64) for col in ("Country", "Q_id", "answer"))
    cell = c * (q.max() + 1) + q
    same = cell * (a.max() + 1) + a
    in_cell = (c >= 0) & (q >= 0)  # the cell's size counts its rows without an answer too (groupby's size)
    valid = in_cell & (a >= 0)
    out = np.full(len(df), np.nan)
    cell_n = np.bincount(cell[in_cell], minlength=int(cell.max()) + 1)  # keys < countries x questions x options
    same_n = np.bincount(same[valid], minlength=int(same.max()) + 1)
    out[valid] = same_n[same[valid]] / cell_n[cell[valid]]
    return pd.Series(out, index=df.index)


def cap_profiles(rows: pd.DataFrame, cap: int | None, seed: int) -> pd.DataFrame:
    """At most ``cap`` profiles (``profile_key``) per country, drawn with a seeded permutation."""
    if cap is None or rows.empty:
        return rows
    rng = np.random.default_rng(seed)
    keep = []
    for _, keys in rows.groupby("Country", observed=True, sort=True)["profile_key"]:
        keep.append(rng.permutation(np.unique(keys.to_numpy().astype(str)))[:cap])
    return rows[rows["profile_key"].isin(np.concatenate(keep))].reset_index(drop=True)
