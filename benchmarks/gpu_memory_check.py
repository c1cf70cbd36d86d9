"""Measured peak GPU memory of one training step against dvmap's estimate (dvmap_verl/training/memory.py).

    python benchmarks/gpu_memory_check.py                 # CUDA: Qwen3-0.6B-shaped model, 8 configurations
    python benchmarks/gpu_memory_check.py --dry-run       # CPU: a tiny Qwen3 config, runs the code, measures nothing

Needs torch, transformers and peft only (no verl, no network, no downloads): the model is a randomly initialised
Qwen3 built from Qwen3-0.6B's published config.json values (written below). Every tensor is bf16: weights,
gradients and AdamW states (torch's AdamW keeps its states in the parameter dtype), as verl's actor with
``fsdp_config.model_dtype=bf16``. Per configuration -- (a) full fine-tuning or (b) LoRA (PEFT, rank 32 on every
linear layer of the decoder, adapter kept in bf16 as verl casts it), with and without gradient checkpointing, at a
given micro-batch x sequence length -- it runs two steps of forward, backward and AdamW on random token ids with
the GRPO-style loss verl computes (per-token log-probs of the labels from the bf16 logits), and records
``torch.cuda.max_memory_allocated`` over both steps and the allocated memory after the step (weights + gradients
+ Adam states). Beside each it prints the estimate of ``memory.estimate`` for the same configuration (one GPU, no
FSDP sharding, no fixed overhead: the allocator counter holds no CUDA context) and the ratio estimate / measured.

Output: a table on stdout; ``$OUT/gpu_memory_check.json`` when ``OUT`` is set. Takes about a minute on one H200.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # dvmap_verl from this checkout, not installed

from dvmap_verl.training.memory import GIB, Setup, estimate, shape_from_config  # noqa: E402

# Qwen3-0.6B's config.json (huggingface.co/Qwen/Qwen3-0.6B), the values that set its sizes.
QWEN3_06B = {
    "model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "hidden_size": 1024, "intermediate_size": 3072,
    "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
    "vocab_size": 151936, "max_position_embeddings": 40960, "rms_norm_eps": 1e-6, "rope_theta": 1000000,
    "tie_word_embeddings": True, "hidden_act": "silu", "attention_bias": False,
}
TINY = {**QWEN3_06B, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 1000, "max_position_embeddings": 512}
LORA_RANK = 32


def build(config: dict, device: str, lora: bool, checkpointing: bool):
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    cfg = Qwen3Config(**{k: v for k, v in config.items() if k not in ("model_type", "architectures")})
    cfg._attn_implementation = "sdpa"  # FlashAttention-style kernels: no s x s matrix kept
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = Qwen3ForCausalLM(cfg)
    finally:
        torch.set_default_dtype(previous)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora:
        from peft import LoraConfig, get_peft_model

        model.enable_input_require_grads()
        model = get_peft_model(model, LoraConfig(r=LORA_RANK, lora_alpha=LORA_RANK, target_modules="all-linear",
                                                 task_type="CAUSAL_LM"), autocast_adapter_dtype=False)
    model.train()
    return model


def step(model, optimizer, ids):
    import torch

    logits = model(input_ids=ids[:, :-1]).logits  # bf16, as verl's actor forward
    logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    loss = -logp.mean()
    loss.backward()
    optimizer.step()


def run_one(config: dict, device: str, lora: bool, checkpointing: bool, batch: int, seq: int) -> dict:
    import torch

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    model = build(config, device, lora, checkpointing)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    gen = torch.Generator(device="cpu").manual_seed(0)
    ids = torch.randint(0, config["vocab_size"], (batch, seq + 1), generator=gen).to(device)
    t0 = time.perf_counter()
    step(model, optimizer, ids)
    static = torch.cuda.memory_allocated() - base if cuda else None  # weights + gradients + Adam states
    optimizer.zero_grad(set_to_none=False)
    step(model, optimizer, ids)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() - base if cuda else None
    trainable = sum(p.numel() for p in params)
    del model, optimizer, params, ids
    setup = Setup(shape_from_config(config), n_gpus=1, model_dtype_bytes=2, lora_rank=LORA_RANK if lora else 0,
                  gradient_checkpointing=checkpointing, tokens_per_micro_batch=batch * seq, fsdp=False,
                  overhead_bytes=0)
    parts = estimate(setup).parts["actor training"]
    est_static = parts["actor weights"] + parts["actor gradients"] + parts["actor adam"]
    return {"method": "lora" if lora else "full", "gradient_checkpointing": checkpointing, "micro_batch": batch,
            "seq_len": seq, "tokens": batch * seq, "trainable_params": trainable,
            "trainable_params_estimate": setup.trainable, "seconds_two_steps": round(seconds, 2),
            "measured_peak_bytes": peak, "estimate_peak_bytes": sum(parts.values()),
            "measured_static_bytes": static, "estimate_static_bytes": est_static,
            "estimate_parts_bytes": parts,
            "ratio_peak": round(sum(parts.values()) / peak, 3) if peak else None,
            "ratio_static": round(est_static / static, 3) if static else None}


def _gib(v) -> str:
    return "n/a" if v is None else f"{v / GIB:.2f}"


def table(rows: list[dict]) -> str:
    head = (f"{'method':<6} {'ckpt':<5} {'b x s':>11} {'peak GiB':>9} {'est GiB':>8} {'est/meas':>8} "
            f"{'static':>7} {'est':>6} {'est/meas':>8} {'s':>5}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['method']:<6} {str(r['gradient_checkpointing']).lower():<5} "
                     f"{r['micro_batch']:>4} x {r['seq_len']:<4} {_gib(r['measured_peak_bytes']):>9} "
                     f"{_gib(r['estimate_peak_bytes']):>8} {r['ratio_peak'] or 'n/a':>8} "
                     f"{_gib(r['measured_static_bytes']):>7} {_gib(r['estimate_static_bytes']):>6} "
                     f"{r['ratio_static'] or 'n/a':>8} {r['seconds_two_steps']:>5}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny config: exercise the code, measure nothing")
    ap.add_argument("--shapes", default="1x4096,4x4096", help="micro-batch x sequence length pairs (comma-separated)")
    args = ap.parse_args(argv)
    import torch

    if args.dry_run:
        config, device, shapes = TINY, "cpu", [(1, 64), (2, 32)]
    else:
        if not torch.cuda.is_available():
            print("no CUDA device: run with --dry-run on a CPU", file=sys.stderr)
            return 2
        config, device = QWEN3_06B, "cuda"
        shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    rows = []
    for batch, seq in shapes:
        for lora in (False, True):
            for ckpt in (False, True):
                rows.append(run_one(config, device, lora, ckpt, batch, seq))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    out = os.environ.get("OUT")
    if out:
        info = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "torch": torch.__version__,
                "config": config, "lora_rank": LORA_RANK, "rows": rows}
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "gpu_memory_check.json").write_text(json.dumps(info, indent=1))
        print(f"\nJSON -> {Path(out) / 'gpu_memory_check.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
