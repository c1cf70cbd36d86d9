"""dvmap import-benchmark: each peer benchmark read from synthetic files in its real format (tests/benchmark_files.py),
targets checked against values worked by hand, every parser pitfall, malformed rows, all-or-nothing output."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import benchmark_files as B  # noqa: E402

from dvmap_verl.cli import main  # noqa: E402
from dvmap_verl.data.benchmarks import import_benchmark  # noqa: E402
from dvmap_verl.errors import InputError  # noqa: E402
from dvmap_verl.evaluation.evaluate import load_items  # noqa: E402


def items_of(out: Path, stats: dict) -> pd.DataFrame:
    """What ``dvmap eval --data`` reads from the written file."""
    return load_items([out / stats["items_file"]])


def one(items: pd.DataFrame, **where) -> dict:
    m = pd.Series(True, index=items.index)
    for k, v in where.items():
        m &= items[k] == v
    assert m.sum() == 1, (where, int(m.sum()))
    return items[m].iloc[0].to_dict()


# ------------------------------------------------------------------------------------------------ GlobalOpinionQA


def test_globalopinionqa_targets_refusals_qualifiers_and_scales(tmp_path):
    path = B.write_goqa(tmp_path / "in")
    stats = import_benchmark("globalopinionqa", path, tmp_path / "out", template="cross-national")
    items = items_of(tmp_path / "out", stats)
    assert stats["items"] == 4 and stats["questions"] == 3 and stats["bad_rows"]["count"] == 0
    # Atlantis: [0.52, 0.31 | refusal 0.17]: 0.52 / 0.83 = 0.626506, 0.31 / 0.83 = 0.373494.
    a = one(items, country="Atlantis", question="Should the town build bike lanes?")
    assert list(a["options"]) == ["Yes", "No"] and list(a["refusal_options"]) == ["Don't know/Refused"]
    assert list(a["target"]) == pytest.approx([0.626506, 0.373494], abs=1e-6)
    assert a["refusal_share"] == pytest.approx(0.17) and a["raw_sum"] == pytest.approx(1.0)
    assert a["answer"] == "Yes" and a["truth"] == 0 and a["raw_scale"] == "fraction"
    assert a["profile_id"] == "country=Atlantis" and a["data_source"] == "globalopinionqa/globalopinionqa"
    # The qualifier stays in the group and is cut from the prompt's country.
    f = one(items, country="Freedonia (non-national sample)")
    assert f["country_name"] == "Freedonia" and f["country_qualifier"] == "non-national sample"
    assert list(f["target"]) == pytest.approx([0.5, 0.5]) and f["refusal_share"] == pytest.approx(0.2)
    user = json.loads(f["messages"])[-1]["content"]
    assert user.startswith("How would someone from Freedonia answer the following question:\n"
                           "Should the town build bike lanes?\n\nHere are the options:\n(A) Yes\n(B) No\n")
    assert "(C)" not in user  # the refusal option is not offered
    # Percentages (sum 100) renormalised, the raw sum recorded.
    p = one(items, question="How important is leisure?")
    assert list(p["target"]) == pytest.approx([0.31, 0.45, 0.17, 0.07]) and p["raw_sum"] == pytest.approx(100.0)
    assert p["raw_scale"] == "percent" and p["refusal_share"] == 0.0
    # A sum drifting to 0.998 is renormalised; an apostrophe inside a CSV-doubled list item survives.
    d = one(items, question="Which is the town's best park?")
    assert list(d["options"]) == ["Miller's Green", "Riverside", "Old Mill"]
    assert list(d["target"]) == pytest.approx([0.5 / 0.998, 0.3 / 0.998, 0.198 / 0.998])
    assert d["raw_sum"] == pytest.approx(0.998)
    # No ordinal positions in the file: every item is non-ordinal, and stats.json says why.
    assert not items["is_ordinal"].any() and len(stats["non_ordinal_items"]) == 4
    assert set(items["prompt_format"]) == {"globalopinionqa:cross-national"}
    assert stats["items_file"] == "globalopinionqa_cross-national.parquet"


def test_malformed_row_is_named_or_skipped_and_nothing_is_half_written(tmp_path):
    path = B.write_goqa(tmp_path / "in", bad=True)
    good = import_benchmark("globalopinionqa", B.write_goqa(tmp_path / "ok"), tmp_path / "out")
    before = (tmp_path / "out" / good["items_file"]).read_bytes()
    with pytest.raises(InputError, match=r"global_opinions.csv: row 4, column 'question': empty cell"):
        import_benchmark("globalopinionqa", path, tmp_path / "out")
    # The failed import left the earlier set exactly as it was, and no staging folder.
    assert (tmp_path / "out" / good["items_file"]).read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".dvmap-manifest.json",
                                                                    "globalopinionqa_default.parquet", "stats.json"]
    with pytest.raises(InputError):
        import_benchmark("globalopinionqa", path, tmp_path / "fresh")
    assert not any((tmp_path / "fresh").glob("*.parquet"))
    stats = import_benchmark("globalopinionqa", path, tmp_path / "skip", skip_bad_rows=True)
    assert stats["items"] == 4 and stats["bad_rows"]["count"] == 1
    assert stats["bad_rows"]["rows"][0] == {"file": str(path), "row": 4, "column": "question", "error": "empty cell"}


def test_python_repr_is_read_with_literal_eval_never_eval(tmp_path):
    marker = tmp_path / "pwned"
    text = B.GOQA_CSV + f'"Q?","__import__(\'os\').system(\'touch {marker}\')","[\'Yes\', \'No\']",GAS\n'
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "global_opinions.csv").write_text(text)
    with pytest.raises(InputError, match=r"row 4, column 'selections': not a Python literal"):
        import_benchmark("globalopinionqa", tmp_path / "in", tmp_path / "out")
    assert not marker.exists()


def test_repeated_options_are_a_bad_row(tmp_path):
    text = B.GOQA_CSV + '"Q?","defaultdict(<class \'list\'>, {\'Atlantis\': [0.5, 0.5]})","[\'Yes\', \'Yes\']",GAS\n'
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "global_opinions.csv").write_text(text)
    with pytest.raises(InputError, match=r"row 4, .*options must be distinct and non-empty: \['Yes', 'Yes'\]"):
        import_benchmark("globalopinionqa", tmp_path / "in", tmp_path / "out")


def test_shares_that_are_neither_fractions_nor_percentages_are_refused(tmp_path):
    text = B.GOQA_CSV + '"Q?","defaultdict(<class \'list\'>, {\'Atlantis\': [3.0, 4.0]})","[\'Yes\', \'No\']",GAS\n'
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "global_opinions.csv").write_text(text)
    with pytest.raises(InputError, match=r"row 4, column \"selections\['Atlantis'\]\": shares sum to 7"):
        import_benchmark("globalopinionqa", tmp_path / "in", tmp_path / "out")


# ------------------------------------------------------------------------------------------------ OpinionQA


def test_opinionqa_wave_weighted_targets_and_refusal_tails(tmp_path):
    root = B.write_opinionqa(tmp_path / "human_resp")
    stats = import_benchmark("opinionqa", root, tmp_path / "out", template="portray")
    items = items_of(tmp_path / "out", stats)
    # 3 questions x (Overall + 2 sexes + 2 education levels).
    assert stats["items"] == 15 and stats["groups"] == 5
    # PARKS Overall: weights VS 1 + 1, SS 2, NS 1.5, Refused 0.5 (total 6): target [2, 2, 1.5] / 5.5.
    o = one(items, q_id="PARKS_W99", group="Overall")
    assert list(o["target"]) == pytest.approx([2 / 5.5, 2 / 5.5, 1.5 / 5.5])
    assert o["refusal_share"] == pytest.approx(0.5 / 6) and o["raw_sum"] == pytest.approx(6.0) and o["n"] == 5
    # counts: the target as n = 5 whole answers (1.818, 1.818, 1.364 -> largest remainders) for the floors.
    assert list(o["counts"]) == [2.0, 2.0, 1.0]
    # PARKS Female: Refused 0.5, NS 1.5, VS 1.0: [1, 0, 1.5] / 2.5, refusal 0.5 / 3.
    fem = one(items, q_id="PARKS_W99", group="Female")
    assert list(fem["target"]) == pytest.approx([0.4, 0.0, 0.6]) and fem["refusal_share"] == pytest.approx(1 / 6)
    # An apostrophe in a metadata group (CSV-doubled inside the list repr).
    assoc = one(items, q_id="PARKS_W99", group="Associate's degree")  # r2 SS 2.0, r3 Refused 0.5, r5 VS 1.0
    assert list(assoc["target"]) == pytest.approx([1 / 3, 2 / 3, 0.0]) and assoc["refusal_share"] == \
        pytest.approx(0.5 / 3.5)
    # TRUSTB: the tail after the 3 ordinal options ("Not sure", "Refused") is refusal; the ordinal is kept as given.
    t = one(items, q_id="TRUSTB_W99", group="Overall")
    assert list(t["options"]) == ["Trust", "Distrust", "Neither"]
    assert list(t["refusal_options"]) == ["Not sure", "Refused"]
    assert list(t["target"]) == pytest.approx([1 / 4.5, 1.5 / 4.5, 2 / 4.5]) and t["refusal_share"] == \
        pytest.approx(1.5 / 6)
    assert list(t["ordinal"]) == [1.0, 2.0, 1.5] and t["is_ordinal"]
    # ORIENT: ordinal [1, 1, 1, 1] (ints) is degenerate: not ordinal; the empty answer is dropped and counted once.
    d = one(items, q_id="ORIENT_W99", group="Overall")
    assert not d["is_ordinal"] and "degenerate" in d["not_ordinal_why"] and d["n"] == 4
    assert list(d["target"]) == pytest.approx([1.5 / 4.5, 2 / 4.5, 1 / 4.5, 0.0])
    assert stats["answers_not_in_references"] == 1
    user = json.loads(fem["messages"])[-1]["content"]
    assert user.startswith("Answer the following question as if you were Female.\n\nQuestion: How satisfied are "
                           "you with parks?\nA. Very satisfied\nB. Somewhat satisfied\nC. Not satisfied\n")


def test_opinionqa_bad_weight_names_file_row_and_column(tmp_path):
    root = B.write_opinionqa(tmp_path / "human_resp")
    resp = root / "American_Trends_Panel_W99" / "responses.csv"
    resp.write_text(B.OQA_RESPONSES + "6,Very satisfied,Trust,A,Male,Less than high school,heavy\n")
    with pytest.raises(InputError, match=r"responses.csv: row 6, column 'WEIGHT_W99': not a non-negative weight"):
        import_benchmark("opinionqa", root, tmp_path / "out")
    stats = import_benchmark("opinionqa", root, tmp_path / "out", skip_bad_rows=True)
    assert stats["bad_rows"]["count"] == 1 and stats["items"] == 15


def test_opinionqa_count_files_split_refusal_and_take_ordinals_from_info(tmp_path):
    folder = B.write_opinionqa_counts(tmp_path / "disagreement_500", extra={
        "BAD_W99": {"MC_options": ["Yes", "No"], "question_text": "Q?", "Democrat": {"Maybe": 3.0}}})
    with pytest.raises(InputError, match=r"POLPARTY_data.json: row BAD_W99, column 'Democrat': label\(s\) \['Maybe'\]"):
        import_benchmark("opinionqa", folder, tmp_path / "out")
    stats = import_benchmark("opinionqa", folder, tmp_path / "out", template="qa", skip_bad_rows=True)
    items = items_of(tmp_path / "out", stats)
    assert stats["items"] == 2 and stats["bad_rows"]["count"] == 1
    # Democrat: VS 30, SS 40, NS 12, Refused 1 -> [30, 40, 12] / 82, refusal 1 / 83.
    dem = one(items, group="Democrat")
    assert list(dem["options"]) == ["Very satisfied", "Somewhat satisfied", "Not satisfied"]
    assert list(dem["target"]) == pytest.approx([30 / 82, 40 / 82, 12 / 82])
    assert dem["refusal_share"] == pytest.approx(1 / 83) and dem["raw_sum"] == 83.0 and dem["n"] == 30
    rep = one(items, group="Republican")  # zero counts are absent from the file: Refused 0
    assert list(rep["target"]) == pytest.approx([41 / 85, 35 / 85, 9 / 85]) and rep["refusal_share"] == 0.0
    assert list(dem["ordinal"]) == [1.0, 2.0, 3.0] and dem["is_ordinal"]
    user = json.loads(rep["messages"])[-1]["content"]
    assert user.startswith("Question: In politics today, do you consider yourself a\nA. Democrat\nB. Republican\n"
                           "Answer: B\n\nQuestion: How satisfied are you with parks?")
    # Without an info.csv beside them the count files carry no ordinal positions.
    bare = B.write_opinionqa_counts(tmp_path / "bare", with_info=False)
    stats = import_benchmark("opinionqa", bare / "POLPARTY_data.json", tmp_path / "out2")
    assert stats["ordinal_items"] == 0 and stats["items"] == 2


# ------------------------------------------------------------------------------------------------ SubPOP


def test_subpop_csv_and_jsonl(tmp_path):
    folder = B.write_subpop(tmp_path / "subpop", bad=True)
    with pytest.raises(InputError, match=r"subpop_eval.csv: row 5, column 'refusal_rate': empty cell"):
        import_benchmark("subpop", folder, tmp_path / "out")
    stats = import_benchmark("subpop", folder, tmp_path / "out", skip_bad_rows=True)
    assert [(b["row"], b["column"]) for b in stats["bad_rows"]["rows"]] == [(5, "refusal_rate"), (6, "options")]
    items = items_of(tmp_path / "out", stats)
    assert stats["items"] == 5
    natparks = one(items, q_id="natparks")
    # Options one longer than responses: the last (Refused) is split off, not paired with a response.
    assert list(natparks["options"]) == ["Too little", "About right", "Too much"]
    assert list(natparks["refusal_options"]) == ["Refused"] and natparks["refusal_share"] == pytest.approx(0.004)
    assert list(natparks["target"]) == pytest.approx([0.25, 0.6, 0.15])
    placeholder = one(items, q_id="PARKS_W130")  # SubPOP-Train's [1.0]*K: no ordinality
    assert not placeholder["is_ordinal"]
    livinst = one(items, q_id="livinst")  # -1.0 marks a non-ordinal option
    assert livinst["is_ordinal"] and pd.isna(livinst["ordinal"][2]) and list(livinst["ordinal"][:2]) == [1.0, 2.0]
    assert list(one(items, q_id="natarms")["ordinal"]) == [1.0, 3.0, 2.0]
    conf = one(items, q_id="CONF_W130")  # JSONL: native lists, an apostrophe in an option
    assert list(conf["options"]) == ["Yes", "Haven't decided", "No"] and conf["refusal_share"] == 0.05


# ------------------------------------------------------------------------------------------------ WorldValuesBench


def test_worldvaluesbench_probe_set_and_country_groups(tmp_path):
    root = B.write_wvb(tmp_path / "WorldValuesBench")
    stats = import_benchmark("worldvaluesbench", root, tmp_path / "probe")
    items = items_of(tmp_path / "probe", stats)
    assert stats["items"] == 4 and stats["missing_answers"] == 1
    eu = one(items, q_id="Q1", group="Europe | Urban | Lower")  # answers 1, 2, 2.0 on 1..4
    assert list(eu["options"]) == ["1", "2", "3", "4"] and list(eu["target"]) == pytest.approx([1 / 3, 2 / 3, 0, 0])
    assert eu["n"] == 3 and (eu["scale_min"], eu["scale_max"]) == (1.0, 4.0)
    assert list(eu["counts"]) == [1.0, 2.0, 0.0, 0.0]  # 3 x (1/3, 2/3) is not cut to (0, 1) by float noise
    q2 = one(items, q_id="Q2", group="Europe | Urban | Lower")  # 2, missing, 10 on 1..10
    assert len(q2["options"]) == 10 and q2["target"][1] == pytest.approx(0.5) and q2["target"][9] == \
        pytest.approx(0.5) and q2["n"] == 2
    # Without the probe set: one group per country, over every value question.
    stats = import_benchmark("worldvaluesbench", root / "full", tmp_path / "country", template="persona")
    items = items_of(tmp_path / "country", stats)
    # Freedonia answered Q300 with code 3 only (and once not at all): a one-option item, set aside
    assert stats["items"] == 5 and [(a["q_id"], a["group"], a["options"]) for a in stats["set_aside"]] == [
        ("Q300", "Freedonia", 1)]
    nominal = one(items, q_id="Q300", group="Atlantis")  # non-ordinal: the codes observed (1, 2, 1)
    assert list(nominal["options"]) == ["1", "2"] and list(nominal["target"]) == pytest.approx([2 / 3, 1 / 3])
    assert not nominal["is_ordinal"]
    user = json.loads(one(items, q_id="Q1", group="Freedonia")["messages"])[-1]["content"]
    assert "B_COUNTRY: Freedonia." in user and "**Options**: 1, 2, 3, 4" in user


def test_worldvaluesbench_off_scale_code_is_a_bad_row(tmp_path):
    root = B.write_wvb(tmp_path / "WorldValuesBench", values=B.WVB_VALUES.replace("999070004\t4", "999070004\t7"))
    with pytest.raises(InputError, match=r"full_value_qa.tsv: row 4, column 'Q1': not an answer code on \(1, 4\)"):
        import_benchmark("worldvaluesbench", root, tmp_path / "out")


# ------------------------------------------------------------------------------------------------ the command


def test_cli_imports_and_refuses_in_one_line(tmp_path, capsys):
    path = B.write_goqa(tmp_path / "in")
    assert main(["import-benchmark", "globalopinionqa", "--input", str(path), "--out", str(tmp_path / "o")]) == 0
    assert "globalopinionqa: 4 items" in capsys.readouterr().out
    assert main(["import-benchmark", "globalopinionqa", "--input", str(path), "--out", str(tmp_path / "o"),
                 "--template", "qa"]) == 2
    assert "unknown --template 'qa'; known: ['default', 'cross-national', 'persona']" in capsys.readouterr().err


def test_draws_override_and_items_beyond_the_evaluation_width_are_set_aside(tmp_path):
    wide = [f"o{i}" for i in range(17)]  # 17 answerable options: more than the evaluation's 16
    shares = [round(1 / 17, 6)] * 16 + [round(1 - 16 * round(1 / 17, 6), 6)]
    text = B.GOQA_CSV + f'"Wide?","defaultdict(<class \'list\'>, {{\'Atlantis\': {shares}}})","{wide}",GAS\n'
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "global_opinions.csv").write_text(text)
    stats = import_benchmark("globalopinionqa", tmp_path / "in", tmp_path / "out", draws=100)
    assert stats["items"] == 4 and stats["set_aside"] == [
        {"q_id": stats["set_aside"][0]["q_id"], "group": "Atlantis", "country": "Atlantis", "options": 17,
         "why": "more than 16 answerable options"}]
    items = items_of(tmp_path / "out", stats)
    a = one(items, country="Atlantis", question="Should the town build bike lanes?")
    # 100 draws: 62.65 and 37.35 as whole answers (largest remainders) -> 63 and 37.
    assert a["n"] == 100 and list(a["counts"]) == [63.0, 37.0] and stats["draws"] == [100.0]


def test_duplicate_question_and_group_rows_are_a_bad_row_never_two_items(tmp_path):
    dup = 'natarms,SEX,Male,"[0.5, 0.2, 0.3]",0.0,"[1.0, 3.0, 2.0]",Spending on arms?,"[\'a\', \'b\', \'c\']"\n'
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "subpop_eval.csv").write_text(B.SUBPOP_CSV + dup, encoding="utf-8")
    # natarms/SEX=Male is data rows 4 and 5 (1-based, header excluded)
    with pytest.raises(InputError, match=r"subpop_eval.csv: row 4, 5, column 'key': 2 rows for question 'natarms' "
                                         r"and group 'SEX=Male'"):
        import_benchmark("subpop", tmp_path / "in", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    stats = import_benchmark("subpop", tmp_path / "in", tmp_path / "out", skip_bad_rows=True)
    assert stats["items"] == 3  # both copies left out: which one is right cannot be told
    assert [(b["row"], b["column"]) for b in stats["bad_rows"]["rows"]] == [("4, 5", "key")]
    assert "natarms" not in set(items_of(tmp_path / "out", stats)["q_id"])


POLPARTY = {"PARKS_W99": {
    "MC_options": ["Very satisfied", "Somewhat satisfied", "Not satisfied", "Refused"],
    "question_text": "How satisfied are you with parks?",
    "Democrat": {"Not satisfied": 12.0, "Refused": 1.0, "Somewhat satisfied": 40.0, "Very satisfied": 30.0},
    "Republican": {"Not satisfied": 9.0, "Somewhat satisfied": 35.0, "Very satisfied": 41.0},
    "Independent": {"Refused": 3.0},                      # refusals only: counted, not malformed
    "Other": {"Bogus label": 5.0, "Very satisfied": 1.0}}}  # malformed: this group only


def test_count_files_skip_a_bad_group_not_its_question(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "POLPARTY_data.json").write_text(json.dumps(POLPARTY))
    with pytest.raises(InputError, match=r"row PARKS_W99, column 'Other': label\(s\) \['Bogus label'\]"):
        import_benchmark("opinionqa", tmp_path / "in", tmp_path / "out")
    stats = import_benchmark("opinionqa", tmp_path / "in", tmp_path / "out", skip_bad_rows=True)
    assert [(b["row"], b["column"]) for b in stats["bad_rows"]["rows"]] == [("PARKS_W99", "Other")]
    assert stats["groups_without_answers"] == 1 and stats["items"] == 2
    items = items_of(tmp_path / "out", stats)
    dem = one(items, group="Democrat")
    # 30, 40, 12 of 82 answered; 1 refusal of 83
    assert list(dem["target"]) == pytest.approx([30 / 82, 40 / 82, 12 / 82])
    assert dem["refusal_share"] == pytest.approx(1 / 83)
    assert list(one(items, group="Republican")["target"]) == pytest.approx([41 / 85, 35 / 85, 9 / 85])


def test_nothing_left_names_what_was_skipped_in_one_error(tmp_path):
    (tmp_path / "in").mkdir()
    only_bad = {"PARKS_W99": {k: v for k, v in POLPARTY["PARKS_W99"].items() if k not in ("Democrat", "Republican")}}
    (tmp_path / "in" / "POLPARTY_data.json").write_text(json.dumps(only_bad))
    with pytest.raises(InputError, match=r"no opinionqa item could be read \(1 malformed row\(s\), 0 set aside: "
                                         r".*POLPARTY_data.json: row PARKS_W99, column 'Other': label"):
        import_benchmark("opinionqa", tmp_path / "in", tmp_path / "out", skip_bad_rows=True)
    assert not (tmp_path / "out").exists()


def test_an_empty_input_file_is_one_line(tmp_path, capsys):
    (tmp_path / "empty.csv").write_text("")
    assert main(["import-benchmark", "globalopinionqa", "--input", str(tmp_path / "empty.csv"), "--out",
                 str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"dvmap: error: {tmp_path / 'empty.csv'}: not a readable CSV (No columns to parse from file)"]
    assert not (tmp_path / "out").exists()


def test_single_option_items_are_set_aside_and_listed(tmp_path):
    csv = ("question,selections,options,source\n"
           "\"Two options\",\"{'Atlantis': [0.25, 0.75]}\",\"['Yes', 'No']\",GAS\n"
           "\"One option\",\"{'Atlantis': [1.0]}\",\"['Yes']\",GAS\n"
           "\"One answerable\",\"{'Atlantis': [0.6, 0.4]}\",\"['Yes', 'Refused']\",GAS\n")  # refusal split off
    (tmp_path / "goqa.csv").write_text(csv)
    stats = import_benchmark("globalopinionqa", tmp_path / "goqa.csv", tmp_path / "out")
    assert stats["items"] == 1
    assert [(a["group"], a["options"], a["why"]) for a in stats["set_aside"]] == [
        ("Atlantis", 1, "1 answerable option(s): nothing to choose between")] * 2
    assert list(items_of(tmp_path / "out", stats)["question"]) == ["Two options"]


def test_an_out_that_is_a_file_is_one_line(tmp_path):
    src = B.write_subpop(tmp_path / "subpop")
    (tmp_path / "taken.csv").write_text("x")
    with pytest.raises(InputError, match=rf"--out {tmp_path / 'taken.csv'}: a file, not a folder"):
        import_benchmark("subpop", src, tmp_path / "taken.csv")
    assert (tmp_path / "taken.csv").read_text() == "x"


def test_a_probe_question_the_files_lack_is_a_bad_row(tmp_path):
    root = B.write_wvb(tmp_path / "WorldValuesBench")
    with open(root / "probe" / "samples.tsv", "a") as fh:
        fh.write("Q77\tSocial Values\tEurope\tUrban\tLower\t999070001\n")
    with pytest.raises(InputError, match=r"full_value_qa.tsv: row \(header\), column 'Q77': no such column"):
        import_benchmark("worldvaluesbench", root, tmp_path / "out")
    stats = import_benchmark("worldvaluesbench", root, tmp_path / "out", skip_bad_rows=True)
    assert stats["items"] == 4  # the probe set's other items, as without Q77
    assert [(b["row"], b["column"]) for b in stats["bad_rows"]["rows"]] == [("(header)", "Q77")]


def test_boolean_shares_and_an_all_refused_rate_beside_a_distribution_are_bad_rows(tmp_path):
    csv = ("question,selections,options,source\n"
           "\"Bools\",\"{'Atlantis': [True, False]}\",\"['Yes', 'No']\",GAS\n")
    (tmp_path / "goqa.csv").write_text(csv)
    with pytest.raises(InputError, match=r"goqa.csv: row 1, column \"selections\['Atlantis'\]\": a boolean, not a "
                                         r"number: True"):
        import_benchmark("globalopinionqa", tmp_path / "goqa.csv", tmp_path / "out")
    (tmp_path / "sp").mkdir()
    (tmp_path / "sp" / "subpop_eval.csv").write_text(
        "qkey,attribute,group,responses,refusal_rate,ordinal,question,options\n"
        "pct,SEX,Male,\"[20, 30, 50]\",1.0,\"[1, 2, 3]\",Q?,\"['a', 'b', 'c']\"\n")
    with pytest.raises(InputError, match=r"row 1, column 'refusal_rate': '1.0': every respondent refused"):
        import_benchmark("subpop", tmp_path / "sp", tmp_path / "out2")
