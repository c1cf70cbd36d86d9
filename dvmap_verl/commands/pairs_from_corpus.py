"""``dvmap pairs-from-corpus``: DVMap items as preference pairs."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    pc = subparsers.add_parser("pairs-from-corpus", help="DVMap items -> preference pairs (chosen = the profile's "
                                                   "answer, rejected = the option farthest from it on the scale)")
    pc.add_argument("--data", required=True, type=Path, nargs="+", help="prepared split(s) or release locations")
    pc.add_argument("--out", required=True, type=Path, help="pairs file (.parquet or .jsonl)")
    return pc


def run(args: argparse.Namespace) -> int:
    from dvmap_verl.evaluation.evaluate import load_items
    from dvmap_verl.evaluation.pairs import pairs_from_items, write_pairs

    pairs = pairs_from_items(load_items([str(p) for p in args.data]))
    print(f"{len(pairs):,} pairs -> {write_pairs(pairs, args.out)}")
    return 0
