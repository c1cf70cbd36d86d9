"""Issue 26: the question bank as data, every country, survey weights, the joint EVS/WVS layout, bank drafts.

Worked values: the paper's bank entries as the paper states them, a digest of today's prepared output (made with
the code before the bank existed), H = 0 counts per split counted independently with pandas from the raw codes,
weighted counts computed by hand on a five-respondent file, and a drafted bank from a .sav written here."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from dvmap_verl.cli import main
from dvmap_verl.data import countries as C
from dvmap_verl.data import schema, synth
from dvmap_verl.data.bank import BankError, default_bank, dump_bank, load_bank
from dvmap_verl.data.prepare import prepare_wvs
from dvmap_verl.data.splits import SplitConfig
from dvmap_verl.data.wvs import BankEntryError, build_respondents, read_wvs

NO_CAP = SplitConfig(max_profiles_per_country=0, cross_country_max_profiles_per_country=0,
                     cross_value_max_profiles_per_country=0, disagreement_max_profiles_per_country=0)


# ------------------------------------------------------------------------------------------------ the default bank


def test_the_default_bank_holds_the_papers_23_questions():
    bank = default_bank()
    assert bank.train == ("Q1", "Q2", "Q3", "Q4", "Q5", "Q6", "Q27", "Q29", "Q36", "Q46", "Q49", "Q50", "Q60",
                          "Q69", "Q112", "Q131")
    assert bank.cross_value == ("Q8", "Q9", "Q37", "Q61", "Q70", "Q113", "Q132")
    q1, q49, q8 = bank.by_id["Q1"], bank.by_id["Q49"], bank.by_id["Q8"]
    assert q1.text == "How important is family in your life?" and q1.reversed_variable == "Q1P"
    assert q1.options == ("Very important", "Rather important", "Not very important", "Not at all important")
    assert q1.reversed_max == 5 and q8.reversed_max == 2 and q49.reversed_variable is None
    # 1-10 scales binned 1-3 / 4-7 / 8-10; codes outside (0, 11, 2.5) hold no option.
    assert [q49.option_for_code(c) for c in (1, 3, 4, 7, 8, 10, 0, 11, 2.5)] == [0, 0, 1, 1, 2, 2, None, None, None]
    assert [q1.option_for_code(c) for c in (1, 4, 5)] == [0, 3, None]
    assert all(not q.required for q in bank.questions if q.split == "cross_value")


def _digest(out: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(json.dumps(pq.read_table(f).to_pylist(), sort_keys=True, default=str)
                                   .encode()).hexdigest()[:16] for f in sorted(out.glob("*.parquet"))}


def test_the_default_bank_reproduces_the_output_made_before_the_bank(tmp_path):
    """The digests were made by the code before the question bank existed (the 23 questions as a Python table),
    on this synthetic file and configuration: every split, the corpus and the distributions come out the same."""
    synth.write(synth.generate(2500, seed=5), tmp_path / "w.csv")
    cfg = SplitConfig(max_profiles_per_country=40, cross_country_max_profiles_per_country=20,
                      cross_value_max_profiles_per_country=20, disagreement_max_profiles_per_country=10)
    prepare_wvs(tmp_path / "w.csv", tmp_path / "o", config=cfg, quiet=True, targets="distribution",
                target_smoothing=0.2)
    assert _digest(tmp_path / "o") == {
        "corpus.parquet": "cb963a9a0e701008", "cross_country.parquet": "243ee4a82809382c",
        "cross_demographic.parquet": "f2c3027d75f36e55", "cross_value.parquet": "a81a901c786e3a2a",
        "disagreement.parquet": "f66e9d54560bee07", "distributions.parquet": "bec505c553accbaa",
        "train.parquet": "855772644e152251", "val.parquet": "658cb4257b37c701"}
    # The same bank given as a file (a copy of the default) gives the same files.
    (tmp_path / "bank.yaml").write_text(dump_bank(default_bank().questions))
    prepare_wvs(tmp_path / "w.csv", tmp_path / "o2", config=cfg, quiet=True, targets="distribution",
                target_smoothing=0.2, bank=tmp_path / "bank.yaml")
    assert _digest(tmp_path / "o2") == _digest(tmp_path / "o")


# ----------------------------------------------------------------------------------------------------- bank errors


def _bank_file(tmp_path, entries, name="bank.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"questions": entries}, sort_keys=False))
    return path


Q46 = {"id": "Q46", "reversed_variable": "Q46P", "reversed_sum": 5, "text": "Happy?", "category": "HAPPINESS",
       "options": ["Very happy", "Rather happy", "Not very happy", "Not at all happy"]}


@pytest.mark.parametrize("entries, message", [
    ([Q46, {**Q46, "text": "again"}], r"bank\.yaml: entry 2 \(Q46\): duplicate id, entry 1 has it too"),
    ([{**Q46, "optons": ["a", "b"]}], r"entry 1 \(Q46\): unknown key\(s\) optons"),
    ([{**Q46, "codes": [1, 2, 3]}], r"entry 1 \(Q46\): codes must be identity, reversed or a list with one item per "
                                    r"option \(4\)"),
    ([{**Q46, "codes": ["1-2", 2, 3, 4]}], r"entry 1 \(Q46\): code 2 is in two options \(1 and 2\)"),
    ([{**Q46, "split": "test"}], r"entry 1 \(Q46\): split must be one of train, cross_value"),
    ([{**Q46, "reversed_sum": None}], r"entry 1 \(Q46\): reversed_variable 'Q46P' needs reversed_sum"),
    ([{**Q46, "options": [f"o{i}" for i in range(10)], "codes": None}], r"at most 8 \(bin a longer scale"),
])
def test_a_bad_bank_entry_is_named(tmp_path, entries, message):
    with pytest.raises(BankError, match=message):
        load_bank(_bank_file(tmp_path, entries))


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("wvs") / "w.csv"
    synth.write(synth.generate(2500, seed=5), path)
    return path


def test_a_bank_entry_whose_column_is_absent_is_named(tmp_path, small_csv):
    bank = load_bank(_bank_file(tmp_path, [Q46, {**Q46, "id": "Q199", "reversed_variable": None, "text": "x"}]))
    with pytest.raises(BankEntryError, match=r"w\.csv: missing required WVS variable\(s\) \(question bank .*bank\.yaml"
                                             r"\): Q199$"):
        read_wvs(small_csv, bank=bank)


def test_options_that_leave_out_answer_codes_are_named(tmp_path, small_csv):
    # Q46P holds codes 1-4 (original 4-1): three options leave original code 4 ('Not at all happy') out.
    three = {**Q46, "options": Q46["options"][:3], "reversed_sum": 5}
    bank = load_bank(_bank_file(tmp_path, [three]))
    n4 = int((synth.generate(2500, seed=5)["Q46P"] == 1).sum())  # P = 1 is original code 5 - 1 = 4
    with pytest.raises(BankEntryError, match=(
            rf"entry Q46: column Q46P holds answer code\(s\) 4 \({n4:,} respondents\) \(as original codes = 5 - Q46P\) "
            rf"that its options \['Very happy', 'Rather happy', 'Not very happy'\] \(codes 1, 2, 3\) do not cover")):
        build_respondents(read_wvs(small_csv, bank=bank))


# ------------------------------------------------------------------------------------------------------- countries


def test_country_names_come_from_iso_3166_and_the_papers_names_stay():
    assert C.name_for_numeric(840) == "United States of America"  # the release's string, not pycountry's
    assert C.name_for_numeric(410) == "South Korea" and C.name_for_numeric(404) == "Kenya"
    assert C.name_for_alpha("arg") == "Argentina" and C.name_for_alpha("DE") == "Germany"
    assert C.parse_countries("KEN, arg", "--train-countries") == ("Kenya", "Argentina")
    assert C.parse_countries("all-others", "--unseen-countries") == C.ALL_OTHERS
    with pytest.raises(ValueError, match=r"--train-countries: XXX, Q1 are not ISO 3166 alpha-3"):
        C.parse_countries("KEN,XXX,Q1", "--train-countries")
    design = C.resolve_design(("Kenya",), C.ALL_OTHERS, ["Germany", "Kenya", "Chile"])
    assert design.train == ("Kenya",) and design.unseen == ("Germany", "Chile")
    with pytest.raises(ValueError, match=r"Kenya cannot be both a training and an unseen country"):
        C.resolve_design(("Kenya",), ("Kenya",), [])
    assert C.resolve_design(None, C.parse_countries("none", "--unseen-countries"), []).unseen == ()
    with pytest.raises(ValueError, match=r"--train-countries: no training country"):
        C.resolve_design((), None, [])
    # A listed country the file does not hold: named by code, with the file's countries (not silently kept).
    with pytest.raises(ValueError) as e:
        C.resolve_design(("Kenya", "Germany"), None, ["Germany", "Nigeria"])
    assert str(e.value) == "--train-countries: KEN (Kenya) not in the file; its countries: DEU, NGA"
    with pytest.raises(ValueError) as e:
        C.parse_countries("DEU,all-others", "--train-countries")
    assert str(e.value) == ("--train-countries: all-others stands alone (every country of the file not in the other "
                            "role); it cannot be mixed with codes: 'DEU,all-others'")


# ------------------------------------------------- 40 countries x 60 questions through a bank: independent H = 0 count


def _independent_profiles(raw: pd.DataFrame) -> pd.DataFrame:
    """The 11 attributes as codes, written here from the SPEC's mapping (not the package's): missing demographics
    merge into one value; respondents without a required one are dropped."""
    def code(col):
        v = raw[col]
        return v.where(v >= 0, -1)
    p = pd.DataFrame({
        "country": raw["B_COUNTRY"], "gender": code("Q260"), "marital": code("Q273"),
        "children": np.select([raw["Q274"] < 0, raw["Q274"] == 0], [-1, 0], 1), "edu": code("Q275"),
        "occ": code("Q279"), "work": code("Q284"), "religion": code("Q289CS9"),
        "stage": pd.cut(raw["Q262"], [0, 18, 35, 51, 65, 200], right=False, labels=False),
        "income": pd.cut(raw["Q288"], [1, 4, 8, 11], right=False, labels=False), "language": code("Q272")})
    return p[(p["gender"] >= 0) & p["stage"].notna() & p["income"].notna() & (p["language"] >= 0)]


def _h0_pairs(raw: pd.DataFrame, profiles: pd.DataFrame, bank) -> pd.DataFrame:
    """(profile, question) pairs whose answering respondents all gave one option: one row each, with country."""
    out = []
    for q in bank.questions:
        if q.qid in raw:
            codes = raw[q.qid]
        else:
            p = raw[q.reversed_variable]
            codes = p.where(p < 0, q.reversed_max - p)
        opt = codes.map(dict(q.codes)).loc[profiles.index]
        df = profiles.assign(opt=opt).dropna(subset=["opt"])
        g = df.groupby(list(profiles.columns))["opt"].nunique()
        h0 = g[g == 1].reset_index()
        out.append(pd.DataFrame({"country": h0["country"], "q": q.qid}))
    return pd.concat(out, ignore_index=True)


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A synthetic file of 40 countries x 60 questions (dvmap synth-wvs), a bank of the 60 (the last 5 extra items
    held out as cross-value), prepared with the paper's 10 training countries and every other one unseen."""
    tmp = tmp_path_factory.mktemp("wide")
    assert main(["synth-wvs", "--out", str(tmp / "w.csv"), "--respondents", "2500", "--seed", "2",
                 "--countries", "40", "--questions", "60"]) == 0
    questions = list(synth.synthetic_questions(60))
    for i in range(55, 60):
        questions[i] = dataclasses.replace(questions[i], split="cross_value")
    (tmp / "bank.yaml").write_text(dump_bank(questions, "wide"))
    assert main(["prepare", "wvs", "--input", str(tmp / "w.csv"), "--out", str(tmp / "o"), "--bank",
                 str(tmp / "bank.yaml"), "--unseen-countries", "all-others", "--max-profiles-per-country", "0",
                 "--cross-country-max-profiles-per-country", "0", "--cross-value-max-profiles-per-country", "0",
                 "--disagreement-max-profiles-per-country", "0", "--quiet"]) == 0
    return tmp


def test_h0_counts_per_split_equal_an_independent_count(wide):
    raw = pd.read_csv(wide / "w.csv")
    bank = load_bank(wide / "bank.yaml")
    assert len(bank.questions) == 60 and raw["B_COUNTRY"].nunique() == 40
    pairs = _h0_pairs(raw, _independent_profiles(raw), bank)
    train_c = {c.iso_num for c in schema.COUNTRIES if c.split == "train"}
    in_train = pairs["country"].isin(train_c)
    cv = pairs["q"].isin(bank.cross_value)
    rows = {s: len(pd.read_parquet(wide / "o" / f"{s}.parquet", columns=["data_source"])) for s in schema.SPLITS}
    assert rows["train"] + rows["val"] + rows["cross_demographic"] == int((in_train & ~cv).sum())
    assert rows["cross_country"] == int((~in_train & ~cv).sum())
    assert rows["cross_value"] == int((in_train & cv).sum())
    stats = json.loads((wide / "o" / "stats.json").read_text())
    assert len(stats["countries"]["unseen"]) == 30 and stats["question_bank"]["questions"] == 60
    assert {q for q, n in stats["splits"]["cross_country"]["per_question"].items() if n} == set(bank.train)


# ------------------------------------------------------------------------------------------------- survey weights


def _five_respondents(tmp_path) -> Path:
    """Five respondents: profile A (Germany, three people), profile B (Germany, two), N (Nigeria, one... of B's
    demographics). Q1 answers and weights chosen so that raw and weighted majorities differ."""
    base = {"Q260": 2, "Q262": 30, "Q273": 1, "Q274": 0, "Q275": 7, "Q279": 6, "Q284": -3, "Q288": 2,
            "Q289CS9": 100000020, "Q272": 1880, "DVMAP_SYNTHETIC": 1}
    rows = [
        {**base, "B_COUNTRY": 276, "Q1": 1, "Q2": 1, "W_WEIGHT": 0.5},   # A
        {**base, "B_COUNTRY": 276, "Q1": 1, "Q2": 1, "W_WEIGHT": 1.0},   # A
        {**base, "B_COUNTRY": 276, "Q1": 2, "Q2": 1, "W_WEIGHT": 2.0},   # A
        {**base, "B_COUNTRY": 276, "Q260": 1, "Q1": 1, "Q2": 3, "W_WEIGHT": 1.0},  # B
        {**base, "B_COUNTRY": 276, "Q260": 1, "Q1": 1, "Q2": 4, "W_WEIGHT": 3.0},  # B
        {**base, "B_COUNTRY": 566, "Q1": 2, "Q2": 2, "W_WEIGHT": 1.25},  # N
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "five.csv", index=False)
    bank = [{"id": q, "text": f"{q}?", "category": "C", "options": list(schema.IMPORTANCE)} for q in ("Q1", "Q2")]
    _bank_file(tmp_path, bank, "two.yaml")
    return tmp_path / "five.csv"


def test_weighted_counts_equal_a_hand_count(tmp_path):
    path = _five_respondents(tmp_path)
    stats = prepare_wvs(path, tmp_path / "o", config=SplitConfig(val_frac=0, cross_demographic_frac=0),
                        bank=tmp_path / "two.yaml", weights="W_WEIGHT", targets="distribution", quiet=True)
    assert stats["weights"] == "W_WEIGHT"
    d = pd.read_parquet(tmp_path / "o" / "distributions.parquet")
    d["counts"], d["weighted_counts"] = d["counts"].map(list), d["weighted_counts"].map(list)
    country = d[(d["level"] == "country_question") & (d["country"] == "Germany")].set_index("q_id")
    # Germany, Q1: codes 1,1,2,1,1 with weights .5, 1, 2, 1, 3 -> raw [4, 1], weighted [5.5, 2.0].
    assert country.loc["Q1", "counts"] == [4, 1, 0, 0] and country.loc["Q1", "weighted_counts"] == [5.5, 2.0, 0, 0]
    assert country.loc["Q1", "weighted_n"] == 7.5 and country.loc["Q1", "n"] == 5
    # Germany, Q2: codes 1,1,1,3,4 -> weighted [3.5, 0, 1, 3].
    assert country.loc["Q2", "weighted_counts"] == [3.5, 0.0, 1.0, 3.0]
    # Profile A on Q1 disagrees (raw 2 vs 1, weighted 1.5 vs 2.0): a disagreement row whose answer is the weighted
    # majority and whose target is the weighted distribution; the H = 0 filter stays on raw agreement.
    dis = pd.read_parquet(tmp_path / "o" / "disagreement.parquet")
    ex = pd.DataFrame(list(dis["extra_info"]))
    a = ex[(ex["gender"] == "Female") & (ex["q_id"] == "Q1") & (ex["country"] == "Germany")].iloc[0]
    assert list(a["counts"]) == [2, 1, 0, 0] and list(a["weighted_counts"]) == [1.5, 2.0, 0.0, 0.0]
    assert a["answer"] == "Rather important" and np.allclose(a["target"], [1.5 / 3.5, 2 / 3.5, 0, 0])
    train = pd.DataFrame(list(pd.read_parquet(tmp_path / "o" / "train.parquet")["extra_info"]))
    b = train[(train["gender"] == "Male") & (train["q_id"] == "Q1")].iloc[0]  # B agrees on Q1: kept, H = 0
    assert list(b["counts"]) == [2, 0, 0, 0] and list(b["weighted_counts"]) == [4.0, 0, 0, 0]


def test_a_missing_or_negative_weight_is_named(tmp_path):
    path = _five_respondents(tmp_path)
    f = pd.read_csv(path)
    f.loc[3, "W_WEIGHT"] = -1.0
    f.to_csv(tmp_path / "neg.csv", index=False)
    with pytest.raises(ValueError, match=r"neg\.csv: --weights W_WEIGHT: 1 row\(s\) without a finite, non-negative "
                                         r"weight, e\.g\. data rows 4 \(-1\.0\)"):
        prepare_wvs(tmp_path / "neg.csv", tmp_path / "o", bank=tmp_path / "two.yaml", weights="W_WEIGHT", quiet=True)
    with pytest.raises(ValueError, match=r"five\.csv: --weights S018: the file has no such column"):
        read_wvs(path, weights="S018")


def test_weights_summing_to_zero_in_a_group_are_refused_before_writing(tmp_path):
    path, cfg = _five_respondents(tmp_path), SplitConfig(val_frac=0, cross_demographic_frac=0)
    f = pd.read_csv(path)
    f.loc[5, "W_WEIGHT"] = 0.0  # Nigeria's only respondent: its country distributions would be 0/0
    f.to_csv(tmp_path / "zn.csv", index=False)
    with pytest.raises(ValueError, match=r"^.*zn\.csv: --weights W_WEIGHT: the weights of Nigeria's 1 answer\(s\) "
                                         r"to Q1 sum to 0 \(2 such country_question group\(s\)\); a weighted "
                                         r"distribution needs a positive, finite sum"):
        prepare_wvs(tmp_path / "zn.csv", tmp_path / "o", bank=tmp_path / "two.yaml", weights="W_WEIGHT",
                    targets="distribution", quiet=True, config=cfg)
    assert not (tmp_path / "o").exists()
    f = pd.read_csv(path)
    f.loc[[3, 4], "W_WEIGHT"] = 0.0  # profile B (the German men): Germany sums to 3.5, its men to 0
    f.to_csv(tmp_path / "zb.csv", index=False)
    with pytest.raises(ValueError, match=r"the weights of Germany \(Male, [^)]+\)'s 2 answer\(s\) to Q1 sum to 0 "
                                         r"\(2 such coarse group\(s\)\)"):
        prepare_wvs(tmp_path / "zb.csv", tmp_path / "o", bank=tmp_path / "two.yaml", weights="W_WEIGHT", quiet=True,
                    config=cfg)
    assert not (tmp_path / "o").exists()
    f = pd.read_csv(path)
    f["W_WEIGHT"] = 1e308 * (1 - 0.01 * f.index)  # finite (and distinct) each, but Germany's sum overflows to inf
    f.to_csv(tmp_path / "big.csv", index=False)
    with pytest.raises(ValueError, match=r"the weights of Germany's \d+ answer\(s\) to Q1 sum to inf "):
        prepare_wvs(tmp_path / "big.csv", tmp_path / "o", bank=tmp_path / "two.yaml", weights="W_WEIGHT", quiet=True,
                    config=cfg)
    assert not (tmp_path / "o").exists()


def test_a_bank_without_train_questions_is_an_error_and_writes_nothing(tmp_path):
    path = _five_respondents(tmp_path)
    bank = [{"id": q, "text": f"{q}?", "category": "C", "options": list(schema.IMPORTANCE), "split": "cross_value"}
            for q in ("Q1", "Q2")]
    _bank_file(tmp_path, bank, "cv.yaml")
    with pytest.raises(ValueError) as e:
        prepare_wvs(path, tmp_path / "o", bank=tmp_path / "cv.yaml", quiet=True, drop_duplicate_respondents=True,
                    config=SplitConfig(val_frac=0, cross_demographic_frac=0))
    assert str(e.value) == (f"{path}: no rows for train, cross_country: the question bank has no entry for it "
                            f"(every split but cross_value needs entries with split: train)")
    assert not (tmp_path / "o").exists()


def test_an_entry_none_of_whose_values_fits_its_codes_is_named(tmp_path):
    """A bank entry pointed at the wrong column (B_COUNTRY: 276 x 5, 566 x 1): every value is out of range, so
    the question would silently have no rows; it is an error naming the entry and the values."""
    path = _five_respondents(tmp_path)
    bank = [{"id": q, "text": f"{q}?", "category": "C", "options": list(schema.IMPORTANCE)} for q in ("Q1", "Q2")]
    bank += [{"id": "Q10x", "variable": "B_COUNTRY", "text": "Mentioned?", "category": "C",
              "options": ["Mentioned", "Not mentioned"], "codes": "identity"}]
    _bank_file(tmp_path, bank, "wrong.yaml")
    with pytest.raises(BankEntryError) as e:
        prepare_wvs(path, tmp_path / "o", bank=tmp_path / "wrong.yaml", quiet=True, drop_duplicate_respondents=True)
    assert str(e.value) == (f"{path}: question bank {tmp_path / 'wrong.yaml'}: entry Q10x: none of column B_COUNTRY's "
                            f"6 non-missing value(s) (276, 566) is one of its codes (1, 2); check the entry's variable "
                            f"and codes")
    assert not (tmp_path / "o").exists()


def test_a_yaml_syntax_error_in_a_bank_is_one_line(tmp_path):
    from dvmap_verl.data.bank import load_bank as load

    (tmp_path / "bad.yaml").write_text("questions:\n  - id: Q1\n    text: [unclosed\n")
    with pytest.raises(BankError) as e:
        load(tmp_path / "bad.yaml")
    # The parser's own words differ between libyaml (CSafeLoader, used when PyYAML has it) and pure-Python PyYAML:
    # "did not find expected ',' or ']'" / "expected ',' or ']', but got '<stream end>'". Where is ours.
    message = str(e.value)
    assert message.startswith(f"{tmp_path / 'bad.yaml'}: cannot read as a YAML question bank (line 4, column 1: ")
    assert "expected ',' or ']'" in message and message.endswith(")") and "\n" not in message


# ------------------------------------------------------------------------------------------ the joint EVS/WVS file


def test_the_joint_layout_reads_to_the_same_corpus(tmp_path):
    frame = synth.generate(2500, seed=5)
    synth.write(frame, tmp_path / "w.csv")
    joint = synth.generate(2500, seed=5, layout="joint")
    assert {"cntry", "cntry_AN", "A001", "X001", "X047_WVS7", "X047E_EVS5", "S018"} <= set(joint.columns)
    assert "B_COUNTRY" not in joint and set(joint["cntry_AN"].head(50)) <= {a.alpha_2 for a in
                                                                            __import__("pycountry").countries}
    synth.write(joint, tmp_path / "j.csv")
    cfg = SplitConfig(max_profiles_per_country=40, cross_country_max_profiles_per_country=20,
                      cross_value_max_profiles_per_country=20, disagreement_max_profiles_per_country=10)
    a = prepare_wvs(tmp_path / "w.csv", tmp_path / "a", config=cfg, quiet=True, weights="W_WEIGHT")
    b = prepare_wvs(tmp_path / "j.csv", tmp_path / "b", config=cfg, quiet=True, weights="S018")
    assert a["layout"] == "wvs7" and b["layout"] == "joint" and b["weights"] == "S018"
    for name in ("corpus", "distributions", "disagreement"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / f"{name}.parquet"),
                                      pd.read_parquet(tmp_path / "b" / f"{name}.parquet"))


# ---------------------------------------------------------------------------------------------- bank drafts (.sav)


def test_a_bank_is_drafted_from_sav_labels(tmp_path, capsys):
    import pyreadstat

    df = pd.DataFrame({"Q57": [1, 2, 2, -1, -2, 1], "Q106": [1, 5, 10, 7, -1, 3], "V9": [1, 1, 1, 1, 1, 1]})
    pyreadstat.write_sav(df, str(tmp_path / "x.sav"), column_labels=["Most people can be trusted",
                                                                     "Incomes more equal vs larger differences",
                                                                     "filler"],
                         variable_value_labels={"Q57": {1.0: "Most people can be trusted",
                                                        2.0: "Need to be very careful", -1.0: "Don't know",
                                                        -2.0: "No answer"},
                                                "Q106": {1.0: "Incomes should be made more equal",
                                                         10.0: "There should be greater incentives",
                                                         -1.0: "Don't know"}})
    assert main(["question-bank", "--input", str(tmp_path / "x.sav"), "--questions", "q57,Q106", "--out",
                 str(tmp_path / "draft.yaml")]) == 0
    assert "review the question texts" in capsys.readouterr().out
    raw = yaml.safe_load((tmp_path / "draft.yaml").read_text())
    assert raw["questions"] == [
        {"id": "Q57", "text": "Most people can be trusted", "options": ["Most people can be trusted",
                                                                         "Need to be very careful"],
         "codes": "identity", "category": "UNREVIEWED", "split": "train"},
        # Codes 1, 3, 5, 7, 10 present or labelled (one more than 8 would be, all within 1..10): a 1-10 scale?
        # Only 5 codes: kept as options, the unlabelled ones as "code N".
        {"id": "Q106", "text": "Incomes more equal vs larger differences",
         "options": ["Incomes should be made more equal", "code 3", "code 5", "code 7",
                     "There should be greater incentives"],
         "codes": [1, 3, 5, 7, 10], "category": "UNREVIEWED", "split": "train"}]
    assert load_bank(tmp_path / "draft.yaml").by_id["Q57"].codes == ((1, 0), (2, 1))
    # A drafted bank is refused over an existing file, and absent variables are named.
    assert main(["question-bank", "--input", str(tmp_path / "x.sav"), "--questions", "Q57", "--out",
                 str(tmp_path / "draft.yaml")]) == 2
    assert main(["question-bank", "--input", str(tmp_path / "x.sav"), "--questions", "Q57,Q999", "--out",
                 str(tmp_path / "d2.yaml")]) == 2
    assert "no variable(s) Q999 in the file" in capsys.readouterr().err and not (tmp_path / "d2.yaml").exists()
    # A name given twice, a folder as --out, a continuous column (a weight): one line each, naming the user's input.
    x = str(tmp_path / "x.sav")
    assert main(["question-bank", "--input", x, "--questions", "Q57,q57", "--out", str(tmp_path / "d3.yaml")]) == 2
    assert capsys.readouterr().err == "dvmap: error: --questions: q57 given twice\n"
    (tmp_path / "qdir").mkdir()
    assert main(["question-bank", "--input", x, "--questions", "Q57", "--out", str(tmp_path / "qdir"),
                 "--overwrite"]) == 2
    assert capsys.readouterr().err == (f"dvmap: error: --out {tmp_path / 'qdir'}: is a folder; give the bank file's "
                                       f"path (e.g. {tmp_path / 'qdir' / 'bank.yaml'})\n")
    pyreadstat.write_sav(pd.DataFrame({"W_WEIGHT": [0.5, 1.0, 1.25, 1.5]}), str(tmp_path / "w.sav"))
    assert main(["question-bank", "--input", str(tmp_path / "w.sav"), "--questions", "W_WEIGHT", "--out",
                 str(tmp_path / "d4.yaml")]) == 2
    assert capsys.readouterr().err == (f"dvmap: error: {tmp_path / 'w.sav'}: W_WEIGHT holds values that are not "
                                       f"integer codes (e.g. 0.5, 1.25, 1.5): a continuous variable, not a question "
                                       f"with options\n")
    assert not any((tmp_path / f).exists() for f in ("d3.yaml", "d4.yaml"))


def test_a_synthetic_sav_drafts_a_bank_that_prepares(tmp_path):
    """synth-wvs .sav -> question-bank (the extra items, binned 1-10 scale included) -> prepare wvs --bank."""
    assert main(["synth-wvs", "--out", str(tmp_path / "s.sav"), "--respondents", "3000", "--seed", "4",
                 "--questions", "27"]) == 0
    assert main(["question-bank", "--input", str(tmp_path / "s.sav"), "--questions",
                 "Q1P,Q7,Q10,Q11,Q12", "--out", str(tmp_path / "b.yaml")]) == 0
    bank = load_bank(tmp_path / "b.yaml")
    assert bank.by_id["Q12"].options == ("Low", "Medium", "High") and bank.by_id["Q12"].scale10
    assert bank.by_id["Q1P"].options == ("Not at all important", "Not very important", "Rather important",
                                         "Very important")
    stats = prepare_wvs(tmp_path / "s.sav", tmp_path / "o", bank=bank, quiet=True,
                        unseen_countries="NGA,IRN", config=SplitConfig(max_profiles_per_country=30))
    assert stats["question_bank"]["train"] == ["Q1P", "Q7", "Q10", "Q11", "Q12"]
    assert {q for q, n in stats["splits"]["train"]["per_question"].items() if n} == {"Q1P", "Q7", "Q10", "Q11",
                                                                                      "Q12"}
    assert "cross_value" not in [k for k, v in stats["splits"].items() if v["rows"]]  # no cross-value questions


def test_any_country_code_is_named_from_numeric_or_alpha_codes(tmp_path):
    frame = synth.generate(1500, seed=6, countries="KEN,ARG,KOR,DEU")
    synth.write(frame, tmp_path / "num.csv")
    synth.write(frame.drop(columns=["B_COUNTRY"]), tmp_path / "alpha.csv")
    want = ("Kenya", "Argentina", "South Korea", "Germany")
    by_num = build_respondents(read_wvs(tmp_path / "num.csv"), countries=want)
    by_alpha = build_respondents(read_wvs(tmp_path / "alpha.csv"), countries=want)
    assert by_num.frame["Country"].value_counts().to_dict() == by_alpha.frame["Country"].value_counts().to_dict()
    counts = frame["B_COUNTRY_ALPHA"].value_counts()
    assert set(by_num.frame["Country"].astype(str)) == set(want)
    # Every respondent is kept (synthetic required attributes are never missing): per country, the file's count.
    assert by_num.frame["Country"].astype(str).value_counts().to_dict() == {
        "Kenya": counts["KEN"], "Argentina": counts["ARG"], "South Korea": counts["KOR"], "Germany": counts["DEU"]}
