"""Raw WVS -> respondents -> archetypes -> splits -> files, on SYNTHETIC WVS-shaped data and hand-built cases."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from dvmap_verl.data import schema, synth
from dvmap_verl.data.archetypes import extract_archetypes
from dvmap_verl.data.prepare import prepare_wvs
from dvmap_verl.data.splits import SplitConfig, make_splits
from dvmap_verl.data.wvs import WVSInputError, build_respondents, read_wvs


@pytest.fixture(scope="module")
def synth_frame():
    return synth.generate(6000, seed=3)


@pytest.fixture(scope="module")
def synth_csv(tmp_path_factory, synth_frame):
    path = tmp_path_factory.mktemp("wvs") / "synthetic_wvs.csv"
    synth.write(synth_frame, path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".sav", ".dta"])
def test_all_formats_give_the_same_respondents(tmp_path, synth_frame, synth_csv, suffix):
    path = tmp_path / f"wvs{suffix}"
    synth.write(synth_frame, path)
    got = build_respondents(read_wvs(path)).frame
    ref = build_respondents(read_wvs(synth_csv)).frame
    pd.testing.assert_frame_equal(got.astype(str), ref.astype(str))


def test_sav_value_labels_name_religion_and_language(tmp_path, synth_frame):
    path = tmp_path / "wvs.sav"
    synth.write(synth_frame, path)
    data = read_wvs(path)
    assert data.value_labels["Q289CS9"][60000000] == "Hindu"
    resp = build_respondents(data)
    assert "Hindu" in set(resp.frame["Religion"]) and "unlabelled_codes" not in resp.stats


def test_polarity_reversed_columns_are_turned_back(synth_frame, synth_csv):
    assert "Q1P" in synth_frame.columns and "Q1" not in synth_frame.columns
    resp = build_respondents(read_wvs(synth_csv)).frame
    raw = synth_frame.set_index(np.arange(len(synth_frame)))
    p = raw["Q1P"].to_numpy()
    expected = np.where(p >= 0, 5 - p - 1, -1)  # original code = 5 - P, option index = code - 1
    assert (resp["Q1"].to_numpy() == expected).all()
    q8 = np.where(raw["Q8P"] >= 0, (2 - raw["Q8P"]) - 1, -1)  # 0/1 coded: original = 2 - P
    assert (resp["Q8"].to_numpy() == q8).all()


def test_reversed_scale_read_the_wrong_way_fails_loudly(tmp_path, synth_frame):
    wrong = synth_frame.rename(columns={"Q1P": "Q1"})  # a reversed column passed off as the original
    path = tmp_path / "wrong.csv"
    synth.write(wrong, path)
    with pytest.raises(WVSInputError, match=r"wrong\.csv: Q1 .* scale looks reversed"):
        build_respondents(read_wvs(path))


@pytest.mark.parametrize("qid", ["Q2", "Q46", "Q60", "Q131"])
def test_every_anchored_reversed_column_is_checked(tmp_path, synth_frame, qid):
    """Not only Q1: a ``…P`` column holding original codes (already turned back, or recoded) is refused, and so is
    a reversed column passed off under the original's name."""
    q = schema.QUESTION_BY_ID[qid]
    p = synth_frame[qid + "P"]
    unreversed = synth_frame.assign(**{qid + "P": np.where(p >= 0, q.reversed_max - p, p)})
    synth.write(unreversed, tmp_path / "a.csv")
    with pytest.raises(WVSInputError, match=rf"a\.csv: {qid}P .* scale looks reversed \(a polarity-reversed"):
        build_respondents(read_wvs(tmp_path / "a.csv"))
    synth.write(synth_frame.rename(columns={qid + "P": qid}), tmp_path / "b.csv")
    with pytest.raises(WVSInputError, match=rf"b\.csv: {qid} .* scale looks reversed \(a reversed column under"):
        build_respondents(read_wvs(tmp_path / "b.csv"))


def test_direction_checks_are_recorded(synth_csv):
    stats = build_respondents(read_wvs(synth_csv)).stats
    assert set(stats["scale_direction_checked"]) == {"Q1", *schema.LEANS_TO_FIRST_OPTIONS}
    # Direction-neutral items (politics, religion, child qualities) rest on the file's convention: listed.
    assert set(stats["reversed_columns_without_anchor"]) == {"Q4P", "Q6P", "Q8P", "Q9P"}


def test_codes_map_to_release_labels_and_missing_is_not_answered(synth_csv, synth_frame):
    resp = build_respondents(read_wvs(synth_csv)).frame
    assert set(resp["Life Stage"].astype(str)) <= set(schema.LIFE_STAGE_BINS.labels)
    assert set(resp["Income Bracket"].astype(str)) <= set(schema.INCOME_BINS.labels)
    assert set(resp["Has Children"].astype(str)) <= {"has no children", "has at least one child", "Not Answered"}
    assert "Not Answered" in set(resp["Marital Status"].astype(str))
    assert "Not Answered" in set(resp["Work Nature"].astype(str))  # -3 not applicable for retirees
    for attr in schema.ATTRIBUTES:
        if not attr.allow_missing:
            assert "Not Answered" not in set(resp[attr.name].astype(str)), attr.name
    # Egypt was not asked Q36/Q69.
    egypt = resp[resp["Country"] == "Egypt"]
    assert (egypt["Q36"] == -1).all() and (egypt["Q69"] == -1).all()


def test_binning_edges():
    assert schema.LIFE_STAGE_BINS.label(17) == "Adolescence"
    assert schema.LIFE_STAGE_BINS.label(18) == "Young Adulthood"
    assert schema.LIFE_STAGE_BINS.label(35) == "Middle Adulthood"
    assert schema.LIFE_STAGE_BINS.label(65) == "Older Adulthood"
    assert [schema.SCALE10_BINS.label(v) for v in (1, 3, 4, 7, 8, 10)] == ["Low", "Low", "Medium", "Medium",
                                                                           "High", "High"]
    assert schema.QUESTION_BY_ID["Q49"].option_for_code(7) == 1


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda f: f.drop(columns=["Q260"]), r"missing required WVS variable\(s\): Gender \(Q260\)"),
        (lambda f: f.drop(columns=["Q1P"]), r"Q1 \(or Q1P\)"),
        (lambda f: f.iloc[:0], r"the table is empty"),
        (lambda f: f.assign(B_COUNTRY=f["B_COUNTRY"].astype(object).where(f.index != 5, "XX")),
         r"B_COUNTRY has 1 value\(s\) that are not ISO 3166 numeric country codes, e.g. 'XX'"),
        (lambda f: f.assign(B_COUNTRY=250), r"none of the DVMap countries"),
    ],
)
def test_bad_input_is_named(tmp_path, synth_frame, mutate, message):
    path = tmp_path / "bad.csv"
    mutate(synth_frame.copy()).to_csv(path, index=False)
    with pytest.raises(WVSInputError, match=message):
        build_respondents(read_wvs(path))


def test_unreadable_and_absent_files(tmp_path):
    with pytest.raises(WVSInputError, match="no such file"):
        read_wvs(tmp_path / "nope.csv")
    bad = tmp_path / "garbage.sav"
    bad.write_bytes(b"\x00not spss")
    with pytest.raises(WVSInputError, match=r"garbage\.sav: cannot read as sav"):
        read_wvs(bad)
    with pytest.raises(WVSInputError, match=r"unsupported file type '\.xlsx'"):
        (tmp_path / "x.xlsx").write_text("x")
        read_wvs(tmp_path / "x.xlsx")


def _respondents(rows):
    """Hand-built respondent table: rows of (profile tweak, Q1 answer, Q2 answer)."""
    base = {"Country": "Germany", "Gender": "Female", "Marital Status": "Married", "Has Children": "has no children",
            "Education Level": "Master or equivalent (ISCED 7)", "Occupation": "Student",
            "Work Nature": "Not Answered", "Religion": "Non-religious", "Life Stage": "Young Adulthood",
            "Income Bracket": "Low income", "Common Language": "German"}
    recs = []
    for gender, q1, q2 in rows:
        recs.append({**base, "Gender": gender, "Q1": q1, "Q2": q2})
    df = pd.DataFrame(recs)
    for a in schema.ATTRIBUTE_NAMES:
        df[a] = df[a].astype("category")
    df["Q1"] = df["Q1"].astype(np.int8)
    df["Q2"] = df["Q2"].astype(np.int8)
    return df


def test_entropy_filter_keeps_only_agreeing_profiles():
    # Three women agree on Q1 and disagree on Q2; one man (a singleton) answers both; one man skipped Q2.
    df = _respondents([("Female", 0, 0), ("Female", 0, 1), ("Female", 0, 0), ("Male", 1, 2)])
    arch = extract_archetypes(df, ["Q1", "Q2"])
    kept = {(arch.profiles.loc[p, "Gender"], q): a for p, q, a in
            arch.pairs[["profile_id", "Q_id", "answer_index"]].itertuples(index=False)}
    assert kept == {("Female", "Q1"): 0, ("Male", "Q1"): 1, ("Male", "Q2"): 2}
    s = arch.stats
    assert s["profiles"] == 2 and s["shared_profile_respondent_share"] == 0.75
    assert s["pairs"] == 4 and s["pairs_dropped"] == 1 and s["answers_dropped_share"] == 3 / 8
    majority = extract_archetypes(df, ["Q1", "Q2"], consensus="majority")
    kept_m = {(majority.profiles.loc[p, "Gender"], q): a for p, q, a in
              majority.pairs[["profile_id", "Q_id", "answer_index"]].itertuples(index=False)}
    assert kept_m[("Female", "Q2")] == 0  # 2 of 3 said option 0
    tie = extract_archetypes(_respondents([("Female", 0, 0), ("Female", 1, 1)]), ["Q1", "Q2"], consensus="majority")
    assert tie.pairs.empty


def test_negative_answers_do_not_count_as_disagreement():
    df = _respondents([("Female", 0, -1), ("Female", 0, 3)])
    arch = extract_archetypes(df, ["Q1", "Q2"])
    assert sorted(arch.pairs["Q_id"]) == ["Q1", "Q2"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, synth_csv):
    out = tmp_path_factory.mktemp("prepared")
    stats = prepare_wvs(synth_csv, out, config=SplitConfig(max_profiles_per_country=120,
                                                           cross_country_max_profiles_per_country=30,
                                                           cross_value_max_profiles_per_country=40, seed=7),
                        quiet=True)
    return out, stats


def test_splits_are_profile_disjoint_and_well_formed(prepared):
    out, stats = prepared
    frames = {s: pd.read_parquet(out / f"{s}.parquet") for s in schema.SPLITS}
    pid = {s: set(f["extra_info"].map(lambda e: e["profile_id"])) for s, f in frames.items()}
    assert not pid["train"] & pid["cross_demographic"] and not pid["train"] & pid["val"]
    assert not pid["val"] & pid["cross_demographic"]
    countries = {s: set(f["extra_info"].map(lambda e: e["country"])) for s, f in frames.items()}
    assert countries["train"] <= set(schema.TRAIN_COUNTRIES)
    assert countries["cross_country"] <= set(schema.CROSS_COUNTRIES) and len(countries["cross_country"]) == 8
    qids = {s: set(f["extra_info"].map(lambda e: e["q_id"])) for s, f in frames.items()}
    assert qids["train"] == set(schema.TRAIN_QUESTIONS)
    assert qids["cross_value"] <= set(schema.CROSS_VALUE_QUESTIONS) and len(qids["cross_value"]) == 7
    # Caps: at most 120 training-country profiles per country across train/val/cross-demographic.
    per_country = {}
    for s in ("train", "val", "cross_demographic"):
        for e in frames[s]["extra_info"]:
            per_country.setdefault(e["country"], set()).add(e["profile_id"])
    assert max(len(v) for v in per_country.values()) == 120
    # frequency: shares within each (country, question) cell of each split sum to 1 over distinct answers.
    for s, f in frames.items():
        ex = pd.DataFrame(list(f["extra_info"]))
        cell = ex.drop_duplicates(["country", "q_id", "answer"]).groupby(["country", "q_id"])["frequency"].sum()
        assert np.allclose(cell, 1.0), s
    assert stats["synthetic"] is True and "SYNTHETIC" in stats["note"]
    assert all(f["data_source"].str.startswith("dvmap-synthetic/").all() for f in frames.values())
    saved = json.loads((out / "stats.json").read_text())
    assert saved["splits"]["train"]["rows"] == len(frames["train"])
    assert 0.2 < saved["archetypes"]["shared_profile_respondent_share"] < 0.5


def test_seed_makes_splits_reproducible(synth_csv):
    resp = build_respondents(read_wvs(synth_csv))
    arch = extract_archetypes(resp.frame, resp.questions)
    a = make_splits(arch, SplitConfig(max_profiles_per_country=50, seed=1))
    b = make_splits(arch, SplitConfig(max_profiles_per_country=50, seed=1))
    c = make_splits(arch, SplitConfig(max_profiles_per_country=50, seed=2))
    pd.testing.assert_frame_equal(a["train"], b["train"])
    assert set(a["train"]["profile_key"]) != set(c["train"]["profile_key"])


def test_corpus_has_release_columns_and_prompts(prepared):
    out, _ = prepared
    corpus = pd.read_parquet(out / "corpus.parquet")
    assert list(corpus.columns) == [*schema.RELEASE_COLUMNS, "data_source", "split"]
    from dvmap_verl.data.prompts import user_prompt

    for r in corpus.sample(50, random_state=0).to_dict("records"):
        assert r["prompt"] == user_prompt(r)
        assert r["answer"] in r["Options"].split(", ")


def test_failed_prepare_leaves_no_output(tmp_path, synth_frame):
    path = tmp_path / "bad.csv"
    synth_frame.rename(columns={"Q1P": "Q1"}).to_csv(path, index=False)
    out = tmp_path / "out"
    with pytest.raises(WVSInputError):
        prepare_wvs(path, out, quiet=True)
    assert not out.exists() or not any(out.iterdir())


def test_cli_prepare_and_errors(tmp_path, synth_csv):
    out = tmp_path / "cli_out"
    res = subprocess.run([sys.executable, "-m", "dvmap_verl.cli", "prepare", "wvs", "--input", str(synth_csv),
                          "--out", str(out), "--max-profiles-per-country", "30", "--quiet"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    # --quiet: no per-split lines; the synthetic-data note and the input summary are always said
    assert "NOTE: SYNTHETIC DATA" in res.stdout and "respondents read" in res.stdout
    assert "cross_value.parquet" not in res.stdout
    assert {p.name for p in out.iterdir()} == {f"{s}.parquet" for s in schema.SPLITS} | {
        "corpus.parquet", "stats.json", "disagreement.parquet", "distributions.parquet", ".dvmap-manifest.json"}
    res = subprocess.run([sys.executable, "-m", "dvmap_verl.cli", "prepare", "wvs", "--input",
                          str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o2")], capture_output=True, text=True)
    assert res.returncode == 2 and "missing.csv: no such file" in res.stderr and "Traceback" not in res.stderr
    synth_out = tmp_path / "s.csv"
    res = subprocess.run([sys.executable, "data_prep/synth_wvs.py", "--out", str(synth_out), "--respondents", "500"],
                         capture_output=True, text=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))
    assert res.returncode == 0 and "SYNTHETIC" in res.stdout and synth_out.exists()
