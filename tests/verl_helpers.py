"""Build verl inputs the way the trainer does: a composed ppo_trainer config and a DataProto of decoded rollouts."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def compose_ppo_config(overrides: Sequence[str] = ()):
    """verl's own ``ppo_trainer`` config composed with Hydra's compose API (plus this package's search path)."""
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        return compose("ppo_trainer", overrides=list(overrides))


def rollout_batch(tokenizer, prompts: Sequence[str], responses: Sequence[str], rows: Sequence[dict]):
    """A DataProto like the one verl's rollout hands to the reward loop: left-padded prompts, right-padded responses."""
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
        "reward_model": np.array([row["reward_model"] for row in rows], dtype=object),
        "extra_info": np.array([dict(row["extra_info"]) for row in rows], dtype=object),
    }
    return DataProto.from_dict(
        tensors={"prompts": prompt_t, "responses": resp_t, "input_ids": torch.cat([prompt_t, resp_t], 1),
                 "attention_mask": mask},
        non_tensors=non_tensors,
    )
