"""Interoperating with the authors' evaluation: their rule to the character, and their result CSVs as run folders."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys

import pandas as pd
import pytest

from dvmap_verl.reward.answers import extract_answer_release, release_correct, release_rule_applies, resolve_answer

IMPORTANCE = "Very important, Rather important, Not very important, Not at all important"
AGREE4 = "Strongly agree, Agree, Disagree, Strongly disagree"
COMMA = "Yes, definitely, No"  # an option that holds a comma: their split on "," makes it two

# (completion, options, truth, verdict under their rule): each worked out by reading eval_api_parallel.py.
TABLE = [
    ("<answer>Very important</answer>", IMPORTANCE, "Very important", True),           # equal
    ("<answer>very important</answer>", IMPORTANCE, "Very important", False),          # case-sensitive
    ("<answer>Very important", IMPORTANCE, "Very important", False),                   # no closing tag: None
    ("<ANSWER>Very important</ANSWER>", IMPORTANCE, "Very important", False),          # tags are case-sensitive
    ("<answer>\n  Agree \n</answer>", AGREE4, "Agree", True),                          # stripped
    ("<answer>Agree</answer> no, <answer>Disagree</answer>", AGREE4, "Disagree", True),  # the last block
    ("<answer>Agree</answer> no, <answer>Disagree</answer>", AGREE4, "Agree", False),
    ("<answer>Agree</answer> <answer>Disagree", AGREE4, "Agree", False),               # last block unclosed
    ("<answer>Agree.</answer>", AGREE4, "Agree", True),                                # contains, no other option
    ("<answer>I agree</answer>", AGREE4, "Agree", False),                              # "agree" is not "Agree"
    ("<answer>I Agree</answer>", AGREE4, "Agree", True),
    ("<answer>I agree</answer>", AGREE4, "Disagree", False),
    ("<answer>I Disagree</answer>", AGREE4, "Disagree", True),                         # "agree" inside: not "Agree"
    ("<answer>Strongly agree</answer>", AGREE4, "Agree", False),
    ("<answer>Agree or Strongly agree</answer>", AGREE4, "Agree", False),              # another option named
    ("<answer>Not very important.</answer>", IMPORTANCE, "Not very important", True),  # "Very" is capitalised
    ("<answer>Yes, definitely</answer>", COMMA, "Yes, definitely", True),              # equal
    ("<answer>Yes, definitely!</answer>", COMMA, "Yes, definitely", False),            # contains the piece "Yes"
    ("<answer></answer>", AGREE4, "Agree", False),                                      # empty
    ("no tags at all: Agree", AGREE4, "Agree", False),
]


@pytest.mark.parametrize("completion, options, truth, verdict", TABLE)
def test_their_rule_to_the_character(completion, options, truth, verdict):
    assert release_correct(completion, options, truth) is verdict
    assert release_correct(completion, [o.strip() for o in options.split(", ")], truth) is verdict  # list form


def test_their_extraction_and_skip_rule():
    assert extract_answer_release("<answer> a </answer> tail") == "a"
    assert extract_answer_release("<answer>a</answer><answer>b") is None
    assert extract_answer_release(None) is None
    assert release_rule_applies(AGREE4, "Agree") and not release_rule_applies(AGREE4, "Maybe")


def test_the_rules_disagree_where_the_readme_says():
    """One example per row of the README's difference table."""
    rows = [("<answer>very important</answer>", "Very important"), ("<answer>Very important", "Very important"),
            ("<ANSWER>Very important</ANSWER>", "Very important"), ("<answer>I agree</answer>", "Agree"),
            ("<answer>2</answer>", "Rather important")]
    from dvmap_verl.reward.answers import extract_answer

    for text, truth in rows:
        opts = AGREE4 if truth == "Agree" else IMPORTANCE
        ours = resolve_answer(extract_answer(text), opts)
        assert ours is not None and opts.split(", ")[ours] == truth, text
        assert release_correct(text, opts, truth) is False, text
    comma = ["Yes, definitely", "No"]  # items keep options as a list, so the comma stays inside the option
    text = "<answer>Yes, definitely!</answer>"
    assert resolve_answer(extract_answer(text), comma) == 0 and release_correct(text, comma, comma[0]) is False


# ------------------------------------------------------------------------------------------------ import-run


def _their_is_correct(resp: str, options: str, expected: str) -> bool:
    """A transcription of their evaluate_model_openai's verdict, kept apart from ours on purpose."""
    parts = resp.split("<answer>")
    predicted = None
    if len(parts) >= 2 and "</answer>" in parts[-1]:
        predicted = parts[-1].split("</answer>")[0].strip()
    un_opts = [o for o in [o.strip() for o in options.strip().split(",")] if o != expected]
    if predicted == expected:
        return True
    return bool(predicted and expected in predicted and all(opt not in predicted for opt in un_opts))


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory):
    import datasets
    from test_release_layout import release_rows

    rows = release_rows(tmp_path_factory).iloc[:600].reset_index(drop=True)
    folder = tmp_path_factory.mktemp("bench") / "Cross-Demographic"
    datasets.Dataset.from_pandas(rows.drop(columns=["data_source"]), preserve_index=False).save_to_disk(str(folder))
    return folder, rows


def _write_their_csv(path, rows: pd.DataFrame, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    fields = ["UID", "Q_id", "prompt", "Country", "Gender", "Marital Status", "Has Children", "Education Level",
              "Occupation", "Work Nature", "Religion", "Life Stage", "Income Bracket", "response", "answer",
              "frequency", "Options", "expected", "predicted", "is_correct"]
    out = []
    for idx, e in enumerate(rows.to_dict("records")):
        opts = e["Options"].split(", ")
        said = rng.choice([e["answer"], e["answer"].lower(), rng.choice(opts), f"I {e['answer']}"])
        resp = f"<reasoning>\nline one\nline two, with a comma\n</reasoning>\n<answer>\n{said}\n</answer>"
        row = {k: e.get(k, "") for k in fields}
        row.update(UID=f"{idx}_{e['Q_id']}", response=resp, expected=e["answer"], frequency="",
                   predicted=said, is_correct=_their_is_correct(resp, e["Options"], e["answer"]))
        out.append(row)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(out)
    return out


def test_import_run_joins_counts_and_scores(benchmark, tmp_path):
    folder, rows = benchmark
    written = _write_their_csv(tmp_path / "a.csv", rows.iloc[:400])
    # A second file from a resumed run: it repeats a row, holds a prompt from nowhere, and one hand-edited verdict.
    extra = _write_their_csv(tmp_path / "b.csv", rows.iloc[[5, 400, 401]], seed=1)
    extra[0]["UID"] = "5_dup"
    extra[1]["prompt"] = "a prompt that matches no benchmark item"
    extra[2]["is_correct"] = not extra[2]["is_correct"]
    with open(tmp_path / "b.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(extra[0]))
        w.writeheader()
        w.writerows(extra)

    run = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "dvmap_verl.cli", "import-run", "--release-csv",
                          str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--benchmark", str(folder), "--out",
                          str(run), "--bootstrap", "0"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "duplicate: 1 row(s) not imported: 5_dup (b.csv row 1), repeats 5_" in res.stdout
    assert "unjoined: 1 row(s) not imported: 1_" in res.stdout and "(b.csv row 2)" in res.stdout
    meta = json.loads((run / "run.json").read_text())["import"]
    assert meta["rows_read"] == 403 and meta["imported"] == 401
    assert meta["duplicate"]["count"] == 1 and meta["unjoined"]["count"] == 1

    metrics = json.loads((run / "metrics.json").read_text())["model"]
    imported = metrics["imported"]
    theirs = [bool(r["is_correct"]) for r in written] + [bool(extra[2]["is_correct"])]
    assert imported["their_is_correct_acc"] == pytest.approx(sum(theirs) / 401)
    # Their column and the rule recomputed here agree everywhere except the hand-edited row, which is named.
    assert imported["disagreements"] == 1 and imported["disagreeing_uids"][0].startswith("2_")
    assert metrics["release_acc"] == pytest.approx((sum(theirs[:-1]) + (not theirs[-1])) / 401)
    assert metrics["coverage"] == pytest.approx(401 / 600)
    # Our resolver accepts "I Agree" and lower-cased truths where theirs does not.
    assert metrics["resolver_acc"] > metrics["release_acc"]
    assert "imported is_correct" in res.stdout and "partial run" in res.stdout
    # The frequency they left empty comes back from the benchmark item.
    items = pd.read_parquet(run / "items.parquet")
    assert items["frequency"].notna().all()

    again = subprocess.run([sys.executable, "-m", "dvmap_verl.cli", "import-run", "--release-csv",
                            str(tmp_path / "a.csv"), "--benchmark", str(folder), "--out", str(run)],
                           capture_output=True, text=True)
    assert again.returncode == 2 and "already holds a run" in again.stderr


def test_import_run_names_a_csv_that_is_not_theirs(benchmark, tmp_path):
    folder, _ = benchmark
    pd.DataFrame({"UID": ["1"], "prompt": ["x"]}).to_csv(tmp_path / "x.csv", index=False)
    res = subprocess.run([sys.executable, "-m", "dvmap_verl.cli", "import-run", "--release-csv",
                          str(tmp_path / "x.csv"), "--benchmark", str(folder), "--out", str(tmp_path / "r")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "x.csv: missing column(s) ['response', 'answer', 'is_correct']" in res.stderr
    assert not (tmp_path / "r").exists()


def test_report_correctness_release_and_its_old_name(benchmark, tmp_path):
    from dvmap_verl.evaluation.import_run import import_release_csv
    from dvmap_verl.evaluation.report import build_report

    folder, rows = benchmark
    _write_their_csv(tmp_path / "a.csv", rows.iloc[:200])
    import_release_csv([tmp_path / "a.csv"], folder, tmp_path / "run", quiet=True)
    release = build_report(tmp_path / "run", bootstrap=0, importance=False, correctness="release")["model"]
    lenient = build_report(tmp_path / "run", bootstrap=0, importance=False, correctness="lenient")["model"]
    assert release["acc"] == lenient["acc"] == pytest.approx(release["imported"]["their_is_correct_acc"])
    assert release["correctness"] == "release"
