"""Issue 24's extension proof, end to end and only through the ``dvmap`` console: ONE plugin module outside the
package (named in ``$DVMAP_PLUGINS``) registers two toy readouts and a toy metric; with no package file edited they
appear in ``dvmap eval --help``, run through ``dvmap eval``, and the metric reaches ``metrics.json``, ``report.md``,
``compare.md`` and the table ``dvmap compare`` prints, with values worked by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "dvmap_verl.cli"]

PLUGIN = '''
import numpy as np

from dvmap_verl.evaluation.metric_registry import Metric, register_metric
from dvmap_verl.evaluation.readouts import Readout, register_readout


@register_readout
class FirstOption(Readout):
    name = "toy-first"
    description = "all mass on the first option shown (a toy)"

    def run(self, run, requests):
        for r in requests:
            k = len(run.options(r.item))
            run.record_probs(r, [1.0] + [0.0] * (k - 1))


@register_readout
class LastOption(Readout):
    name = "toy-last"
    description = "all mass on the last option (a toy)"

    def run(self, run, requests):
        for r in requests:
            k = len(run.options(r.item))
            run.record_probs(r, [0.0] * (k - 1) + [1.0])


def first_share(p, t, k, items):
    """Share of the answers on the first option."""
    return p[:, 0]


register_metric(Metric("toy_first_share", first_share, "item", True, False, "share of answers on option 1",
                       "the test plugin"))
'''


def _env(folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["DVMAP_PLUGINS"] = "dvmap_toy_plugin"
    return env


def _dvmap(env, *args: str) -> str:
    res = subprocess.run(CLI + list(args), capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_one_plugin_readout_and_metric_reach_every_output(tmp_path, synthetic_data, tiny_model_dir):
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "dvmap_toy_plugin.py").write_text(PLUGIN)
    env = _env(folder)
    data = synthetic_data(3000) / "val.parquet"

    help_text = _dvmap(env, "eval", "--help")
    assert "{sampling,logprob,logprob-after-reasoning,toy-first,toy-last}" in help_text

    for readout in ("toy-first", "toy-last"):
        _dvmap(env, "eval", "--backend", "hf", "--model", str(tiny_model_dir), "--data", str(data), "--limit", "12",
               "--out", str(tmp_path / readout), "--readout", readout, "--bootstrap", "0", "--quiet")

    # By hand: toy-first answers option 1 on every item (share 1), toy-last never does (K >= 2 on every WVS item).
    k = pd.DataFrame(list(pd.read_parquet(data)["extra_info"]))["options"].map(len)
    assert k.min() >= 2
    first = json.loads((tmp_path / "toy-first" / "metrics.json").read_text())
    last = json.loads((tmp_path / "toy-last" / "metrics.json").read_text())
    assert first["model"]["toy_first_share"] == 1.0 and last["model"]["toy_first_share"] == 0.0
    assert first["metric_definitions"]["toy_first_share"]["source"] == "the test plugin"
    assert {r["toy_first_share"] for r in first["model"]["by"]["country"]} == {1.0}
    report = (tmp_path / "toy-first" / "report.md").read_text()
    assert "toy-first" in report  # the readout line names the plugin's readout
    assert "| `toy_first_share` | item | higher | share of answers on option 1 | the test plugin |" in report

    printed = _dvmap(env, "compare", str(tmp_path / "toy-first"), str(tmp_path / "toy-last"),
                     "--out", str(tmp_path / "cmp"), "--bootstrap", "50").splitlines()
    header = next(line for line in printed if "toy_first_share" in line).split()
    row = next(line for line in printed if line.startswith("toy-last ")).split()
    assert row[1 + header.index("toy_first_share")] == "0.000"
    cmp = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    (d,) = cmp["differences"]
    # Every shared item goes from share 1 to share 0: the paired difference is -1 on each, so on every resample.
    assert (d["shared_items"], d["d_toy_first_share"], d["d_toy_first_share_lo"], d["d_toy_first_share_hi"]) == \
        (12, -1, -1, -1)
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "toy_first_share" in md and "-1.000 [-1.000, -1.000]" in md
