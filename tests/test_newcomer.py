"""A newcomer's first hour (issue 23): no test item the training table holds, GPU commands that refuse at once on a
CPU and write nothing, a run that never started claims no folder, compare without shared items is an error, help
that shows defaults, --quiet that silences the libraries too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dvmap_verl.evaluation.compare import compare_runs
from dvmap_verl.evaluation.evaluate import PREDICTIONS, EvalConfig, prepare_run

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "dvmap_verl.cli"]
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(REPO)}


def dvmap(*argv, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, env=OFFLINE,
                          cwd=REPO)


@pytest.fixture(scope="module")
def data(synthetic_data) -> Path:
    return synthetic_data(3000, seed=8)


def rows(path: Path) -> int:
    return len(pd.read_parquet(path))


# ---------------------------------------------------------------------------------------------------------------
# No leakage by construction
# ---------------------------------------------------------------------------------------------------------------


def test_baselines_refuse_test_items_from_the_training_table(data, tmp_path):
    train, val = data / "train.parquet", data / "val.parquet"
    n_train, n_val = rows(train), rows(val)
    res = dvmap("baselines", "--train", train, "--test", val, train, "--out", tmp_path / "b")
    assert res.returncode == 2
    assert f"{n_train:,} of the {n_train + n_val:,} test items also occur in the training table" in res.stderr
    assert not (tmp_path / "b").exists()
    # Every table read is named with its rows, before the refusal.
    assert f"train: {train}: {n_train:,} rows" in res.stdout
    assert f"{val} (val): {n_val:,} items" in res.stdout and f"{train} (train): {n_train:,} items" in res.stdout

    res = dvmap("baselines", "--train", train, "--test", val, train, "--out", tmp_path / "b", "--drop-overlap")
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"dropped them, {n_val:,} items left" in res.stdout
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert metrics["n_items"] == n_val


def test_release_dev_as_train_and_part_of_test_is_refused(release_dev_path, data, tmp_path):
    n_dev, n_val = rows(release_dev_path), rows(data / "val.parquet")
    res = dvmap("baselines", "--train", release_dev_path, "--test", data / "val.parquet", release_dev_path,
                "--out", tmp_path / "b")
    assert res.returncode == 2 and not (tmp_path / "b").exists()
    assert f"{n_dev:,} of the {n_dev + n_val:,} test items also occur in the training table" in res.stderr


def test_eval_with_train_refuses_before_a_model_loads(data, tmp_path):
    train = data / "train.parquet"
    res = dvmap("eval", "--backend", "hf", "--model", "dvmap-test/no_model", "--data", train, "--train", train,
                "--out", tmp_path / "e")
    assert res.returncode == 2 and not (tmp_path / "e").exists()
    assert f"dvmap eval: {rows(train):,} of the {rows(train):,} test items" in res.stderr


def make_run(folder: Path, files: list[Path], train: Path | None) -> pd.DataFrame:
    """A run folder whose predictions are always the first option."""
    config = EvalConfig(backend="none", model=folder.name, data=[str(f) for f in files],
                        train=str(train) if train else None)
    items = prepare_run(folder, config)
    with open(folder / PREDICTIONS, "w") as fh:
        for r in items.itertuples():
            fh.write(json.dumps({"item": r.item, "sample": 0, "completion": f"<answer>{r.options[0]}</answer>",
                                 "answer": r.options[0], "pred": 0}) + "\n")
    return items


def test_compare_refuses_or_drops_items_of_the_training_table(data, tmp_path):
    train, val = data / "train.parquet", data / "val.parquet"
    make_run(tmp_path / "a", [val, train], train)
    make_run(tmp_path / "b", [val, train], None)
    with pytest.raises(ValueError, match=f"a: {rows(train):,} of its {rows(train) + rows(val):,} items also occur"):
        compare_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "cmp", bootstrap=0)
    assert not (tmp_path / "cmp").exists()
    out = compare_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "cmp", bootstrap=0, drop_overlap=True)
    (diff,) = out["differences"]
    assert diff["shared_items"] == rows(val) and diff["d_acc"] == 0.0
    assert any(f"{rows(train):,} of its" in n and "left out" in n for n in out["notes"])
    assert out["tables_read"][-1] == f"{train} (training split of a): {rows(train):,} rows"


def test_compare_without_shared_items_names_both_item_sets(data, tmp_path):
    make_run(tmp_path / "a", [data / "val.parquet"], None)
    make_run(tmp_path / "b", [data / "cross_country.parquet"], None)
    res = dvmap("compare", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "cmp", "--bootstrap", "0")
    assert res.returncode == 2 and not (tmp_path / "cmp").exists()
    assert "a and b share no item" in res.stderr
    assert f"a: {rows(data / 'val.parquet'):,} items (val " in res.stderr
    assert f"b: {rows(data / 'cross_country.parquet'):,} items (cross_country " in res.stderr
    assert "nan" not in res.stderr + res.stdout


# ---------------------------------------------------------------------------------------------------------------
# Preflight: GPU-only commands refuse at once on this CPU machine and write nothing
# ---------------------------------------------------------------------------------------------------------------


def _no_gpu():
    from dvmap_verl.preflight import cuda_devices

    if cuda_devices():
        pytest.skip("a CUDA GPU is visible: the CPU refusal cannot be shown here")


@pytest.mark.parametrize("argv, alternative", [
    (["smoke", "--gpus", "1", "--out", "{out}"], "dvmap demo --out DIR"),
    (["eval", "--backend", "vllm", "--model", "m", "--data", "{data}", "--out", "{out}"], "--backend hf"),
    (["eval", "--backend", "vllm", "--replicas", "2", "--model", "m", "--data", "{data}", "--out", "{out}"],
     "needs 2 CUDA GPU(s), 0 usable here"),
    (["utility", "--model", "m", "--device", "cuda", "--out", "{out}"], "--device cpu"),
    (["utility", "--model", "m", "--backend", "vllm", "--out", "{out}"], "--backend hf"),
])
def test_gpu_commands_refuse_on_a_cpu_within_seconds(argv, alternative, data, tmp_path):
    _no_gpu()
    out = tmp_path / "out"
    t0 = time.perf_counter()
    res = dvmap(*[a.format(out=out, data=data / "val.parquet") for a in argv], timeout=120)
    took = time.perf_counter() - t0
    assert res.returncode == 2, res.stderr[-2000:]
    (line,) = res.stderr.strip().splitlines()  # one line, no traceback
    assert "CUDA GPU(s), 0 usable here" in line and alternative in line
    assert not out.exists()
    assert took < 60  # a python start and a torch import; a busy shared machine is the slack


def test_utility_picks_the_cpu_itself(monkeypatch):
    from dvmap_verl import preflight
    from dvmap_verl.evaluation.utility import pick_device

    monkeypatch.setattr(preflight, "cuda_devices", lambda: 0)
    assert pick_device(None) == "cpu"
    monkeypatch.setattr(preflight, "cuda_devices", lambda: 2)
    assert pick_device(None) == "cuda" and pick_device("cpu") == "cpu"


def test_missing_package_is_named_with_its_install(monkeypatch):
    from dvmap_verl import preflight

    monkeypatch.setattr(preflight, "cuda_devices", lambda: 8)
    with pytest.raises(preflight.PreflightError) as err:
        preflight.require("dvmap x", gpus=1, packages=["no_such_package_dvmap"], instead="--cpu")
    assert str(err.value) == ("dvmap x: no_such_package_dvmap not installed (pip install 'dvmap-verl[gpu]'). "
                              "On a CPU: --cpu")
    preflight.require("dvmap x", gpus=8, packages=["json"])  # all there: no error


def test_a_run_whose_engine_never_starts_leaves_no_folder(data, tmp_path):
    out = tmp_path / "e"
    res = dvmap("eval", "--backend", "hf", "--model", "dvmap-test/no_model", "--data", data / "val.parquet",
                "--limit", "3", "--out", out)
    assert res.returncode != 0 and not out.exists()
    # A folder that held something else before keeps it, and only it.
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    dvmap("eval", "--backend", "hf", "--model", "dvmap-test/no_model", "--data", data / "val.parquet",
          "--limit", "3", "--out", out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


# ---------------------------------------------------------------------------------------------------------------
# Output people can read
# ---------------------------------------------------------------------------------------------------------------


def test_help_shows_defaults():
    from dvmap_verl.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    text = " ".join(sub["eval"].format_help().split())
    assert "sampling temperature in [0, 2] (paper: 0.7) (default: 0.7)" in text
    assert "seed of sampling and of --limit's subset (default: 0)" in text
    assert "(default: None)" not in text and "(default: False)" not in text
    demo = " ".join(sub["demo"].format_help().split())
    assert "synthetic respondents (default: 20000)" in demo
    pairs = " ".join(sub["eval-pairs"].format_help().split())
    assert "(default: likelihood judge)" in pairs  # a list default, written as it is typed
    for name, p in sub.items():  # every sub-command's help renders with the formatter
        assert "usage: dvmap " + name.split()[0] in p.format_help()


def test_quiet_switches_off_library_progress_bars(monkeypatch):
    import transformers
    from transformers.utils import logging as tlog

    from dvmap_verl.cli import quiet_libraries

    for k in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS", "TQDM_DISABLE",
              "TRANSFORMERS_VERBOSITY", "TRANSFORMERS_NO_ADVISORY_WARNINGS"):
        monkeypatch.delenv(k, raising=False)
    tlog.enable_progress_bar()
    try:
        quiet_libraries()
        assert not tlog.is_progress_bar_enabled()
        assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1" and os.environ["TQDM_DISABLE"] == "1"
        assert transformers.logging.get_verbosity() == transformers.logging.ERROR
    finally:
        tlog.enable_progress_bar()
        transformers.logging.set_verbosity_warning()


# ---------------------------------------------------------------------------------------------------------------
# CI fails rather than skips (issue 21 item 5)
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ci, outcome", [("true", "1 error"), ("", "1 skipped")])
def test_missing_release_split_fails_in_ci_and_skips_elsewhere(ci, outcome, tmp_path):
    env = {**OFFLINE, "DVMAP_SHARED": str(tmp_path / "no_shared"), "CI": ci}
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-header",
                          "tests/test_newcomer.py::test_release_dev_as_train_and_part_of_test_is_refused"],
                         capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert outcome in res.stdout.splitlines()[-1], res.stdout[-2000:]
    assert res.returncode == (1 if ci else 0)
    if ci:
        assert "in CI (CI=true) the tests that need it must run, not skip" in res.stdout


def test_report_of_a_model_run_without_predictions_says_so(data, tmp_path):
    """A model run that never generated (or whose every sample failed): the report says it holds 0 predictions
    instead of a model-less report; a baselines-only folder (backend none) is not warned about."""
    from dvmap_verl.evaluation.report import build_report

    run = tmp_path / "run"
    items = prepare_run(run, EvalConfig(backend="vllm", model="m", data=[str(data / "val.parquet")], limit=12,
                                        samples=1))
    out = build_report(run, bootstrap=0, importance=False)
    assert "model" not in out and len(items) == 12
    want = (f"no predictions: {run / PREDICTIONS} holds 0 model predictions of the 12 items (the run never generated, "
            f"or every sample failed)")
    assert [w for w in out["warnings"] if w.startswith("no predictions")] == [
        want + "; this report has no model numbers; rerun the same `dvmap eval` command to generate them"]
    assert want in (run / "report.md").read_text()
    base = tmp_path / "base"
    prepare_run(base, EvalConfig(backend="none", model="(baselines only)", data=[str(data / "val.parquet")],
                                 limit=12, samples=0))
    assert not any(w.startswith("no predictions") for w in build_report(base, bootstrap=0)["warnings"])


# ---------------------------------------------------------------------------------------------------------------
# Release locations read for evaluation: layout checked first, train not read as test items
# ---------------------------------------------------------------------------------------------------------------

CORPUS_DIR = "Demographic_Value_Alignment/DVMap_Corpus"
BENCH_DIR = "Triple-Generalization_Evaluation_Benchmark"
MINI = {"train": 30, "dev": 20, "test": 10, "Cross-Demographic": 12, "Cross-Country": 14, "Cross-Value": 16}
POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 1048576\n"


def mini_clone(root: Path, data: Path) -> Path:
    """The release's layout in small: corpus parquet files and benchmark Arrow folders (Cross-Country in 2 shards),
    rows with the release's columns from a synthetic prepared corpus."""
    import datasets

    corpus = pd.read_parquet(data / "corpus.parquet").drop(columns=["split"]).assign(data_source="wvs")
    start = 0
    (root / CORPUS_DIR).mkdir(parents=True)
    for name, n in MINI.items():
        part = corpus.iloc[start:start + n].reset_index(drop=True)
        start += n
        if name in ("train", "dev", "test"):
            part.to_parquet(root / CORPUS_DIR / f"{name}.parquet", index=False)
        else:
            ds = datasets.Dataset.from_pandas(part.drop(columns=["data_source"]), preserve_index=False)
            ds.save_to_disk(str(root / BENCH_DIR / name), num_shards=2 if name == "Cross-Country" else 1)
    return root


def test_a_partial_clone_to_eval_or_baselines_gets_the_full_table(data, tmp_path):
    """train.parquet an LFS pointer, Cross-Demographic's and Cross-Value's shard absent, Cross-Country's first shard
    a pointer: eval --data and baselines --test name every gap in one table with the LFS hint, write nothing."""
    root = mini_clone(tmp_path / "DVMap", data)
    (root / CORPUS_DIR / "train.parquet").write_text(POINTER)
    for name in ("Cross-Demographic", "Cross-Value"):
        (root / BENCH_DIR / name / "data-00000-of-00001.arrow").unlink()
    (root / BENCH_DIR / "Cross-Country" / "data-00000-of-00002.arrow").write_text(POINTER)
    table = [f"train              not fetched (git LFS pointer)         -  {CORPUS_DIR}/train.parquet (LFS pointer: "
             f"train.parquet)",
             f"val                found                                 -  {CORPUS_DIR}/dev.parquet",
             f"test               found                                 -  {CORPUS_DIR}/test.parquet",
             f"cross_demographic  incomplete                            -  {BENCH_DIR}/Cross-Demographic (absent: "
             f"data-00000-of-00001.arrow)",
             f"cross_country      not fetched (git LFS pointer)         -  {BENCH_DIR}/Cross-Country (LFS pointer: "
             f"data-00000-of-00002.arrow)",
             f"cross_value        incomplete                            -  {BENCH_DIR}/Cross-Value (absent: "
             f"data-00000-of-00001.arrow)"]
    for argv in (["eval", "--backend", "hf", "--model", "dvmap-test/no_model", "--data", root],
                 ["baselines", "--train", data / "train.parquet", "--test", root]):
        out = tmp_path / argv[0]
        res = dvmap(*argv, "--out", out)
        assert res.returncode == 2, res.stderr[-3000:]
        assert (f"dvmap: error: {root}: evaluation would read 3 table(s) that are not whole (cross_demographic, "
                f"cross_country, cross_value); nothing was read.") in res.stderr
        for line in table:
            assert line in res.stderr, res.stderr
        assert "git lfs pull" in res.stderr and "not a readable datasets.save_to_disk folder" not in res.stderr
        assert f"NOTE: {root}: its train split ({root / CORPUS_DIR / 'train.parquet'}) is not read" in res.stderr
        assert not out.exists()


def test_prepare_release_says_lfs_pointer_not_absent(data, tmp_path):
    root = mini_clone(tmp_path / "DVMap", data)
    (root / CORPUS_DIR / "train.parquet").write_text(POINTER)
    res = dvmap("prepare", "release", "--input", root, "--out", tmp_path / "out", "--quiet")
    assert res.returncode == 0, res.stderr[-2000:]
    assert (f"train              not fetched (git LFS pointer)         -  {CORPUS_DIR}/train.parquet (LFS pointer: "
            f"train.parquet)") in res.stderr
    assert "absent: train.parquet" not in res.stderr


def test_a_clone_root_as_test_items_leaves_its_train_split_out(data, tmp_path, capsys):
    from dvmap_verl.evaluation.evaluate import load_items

    root = mini_clone(tmp_path / "DVMap", data)
    items = load_items([root])
    assert items.groupby("split").size().to_dict() == {"val": 20, "test": 10, "cross_demographic": 12,
                                                       "cross_country": 14, "cross_value": 16}
    assert (f"NOTE: {root}: its train split ({root / CORPUS_DIR / 'train.parquet'}) is not read as test items; "
            f"give that table itself to evaluate it") in capsys.readouterr().err
    # Named itself, or read as a training table, the train split is read.
    assert load_items([root / CORPUS_DIR / "train.parquet"]).groupby("split").size().to_dict() == {"train": 30}
    assert load_items([root], test_items=False).groupby("split").size().to_dict() == {
        "train": 30, "val": 20, "test": 10, "cross_demographic": 12, "cross_country": 14, "cross_value": 16}
    # baselines --train ROOT/.../train.parquet --test ROOT: the train rows are not test items (20+10+12+14+16 = 72
    # items; before, its 30 train rows were test items too and the run was refused as leakage).
    res = dvmap("baselines", "--train", root / CORPUS_DIR / "train.parquet", "--test", root, "--out", tmp_path / "b")
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["n_items"] == 72


_HF2 = ["eval", "--backend", "hf", "--replicas", "2", "--data", "{data}", "--out", "{out}", "--model"]


@pytest.mark.parametrize("argv, model", [
    (_HF2, "/nonexistent"), (_HF2, "./no_model_here"), (_HF2, "~/no_model_here_dvmap"), (_HF2, "~nouser_dvmap/x"),
    (_HF2, "{tmp}/models/x"),
    (["eval", "--backend", "vllm", "--data", "{data}", "--out", "{out}", "--model"], "../no_model_here"),
    (["eval", "--backend", "openai", "--data", "{data}", "--out", "{out}", "--model", "m", "--tokenizer"],
     "/nonexistent"),
    (["eval-pairs", "--backend", "hf", "--data", "{data}", "--out", "{out}", "--model"], "/nonexistent"),
    (["utility", "--out", "{out}", "--model", "{tiny}", "--base"], "/nonexistent"),
])
def test_a_missing_local_model_folder_is_one_line_before_anything_starts(argv, model, data, tmp_path,
                                                                         tiny_model_dir):
    (tmp_path / "models").mkdir()  # the folder's first part exists: a local path, not an org/name repo id
    out = tmp_path / "out"
    model = model.format(tmp=tmp_path)
    t0 = time.perf_counter()
    res = dvmap(*[a.format(out=out, data=data / "val.parquet", tiny=tiny_model_dir) for a in argv], model,
                timeout=120)
    option = "--tokenizer" if "--tokenizer" in argv else "--base" if "--base" in argv else "--model"
    assert res.returncode == 2 and res.stderr.splitlines() == [
        f"dvmap: error: {option} {model}: no such local folder (a Hugging Face repo id looks like org/name)"]
    assert not out.exists() and time.perf_counter() - t0 < 60  # no Ray, no engine


def test_repo_ids_are_not_taken_for_local_paths(tmp_path, monkeypatch):
    import argparse

    from dvmap_verl.commands.common import check_local_models, looks_local

    monkeypatch.chdir(tmp_path)
    assert [looks_local(m) for m in ("Qwen/Qwen3-8B", "m", "/x", "./x", "../x", "~/x", "~x")] == \
        [False, False, True, True, True, True, True]
    check_local_models(argparse.Namespace(model="Qwen/Qwen3-8B", base=None), "model", "base")  # not refused
    (tmp_path / "Qwen").mkdir()  # now Qwen/Qwen3-8B names a local folder that is not there
    assert looks_local("Qwen/Qwen3-8B")
    with pytest.raises(ValueError, match=r"^--model Qwen/Qwen3-8B: no such local folder"):
        check_local_models(argparse.Namespace(model="Qwen/Qwen3-8B"), "model")
    (tmp_path / "Qwen" / "Qwen3-8B").mkdir()
    check_local_models(argparse.Namespace(model="Qwen/Qwen3-8B"), "model")  # it exists: accepted
