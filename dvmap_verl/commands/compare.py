"""``dvmap compare``: runs side by side, with paired bootstrap differences from the first."""

from __future__ import annotations

import argparse
from pathlib import Path

from dvmap_verl.commands.common import DROP_OVERLAP, non_negative_int


def add_parser(subparsers) -> argparse.ArgumentParser:
    cp = subparsers.add_parser("compare", help="runs side by side, with paired bootstrap differences from the first")
    cp.add_argument("runs", type=Path, nargs="+", help="run folders; the first is the reference")
    cp.add_argument("--out", required=True, type=Path, help="folder for compare.md, compare.json and plots")
    cp.add_argument("--names", nargs="+", help="a name per run (default: the folder names)")
    cp.add_argument("--bootstrap", type=non_negative_int, default=1000, help="paired bootstrap draws (0 = none)")
    cp.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    cp.add_argument("--drop-overlap", **DROP_OVERLAP)
    return cp


def run(args: argparse.Namespace) -> int:
    from dvmap_verl.evaluation.compare import compare_runs, fmt_ci

    out = compare_runs(args.runs, args.out, names=args.names, bootstrap=args.bootstrap, seed=args.seed,
                       drop_overlap=args.drop_overlap)
    for line in out["tables_read"]:
        print(f"read: {line}")
    frame = out["_headline_frame"]
    print(frame.loc["all"].to_string(float_format=lambda v: f"{v:.3f}") if "all" in frame.index else frame)
    for d in out["differences"]:
        print(f"{d['run']} - {out['reference']} on {d['shared_items']:,} shared items: "  # --bootstrap 0: no intervals
              f"Acc {fmt_ci(d['d_acc'], d['d_acc_lo'], d['d_acc_hi'])}, "
              f"LC {fmt_ci(d['d_lc'], d['d_lc_lo'], d['d_lc_hi'])}, WD {d['d_wd']:+.3f}")
    for note in out["notes"]:
        print(f"NOTE: {note}")
    print(f"compare -> {Path(args.out) / 'compare.md'}, compare.json, {len(out['plots'])} plot(s)")
    return 0
