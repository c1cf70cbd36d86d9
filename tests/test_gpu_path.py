"""The GPU user's path, checked on CPU: training curves from verl's own rollout dumps, `dvmap doctor` on the
training command's arguments, and `dvmap smoke`'s plan composed and validated by verl."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dvmap_verl.training.doctor import FAIL, OK, blockers, run_doctor

CLI = [sys.executable, "-m", "dvmap_verl.cli"]


@pytest.fixture(scope="module")
def data(synthetic_data) -> Path:
    return synthetic_data(3000, seed=4, max_profiles_per_country=30)


# ------------------------------------------------------------------------------------------------ curves


def test_curves_from_verls_own_rollout_dumps(data, tmp_path):
    """Dumps written by verl's RayPPOTrainer._write_generations (what trainer.rollout_data_dir does each step),
    holding the reward's keys as verl's reward loop returns them; the curves are their per-step means."""
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    from dvmap_verl.reward import compute_score

    rows = pd.read_parquet(data / "train.parquet").head(24).to_dict("records")
    rng = np.random.default_rng(0)
    dumps = tmp_path / "rollouts"
    expected = {}
    for step in (1, 2, 3):
        outs, scores = [], []
        for r in rows:
            opts = list(r["extra_info"]["options"])
            said = opts[0] if rng.random() < 0.2 * step else opts[-1]
            text = f"<reasoning>\n{'x' * (10 * step)}\n</reasoning>\n<answer>\n{said}\n</answer>"
            if rng.random() < 0.2:
                text = "no tags " * step
            outs.append(text)
            scores.append(compute_score(r["data_source"], text, r["reward_model"]["ground_truth"], r["extra_info"]))
        extra = {k: [s[k] for s in scores] for k in ("acc", "format", "parsed", "likert")}
        RayPPOTrainer._write_generations(["prompt"] * len(rows), outs, [r["reward_model"]["ground_truth"] for r in rows],
                                         [s["score"] for s in scores], extra, str(dumps), step)
        expected[step] = {k: float(np.mean(v)) for k, v in extra.items()} | {
            "score": float(np.mean([s["score"] for s in scores])), "response_chars": float(np.mean(list(map(len, outs))))}
    (dumps / "notes.txt").write_text("not a dump")

    res = subprocess.run(CLI + ["curves", str(dumps), "--tokenizer", str(data.parent / "none")], capture_output=True,
                         text=True)
    assert res.returncode == 2 and "none" in res.stderr  # a bad tokenizer path is named, not a traceback
    res = subprocess.run(CLI + ["curves", str(dumps)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    curves = pd.read_csv(dumps / "curves" / "curves.csv")
    assert curves["step"].tolist() == [1, 2, 3]
    for step, values in expected.items():
        row = curves.set_index("step").loc[step]
        for key, value in values.items():
            assert row[key] == pytest.approx(value), (step, key)
    assert (dumps / "curves" / "curves.png").stat().st_size > 5000
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(dumps / "curves" / "tensorboard"))
    acc.Reload()
    assert {"dvmap/acc", "dvmap/format", "dvmap/parsed", "dvmap/likert"} <= set(acc.Tags()["scalars"])
    assert [e.value for e in acc.Scalars("dvmap/acc")] == pytest.approx([expected[s]["acc"] for s in (1, 2, 3)])
    empty = tmp_path / "empty"
    empty.mkdir()
    res = subprocess.run(CLI + ["curves", str(empty)], capture_output=True, text=True)
    assert res.returncode == 2 and "no <step>.jsonl dumps" in res.stderr


def test_recipes_dump_rollouts_per_experiment():
    from dvmap_verl.training.dryrun import compose_ppo_config

    cfg = compose_ppo_config(["+recipe=dvmap_qwen3_4b"])
    assert cfg.trainer.rollout_data_dir == "checkpoints/dvmap/dvmap_qwen3_4b/rollouts"


# ------------------------------------------------------------------------------------------------ doctor


def _by_name(checks):
    return {c.name: c for c in checks}


def test_doctor_checks_the_training_config(data, tiny_tokenizer_dir, tmp_path):
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from dvmap_verl.training.tiny import build_model

    model = tmp_path / "model"
    import shutil

    shutil.copytree(tiny_tokenizer_dir, model)
    build_model(model)
    base = ["+recipe=dvmap_qwen3_0.6b", f"actor_rollout_ref.model.path={model}", f"dvmap.data_dir={data}",
            "data.max_prompt_length=1300"]
    lines = []
    checks = _by_name(run_doctor(base, visible_gpus=8, emit=lines.append))
    assert checks["config"].status == OK and checks["GPUs"].status == OK
    assert checks["data"].status == OK and f"train.parquet {len(pd.read_parquet(data / 'train.parquet')):,} rows" \
        in checks["data"].detail
    assert checks["model"].status == OK and "qwen2, 2 layers" in checks["model"].detail
    # flash_attention_2 is the recipe's choice; without flash_attn installed that is a blocker, with the fix named.
    assert checks["flash-attn"].status == FAIL and "attn_implementation=sdpa" in checks["flash-attn"].detail
    assert len(lines) == len(checks)

    # Prompt lengths with the real tokenizer: what verl's RLHFDataset filter drops, counted the same way.
    tok = AutoTokenizer.from_pretrained(str(model))
    kept = len(RLHFDataset(str(data / "train.parquet"), tok, OmegaConf.create({
        "prompt_key": "prompt", "max_prompt_length": 1300, "filter_overlong_prompts": True, "truncation": "error",
        "apply_chat_template_kwargs": {"enable_thinking": False}, "filter_overlong_prompts_workers": 1,
        "cache_dir": str(tmp_path / "cache")})))
    total = len(pd.read_parquet(data / "train.parquet"))
    detail = checks["prompt lengths"].detail
    assert 0 < kept < total  # the tiny tokenizer's long prompts straddle the limit
    assert f"drops {total - kept:,}" in detail and checks["prompt lengths"].status == "warn"
    assert "against max_prompt_length 1300" in detail

    checks = _by_name(run_doctor(base + ["actor_rollout_ref.model.override_config.attn_implementation=sdpa",
                                         "data.max_prompt_length=4096"], visible_gpus=8, emit=lambda _: None))
    assert checks["flash-attn"].status == OK and checks["prompt lengths"].status == OK
    assert _by_name(run_doctor(base, visible_gpus=0, emit=lambda _: None))["GPUs"].status == FAIL
    odd = _by_name(run_doctor(base + ["trainer.n_gpus_per_node=6",
                                      "actor_rollout_ref.rollout.tensor_model_parallel_size=4"], visible_gpus=8,
                              emit=lambda _: None))
    assert odd["GPUs"].status == FAIL and "not divisible by TP 4" in odd["GPUs"].detail
    missing = run_doctor(base[:2] + [f"dvmap.data_dir={tmp_path / 'nowhere'}"], visible_gpus=8, emit=lambda _: None)
    assert "nowhere/train.parquet" in _by_name(missing)["data"].detail and blockers(missing)


def test_doctor_cli_exits_non_zero_on_a_blocker(data, tmp_path):
    res = subprocess.run(CLI + ["doctor", "+recipe=dvmap_qwen3_0.6b", f"dvmap.data_dir={data}",
                                f"actor_rollout_ref.model.path={tmp_path / 'no_model'}", "--gpus", "8"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 1
    assert "[FAIL] model:" in res.stdout and "no_model" in res.stdout and "doctor: " in res.stdout
    bad = subprocess.run(CLI + ["doctor", "+recipe=dvmap_qwen3_99b"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "[FAIL] config:" in bad.stdout


# ------------------------------------------------------------------------------------------------ smoke


def test_smoke_plan_composes_and_is_wired(tmp_path):
    from dvmap_verl.training import smoke
    from dvmap_verl.training.dryrun import compose_ppo_config, validate_recipe

    steps = smoke.plan(tmp_path / "s", gpus=1)
    names = [s.name for s in steps]
    assert names == ["tiny model", "synthetic WVS", "prepare", "train (2 GRPO steps)", "curves", "merge",
                     "eval (vLLM)"]
    by = {s.name: s.argv for s in steps}
    train = by["train (2 GRPO steps)"]
    assert train[1:3] == ["-m", "verl.trainer.main_ppo"]
    cfg = compose_ppo_config(train[3:])
    checked = validate_recipe(cfg)
    assert checked["gpus"] == 1 and cfg.trainer.total_training_steps == 2 and cfg.data.train_batch_size == 8
    assert cfg.actor_rollout_ref.model.override_config.attn_implementation == "sdpa"
    # Each step reads what the one before wrote.
    root = (tmp_path / "s").resolve()
    assert by["tiny model"][3] == cfg.actor_rollout_ref.model.path == str(root / "tiny_model")
    assert by["prepare"][by["prepare"].index("--out") + 1] == str(root / "data")
    assert cfg.data.train_files == str(root / "data" / "train.parquet")
    assert by["curves"][4] == cfg.trainer.rollout_data_dir
    assert by["merge"][4] == cfg.trainer.default_local_dir
    assert by["eval (vLLM)"][by["eval (vLLM)"].index("--model") + 1] == by["merge"][5]


def test_smoke_dry_run_prints_every_command_and_runs_nothing(tmp_path):
    res = subprocess.run(CLI + ["smoke", "--gpus", "2", "--dry-run", "--out", str(tmp_path / "s")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("\n# [") + res.stdout.startswith("# [") == 7
    assert "trainer.n_gpus_per_node=2 trainer.nnodes=1 data.train_batch_size=16" in res.stdout
    assert not (tmp_path / "s").exists()


def test_smoke_runs_its_cpu_steps_and_stops_at_the_first_failure(tmp_path):
    """The runner on the steps a CPU can do (tiny model, synthetic data, prepare), then a failing step: logs per
    step, a summary that says FAIL, and later steps skipped."""
    from dvmap_verl.training import smoke
    steps = smoke.plan(tmp_path / "s", gpus=1)[:3]
    steps.append(smoke.Step("train (2 GRPO steps)", [sys.executable, "-c", "print('timing_s/step:12.5'); exit(3)"]))
    steps.append(smoke.Step("never", [sys.executable, "-c", "pass"]))
    lines = []
    assert smoke.run(steps, tmp_path / "s", emit=lines.append) == 1
    text = "\n".join(lines)
    assert "[1/5] tiny model: ok" in text and "[3/5] prepare: ok" in text and "FAILED (exit 3)" in text
    assert "smoke summary: FAIL" in text and "GRPO step times 12.5s" in text and "skipped" in text
    assert len(pd.read_parquet(tmp_path / "s" / "data" / "train.parquet")) > 0
    logs = sorted(p.name for p in (tmp_path / "s" / "logs").iterdir())
    assert logs[:3] == ["01_tiny_model.log", "02_synthetic_wvs.log", "03_prepare.log"]
    cfg = json.loads((tmp_path / "s" / "tiny_model" / "config.json").read_text())
    assert cfg["hidden_size"] // cfg["num_attention_heads"] == 64  # a head size GPU kernels accept


@pytest.mark.parametrize("recipe", ["dvmap_qwen3_8b_lora", "dvmap_qwen3_8b_lora_offload"])
def test_smoke_plan_with_a_lora_recipe_on_the_tiny_model(recipe, tmp_path):
    """`dvmap smoke --recipe dvmap_qwen3_8b_lora`: the LoRA settings reach the tiny model's 2-step run, verl validates
    it, and the dry run prints it."""
    from dvmap_verl.training import smoke
    from dvmap_verl.training.dryrun import compose_ppo_config, validate_recipe

    steps = {s.name: s.argv for s in smoke.plan(tmp_path / "s", gpus=1, recipe=recipe)}
    cfg = compose_ppo_config(steps["train (2 GRPO steps)"][3:])
    checked = validate_recipe(cfg)
    assert checked["gpus"] == 1 and checked["lr"] == 5e-5 and checked["tensor_parallel"] == 1
    model = cfg.actor_rollout_ref.model
    assert model.lora_rank == 32 and model.lora_alpha == 32 and model.path == str((tmp_path / "s" / "tiny_model").resolve())
    assert cfg.actor_rollout_ref.rollout.load_format == "safetensors" and cfg.actor_rollout_ref.rollout.layered_summon
    assert cfg.actor_rollout_ref.actor.fsdp_config.param_offload is recipe.endswith("offload")
    res = subprocess.run(CLI + ["smoke", "--recipe", recipe, "--dry-run", "--out", str(tmp_path / "d")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"+recipe={recipe} actor_rollout_ref.model.path=" in res.stdout and not (tmp_path / "d").exists()


def test_smoke_dry_run_names_an_unknown_recipe(capsys):
    from dvmap_verl.cli import main

    assert main(["smoke", "--recipe", "nonexistent", "--dry-run"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (
        "dvmap: error: --recipe nonexistent: no such recipe; shipped: dvmap_llama3.2_3b, dvmap_qwen3_0.6b, "
        "dvmap_qwen3_1.7b, dvmap_qwen3_4b, dvmap_qwen3_4b_distribution, dvmap_qwen3_4b_free, dvmap_qwen3_4b_from_sft, "
        "dvmap_qwen3_4b_likert, dvmap_qwen3_4b_majority, dvmap_qwen3_8b, dvmap_qwen3_8b_lora, "
        "dvmap_qwen3_8b_lora_offload\n")
