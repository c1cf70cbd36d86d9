"""Checks through verl's own code that need no GPU: compose and validate a recipe, and score rollouts with verl's
reward manager / Ray reward loop. Used by ``dvmap demo`` and the tests."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def compose_ppo_config(overrides: Sequence[str] = ()):
    """verl's ``ppo_trainer`` config composed with Hydra's compose API (this package's recipes on the search path)."""
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        return compose("ppo_trainer", overrides=list(overrides))


def ref_config(cfg):
    """The reference config as verl's engine worker turns it into an ActorConfig (engine_workers.init_model)."""
    from omegaconf import OmegaConf, open_dict
    from verl.utils.config import omega_conf_to_dataclass

    ref = OmegaConf.create(OmegaConf.to_container(cfg.actor_rollout_ref.ref, resolve=True))
    with open_dict(ref):
        ref.ppo_mini_batch_size = cfg.actor_rollout_ref.actor.ppo_mini_batch_size
        ref.ppo_micro_batch_size = ref.pop("log_prob_micro_batch_size", None)
        ref.ppo_micro_batch_size_per_gpu = ref.pop("log_prob_micro_batch_size_per_gpu", None)
        ref.use_dynamic_bsz = ref.pop("log_prob_use_dynamic_bsz", False)
        ref.ppo_max_token_len_per_gpu = ref.pop("log_prob_max_token_len_per_gpu", None)
    return omega_conf_to_dataclass(ref)


#: vLLM's allowed ``max_lora_rank`` values, as verl 0.9.1 falls back to them when vLLM's own type is not importable
#: (``verl/workers/rollout/vllm_rollout/utils.py``, get_vllm_max_lora_rank).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def _without_vllm_lora_check(cfg):
    """verl's validate_config checks a LoRA rank against vLLM by importing verl's vLLM rollout, which needs vLLM
    installed. Without vLLM (a CPU machine) the rank is checked here against the same list and validate_config
    runs on a copy with LoRA off; everything else it checks is unchanged."""
    import importlib.util

    from omegaconf import OmegaConf, open_dict

    rank = int(cfg.actor_rollout_ref.model.get("lora_rank") or 0)
    if rank <= 0 or cfg.actor_rollout_ref.rollout.name != "vllm" or importlib.util.find_spec("vllm") is not None:
        return cfg
    if rank > VLLM_LORA_RANKS[-1]:
        raise ValueError(f"lora_rank must be less than or equal to {VLLM_LORA_RANKS[-1]}, but got {rank}")
    copy = OmegaConf.create(OmegaConf.to_container(cfg))
    with open_dict(copy):
        copy.actor_rollout_ref.model.lora_rank = 0
    return copy


def validate_recipe(cfg) -> dict[str, Any]:
    """verl's validate_config plus the dataclass instantiation its workers do; returns the key settings."""
    from verl.trainer.main_ppo import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    validate_config(_without_vllm_lora_check(cfg), use_reference_policy=need_reference_policy(cfg),
                    use_critic=need_critic(cfg))
    actor = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)
    rollout = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
    ref = ref_config(cfg)
    omega_conf_to_dataclass(cfg.algorithm)
    return {"lr": actor.optim.lr, "strategy": actor.strategy, "rollout_n": rollout.n,
            "temperature": rollout.temperature, "tensor_parallel": rollout.tensor_model_parallel_size,
            "ref_dtype": ref.fsdp_config.model_dtype, "gpus": cfg.trainer.n_gpus_per_node * cfg.trainer.nnodes}


def rollout_batch(tokenizer, prompts: Sequence[str], responses: Sequence[str], rows: Sequence[dict]):
    """A DataProto like the one verl's rollout hands to the reward loop: left-padded prompts, right-padded responses."""
    import torch
    from verl import DataProto

    p_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    r_ids = [tokenizer(r, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for r in responses]
    pl, rl = max(map(len, p_ids)), max(map(len, r_ids))
    pad = tokenizer.pad_token_id
    prompt_t = torch.tensor([[pad] * (pl - len(x)) + x for x in p_ids])
    resp_t = torch.tensor([x + [pad] * (rl - len(x)) for x in r_ids])
    mask = torch.tensor([[0] * (pl - len(p)) + [1] * len(p) + [1] * len(r) + [0] * (rl - len(r))
                         for p, r in zip(p_ids, r_ids)])
    non_tensors = {
        "data_source": np.array([row["data_source"] for row in rows], dtype=object),
        "reward_model": np.array([dict(row["reward_model"]) for row in rows], dtype=object),
        "extra_info": np.array([dict(row["extra_info"]) for row in rows], dtype=object),
    }
    return DataProto.from_dict(
        tensors={"prompts": prompt_t, "responses": resp_t, "input_ids": torch.cat([prompt_t, resp_t], 1),
                 "attention_mask": mask},
        non_tensors=non_tensors,
    )


def score_on_ray(config, data, num_cpus: int = 2):
    """Score a DataProto with verl's RewardLoopManager on a local Ray cluster; returns verl's output DataProto."""
    import ray
    from verl.experimental.reward_loop.reward_loop import RewardLoopManager

    ray.init(num_cpus=num_cpus, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    try:
        return RewardLoopManager(config).compute_rm_score(data)
    finally:
        ray.shutdown()
