"""Extending evaluation from outside the package: a toy readout and a toy backend registered by a plugin module
(no package file edited) reach ``dvmap eval --help``, run through ``dvmap eval``, and their records and metrics
carry values worked by hand. Also the registries' refusals and the plugin loader's two ways of naming a module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dvmap_verl.plugins as plugins
from dvmap_verl.errors import EnvironmentProblem, InputError
from dvmap_verl.evaluation import backends as B
from dvmap_verl.evaluation import readouts as R
from dvmap_verl.evaluation.backends import GenerationSettings, ScoringBackend, make_backend
from dvmap_verl.evaluation.evaluate import EvalConfig, read_predictions, run_eval

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "dvmap_verl.cli"]

#: The plugin a user would write: one file, outside the package.
TOY_PLUGIN = '''
from dvmap_verl.evaluation.readouts import Readout, register_readout


@register_readout
class UniformReadout(Readout):
    """Every option equally likely: no model call at all."""

    name = "uniform"
    description = "every option equally likely (a toy)"

    def run(self, run, requests):
        for r in requests:
            k = len(run.options(r.item))
            run.record_probs(r, [1.0 / k] * k)
'''


@pytest.fixture
def plugin_dir(tmp_path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "toy_readout_plugin.py").write_text(TOY_PLUGIN)
    return folder


def _env(plugin_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DVMAP_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(plugin_dir), str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def test_a_plugin_readout_runs_through_dvmap_eval_with_worked_values(plugin_dir, synthetic_data, tiny_model_dir,
                                                                     tmp_path):
    data = synthetic_data(3000) / "val.parquet"
    env = _env(plugin_dir, DVMAP_PLUGINS="toy_readout_plugin")
    help_text = subprocess.run(CLI + ["eval", "--help"], capture_output=True, text=True, env=env, check=True).stdout
    assert "--readout {sampling,logprob,logprob-after-reasoning,uniform}" in help_text
    run = tmp_path / "run"
    res = subprocess.run(CLI + ["eval", "--backend", "hf", "--model", str(tiny_model_dir), "--data", str(data),
                                "--out", str(run), "--readout", "uniform", "--bootstrap", "0", "--quiet"],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr

    # Worked independently of the run: from the prepared table itself, K per item and where the truth sits.
    table = pd.DataFrame(list(pd.read_parquet(data)["extra_info"]))
    k = table["options"].map(len).to_numpy()
    truth = table["answer_index"].astype(int).to_numpy()
    preds = read_predictions(run / "predictions.jsonl").sort_values("item")
    assert len(preds) == len(table) and set(preds["readout"]) == {"uniform"}
    for rec, options in zip(preds.itertuples(), table["options"]):
        assert rec.probs == [round(1 / len(options), 8)] * len(options)
        assert rec.pred == 0  # a tie: argmax is the first option
        assert rec.completion == f"<answer>{options[0]}</answer>"
    assert json.loads((run / "run.json").read_text())["config"]["readout"] == "uniform"

    metrics = json.loads((run / "metrics.json").read_text())
    dist = metrics["distributional"]
    assert dist["readout"] == "uniform"
    # Expected accuracy of the uniform distribution: the mass 1/K on the truth, averaged over items.
    assert dist["model"]["expected_acc"] == pytest.approx(np.mean(1 / k), abs=1e-7)
    assert dist["model"]["unreadable_items"] == 0
    assert "Readout: `uniform`" in (run / "report.md").read_text()
    # The point prediction is the first option: accuracy is the share of items whose truth is option 0.
    assert (truth == 0).mean() > 0  # else the next line would not tell first-option from anything else
    assert metrics["model"]["acc"] == pytest.approx((truth == 0).mean(), abs=1e-9)

    # The resume guard keeps the readout: the same command does nothing; another readout is refused.
    again = subprocess.run(CLI + ["eval", "--backend", "hf", "--model", str(tiny_model_dir), "--data", str(data),
                                  "--out", str(run), "--readout", "sampling", "--no-report", "--quiet"],
                           capture_output=True, text=True, env=env)
    assert again.returncode == 2 and "readout: was 'uniform', now 'sampling'" in again.stderr


def test_an_installed_plugin_is_found_through_its_entry_point(plugin_dir):
    dist = plugin_dir / "toy_readout_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-readout-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[dvmap_verl.plugins]\ntoy = toy_readout_plugin\n")
    code = "from dvmap_verl.evaluation.readouts import readout_names; print(readout_names(selectable=True))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(plugin_dir),
                         check=True).stdout
    assert out.strip() == "['sampling', 'logprob', 'logprob-after-reasoning', 'uniform']"


def test_a_plugin_that_cannot_be_imported_is_named(monkeypatch):
    monkeypatch.setenv("DVMAP_PLUGINS", "no_such_dvmap_plugin")
    monkeypatch.setattr(plugins, "_started", False)
    with pytest.raises(EnvironmentProblem, match=r"plugin 'no_such_dvmap_plugin' \(named by \$DVMAP_PLUGINS\) "
                                                 r"cannot be imported: ModuleNotFoundError"):
        R.readout_names()
    with pytest.raises(EnvironmentProblem, match="no_such_dvmap_plugin"):  # asked again, it fails again
        R.get_readout("sampling")


def test_readout_registry_refusals():
    with pytest.raises(InputError, match="unknown readout 'telepathy'; known: sampling, logprob, "
                                         "logprob-after-reasoning, verbalised"):
        R.get_readout("telepathy")
    with pytest.raises(ValueError, match="readout 'logprob' is already registered"):
        R.register_readout(R.LogprobReadout)
    with pytest.raises(InputError, match="the logprob readout is deterministic"):
        EvalConfig(backend="hf", model="m", data=[], samples=2, readout="logprob")
    assert R.get_readout("logprob-after-reasoning").stop == ("<answer>",)
    assert EvalConfig(backend="hf", model="m", data=[], readout="logprob-after-reasoning").generation().stop \
        == ("<answer>",)
    assert R.readout_names(selectable=False) == ["verbalised"]


class _Echo:
    """A toy backend: replies with the last message's first word; scores option i as -i."""

    name = "echo"

    def __init__(self, model, settings, greeting="hi", repeat=1):
        self.model, self.greeting, self.repeat = model, greeting, repeat

    def run(self, requests, on_result, on_error):
        for r in requests:
            on_result(r, f"{self.greeting} <answer>{r.messages[-1]['content'].split()[0]}</answer>" * self.repeat)

    def score(self, requests, on_result, on_error):
        for r in requests:
            on_result(r, R.Scores(tuple(-float(i) for i in range(len(r.continuations))),
                                  (1,) * len(r.continuations)))


def test_backend_registry_states_defaults_once(monkeypatch):
    monkeypatch.setattr(B, "_BACKENDS", dict(B._BACKENDS))  # the toy leaves no trace in other tests
    B.register_backend("echo", _Echo, {"greeting": "hello", "repeat": 1})
    assert B.backend_names() == ["vllm", "openai", "hf", "echo"]
    made = make_backend("echo", "m", GenerationSettings(), repeat=None, base_url="ignored")  # None: the default
    assert (made.greeting, made.repeat) == ("hello", 1)
    assert isinstance(made, ScoringBackend) and isinstance(made, B.Backend)
    with pytest.raises(InputError, match="unknown backend 'nope'; known: vllm, openai, hf, echo"):
        make_backend("nope", "m", GenerationSettings())
    with pytest.raises(InputError, match=r"--replicas is for local engines \(vllm, hf\); an OpenAI server scales"):
        make_backend("openai", "m", GenerationSettings(), replicas=2)
    assert B.get_backend("hf").options({"batch_size": None}) == {"batch_size": 8}
    assert B.get_backend("openai").defaults["concurrency"] == 16

    class NoScore:
        name = "plain"

        def run(self, requests, on_result, on_error):
            pass

    assert isinstance(NoScore(), B.Backend) and not isinstance(NoScore(), ScoringBackend)
    with pytest.raises(InputError, match="the plain backend cannot read option probabilities"):
        R.get_readout("logprob").check_backend(NoScore())


def test_logprob_readout_through_a_registered_toy_backend(synthetic_data, tmp_path):
    """Option i scored -i: probabilities exp(-i) / sum_j exp(-j) over the item's K options, worked by hand."""
    data = synthetic_data(3000) / "val.parquet"
    config = EvalConfig(backend="echo", model="m", data=[str(data)], limit=4, readout="logprob")
    status = run_eval(_Echo("m", None), tmp_path / "run", config, quiet=True)
    assert status["written"] == 4 and status["failed"] == 0
    for rec in read_predictions(tmp_path / "run" / "predictions.jsonl").itertuples():
        k = len(rec.probs)
        assert rec.probs == pytest.approx([np.exp(-i) / sum(np.exp(-j) for j in range(k)) for i in range(k)],
                                          abs=1e-8)
        assert rec.pred == 0 and rec.readout == "logprob"


def test_a_readout_giving_no_distribution_fails_its_request_counted(synthetic_data, tmp_path, monkeypatch):
    class Broken(R.Readout):
        name = "broken-toy"

        def run(self, run, requests):
            for r in requests:
                k = len(run.options(r.item))
                run.record_probs(r, [float("nan")] * k if r.item % 2 else [1.0] + [0.0] * (k - 1))

    monkeypatch.setattr(R.base, "_READOUTS", dict(R.base._READOUTS))
    R.register_readout(Broken)
    config = EvalConfig(backend="echo", model="m", data=[str(synthetic_data(3000) / "val.parquet")], limit=4,
                        readout="broken-toy")
    status = run_eval(_Echo("m", None), tmp_path / "run", config, quiet=True)
    assert (status["written"], status["failed"]) == (2, 2)
    assert "item 1 sample 0: ValueError: item 1: the broken-toy readout gave [nan" in status["errors"][0]
    assert sorted(read_predictions(tmp_path / "run" / "predictions.jsonl")["item"]) == [0, 2]
