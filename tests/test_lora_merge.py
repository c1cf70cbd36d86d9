"""`dvmap merge` on a LoRA GRPO checkpoint as verl writes it: verl's merger saves the base weights plus
``lora_adapter/``; dvmap folds the adapter in, so the merged folder is the trained policy."""

from __future__ import annotations

import json
import os

import pytest
import torch


def _lora_checkpoint(tiny_model_dir, root):
    """global_step_2/actor with the PEFT-wrapped model's state dict (base_layer + lora_A/lora_B keys, as the FSDP
    checkpoint manager saves it), lora_train_meta.json and huggingface/."""
    import torch.distributed as dist
    from peft import LoraConfig, get_peft_model
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # "trained": B starts at zero, so an untrained adapter would change nothing
    actor = root / "global_step_2" / "actor"
    (actor / "huggingface").mkdir(parents=True)
    base.config.save_pretrained(actor / "huggingface")
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(actor / "huggingface")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ["MASTER_PORT"] = "29547"
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,), mesh_dim_names=("fsdp",))
        state = {k: distribute_tensor(v.detach().clone(), mesh, [Shard(0)]) for k, v in model.state_dict().items()}
        torch.save(state, actor / "model_world_size_1_rank_0.pt")
    finally:
        dist.destroy_process_group()
    (actor / "fsdp_config.json").write_text(json.dumps({"FSDP_version": 2, "world_size": 1}))
    (actor / "lora_train_meta.json").write_text(json.dumps({"r": 4, "lora_alpha": 8, "task_type": "CAUSAL_LM"}))
    (root / "latest_checkpointed_iteration.txt").write_text("2")
    expected = {k: v.detach().clone() for k, v in model.merge_and_unload().state_dict().items()}
    return root, expected


def test_merge_folds_the_lora_adapter_into_the_weights(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from dvmap_verl.errors import InputError
    from dvmap_verl.training.checkpoints import fold_lora_adapter, merge_fsdp_checkpoint

    root, expected = _lora_checkpoint(tiny_model_dir, tmp_path / "ckpt")
    untouched = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).state_dict()
    target = merge_fsdp_checkpoint(root, tmp_path / "merged")
    assert (target / "lora_adapter" / "adapter_model.safetensors").is_file()
    state = AutoModelForCausalLM.from_pretrained(str(target)).state_dict()
    assert set(state) == set(expected)
    q = "model.layers.0.self_attn.q_proj.weight"
    # The adapter moved q_proj away from the base (W + B A * 8 / 4), and the fold reproduces PEFT's own merge
    # (bf16 storage: 1e-2).
    assert (expected[q] - untouched[q]).abs().max() > 0.1
    for k, v in state.items():
        assert torch.allclose(v.float(), expected[k].float(), atol=1e-2), k
    # Without the run's alpha the adapter would fold to nothing: refused, naming the file.
    cfg_file = target / "lora_adapter" / "adapter_config.json"
    cfg = json.loads(cfg_file.read_text())
    assert cfg["r"] == 4 and cfg["lora_alpha"] == 8
    cfg_file.write_text(json.dumps({**cfg, "lora_alpha": 0}))
    with pytest.raises(InputError, match="adapter_config.json: lora_alpha is 0"):
        fold_lora_adapter(target)
    assert fold_lora_adapter(tmp_path) is False  # no adapter: nothing to do
