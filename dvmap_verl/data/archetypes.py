"""Demographic archetype extraction (paper §4.1): profiles of 11 attributes and the H = 0 consensus filter.

For every (profile, question) the answers of the respondents sharing the profile are compared: with Shannon entropy
H > 0 (they disagree) the pair is dropped; otherwise one row keeps the common answer. ``consensus="majority"`` is the
paper's H >= 0 ablation (Table 3): the pair keeps its most frequent answer, ties dropped. ``consensus="all"`` keeps
every pair, ties included (the lower option wins), for distribution training, where the row's target is its
answer counts rather than one answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dvmap_verl.data.schema import ATTRIBUTE_NAMES
from dvmap_verl.errors import InputError

CONSENSUS_RULES = ("strict", "majority", "all")


@dataclass
class Archetypes:
    profiles: pd.DataFrame  # one row per profile: profile_id + the 11 attributes + n_respondents
    pairs: pd.DataFrame  # kept (profile_id, Q_id, answer_index, n_respondents)
    stats: dict[str, Any]


def extract_archetypes(respondents: pd.DataFrame, questions: list[str], consensus: str = "strict") -> Archetypes:
    if consensus not in CONSENSUS_RULES:
        raise InputError(f"unknown consensus rule {consensus!r}; known: {CONSENSUS_RULES}")
    pid = respondents.groupby(list(ATTRIBUTE_NAMES), sort=False, observed=True).ngroup().to_numpy()
    sizes = np.bincount(pid)
    first = pd.Series(np.arange(len(pid))).groupby(pid).first().to_numpy()
    profiles = respondents.iloc[first][list(ATTRIBUTE_NAMES)].reset_index(drop=True)
    profiles.insert(0, "profile_id", np.arange(len(profiles)))
    profiles["n_respondents"] = sizes

    # Every answered (respondent, question) as a dense pair key: profile * n_questions + question.
    nq = max(len(questions), 1)
    answers = respondents[questions].to_numpy(dtype=np.int16) if questions else np.empty((len(pid), 0), np.int16)
    answered = answers >= 0
    pair = (pid.astype(np.int64)[:, None] * nq + np.arange(nq))[answered]
    a = answers[answered]  # int16: the temporaries of a wide file run to gigabytes; kept narrow

    # Per pair: number of answers, and whether they all agree. Most pairs hold one respondent (they agree
    # trivially); only pairs shared by several respondents need the distinct-answer test.
    n_pairs = (int(pid.max()) + 1) * nq if len(pid) else 0
    total = np.bincount(pair, minlength=n_pairs)
    present = np.flatnonzero(total)
    pair_total = total[present]
    first_answer = np.zeros(n_pairs, dtype=np.int8)  # answer codes are 0..7
    first_answer[pair[::-1]] = a[::-1]  # any answer of the pair (the first)
    shared_rows = (total >= 2)[pair]
    sp, sa = pair[shared_rows], a[shared_rows]
    if consensus == "strict":
        s1 = np.bincount(sp, weights=sa, minlength=n_pairs)[present]
        s2 = np.bincount(sp, weights=sa.astype(np.float64) ** 2, minlength=n_pairs)[present]
        # Zero variance <=> one distinct answer <=> H = 0 (exact for small integers).
        keep = (pair_total == 1) | (pair_total * s2 == s1 * s1)
        answer = first_answer[present]
    else:
        dense = np.searchsorted(present, sp)
        per_option = np.zeros((len(present), 8), dtype=np.int64)
        np.add.at(per_option, (dense, sa), 1)
        single = pair_total == 1
        per_option[single, first_answer[present][single]] = 1
        best = per_option.max(axis=1)
        if consensus == "all":
            keep = np.ones(len(present), dtype=bool)
        else:
            keep = (per_option == best[:, None]).sum(axis=1) == 1  # a unique most frequent answer; ties dropped
        answer = per_option.argmax(axis=1)
    pair_keys = present

    pairs = pd.DataFrame({
        "profile_id": (pair_keys // nq)[keep].astype(np.int32),
        "Q_id": pd.Categorical.from_codes((pair_keys % nq)[keep], categories=list(questions)),
        "answer_index": answer[keep].astype(np.int8),
        "n_respondents": pair_total[keep].astype(np.int32),
    })
    shared_pairs = pair_total >= 2
    stats = {
        "consensus": consensus,
        "respondents": int(len(pid)),
        "profiles": int(len(profiles)),
        "shared_profile_respondent_share": float((sizes[pid] >= 2).mean()) if len(pid) else 0.0,
        "pairs": int(len(pair_keys)),
        "pairs_shared": int(shared_pairs.sum()),
        "pairs_dropped": int((~keep).sum()),
        "pairs_dropped_share": float((~keep).mean()) if len(keep) else 0.0,
        "pairs_dropped_share_of_shared": float((~keep).sum() / shared_pairs.sum()) if shared_pairs.any() else 0.0,
        "answers": int(len(pair)),
        "answers_dropped_share": float(pair_total[~keep].sum() / len(pair)) if len(pair) else 0.0,
    }
    return Archetypes(profiles, pairs.reset_index(drop=True), stats)
