"""``dvmap demo``: the whole pipeline on a CPU (synthetic data, tiny model, report)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dvmap_verl.commands.common import positive_int


def add_parser(subparsers) -> argparse.ArgumentParser:
    d = subparsers.add_parser("demo", help="the whole pipeline on a CPU: synthetic data, tiny model, report")
    d.add_argument("--out", required=True, type=Path, help="folder for every stage's output and the log")
    d.add_argument("--respondents", type=positive_int, default=20000, help="synthetic respondents")
    d.add_argument("--limit", type=positive_int, default=60, help="benchmark items for the tiny model")
    d.add_argument("--seed", type=int, default=0, help="random seed")
    return d


def run(args: argparse.Namespace) -> int:
    from dvmap_verl.demo import run_demo

    run_demo(args.out, respondents=args.respondents, limit=args.limit, seed=args.seed)
    return 0
