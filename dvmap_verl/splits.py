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

from dvmap_verl import schema
from dvmap_verl.archetypes import Archetypes
from dvmap_verl.dataset import profile_keys
from dvmap_verl.schema import ATTRIBUTE_NAMES, QUESTION_BY_ID


@dataclass
class SplitConfig:
    max_profiles_per_country: int | None = 400
    cross_country_max_profiles_per_country: int | None = 64
    cross_value_max_profiles_per_country: int | None = 105
    val_frac: float = 0.115  # the release's dev split is 12.8% of its corpus = 11.5% of all training-country profiles
    cross_demographic_frac: float = 0.10
    seed: int = 0

    def __post_init__(self):
        for name in ("val_frac", "cross_demographic_frac"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {v}")
        if self.val_frac + self.cross_demographic_frac >= 1.0:
            raise ValueError("val_frac + cross_demographic_frac must leave profiles for training")
        for name in ("max_profiles_per_country", "cross_country_max_profiles_per_country",
                     "cross_value_max_profiles_per_country"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                setattr(self, name, None)  # 0 or negative: no cap

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sample_profiles(rows: pd.DataFrame, cap: int | None, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per country, a seeded random order of its profile ids, cut at ``cap``."""
    out = {}
    for country, ids in rows.groupby("Country", observed=True)["profile_id"]:
        uniq = np.unique(ids.to_numpy())
        order = rng.permutation(uniq)
        out[country] = order if cap is None else order[:cap]
    return out


def make_splits(arch: Archetypes, config: SplitConfig | None = None,
                train_countries: tuple[str, ...] = schema.TRAIN_COUNTRIES,
                cross_countries: tuple[str, ...] = schema.CROSS_COUNTRIES) -> dict[str, pd.DataFrame]:
    """Release-format rows for each split in :data:`schema.SPLITS` (frequency computed within each split)."""
    config = config or SplitConfig()
    rng = np.random.default_rng(config.seed)
    rows = arch.pairs.merge(arch.profiles[["profile_id", *ATTRIBUTE_NAMES]], on="profile_id", how="left")
    in_train_c = rows["Country"].isin(train_countries)
    train_q = rows["Q_id"].isin(schema.TRAIN_QUESTIONS)

    pool = rows[in_train_c & train_q]
    assignment: dict[int, str] = {}
    for country, ids in _sample_profiles(pool, config.max_profiles_per_country, rng).items():
        n = len(ids)
        n_cd = int(round(n * config.cross_demographic_frac))
        n_val = int(round(n * config.val_frac))
        for i, pid in enumerate(ids):
            assignment[int(pid)] = "cross_demographic" if i < n_cd else "val" if i < n_cd + n_val else "train"
    part = pool["profile_id"].map(assignment)
    splits = {name: pool[part == name] for name in ("train", "val", "cross_demographic")}

    cc_pool = rows[rows["Country"].isin(cross_countries) & train_q]
    cc_ids = _sample_profiles(cc_pool, config.cross_country_max_profiles_per_country, rng)
    splits["cross_country"] = cc_pool[cc_pool["profile_id"].isin(np.concatenate(list(cc_ids.values()) or [[]]))]

    cv_pool = rows[in_train_c & rows["Q_id"].isin(schema.CROSS_VALUE_QUESTIONS)]
    cv_ids = _sample_profiles(cv_pool, config.cross_value_max_profiles_per_country, rng)
    splits["cross_value"] = cv_pool[cv_pool["profile_id"].isin(np.concatenate(list(cv_ids.values()) or [[]]))]

    # Stable profile keys, hashed for the selected profiles only.
    chosen = np.unique(np.concatenate([df["profile_id"].to_numpy() for df in splits.values()]))
    keys = pd.Series(profile_keys(arch.profiles.iloc[chosen]), index=arch.profiles["profile_id"].to_numpy()[chosen])
    return {name: finish_split(splits[name].assign(profile_key=splits[name]["profile_id"].map(keys)))
            for name in schema.SPLITS}


_Q_ORDER = {q.qid: i for i, q in enumerate(schema.QUESTIONS)}


def finish_split(df: pd.DataFrame) -> pd.DataFrame:
    """Add question text, options, answer label and the within-split frequency; order by profile then question."""
    df = df.copy()
    df["_q"] = df["Q_id"].map(_Q_ORDER)
    df = df.sort_values(["profile_id", "_q"], kind="stable").drop(columns="_q").reset_index(drop=True)
    qid = df["Q_id"].astype(str)
    df["Category"] = qid.map({q.qid: q.category for q in schema.QUESTIONS})
    df["Question"] = qid.map({q.qid: q.text for q in schema.QUESTIONS})
    df["Options"] = qid.map({q.qid: ", ".join(q.options) for q in schema.QUESTIONS})
    answer_of = {(q.qid, i): o for q in schema.QUESTIONS for i, o in enumerate(q.options)}
    df["answer"] = pd.Series(list(zip(qid, df["answer_index"].astype(int))), index=df.index).map(answer_of)
    df["frequency"] = add_frequency(df)
    return df


def add_frequency(df: pd.DataFrame) -> pd.Series:
    """Share of each row's answer among the rows of its (Country, Q_id) cell, as the release computes it."""
    if df.empty:
        return pd.Series([], dtype=float)
    cell = df.groupby(["Country", "Q_id"], observed=True)["answer"].transform("size")
    same = df.groupby(["Country", "Q_id", "answer"], observed=True)["answer"].transform("size")
    return same / cell
