"""verl FSDP checkpoints -> Hugging Face model folders, with verl's own model merger."""

from __future__ import annotations

from pathlib import Path

from dvmap_verl.errors import MissingInputError


def find_actor_dir(path: str | Path) -> Path:
    """The ``actor`` folder of a checkpoint, given it, its ``global_step_N`` parent, or the run's checkpoint root
    (then the latest step, from verl's ``latest_checkpointed_iteration.txt``)."""
    p = Path(path)
    if not p.exists():
        raise MissingInputError(f"{p}: no such checkpoint folder")
    if (p / "fsdp_config.json").exists():
        return p
    if (p / "actor" / "fsdp_config.json").exists():
        return p / "actor"
    latest = p / "latest_checkpointed_iteration.txt"
    if latest.exists():
        step = latest.read_text().strip()
        return find_actor_dir(p / f"global_step_{step}")
    steps = sorted(p.glob("global_step_*"), key=lambda d: int(d.name.rsplit("_", 1)[-1]))
    if steps:
        return find_actor_dir(steps[-1])
    raise MissingInputError(f"{p}: not a verl FSDP checkpoint (no fsdp_config.json, actor/ or global_step_*)")


def merge_fsdp_checkpoint(path: str | Path, target_dir: str | Path, trust_remote_code: bool = False) -> Path:
    """Merge the sharded actor weights into ``target_dir`` (config, tokenizer and safetensors)."""
    from verl.model_merger.base_model_merger import ModelMergerConfig
    from verl.model_merger.fsdp_model_merger import FSDPModelMerger

    actor = find_actor_dir(path)
    target = Path(target_dir)
    target.mkdir(parents=True, exist_ok=True)
    config = ModelMergerConfig(
        operation="merge",
        backend="fsdp",
        local_dir=str(actor),
        target_dir=str(target),
        hf_model_config_path=str(actor / "huggingface"),
        trust_remote_code=trust_remote_code,
    )
    merger = FSDPModelMerger(config)
    merger.merge_and_save()
    merger.cleanup()
    fold_lora_adapter(target)
    return target


def fold_lora_adapter(target: str | Path) -> bool:
    """Fold a LoRA run's adapter into the merged weights; returns whether ``target`` had one.

    verl's merger writes a LoRA checkpoint as the *base* model's weights plus ``lora_adapter/`` (PEFT format,
    rank and alpha from the checkpoint's ``lora_train_meta.json``). Evaluated as it stands, that folder is the
    untrained base model. Here PEFT's ``merge_and_unload`` adds ``B @ A * alpha / r`` to each adapted weight and the
    folder is saved again, so ``dvmap eval``, vLLM and a later ``actor_rollout_ref.model.path`` get the trained
    policy; ``lora_adapter/`` stays beside it. An adapter with ``lora_alpha`` 0 (the metadata was missing) would
    fold to the base model: an InputError naming the file.
    """
    import json

    from dvmap_verl.errors import InputError

    target = Path(target)
    adapter = target / "lora_adapter"
    config_file = adapter / "adapter_config.json"
    if not config_file.is_file():
        return False
    if not json.loads(config_file.read_text()).get("lora_alpha"):
        raise InputError(f"{config_file}: lora_alpha is 0 (the checkpoint has no lora_train_meta.json), so the "
                         f"adapter would fold to nothing; set lora_alpha there to the run's "
                         f"actor_rollout_ref.model.lora_alpha and merge again")
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(target), dtype=torch.bfloat16)  # the merger saves bf16
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(target))
    return True


def checkpoint_source(path: str | Path) -> dict:
    """What a merge is made from: the actor folder (resolved), its step (from ``global_step_N``) and every file's
    size and modification time (ns), so that a newer or rewritten checkpoint is told from the one merged before."""
    actor = find_actor_dir(path).resolve()
    parent = actor.parent.name if actor.name == "actor" else actor.name
    step = int(parent.rsplit("_", 1)[-1]) if parent.startswith("global_step_") and parent.rsplit("_", 1)[-1].isdigit() \
        else None
    files = {str(f.relative_to(actor)): [f.stat().st_size, f.stat().st_mtime_ns]
             for f in sorted(actor.rglob("*")) if f.is_file()}
    return {"path": str(actor), "step": step, "files": files}
