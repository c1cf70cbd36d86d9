"""``dvmap report``: metrics.json, report.md and plots for a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from dvmap_verl.commands.common import non_negative_int, print_report


def add_parser(subparsers) -> argparse.ArgumentParser:
    from dvmap_verl.evaluation.report import CORRECTNESS

    rp = subparsers.add_parser("report", help="metrics.json, report.md and plots for a run folder")
    rp.add_argument("run_dir", type=Path, help="a run folder written by dvmap eval or dvmap baselines")
    rp.add_argument("--train", type=Path, help="training split for the baselines (default: the run's --train)")
    rp.add_argument("--bootstrap", type=non_negative_int, default=1000,
                    help="bootstrap draws for the 95%% intervals (0 = none)")
    rp.add_argument("--correctness", choices=CORRECTNESS, default="resolver",
                    help="model Acc by the reward's resolver (default) or the authors' evaluation rule exactly "
                         "(release; lenient is its old name, kept one release)")
    return rp


def run(args: argparse.Namespace) -> int:
    from dvmap_verl.evaluation.report import build_report

    print_report(build_report(args.run_dir, train=args.train, bootstrap=args.bootstrap,
                              correctness=args.correctness), args.run_dir)
    return 0
