"""The fast paths of ``dvmap prepare`` (issue 26, performance) give what the plain formulas give.

The full-size byte-for-byte checks live in test_question_bank.py / test_prepare_integrity.py; these pin the pieces
on values worked out by hand (or by the plain formula the fast path replaced, written out here)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from dvmap_verl.data import dataset
from dvmap_verl.data.dataset import PromptParts, repeated
from dvmap_verl.data.distributions import Coded, _capped, entropy


def _parts() -> PromptParts:
    # rows: (head 1, tail 0), (head 0, tail 1), (head 1, tail 1); one head holds a non-ASCII character
    return PromptParts(["Hé ", "B "], ["q1?", "q2!"], np.array([1, 0, 1]), np.array([0, 1, 1]))


def test_prompt_parts_join_heads_and_tails_row_by_row():
    assert _parts().users().to_pylist() == ["B q1?", "Hé q2!", "B q2!"]


def test_prompt_parts_contents_interleave_the_system_message():
    assert _parts().contents("SYS").to_pylist() == ["SYS", "B q1?", "SYS", "Hé q2!", "SYS", "B q2!"]


def test_past_the_string_limit_arrow_assembles_the_same_rows(monkeypatch):
    monkeypatch.setattr(dataset, "MAX_STRING_BYTES", 4)  # every array here is longer than 4 bytes
    assert _parts().users().to_pylist() == ["B q1?", "Hé q2!", "B q2!"]
    assert _parts().contents("SYS").to_pylist() == ["SYS", "B q1?", "SYS", "Hé q2!", "SYS", "B q2!"]
    assert repeated("ab", 3).to_pylist() == ["ab", "ab", "ab"]


def test_repeated_and_roles_from_buffers():
    assert repeated("dvmap/train", 2).to_pylist() == ["dvmap/train", "dvmap/train"]
    assert repeated("x", 0).to_pylist() == []
    assert repeated("x", 2).type == pa.string()
    assert dataset._roles(2).to_pylist() == ["system", "user", "system", "user"]


def test_entropy_of_mixed_single_and_empty_rows():
    counts = np.array([[2, 2, 0], [3, 0, 0], [0, 0, 0], [1, 1, 2]])
    h = entropy(counts)
    assert abs(h[0] - np.log(2)) < 1e-12  # two equal halves: log 4 - (2 log 2 + 2 log 2) / 4 = log 2
    assert h[1] == 0.0 and np.isnan(h[2])
    assert abs(h[3] - 1.5 * np.log(2)) < 1e-12  # 1/4, 1/4, 1/2: 1.5 log 2


def test_coded_concat_of_one_vocabulary_keeps_codes_and_nulls():
    values = np.array(["a", "b"], dtype=object)
    out = Coded.concat([Coded([1, -1], values), Coded([0], values)])
    assert out[np.arange(3)].tolist() == ["b", None, "a"]
    mixed = Coded.concat([Coded([1], ["a", "b"]), Coded([0], ["c"])])  # two vocabularies: remapped
    assert mixed[np.arange(2)].tolist() == ["b", "c"]


def test_profile_cap_draws_what_the_per_country_unique_formula_draws():
    rng = np.random.default_rng(5)
    country = np.array(["Peru", "Chile", "Peru", "Chile", "Peru", "Kenya"] * 20, dtype=object)
    key = np.array([f"k{i % 17:02d}{c[0]}" for i, c in enumerate(country)], dtype=object)
    rng.shuffle(key)
    cap, seed = 3, 11
    gen = np.random.default_rng(seed)  # the formula the grouped version replaced
    chosen = [gen.permutation(np.unique(key[country == c]))[:cap] for c in np.unique(country)]
    expected = np.isin(key, np.concatenate(chosen))
    c_codes, countries = pd.factorize(country)
    k_codes, keys = pd.factorize(key)
    got = _capped(c_codes, np.asarray(countries, dtype=object), k_codes, np.asarray(keys, dtype=object), cap, seed)
    assert got.tolist() == expected.tolist()
    assert 0 < got.sum() < len(got)
