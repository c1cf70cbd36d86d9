"""``dvmap train-dpo``: DPO with LoRA on preference pairs (TRL + PEFT), merged on save.

The library is :mod:`dvmap_verl.training.dpo`; TRL is imported only when this command runs.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from dvmap_verl.training.dpo import DPOSettings

_D = DPOSettings(model="", pairs="", out="")  # the defaults, shown in --help


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value

    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train-dpo", help="DPO with LoRA on preference pairs (TRL DPOTrainer + PEFT; MVPBench's method), "
                          "LoRA merged on save",
        description="DPO with LoRA on preference pairs (TRL DPOTrainer + PEFT), LoRA merged into the weights on save: "
                    "the output folder loads in dvmap eval and eval-pairs. Needs the dpo extra.")
    p.add_argument("--pairs", required=True, type=Path,
                   help="pairs table (parquet or JSONL: question, chosen, rejected, ...; `dvmap pairs-from-corpus`)")
    p.add_argument("--model", required=True, help="base model: local folder or Hugging Face id (with a chat template)")
    p.add_argument("--out", required=True, type=Path,
                   help="output folder: merged model + tokenizer, dpo_run.json, checkpoints/")
    p.add_argument("--columns", nargs="+", metavar="OURS=THEIRS",
                   help="map the table's column names onto ours, comma- or space-separated "
                        "(e.g. prompt=instruction,chosen=good,rejected=bad; prompt is the question column)")
    p.add_argument("--lora-rank", type=_positive(int), default=_D.lora_rank, help="LoRA rank r")
    p.add_argument("--lora-alpha", type=_positive(float), default=_D.lora_alpha, help="LoRA alpha (scale alpha/r)")
    p.add_argument("--lora-dropout", type=_fraction, default=_D.lora_dropout, help="dropout on the LoRA input")
    p.add_argument("--beta", type=_positive(float), default=_D.beta, help="DPO beta (strength of the KL anchor)")
    p.add_argument("--lr", type=_positive(float), default=_D.learning_rate, help="learning rate (AdamW, linear decay)")
    p.add_argument("--epochs", type=_positive(float), default=_D.epochs, help="passes over the pairs")
    p.add_argument("--max-steps", type=_positive(int), help="stop after N optimizer steps (overrides --epochs)")
    p.add_argument("--batch-size", type=_positive(int), default=_D.batch_size, help="pairs per device per step")
    p.add_argument("--gradient-accumulation-steps", type=_positive(int), default=_D.gradient_accumulation_steps,
                   help="micro-batches per optimizer step")
    p.add_argument("--max-length", type=_positive(int), default=_D.max_length,
                   help="prompt + answer tokens kept: a longer answer is cut at its end; a pair whose prompt alone "
                        "reaches it is an error before anything is written")
    p.add_argument("--save-steps", type=_positive(int), default=_D.save_steps, help="checkpoint every N steps")
    p.add_argument("--logging-steps", type=_positive(int), default=_D.logging_steps, help="log every N steps")
    p.add_argument("--seed", type=int, default=_D.seed, help="seed of LoRA initialisation and data order")
    p.add_argument("--enable-thinking", action="store_true", help="Qwen3 thinking in the chat template (default off)")
    p.add_argument("--no-gradient-checkpointing", action="store_true",
                   help="faster, more activation memory")
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest checkpoint in OUT/checkpoints (same settings; the step count "
                        "continues; an error when OUT has no checkpoint or it is already at --max-steps)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or start line")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from dvmap_verl.training.dpo import is_main_process, parse_column_specs, train_dpo

    settings = DPOSettings(
        model=str(args.model), pairs=str(args.pairs), out=str(args.out), columns=parse_column_specs(args.columns),
        lora_rank=args.lora_rank, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout, beta=args.beta,
        learning_rate=args.lr, epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps, max_length=args.max_length,
        save_steps=args.save_steps, logging_steps=args.logging_steps, seed=args.seed,
        enable_thinking=args.enable_thinking, gradient_checkpointing=not args.no_gradient_checkpointing)
    record = train_dpo(settings, resume=args.resume, quiet=args.quiet)
    if not is_main_process():
        return 0
    losses = [(h["step"], h["loss"]) for h in record["log_history"] if "loss" in h and "step" in h]
    last = f", loss {losses[-1][1]:.4f} at step {losses[-1][0]}" if losses else ""
    print(f"DPO: step {record['global_step']} on {record['n_pairs']:,} pairs{last}; merged model -> {args.out}")
    return 0
