"""`dvmap demo`: every artefact it promises, at a small size."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from dvmap_verl.data import schema
@pytest.mark.slow
def test_demo_produces_every_artefact(tmp_path):
    out = tmp_path / "demo"
    res = subprocess.run([sys.executable, "-m", "dvmap_verl.cli", "demo", "--out", str(out), "--respondents", "3000",
                          "--limit", "16"], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for n in range(1, 7):
        assert f"[{n}/6]" in res.stdout
    assert "SYNTHETIC" in res.stdout and "untrained" in res.stdout
    # Stage results on the console; Ray/verl/transformers banners go to the log file it names.
    assert "Ray" not in res.stdout.replace("(Ray, verl, transformers)", "").replace("on local Ray", "")
    assert res.stderr.strip() == "" and (out / "demo.log").exists() and "demo.log" in res.stdout
    for split in schema.SPLITS:
        assert len(pd.read_parquet(out / "data" / f"{split}.parquet")) > 0, split
    stats = json.loads((out / "data" / "stats.json").read_text())
    assert stats["synthetic"] is True and stats["archetypes"]["pairs_dropped"] > 0
    composed = (out / "recipe_dvmap_qwen3_8b.yaml").read_text()
    assert "adv_estimator: grpo" in composed and "pkg://dvmap_verl.reward" in composed
    scores = json.loads((out / "reward_scores.json").read_text())
    assert len(scores) == 20
    # verl's reward loop scored each kind of completion as the reward defines it.
    assert [s["acc"] for s in scores[:5]] == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert [s["format"] for s in scores[:5]] == [1.0, 1.0, 1.0, 0.0, 0.25]
    assert scores[0]["score"] == pytest.approx(1.4)
    run = out / "eval"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["synthetic"] is True and set(metrics["baselines"]) >= {"majority_country_question"}
    assert "flip" in metrics
    report = (run / "report.md").read_text()
    assert "Synthetic data." in report and "untrained" in report
    for plot in metrics["plots"]:
        assert (run / plot).stat().st_size > 1000, plot
    assert {"accuracy_by_country.png", "model_vs_baselines.png"} <= set(metrics["plots"])
    summary = json.loads((out / "demo_summary.json").read_text())
    assert len(summary["stages"]) == 6
    # The wording matches the numbers: the one taught reply names an option of the importance questions only.
    items = pd.read_parquet(run / "items.parquet")
    originals = items[~items["counterfactual"]]
    fits = sum("Very important" in list(o) for o in originals["options"])
    assert f"is an option of {fits} of the {len(originals)} items" in res.stdout
    assert "so that answers parse" not in res.stdout + report and "counts as unparsed" in report
