"""Hydra recipes composed by verl itself: `+recipe=NAME` from any directory, paper values, verl's validation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from dvmap_verl.training.dryrun import compose_ppo_config, ref_config

REPO = Path(__file__).resolve().parents[1]
RECIPES = ["dvmap_qwen3_0.6b", "dvmap_qwen3_1.7b", "dvmap_qwen3_4b", "dvmap_qwen3_8b", "dvmap_llama3.2_3b"]
MODELS = {
    "dvmap_qwen3_0.6b": "Qwen/Qwen3-0.6B",
    "dvmap_qwen3_1.7b": "Qwen/Qwen3-1.7B",
    "dvmap_qwen3_4b": "Qwen/Qwen3-4B",
    "dvmap_qwen3_8b": "Qwen/Qwen3-8B",
    "dvmap_llama3.2_3b": "meta-llama/Llama-3.2-3B-Instruct",
}


def main_ppo(args, cwd):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", "verl.trainer.main_ppo", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    """`main_ppo +recipe=NAME --cfg job` for every recipe, from a directory outside the repository."""
    cwd = tmp_path_factory.mktemp("elsewhere")
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(RECIPES, pool.map(lambda r: main_ppo([f"+recipe={r}", "--cfg", "job"], cwd), RECIPES)))
    return results


def assert_paper_values(cfg: dict, recipe: str) -> None:
    arr = cfg["actor_rollout_ref"]
    assert cfg["algorithm"]["adv_estimator"] == "grpo"
    assert arr["rollout"]["n"] == 8
    assert arr["rollout"]["temperature"] == 0.7
    assert arr["rollout"]["name"] == "vllm"
    assert arr["actor"]["optim"]["lr"] == 5e-6
    assert arr["actor"]["strategy"] == "fsdp2"
    assert arr["actor"]["fsdp_config"]["dtype"] == "bfloat16"
    assert arr["ref"]["fsdp_config"]["model_dtype"] == "bf16"
    assert arr["rollout"]["dtype"] == "bfloat16"
    assert arr["model"]["override_config"]["attn_implementation"] == "flash_attention_2"
    assert arr["model"]["path"] == MODELS[recipe]
    assert cfg["data"]["train_batch_size"] == 64
    assert cfg["data"]["max_prompt_length"] == 1024 and cfg["data"]["max_response_length"] == 1024
    assert cfg["trainer"]["total_epochs"] == 1
    assert cfg["trainer"]["n_gpus_per_node"] == 8
    assert cfg["trainer"]["logger"] == ["console", "tensorboard"]
    assert cfg["trainer"]["experiment_name"] == recipe
    assert cfg["reward"]["custom_reward_function"]["path"] == "pkg://dvmap_verl.reward"
    assert cfg["reward"]["custom_reward_function"]["name"] == "compute_score"
    assert cfg["reward"]["custom_reward_function"]["reward_kwargs"]["variant"] == "binary"
    assert cfg["data"]["train_files"] == "${dvmap.data_dir}/train.parquet"
    thinking = cfg["data"]["apply_chat_template_kwargs"].get("enable_thinking")
    assert thinking is (False if "qwen3" in recipe else None)


@pytest.mark.parametrize("recipe", RECIPES)
def test_main_ppo_prints_recipe_from_any_directory(printed, recipe):
    res = printed[recipe]
    assert res.returncode == 0, res.stderr[-2000:]
    assert_paper_values(yaml.safe_load(res.stdout), recipe)


@pytest.mark.parametrize("recipe", RECIPES)
def test_compose_api_and_verl_validation(recipe, tiny_model_dir, monkeypatch):
    from verl.trainer.main_ppo import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    monkeypatch.setenv("DVMAP_DATA_DIR", "/data/dvmap")
    for nnodes in (1, 2):
        cfg = compose_ppo_config([f"+recipe={recipe}", f"trainer.nnodes={nnodes}",
                                  f"actor_rollout_ref.model.path={tiny_model_dir}"])
        plain = OmegaConf.to_container(cfg)
        plain["actor_rollout_ref"]["model"]["path"] = MODELS[recipe]
        assert_paper_values(plain, recipe)
        assert cfg.data.train_files == "/data/dvmap/train.parquet"
        assert cfg.data.val_files == "/data/dvmap/val.parquet"
        assert need_reference_policy(cfg) and not need_critic(cfg)
        validate_config(cfg, use_reference_policy=True, use_critic=False)
        # verl's dataclasses accept every key we set (unknown keys would fail here).
        actor = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)
        rollout = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
        ref = ref_config(cfg)
        assert ref.fsdp_config.model_dtype == "bf16"
        omega_conf_to_dataclass(cfg.actor_rollout_ref.model)
        omega_conf_to_dataclass(cfg.algorithm)
        n_gpus = 8 * nnodes
        responses = cfg.data.train_batch_size * rollout.n
        assert responses % n_gpus == 0 and (actor.ppo_mini_batch_size * rollout.n) % n_gpus == 0
        assert n_gpus % rollout.tensor_model_parallel_size == 0


def test_command_line_override_beats_recipe(tmp_path):
    res = main_ppo(["+recipe=dvmap_qwen3_8b", "actor_rollout_ref.actor.optim.lr=1e-6",
                    "actor_rollout_ref.rollout.n=4", "--cfg", "job"], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    cfg = yaml.safe_load(res.stdout)
    assert cfg["actor_rollout_ref"]["actor"]["optim"]["lr"] == 1e-6
    assert cfg["actor_rollout_ref"]["rollout"]["n"] == 4


def test_misspelt_recipe_fails_with_hydras_error(tmp_path):
    res = main_ppo(["+recipe=dvmap_qwen3_9b", "--cfg", "job"], tmp_path)
    assert res.returncode != 0
    assert "Could not find 'recipe/dvmap_qwen3_9b'" in res.stderr
    assert "dvmap_qwen3_8b" in res.stderr  # Hydra lists the available options


SBATCH = REPO / "recipes" / "slurm" / "dvmap_grpo.sbatch"


SLURM_SCRIPTS = [SBATCH, SBATCH.parent / "dvmap_eval.sbatch", SBATCH.parent / "ray_cluster.sh"]


def test_sbatch_script_is_valid_shell():
    for script in SLURM_SCRIPTS:
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, script
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    if not Path(shellcheck).exists():
        pytest.skip("shellcheck not installed")
    res = subprocess.run([shellcheck, "-x", "-S", "warning", *map(str, SLURM_SCRIPTS)], capture_output=True,
                         text=True, cwd=SBATCH.parent)
    assert res.returncode == 0, res.stdout


def test_eval_sbatch_dry_run_starts_the_same_cluster_and_passes_arguments(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text("#!/usr/bin/env bash\nprintf 'gpu01\\ngpu02\\n'\n")
    (bin_dir / "scontrol").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "DVMAP_DRY_RUN": "1",
           "SLURM_JOB_NODELIST": "gpu[01-02]", "SLURM_NNODES": "2", "SLURM_GPUS_ON_NODE": "8",
           "DVMAP_PYTHON": sys.executable}
    res = subprocess.run(["bash", str(SBATCH.parent / "dvmap_eval.sbatch"), "--backend", "vllm", "--model", "m",
                          "--data", "d.parquet", "--out", "runs/x", "--tensor-parallel-size", "2"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout
    head = "+ srun --nodes=1 --ntasks=1 -w gpu01 ray start --head --node-ip-address=gpu01 --port=6379 --num-gpus=8"
    worker = "+ srun --nodes=1 --ntasks=1 -w gpu02 ray start --address=gpu01:6379 --num-gpus=8 --block"
    driver = (f"+ env RAY_ADDRESS=gpu01:6379 {sys.executable} -m dvmap_verl.cli eval --replicas auto --ray-address "
              "gpu01:6379 --backend vllm --model m --data d.parquet --out runs/x --tensor-parallel-size 2")
    assert head in out and worker in out and driver in out
    assert out.index(head) < out.index(worker) < out.index(driver)
    # The very same Ray start as training: one shared script, no copy.
    text = (SBATCH.parent / "dvmap_eval.sbatch").read_text() + SBATCH.read_text()
    assert text.count("ray start") == 0 and text.count("source \"$SLURM_DIR/ray_cluster.sh\"") == 2


def test_sbatch_dry_run_on_a_fake_two_node_allocation(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "scontrol"  # `scontrol show hostnames gpu[01-02]` -> one host per line
    fake.write_text("#!/usr/bin/env bash\nprintf 'gpu01\\ngpu02\\n'\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
           "DVMAP_DRY_RUN": "1", "SLURM_JOB_NODELIST": "gpu[01-02]", "SLURM_NNODES": "2",
           "SLURM_GPUS_ON_NODE": "8", "DVMAP_PYTHON": sys.executable}
    res = subprocess.run(["bash", str(SBATCH), "dvmap_qwen3_8b", "dvmap.data_dir=/shared/dvmap"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout
    assert "nodes (2): gpu01 gpu02; head gpu01" in out
    # dvmap doctor checks the very same config on the head node before Ray starts.
    doctor = f"+ srun --nodes=1 --ntasks=1 -w gpu01 {sys.executable} -m dvmap_verl.cli doctor " \
             "+recipe=dvmap_qwen3_8b trainer.nnodes=2 trainer.n_gpus_per_node=8 dvmap.data_dir=/shared/dvmap"
    assert doctor in out and out.index(doctor) < out.index("ray start --head")
    assert "+ srun --nodes=1 --ntasks=1 -w gpu01 ray start --head --node-ip-address=gpu01 --port=6379 " \
           "--num-gpus=8 --block" in out
    assert "+ srun --nodes=1 --ntasks=1 -w gpu02 ray start --address=gpu01:6379 --num-gpus=8 --block" in out
    # The dry run prints in launch order, one whole line per command (background jobs once interleaved "++ srun").
    assert out.index("-w gpu01 ray start --head") < out.index("-w gpu02 ray start --address")
    assert "++" not in out.split("--- composed config", 1)[0]
    assert "-m verl.trainer.main_ppo +recipe=dvmap_qwen3_8b trainer.nnodes=2 trainer.n_gpus_per_node=8 " \
           "dvmap.data_dir=/shared/dvmap" in out
    composed = yaml.safe_load(out.split("--- composed config (--cfg job) ---", 1)[1])
    assert composed["trainer"]["nnodes"] == 2 and composed["dvmap"]["data_dir"] == "/shared/dvmap"
    assert composed["actor_rollout_ref"]["rollout"]["n"] == 8


ABLATIONS = {  # recipe -> the only settings that differ from dvmap_qwen3_4b (besides the experiment name)
    "dvmap_qwen3_4b_majority": {"dvmap.data_dir": "data/dvmap_majority"},
    "dvmap_qwen3_4b_free": {"dvmap.data_dir": "data/dvmap_free",
                            "reward.custom_reward_function.reward_kwargs.format_tags": "free"},
    "dvmap_qwen3_4b_likert": {"reward.custom_reward_function.reward_kwargs.variant": "likert",
                              "reward.custom_reward_function.reward_kwargs.alpha": 1.0},
    "dvmap_qwen3_4b_distribution": {"dvmap.data_dir": "data/dvmap_distribution",
                                    "reward.custom_reward_function.reward_kwargs.variant": "rps"},
}


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flat(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


@pytest.mark.parametrize("recipe", sorted(ABLATIONS))
def test_ablation_recipes_change_only_what_their_table_varies(recipe, monkeypatch):
    from dvmap_verl.training.dryrun import validate_recipe
    from dvmap_verl.reward import compute_score

    monkeypatch.delenv("DVMAP_DATA_DIR", raising=False)
    base = _flat(OmegaConf.to_container(compose_ppo_config(["+recipe=dvmap_qwen3_4b"]), resolve=True))
    cfg = compose_ppo_config([f"+recipe={recipe}"])
    validate_recipe(cfg)
    mine = _flat(OmegaConf.to_container(cfg, resolve=True))
    changed = {k for k in base.keys() | mine.keys() if base.get(k) != mine.get(k)}
    derived = {"trainer.default_local_dir", "trainer.rollout_data_dir", "data.train_files", "data.val_files"}
    changed = {k for k in changed if k not in derived and not k.endswith("experiment_name")}
    assert changed == set(ABLATIONS[recipe]), changed
    for key, value in ABLATIONS[recipe].items():
        assert mine[key] == value
    assert mine["trainer.experiment_name"] == recipe
    assert mine["trainer.default_local_dir"] == f"checkpoints/dvmap/{recipe}"  # runs never collide
    # The recipe's reward settings are ones the reward accepts.
    kwargs = OmegaConf.to_container(cfg.reward.custom_reward_function.reward_kwargs)
    out = compute_score("dvmap/train", "<reasoning>r</reasoning><answer>Agree</answer>", "Neither",
                        {"options": ["Agree", "Neither", "Disagree"]}, **kwargs)
    # One step off on a 3-point scale: no credit under the binary reward, half under the Likert-adjusted one.
    assert out["acc"] == 0.0 and out["score"] == pytest.approx(0.9 if recipe.endswith("likert") else 0.4)


# LoRA recipes: recipe -> (base recipe, the only settings that differ from it besides the experiment name and paths).
_LORA = {"actor_rollout_ref.model.lora_rank": 32, "actor_rollout_ref.model.lora_alpha": 32,
         "actor_rollout_ref.actor.optim.lr": 5e-5, "actor_rollout_ref.rollout.load_format": "safetensors",
         "actor_rollout_ref.rollout.layered_summon": True, "actor_rollout_ref.rollout.tensor_model_parallel_size": 1,
         "actor_rollout_ref.rollout.gpu_memory_utilization": 0.6}
LORA_RECIPES = {
    ("dvmap_qwen3_8b_lora", 2): ("dvmap_qwen3_8b", {**_LORA, "dvmap.gpus": 2, "trainer.n_gpus_per_node": 2,
                                                    "actor_rollout_ref.rollout.n_gpus_per_node": 2}),
    ("dvmap_qwen3_8b_lora", 4): ("dvmap_qwen3_8b", {**_LORA, "dvmap.gpus": 4, "trainer.n_gpus_per_node": 4,
                                                    "actor_rollout_ref.rollout.n_gpus_per_node": 4}),
    ("dvmap_qwen3_8b_lora_offload", 1): ("dvmap_qwen3_8b_lora", {
        "dvmap.gpus": 1, "trainer.n_gpus_per_node": 1, "actor_rollout_ref.rollout.n_gpus_per_node": 1,
        "actor_rollout_ref.actor.fsdp_config.param_offload": True,
        "actor_rollout_ref.actor.fsdp_config.optimizer_offload": True}),
}


@pytest.mark.parametrize("recipe,gpus", sorted(LORA_RECIPES))
def test_lora_recipes_validate_and_change_only_what_lora_needs(recipe, gpus, tiny_model_dir, monkeypatch):
    from dvmap_verl.training.dryrun import validate_recipe

    monkeypatch.delenv("DVMAP_DATA_DIR", raising=False)
    base_recipe, expected = LORA_RECIPES[(recipe, gpus)]
    base = _flat(OmegaConf.to_container(compose_ppo_config([f"+recipe={base_recipe}"]), resolve=True))
    cfg = compose_ppo_config([f"+recipe={recipe}", f"dvmap.gpus={gpus}"])
    mine = _flat(OmegaConf.to_container(cfg, resolve=True))
    changed = {k for k in base.keys() | mine.keys() if base.get(k) != mine.get(k)}
    derived = {"trainer.default_local_dir", "trainer.rollout_data_dir"}
    changed = {k for k in changed if k not in derived and not k.endswith("experiment_name")}
    assert changed == set(expected), changed
    for key, value in expected.items():
        assert mine[key] == value, key
    assert mine["trainer.experiment_name"] == recipe
    assert mine["trainer.default_local_dir"] == f"checkpoints/dvmap/{recipe}"
    # The paper's values everywhere else: 8 rollouts at T = 0.7, batch 64, one epoch, GRPO.
    assert mine["actor_rollout_ref.rollout.n"] == 8 and mine["actor_rollout_ref.rollout.temperature"] == 0.7
    assert mine["data.train_batch_size"] == 64 and mine["trainer.total_epochs"] == 1
    assert mine["algorithm.adv_estimator"] == "grpo" and mine["actor_rollout_ref.model.target_modules"] == "all-linear"
    # verl's validation and dataclasses (on a tiny local model, as for the full recipes).
    cfg = compose_ppo_config([f"+recipe={recipe}", f"dvmap.gpus={gpus}",
                              f"actor_rollout_ref.model.path={tiny_model_dir}"])
    checked = validate_recipe(cfg)
    assert checked["gpus"] == gpus and checked["lr"] == 5e-5 and checked["tensor_parallel"] == 1
    assert (64 * 8) % gpus == 0
    from verl.utils.config import omega_conf_to_dataclass

    model = omega_conf_to_dataclass(cfg.actor_rollout_ref.model)
    assert model.lora_rank == 32 and model.lora_alpha == 32


def test_lora_recipe_from_main_ppo_with_the_gpu_count(tmp_path):
    res = main_ppo(["+recipe=dvmap_qwen3_8b_lora", "dvmap.gpus=4", "--cfg", "job"], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    cfg = yaml.safe_load(res.stdout)
    assert cfg["trainer"]["n_gpus_per_node"] == "${dvmap.gpus}" and cfg["dvmap"]["gpus"] == 4
    assert cfg["actor_rollout_ref"]["model"]["lora_rank"] == 32


def test_lora_rank_vllm_cannot_serve_is_refused_without_vllm():
    from dvmap_verl.training.dryrun import validate_recipe

    with pytest.raises(ValueError, match="lora_rank must be less than or equal to 512, but got 1024"):
        validate_recipe(compose_ppo_config(["+recipe=dvmap_qwen3_8b_lora", "actor_rollout_ref.model.lora_rank=1024"]))
