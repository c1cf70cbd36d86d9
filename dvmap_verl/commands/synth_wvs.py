"""``dvmap synth-wvs``: write a SYNTHETIC WVS-shaped file for tests and demos."""

from __future__ import annotations

import argparse
from pathlib import Path

from dvmap_verl.commands.common import non_negative_int, positive_int


def add_parser(subparsers) -> argparse.ArgumentParser:
    s = subparsers.add_parser("synth-wvs", help="write a SYNTHETIC WVS-shaped file for tests and demos")
    s.add_argument("--out", required=True, type=Path, help=".csv, .parquet, .sav or .dta")
    s.add_argument("--respondents", type=positive_int, default=97220, help="rows (the real file has 97,220)")
    s.add_argument("--seed", type=int, default=0, help="random seed")
    s.add_argument("--extra-columns", type=non_negative_int, default=0,
                   help="filler columns (the real file has ~600 in all)")
    s.add_argument("--countries", default=None, metavar="N|ISO3,...",
                   help="how many countries (the paper's 18 first, then other ISO countries) or a list of ISO "
                        "alpha-3 codes; default: the paper's 18")
    s.add_argument("--questions", type=positive_int, default=None, metavar="N",
                   help="value questions (the paper's 23 first, then synthetic WVS-numbered items); default 23")
    s.add_argument("--layout", choices=["wvs7", "joint"], default="wvs7",
                   help="variable names: WVS-7 (default) or the joint EVS/WVS 2017-2022 file's (README)")
    return s


def run(args: argparse.Namespace) -> int:
    from dvmap_verl.data import synth
    frame = synth.generate(args.respondents, seed=args.seed, extra_columns=args.extra_columns,
                           countries=args.countries, questions=args.questions, layout=args.layout)
    files = synth.write(frame, args.out)
    print(f"SYNTHETIC WVS-shaped data ({len(frame):,} respondents x {frame.shape[1]} columns; not survey data) -> "
          + ", ".join(map(str, files)))
    return 0
