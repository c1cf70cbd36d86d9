"""``dvmap``'s exit contract: the package's own errors (bad input, an unusable environment) are one line and exit 2;
any other exception is a bug, shown with its traceback and a line saying so, exit 1."""

from __future__ import annotations

import pytest

from dvmap_verl import cli
from dvmap_verl.errors import DvmapError, EnvironmentProblem, InputError, MissingInputError


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    # `dvmap report` on a folder without items.parquet: MissingInputError from evaluation/report.py.
    assert cli.main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"dvmap: error: {tmp_path}: no items.parquet; run `dvmap eval` or `dvmap baselines` into it first\n"


def test_an_unexpected_exception_is_reported_as_a_bug_with_its_traceback(tmp_path, capsys, monkeypatch):
    from dvmap_verl.commands import report

    def broken(args):
        return {}["no such key"]  # a programming error, not bad input: it used to read as "exit 2, bad input"

    monkeypatch.setattr(report, "run", broken)
    assert cli.main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "KeyError: 'no such key'" in err
    assert err.splitlines()[-1].startswith("dvmap report: this is a bug in dvmap-verl, not a problem with your "
                                           "input: please report it")


def test_verbose_shows_the_traceback_of_bad_input(tmp_path):
    with pytest.raises(MissingInputError, match="no items.parquet"):
        cli.main(["-v", "report", str(tmp_path)])


@pytest.mark.parametrize("module, name, builtin", [
    ("dvmap_verl.data.wvs", "WVSInputError", ValueError),
    ("dvmap_verl.data.release", "ReleaseInputError", ValueError),
    ("dvmap_verl.data.prepare", "OutputExistsError", ValueError),
    ("dvmap_verl.data.prepare", "EmptySplitError", ValueError),
    ("dvmap_verl.data.completeness", "MissingSplitError", FileNotFoundError),
    ("dvmap_verl.jsonl", "RunFileError", ValueError),
    ("dvmap_verl.evaluation.runs", "RunSettingsError", ValueError),
    ("dvmap_verl.evaluation.runs", "RunLockedError", RuntimeError),
    ("dvmap_verl.evaluation.import_run", "RunImportError", ValueError),
    ("dvmap_verl.evaluation.backends.openai", "ServerUnreachableError", ConnectionError),
    ("dvmap_verl.evaluation.backends.replicas", "ReplicaStartError", RuntimeError),
    ("dvmap_verl.training.curves", "CurvesInputError", ValueError),
    ("dvmap_verl.reward.answers", "BadOptions", ValueError),
    ("dvmap_verl.io", "CommitError", OSError),
    ("dvmap_verl.preflight", "PreflightError", RuntimeError),
    ("dvmap_verl.errors", "MissingPackage", ImportError),
])
def test_error_classes_are_dvmap_errors_that_keep_their_builtin_base(module, name, builtin):
    import importlib

    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, DvmapError) and issubclass(cls, builtin)


def test_the_three_kinds_keep_their_builtin_bases():
    assert issubclass(InputError, ValueError) and issubclass(MissingInputError, FileNotFoundError)
    assert issubclass(EnvironmentProblem, RuntimeError)


def test_an_operating_system_refusal_is_one_line_not_a_bug(tmp_path, capsys):
    # --out under a regular file: making its folder, the OS says "File exists" (errno 17); the machine's state,
    # not a bug.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["synth-wvs", "--out", str(blocker / "wvs.csv"), "--respondents", "10"]) == 2
    err = capsys.readouterr().err
    assert err == f"dvmap: error: [Errno 17] File exists: '{blocker}'\n"
