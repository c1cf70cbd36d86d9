"""``dvmap prepare sft --data DIR --out DIR``: verl SFT parquet (``messages``) from a prepared DVMap folder, for the
SFT warm start before GRPO (recipe ``dvmap_qwen3_4b_sft``, then ``dvmap_qwen3_4b_from_sft``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(prepare_subparsers) -> argparse.ArgumentParser:
    """Register ``sft`` under ``dvmap prepare``; returns its parser."""
    p = prepare_subparsers.add_parser(
        "sft", help="verl SFT parquet (messages = prompt + answer block) from a prepared folder, for an SFT warm start")
    p.add_argument("--data", required=True, type=Path,
                   help="a folder written by `dvmap prepare wvs|release` (train.parquet, and val.parquet if present)")
    p.add_argument("--out", required=True, type=Path, help="output folder for train.parquet / val.parquet")
    p.add_argument("--overwrite", action="store_true", help="replace SFT files already in --out")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from dvmap_verl.data.sft import prepare_sft

    rows = prepare_sft(args.data, args.out, overwrite=args.overwrite)
    for split, n in rows.items():
        print(f"{split:>6}: {n:>7,} SFT rows -> {Path(args.out) / (split + '.parquet')}")
    print(f"train with: python -m verl.trainer.sft_trainer +recipe=dvmap_qwen3_4b_sft dvmap.sft_data_dir={args.out}")
    return 0
