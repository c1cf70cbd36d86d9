"""``dvmap import-run``: the authors evaluation CSVs as a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from dvmap_verl.commands.common import non_negative_int, print_report


def add_parser(subparsers) -> argparse.ArgumentParser:
    im = subparsers.add_parser("import-run", help="the authors' evaluation CSVs as a run folder (report, compare)")
    im.add_argument("--release-csv", required=True, type=Path, nargs="+",
                    help="CSV file(s) written by the authors' eval_api_parallel.py")
    im.add_argument("--benchmark", required=True, type=Path,
                    help="the benchmark they evaluated (a Cross-* folder, the benchmark folder or the clone root)")
    im.add_argument("--out", required=True, type=Path, help="a new run folder")
    im.add_argument("--model", help="name shown in reports (default: the first CSV's file name)")
    im.add_argument("--train", type=Path, help="training split for the baselines in the report")
    im.add_argument("--bootstrap", type=non_negative_int, default=1000,
                    help="bootstrap draws for the 95%% intervals (0 = none)")
    return im


def run(args: argparse.Namespace) -> int:
    from dvmap_verl.evaluation.import_run import import_release_csv
    from dvmap_verl.evaluation.report import build_report

    import_release_csv(args.release_csv, args.benchmark, args.out, model=args.model)
    print_report(build_report(args.out, train=args.train, bootstrap=args.bootstrap), args.out)
    return 0
