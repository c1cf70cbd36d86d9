"""prepare's input checks and its all-or-nothing commit, each built from a case of issues 21-23: survey files as
people export them (duplicated respondents, value-label text, out-of-range codes), inputs that yield nothing,
a commit that fails or is killed half way, and --overwrite beside a user's own files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dvmap_verl.data import schema, synth
from dvmap_verl.data.archetypes import extract_archetypes
from dvmap_verl.data.prepare import EmptySplitError, OutputExistsError, check_not_empty, prepare_wvs
from dvmap_verl.data.splits import SplitConfig, make_splits
from dvmap_verl.data.wvs import Respondents, WVSInputError, build_respondents, read_wvs
from dvmap_verl.io import JOURNAL, MANIFEST, CommitError, commit_staged, recover_interrupted_commit

SMALL = SplitConfig(max_profiles_per_country=40, cross_country_max_profiles_per_country=20,
                    cross_value_max_profiles_per_country=20, disagreement_max_profiles_per_country=10)


@pytest.fixture(scope="module")
def frame():
    return synth.generate(2500, seed=5)


@pytest.fixture(scope="module")
def csv(tmp_path_factory, frame):
    path = tmp_path_factory.mktemp("wvs") / "wvs.csv"
    synth.write(frame, path)
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones and subfolders included) by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} | {
        str(p.relative_to(folder)) + "/": b"" for p in sorted(folder.rglob("*")) if p.is_dir()}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvmap_verl.cli", *args], capture_output=True, text=True,
                          cwd=str(Path(__file__).parents[1]))


# ------------------------------------------------------------------------------------- survey files as exported


def test_a_country_appended_twice_is_refused_naming_count_country_and_ids(tmp_path, frame, csv):
    germany = frame[frame["B_COUNTRY"] == 276]
    synth.write(pd.concat([frame, germany]), tmp_path / "dup.csv")
    ids = germany["D_INTERVIEW"].head(3).tolist()
    with pytest.raises(WVSInputError, match=(
            rf"dup\.csv: {len(germany):,} duplicated respondent\(s\) \(same country and D_INTERVIEW\) in Germany "
            rf"\({len(germany):,}\), e\.g\. D_INTERVIEW {ids[0]}, {ids[1]}, {ids[2]}: .*--drop-duplicate-respondents")):
        prepare_wvs(tmp_path / "dup.csv", tmp_path / "o", config=SMALL, quiet=True)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
    # Dropping keeps the first of each: the splits are those of the file without the appended copy.
    stats = prepare_wvs(tmp_path / "dup.csv", tmp_path / "o", config=SMALL, quiet=True,
                        drop_duplicate_respondents=True)
    ref = prepare_wvs(csv, tmp_path / "ref", config=SMALL, quiet=True)
    saved = json.loads((tmp_path / "o" / "stats.json").read_text())
    assert saved["duplicate_respondents_dropped"] == len(germany) and ref["duplicate_respondents_dropped"] == 0
    assert stats["respondents_kept"] == ref["respondents_kept"]
    for split in schema.SPLITS:
        a, b = pd.read_parquet(tmp_path / "o" / f"{split}.parquet"), pd.read_parquet(tmp_path / "ref" / f"{split}.parquet")
        assert a["prompt"].map(lambda m: m[-1]["content"]).tolist() == b["prompt"].map(lambda m: m[-1]["content"]).tolist()


def test_identical_rows_without_an_interview_id_are_duplicates(tmp_path, frame):
    f = frame.drop(columns=["D_INTERVIEW"])
    synth.write(pd.concat([f, f.iloc[[10, 20]]]), tmp_path / "noid.csv")
    with pytest.raises(WVSInputError, match=r"2 duplicated respondent\(s\) \(identical in all \d+ columns read; the "
                                            r"file has no D_INTERVIEW.*e\.g\. data rows 2501, 2502"):
        build_respondents(read_wvs(tmp_path / "noid.csv"))


def label_text_file(tmp_path, frame) -> Path:
    """Q1P exported with value labels in 50 rows: the label of P code 4 (original 1) is 'Very important'."""
    f = frame.copy()
    f["Q1P"] = f["Q1P"].astype(object)
    rows = f.index[f["Q1P"] == 4][:50]
    f.loc[rows, "Q1P"] = "Very important"
    f.loc[rows[:5], "Q1P"] = " very IMPORTANT "  # spacing and case as exports vary
    path = tmp_path / "labels_exported.csv"
    f.to_csv(path, index=False)
    return path


def test_a_column_of_label_text_is_refused_naming_column_values_and_fix(tmp_path, frame):
    path = label_text_file(tmp_path, frame)
    with pytest.raises(WVSInputError, match=(
            r"labels_exported\.csv: column Q1P must hold numeric codes but holds text in 50 row\(s\), first values "
            r"\['very IMPORTANT', 'Very important'\].*\.sav or \.dta file.*--labels")):
        build_respondents(read_wvs(path))


def test_label_text_is_mapped_back_through_the_labels_and_counted(tmp_path, frame, csv):
    path = label_text_file(tmp_path, frame)
    (tmp_path / "labels.json").write_text(json.dumps({"Q1P": {"4": "Very important", "1": "Not at all important"}}))
    got = build_respondents(read_wvs(path, labels=tmp_path / "labels.json"))
    ref = build_respondents(read_wvs(csv))
    assert got.stats["values_coerced"] == {"Q1P": 50} and ref.stats["values_coerced"] == {}
    assert (got.frame["Q1"].to_numpy() == ref.frame["Q1"].to_numpy()).all()  # 'Very important' -> option 0


def test_codes_outside_a_scale_are_counted_per_column(tmp_path, frame):
    f = frame.copy()
    f.loc[f.index[:7], "Q1P"] = 99
    f["Q46P"] = f["Q46P"].astype(float)
    f.loc[f.index[:4], "Q46P"] = 2.5  # not a code at all
    f.loc[f.index[:3], "Q262"] = 250  # an age no life stage holds
    synth.write(f, tmp_path / "oor.csv")
    stats = prepare_wvs(tmp_path / "oor.csv", tmp_path / "o", config=SMALL, quiet=True)
    assert stats["values_out_of_range"] == {"Q262": 3, "Q1P": 7, "Q46P": 4}
    assert json.loads((tmp_path / "o" / "stats.json").read_text())["values_out_of_range"] == {
        "Q262": 3, "Q1P": 7, "Q46P": 4}


# ------------------------------------------------------------------------------------------- empty results


def test_a_file_whose_value_questions_are_all_missing_exits_1_naming_why(tmp_path, frame):
    f = frame.copy()
    for q in schema.QUESTIONS:
        for col in (q.qid, q.qid + "P"):
            if col in f:
                f[col] = -2  # WVS "no answer"
    synth.write(f, tmp_path / "blank.csv")
    res = run_cli("prepare", "wvs", "--input", str(tmp_path / "blank.csv"), "--out", str(tmp_path / "o"), "--quiet")
    assert res.returncode == 1, res.stderr
    assert ("blank.csv: no rows for train, val, cross_demographic, cross_country: every value question it asks "
            "(Q1, Q2") in res.stderr and "for cross_value: every value question it asks (Q8, Q9" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "o").exists()


def _hand_respondents(rows, country="Germany") -> Respondents:
    base = {"Country": country, "Gender": "Female", "Marital Status": "Married", "Has Children": "has no children",
            "Education Level": "Master or equivalent (ISCED 7)", "Occupation": "Student",
            "Work Nature": "Not Answered", "Religion": "Non-religious", "Life Stage": "Young Adulthood",
            "Income Bracket": "Low income", "Common Language": "German"}
    df = pd.DataFrame([{**base, "Q1": a, "Q2": b} for a, b in rows])
    for a in schema.ATTRIBUTE_NAMES:
        df[a] = df[a].astype("category")
    df[["Q1", "Q2"]] = df[["Q1", "Q2"]].astype(np.int8)
    return Respondents(df, ["Q1", "Q2"], {"input": "hand.csv", "questions_missing": []})


def test_the_h0_filter_and_the_country_filter_are_named_when_they_empty_a_split():
    # Two respondents of one profile who disagree on both questions: 4 answers, no H = 0 pair.
    resp = _hand_respondents([(0, 0), (1, 1)])
    arch = extract_archetypes(resp.frame, resp.questions)
    splits = make_splits(arch, SplitConfig(val_frac=0.0, cross_demographic_frac=0.0))
    with pytest.raises(EmptySplitError) as e:
        check_not_empty(splits, resp, arch, "strict", SplitConfig(val_frac=0.0, cross_demographic_frac=0.0))
    msg = str(e.value)
    assert msg.startswith("hand.csv: no rows for train: its respondents gave 4 answers, but no (profile, question) "
                          "pair passes the consensus filter ('strict'")
    assert "for cross_country: no respondent of its countries (" in msg and "(countries kept: Germany)" in msg
    assert "val" not in msg.split("for cross_country")[0].replace("val_frac", "")  # a 0 fraction asks for no val


# ------------------------------------------------------------------------------------ all or nothing commits


def old_and_new(tmp_path) -> tuple[Path, Path]:
    """A folder holding an old set (committed, so with its manifest) and a user's file; a staged new set that
    replaces two of the old files, adds one and drops one."""
    out, stage = tmp_path / "out", tmp_path / "out" / ".staging-1-x"
    out.mkdir()
    first = tmp_path / "first"
    first.mkdir()
    for name, text in {"train.parquet": "old train", "val.parquet": "old val", "test.parquet": "old test",
                       "stats.json": "{\"old\": 1}"}.items():
        (first / name).write_text(text)
    commit_staged(first, out)
    (out / "my_notes.txt").write_text("the user's own file")
    stage.mkdir()
    for name, text in {"train.parquet": "new train", "val.parquet": "new val", "cross_value.parquet": "new cv",
                       "stats.json": "{\"new\": 1}"}.items():
        (stage / name).write_text(text)
    return out, stage


def test_a_commit_that_fails_at_any_step_leaves_the_folder_byte_identical(tmp_path, monkeypatch):
    real = os.replace
    n = 0
    while True:
        n += 1
        case = tmp_path / str(n)
        case.mkdir()
        out, stage = old_and_new(case)
        before = {k: v for k, v in snapshot(out).items() if not k.startswith(".staging")}
        calls = 0

        def failing(src, dst, _n=n):
            nonlocal calls
            calls += 1
            if calls == _n:
                raise OSError(28, "No space left on device")
            return real(src, dst)

        monkeypatch.setattr(os, "replace", failing)
        try:
            commit_staged(stage, out, remove=[out / "test.parquet"])
        except CommitError as e:
            monkeypatch.setattr(os, "replace", real)
            assert "the folder holds the set it held before" in str(e)
            after = {k: v for k, v in snapshot(out).items() if not k.startswith(".staging")}
            assert after == before, f"failure at os.replace call {n}"
            continue
        monkeypatch.setattr(os, "replace", real)
        break
    assert n > 10  # every step of a real commit was failed once: 3 journal writes, 5 backups, 5 placements, ...
    assert {k: v for k, v in snapshot(out).items() if not k.startswith(".staging")} | {MANIFEST: b""} == {
        "train.parquet": b"new train", "val.parquet": b"new val", "cross_value.parquet": b"new cv",
        "stats.json": b'{"new": 1}', "my_notes.txt": b"the user's own file", MANIFEST: b""}


KILL = """
import os, sys
from pathlib import Path
from dvmap_verl.io import commit_staged
real, calls = os.replace, [0]
def killing(src, dst):
    calls[0] += 1
    if calls[0] == int(sys.argv[2]):
        os._exit(9)  # as kill -9: no cleanup runs
    return real(src, dst)
os.replace = killing
out = Path(sys.argv[1])
commit_staged(out / ".staging-1-x", out, remove=[out / "test.parquet"])
"""


@pytest.mark.parametrize("kill_at", [2, 3, 5, 8, 10])  # journal write, backing up, between the phases, placing
def test_a_killed_commit_is_rolled_back_by_the_next_run(tmp_path, kill_at):
    from dvmap_verl.data.completeness import MissingSplitError, require_split

    out, stage = old_and_new(tmp_path)
    before = {k: v for k, v in snapshot(out).items() if not k.startswith(".staging")}
    res = subprocess.run([sys.executable, "-c", KILL, str(out), str(kill_at)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert res.returncode == 9, res.stderr
    if kill_at > 2:  # killed after the journal was written: readers are told, the next run rolls back
        assert (out / JOURNAL).exists()
        with pytest.raises(MissingSplitError, match="a prepare was stopped while moving its files in"):
            require_split(out, "train", "dvmap eval")
        assert "rolled back" in recover_interrupted_commit(out)
    else:
        assert recover_interrupted_commit(out) is None
    from dvmap_verl.io import remove_stale_staging

    remove_stale_staging(out)
    assert {k: v for k, v in snapshot(out).items() if not k.startswith(".staging")} == before


def test_prepare_that_cannot_replace_train_leaves_the_old_set(tmp_path, csv, monkeypatch):
    out = tmp_path / "out"
    prepare_wvs(csv, out, config=SMALL, quiet=True)
    (out / "my_notes.txt").write_text("mine")
    before = snapshot(out)
    real = os.replace

    def no_train(src, dst):
        if Path(dst) == out / "train.parquet" and Path(src).parent.name.startswith(".staging-"):
            raise PermissionError(13, "Permission denied", str(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", no_train)
    with pytest.raises(CommitError, match="could not move the new files into place"):
        prepare_wvs(csv, out, config=SplitConfig(**{**SMALL.as_dict(), "seed": 9}), overwrite=True, quiet=True)
    monkeypatch.setattr(os, "replace", real)
    assert snapshot(out) == before


def test_overwrite_removes_only_the_packages_own_files(tmp_path, csv):
    out = tmp_path / "out"
    prepare_wvs(csv, out, config=SMALL, quiet=True)
    # A folder prepared before manifests: stats.json lists the user's file among its outputs.
    (out / MANIFEST).unlink()
    stats = json.loads((out / "stats.json").read_text())
    stats["outputs"].append("my_notes.txt")
    (out / "stats.json").write_text(json.dumps(stats))
    (out / "my_notes.txt").write_text("mine")
    prepare_wvs(csv, out, config=SMALL, overwrite=True, quiet=True)
    assert (out / "my_notes.txt").read_text() == "mine"
    # With a manifest: a file of the set that the user replaced is theirs now, and --overwrite will not touch it.
    (out / "cross_value.parquet").write_bytes(b"the user's own table")
    before = snapshot(out)
    with pytest.raises(OutputExistsError, match=r"cross_value\.parquet was not written by dvmap prepare \(or "
                                                r"changed since\); --overwrite replaces only the package's own"):
        prepare_wvs(csv, out, config=SMALL, overwrite=True, quiet=True)
    assert snapshot(out) == before
    # The old set's own files that the new set lacks go: a release import's test.parquet is not left beside it.
    (out / "cross_value.parquet").unlink()
    manifest = json.loads((out / MANIFEST).read_text())
    del manifest["files"]["cross_value.parquet"]
    (out / MANIFEST).write_text(json.dumps(manifest))
    kept = prepare_wvs(csv, out, config=SMALL, overwrite=True, quiet=True)
    assert sorted(p.name for p in out.iterdir()) == sorted([*kept["outputs"], "my_notes.txt"])
