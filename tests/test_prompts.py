"""The release's user prompt, rebuilt byte for byte from its columns, on every row of the released dev split."""

from __future__ import annotations

import pandas as pd

from dvmap_verl.data.dataset import user_prompts
from dvmap_verl.data.prompts import PAPER_TEMPLATE, SYSTEM_PROMPTS, system_prompt, template_parts, user_prompt


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
    from dvmap_verl.data import schema
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


def test_prompt_strategies_differ_only_in_the_reasoning_instruction(release_dev):
    """Table 4's four settings share the profile sentence and the question block."""
    from dvmap_verl.data.prompts import TEMPLATE_FORMAT
    from dvmap_verl.reward import TAG_PRESETS

    row = release_dev.iloc[123].to_dict()
    texts = {t: user_prompt(row, t) for t in ("release", "free", "direct")}
    head = texts["release"].split("            Based on")[0]
    tail = texts["release"][texts["release"].index("            \n            **Question**"):]
    for name, text in texts.items():
        assert text.startswith(head) and text.endswith(tail), name
    assert "1. **Analyze" not in texts["free"] and "own words" in texts["free"]
    assert "without any explanation or reasoning" in texts["direct"]
    # What each asks for is what the reward's format share looks for: direct demands no <reasoning>.
    assert system_prompt(TEMPLATE_FORMAT["direct"][0]) == "Respond in the following format:\n<answer>\n...\n</answer>"
    assert "<reasoning>" not in TAG_PRESETS[TEMPLATE_FORMAT["direct"][1]]
    assert "<reasoning>" in TAG_PRESETS[TEMPLATE_FORMAT["free"][1]]


def test_release_import_rerenders_with_a_template(release_dev_path, tmp_path):
    from dvmap_verl.data.release import prepare_release

    verbatim = tmp_path / "v"
    prepare_release(release_dev_path, verbatim, quiet=True)
    same = tmp_path / "r"
    prepare_release(release_dev_path, same, template="release", quiet=True)
    a, b = pd.read_parquet(verbatim / "val.parquet"), pd.read_parquet(same / "val.parquet")
    assert [m[-1]["content"] for m in a["prompt"]] == [m[-1]["content"] for m in b["prompt"]]  # byte for byte
    direct = tmp_path / "d"
    stats = prepare_release(release_dev_path, direct, template="direct", quiet=True)
    d = pd.read_parquet(direct / "val.parquet")
    assert stats["template"] == "direct" and stats["reward_format_tags"] == "direct"
    assert d["prompt"].iloc[0][0]["content"] == "Respond in the following format:\n<answer>\n...\n</answer>"
    assert "without any explanation or reasoning" in d["prompt"].iloc[0][-1]["content"]


def test_eval_rerenders_prompts_and_guards_the_template(release_dev_path, tmp_path):
    import json

    from dvmap_verl.evaluation.evaluate import EvalConfig, prepare_run

    config = EvalConfig(backend="none", model="m", data=[str(release_dev_path)], limit=30, template="free")
    items = prepare_run(tmp_path / "run", config)
    messages = [json.loads(m) for m in items["messages"]]
    assert all("own words" in m[-1]["content"] and m[0]["role"] == "system" for m in messages)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["template"] == "free"
    import pytest

    with pytest.raises(ValueError, match="template: was 'free', now 'direct'"):
        prepare_run(tmp_path / "run", EvalConfig(backend="none", model="m", data=[str(release_dev_path)], limit=30,
                                                 template="direct"))
