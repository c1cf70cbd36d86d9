"""``dvmap baselines``: score the baselines on test items, no model needed."""

from __future__ import annotations

import argparse
from pathlib import Path

from dvmap_verl.commands.common import DROP_OVERLAP, print_report, unique_paths


def add_parser(subparsers) -> argparse.ArgumentParser:
    b = subparsers.add_parser("baselines", help="score the baselines on test items, no model needed")
    b.add_argument("--train", required=True, type=Path, help="training split the baselines learn from")
    b.add_argument("--test", required=True, type=Path, nargs="+",
                   help="items to score: VeRL parquet file(s) or release locations, as for eval --data")
    b.add_argument("--out", required=True, type=Path, help="run folder for metrics.json, report.md and plots")
    b.add_argument("--drop-overlap", **DROP_OVERLAP)
    return b


def run(args: argparse.Namespace) -> int:
    from dvmap_verl.evaluation.evaluate import EvalConfig, build_items, describe_sources, prepare_run, run_lock
    from dvmap_verl.evaluation.report import build_report
    from dvmap_verl.data.completeness import check_input
    from dvmap_verl.evaluation.launch import without_training_items

    check_input(args.train, "--train", "dvmap baselines")
    test = [str(p) for p in unique_paths(args.test, "--test")]
    config = EvalConfig(backend="none", model="(baselines only)", data=test,
                        train=str(args.train), samples=0)
    items = build_items(config)
    print("test: " + "; ".join(describe_sources(items)))
    items = without_training_items(items, args.train, args.drop_overlap, "dvmap baselines")
    with run_lock(args.out):
        prepare_run(args.out, config, items)
        print_report(build_report(args.out, bootstrap=0), args.out)
    return 0
