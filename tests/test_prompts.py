"""The release's user prompt, rebuilt byte for byte from its columns, on every row of the released dev split."""

from __future__ import annotations

import pandas as pd

from dvmap_verl.dataset import user_prompts
from dvmap_verl.prompts import PAPER_TEMPLATE, SYSTEM_PROMPTS, system_prompt, template_parts, user_prompt


def test_release_prompt_is_byte_exact_on_every_dev_row(release_dev):
    rebuilt = [user_prompt(r) for r in release_dev.to_dict("records")]
    mismatches = [i for i, (a, b) in enumerate(zip(rebuilt, release_dev["prompt"])) if a != b]
    assert len(rebuilt) == 7183
    assert not mismatches, f"{len(mismatches)} rows differ, first {mismatches[:3]}"


def test_corpus_fast_path_equals_per_row_template(release_dev):
    # The per-profile/per-question assembly used for whole corpora gives the same bytes.
    fast = user_prompts(release_dev.drop(columns=["prompt"]))
    assert fast == release_dev["prompt"].tolist()


def test_template_parts_split_identity_from_question():
    head, tail = template_parts("release")
    assert "{Question}" not in head and "{Country}" in head and "{Question}" in tail and "{Country}" not in tail
    head, tail = template_parts("paper")
    assert head + tail == PAPER_TEMPLATE


def test_paper_template_and_system_messages():
    fields = {a: a.upper() for a in ["Life Stage", "Gender", "Country", "Marital Status", "Has Children",
                                     "Education Level", "Occupation", "Work Nature", "Income Bracket",
                                     "Common Language", "Religion"]}
    fields.update(Question="Q?", Options="A, B")
    text = user_prompt(fields, "paper")
    assert text.startswith("Demographic Archetypes Injection:\nYou are playing the role of a LIFE STAGE GENDER")
    assert text.endswith('"Question": Q?\n"Options": A, B')
    assert system_prompt("release").startswith("Respond in the following format:\n<reasoning>")
    assert all(line.startswith(" " * 24) for line in SYSTEM_PROMPTS["release_train"].splitlines())
    assert system_prompt("none") is None
    import pytest

    with pytest.raises(ValueError, match="unknown prompt template 'x'"):
        user_prompt(fields, "x")


def test_dev_columns_match_schema(release_dev):
    from dvmap_verl import schema

    assert tuple(release_dev.columns) == schema.RELEASE_COLUMNS + ("data_source",)
    for qid, g in release_dev.groupby("Q_id"):
        q = schema.QUESTION_BY_ID[qid]
        assert g["Question"].unique().tolist() == [q.text]
        assert g["Options"].unique().tolist() == [", ".join(q.options)]
        assert g["Category"].unique().tolist() == [q.category]
    for attr in schema.ATTRIBUTES:
        values = set(release_dev[attr.name])
        if not attr.allow_missing:
            assert schema.NOT_ANSWERED not in values, attr.name
        if attr.bins is not None:
            assert values - {schema.NOT_ANSWERED} <= set(attr.bins.labels), attr.name
        elif attr.labels and not attr.file_labels:
            assert values - {schema.NOT_ANSWERED} <= set(attr.labels.values()), attr.name
    assert set(release_dev["Country"]) == set(schema.TRAIN_COUNTRIES)
    assert isinstance(release_dev, pd.DataFrame)
