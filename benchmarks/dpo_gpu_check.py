"""`dvmap train-dpo` on a device: a few DPO steps on a tiny local model; DPO loss before/after and peak memory.

    python benchmarks/dpo_gpu_check.py [--device cuda|cpu] [--steps 8] [--model DIR] [--pairs FILE] [--json FILE]

No downloads: without ``--model`` a tiny Qwen2-architecture model is built locally (head size 64, which GPU kernels
accept); without ``--pairs`` 16 handmade pairs in the ``pairs-from-corpus`` format are used. The loss and the
chosen-minus-rejected margin are recomputed here from the base and merged models by a plain forward pass (summed
answer log-probabilities after the ``eval-pairs`` prompt; DPO loss = -log sigmoid(beta * implicit margin)), so they
are the trained model's, not TRL's log. Before training the policy is the reference: the loss is ln 2 = 0.6931.
Peak memory: ``torch.cuda.max_memory_allocated`` over the training call on CUDA, the process's peak RSS on CPU.
Exit status 1 when the loss did not fall.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

QUESTIONS = [("How important is family in your life?", "Very important", "Not at all important"),
             ("How important is religion in your life?", "Not at all important", "Very important"),
             ("Is homosexuality justifiable?", "Always justifiable", "Never justifiable"),
             ("How much do you trust people you meet for the first time?", "Do not trust at all",
              "Trust completely")]
PROFILES = ["You are a woman from Germany aged 30 to 49, with a university degree.",
            "You are a man from Nigeria aged 18 to 29, working in agriculture.",
            "You are a retired woman from Japan aged 65 or over.",
            "You are a man from Brazil aged 50 to 64, self-employed."]


def handmade_pairs(path: Path) -> Path:
    """16 pairs (4 profiles x 4 questions) with the columns ``dvmap pairs-from-corpus`` writes that train-dpo reads."""
    rows = [{"pair_id": i * len(QUESTIONS) + j, "profile": p, "question": q,
             "chosen": c if i % 2 == 0 else r, "rejected": r if i % 2 == 0 else c}
            for i, p in enumerate(PROFILES) for j, (q, c, r) in enumerate(QUESTIONS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def answer_logps(model_dir: Path, pairs, device: str):
    """Summed log-probabilities of (chosen, rejected) per pair after the eval-pairs chat prompt (thinking off)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dvmap_verl.evaluation.pairs import pair_messages

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).to(device).eval()
    out = []
    for row in pairs.to_dict("records"):
        ctx = tok(tok.apply_chat_template(list(pair_messages(row)), tokenize=False, add_generation_prompt=True,
                                          enable_thinking=False), add_special_tokens=False)["input_ids"]
        pair = []
        for key in ("chosen", "rejected"):
            ids = torch.tensor([ctx + tok(row[key] + tok.eos_token, add_special_tokens=False)["input_ids"]],
                               device=device)
            with torch.no_grad():
                logp = model(ids).logits[0, :-1].float().log_softmax(-1)
            pair.append(float(logp.gather(1, ids[0, 1:, None])[len(ctx) - 1:, 0].sum()))
        out.append(pair)
    del model
    return torch.tensor(out)  # (pairs, 2)


def dpo_loss(policy, reference, beta: float) -> float:
    import torch.nn.functional as F

    implicit = (policy[:, 0] - reference[:, 0]) - (policy[:, 1] - reference[:, 1])
    return float(-F.logsigmoid(beta * implicit).mean())


def run_check(args, work: Path) -> dict:
    import torch

    from dvmap_verl.evaluation.pairs import load_pairs
    from dvmap_verl.training.dpo import DPOSettings, train_dpo
    from dvmap_verl.training.tiny import build_model, build_tokenizer

    model = args.model
    if model is None:
        model = work / "tiny"
        build_model(model, build_tokenizer(model), hidden_size=256, heads=4)
    pairs_path = args.pairs or handmade_pairs(work / "pairs.jsonl")
    pairs = load_pairs(pairs_path)
    settings = DPOSettings(model=str(model), pairs=str(pairs_path), out=str(work / "dpo"), max_steps=args.steps,
                           batch_size=args.batch_size, learning_rate=args.lr, beta=args.beta, logging_steps=1,
                           save_steps=args.steps, lora_rank=args.lora_rank, lora_alpha=2.0 * args.lora_rank)
    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    record = train_dpo(settings, quiet=True)
    seconds = time.perf_counter() - t0
    peak_gib = (torch.cuda.max_memory_allocated() if cuda
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**30
    base, merged = answer_logps(Path(model), pairs, args.device), answer_logps(work / "dpo", pairs, args.device)
    logged = [h["loss"] for h in record["log_history"] if "loss" in h]
    return {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "model": str(args.model or "tiny (local)"),
            "pairs": len(pairs), "steps": record["global_step"], "train_seconds": round(seconds, 2),
            "peak_memory_gib": round(peak_gib, 3),
            "peak_memory_kind": "torch.cuda.max_memory_allocated" if cuda else "process peak RSS",
            "loss_before": dpo_loss(base, base, args.beta), "loss_after": dpo_loss(merged, base, args.beta),
            "margin_before": float((base[:, 0] - base[:, 1]).mean()),
            "margin_after": float((merged[:, 0] - merged[:, 1]).mean()),
            "trl_loss_first_step": logged[0] if logged else None, "trl_loss_last_step": logged[-1] if logged else None,
            "bf16": bool(cuda and torch.cuda.is_bf16_supported())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cpu hides every GPU")
    ap.add_argument("--steps", type=int, default=8, help="optimizer steps")
    ap.add_argument("--batch-size", type=int, default=8, help="pairs per step")
    ap.add_argument("--lr", type=float, default=5e-3, help="learning rate (high: a tiny random model, few steps)")
    ap.add_argument("--beta", type=float, default=0.1, help="DPO beta")
    ap.add_argument("--lora-rank", type=int, default=8, help="LoRA rank (alpha = 2 x rank)")
    ap.add_argument("--model", type=Path, help="a local model folder instead of the tiny one (no downloads)")
    ap.add_argument("--pairs", type=Path, help="a pairs table instead of the 16 handmade pairs")
    ap.add_argument("--workdir", type=Path, help="where the model and run go (default: a temporary folder)")
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args(argv)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch is imported: train-dpo then runs on the CPU
    else:
        import torch

        if not torch.cuda.is_available():
            print("no CUDA device visible; use --device cpu", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory() as tmp:
        result = run_check(args, args.workdir or Path(tmp))
    print(f"train-dpo on {result['device']}: {result['steps']} steps on {result['pairs']} pairs in "
          f"{result['train_seconds']:.1f} s; peak memory {result['peak_memory_gib']:.3f} GiB "
          f"({result['peak_memory_kind']})")
    print(f"DPO loss (plain forward, base vs merged): before {result['loss_before']:.4f} (ln 2 = {math.log(2):.4f}), "
          f"after {result['loss_after']:.4f}; chosen-minus-rejected log-prob margin {result['margin_before']:.3f} "
          f"-> {result['margin_after']:.3f}; TRL's logged loss step 1 {result['trl_loss_first_step']:.4f}, "
          f"last {result['trl_loss_last_step']:.4f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0 if result["loss_after"] < result["loss_before"] else 1


if __name__ == "__main__":
    sys.exit(main())
