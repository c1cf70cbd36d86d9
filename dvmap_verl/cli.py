"""The ``dvmap`` command: prepare data, synthesise WVS, evaluate, baselines, report, demo."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

COMMANDS: dict[str, Callable[[argparse.ArgumentParser], None]] = {}


def _prepare_wvs(args: argparse.Namespace) -> int:
    from dvmap_verl.prepare import prepare_wvs
    from dvmap_verl.splits import SplitConfig

    config = SplitConfig(
        max_profiles_per_country=args.max_profiles_per_country,
        cross_country_max_profiles_per_country=args.cross_country_max_profiles_per_country,
        cross_value_max_profiles_per_country=args.cross_value_max_profiles_per_country,
        val_frac=args.val_frac,
        cross_demographic_frac=args.cross_demographic_frac,
        seed=args.seed,
    )
    stats = prepare_wvs(args.input, args.out, config=config, consensus=args.consensus, labels=args.labels,
                        template=args.template, system=args.system_prompt, quiet=args.quiet)
    if stats.get("synthetic"):
        print(f"NOTE: {stats['note']}")
    a = stats["archetypes"]
    print(f"respondents read {stats['respondents_read']:,}, kept {stats['respondents_kept']:,}; "
          f"profiles {a['profiles']:,}; respondents in shared profiles {a['shared_profile_respondent_share']:.1%}; "
          f"(profile, question) pairs dropped by H>0 {a['pairs_dropped_share']:.1%} "
          f"({a['answers_dropped_share']:.1%} of answers)")
    for name, s in stats["splits"].items():
        print(f"{name:>18}: {s['rows']:>7,} rows, {s['profiles']:>6,} profiles -> {Path(args.out) / (name + '.parquet')}")
    print(f"corpus and stats -> {Path(args.out) / 'corpus.parquet'}, {Path(args.out) / 'stats.json'}")
    return 0


def _prepare_release(args: argparse.Namespace) -> int:
    from dvmap_verl.release import prepare_release

    prepare_release(args.input, args.out, system=args.system_prompt, quiet=args.quiet)
    print(f"VeRL parquet, corpus.parquet and stats.json -> {args.out}")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from dvmap_verl import synth

    frame = synth.generate(args.respondents, seed=args.seed, extra_columns=args.extra_columns)
    files = synth.write(frame, args.out)
    print(f"SYNTHETIC WVS-shaped data ({len(frame):,} respondents x {frame.shape[1]} columns; not survey data) -> "
          + ", ".join(map(str, files)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from dvmap_verl.archetypes import CONSENSUS_RULES
    from dvmap_verl.prompts import SYSTEM_PROMPTS, USER_TEMPLATES

    parser = argparse.ArgumentParser(prog="dvmap", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    prep = sub.add_parser("prepare", help="build VeRL parquet splits").add_subparsers(dest="source", required=True)
    w = prep.add_parser("wvs", help="from a raw WVS Wave 7 file (.csv, .sav, .dta, .parquet)")
    w.add_argument("--input", required=True, type=Path)
    w.add_argument("--out", required=True, type=Path)
    w.add_argument("--max-profiles-per-country", type=int, default=400, help="0 = no cap (default 400: paper size)")
    w.add_argument("--cross-country-max-profiles-per-country", type=int, default=64)
    w.add_argument("--cross-value-max-profiles-per-country", type=int, default=105)
    w.add_argument("--val-frac", type=float, default=0.115)
    w.add_argument("--cross-demographic-frac", type=float, default=0.10)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--consensus", choices=CONSENSUS_RULES, default="strict",
                   help="strict: H = 0 (paper); majority: H >= 0 ablation (paper Table 3)")
    w.add_argument("--labels", type=Path, help="JSON {variable: {code: label}} for a CSV's religion/language codes")
    w.add_argument("--template", choices=sorted(USER_TEMPLATES), default="release")
    w.add_argument("--system-prompt", choices=sorted(SYSTEM_PROMPTS), default="release")
    w.add_argument("--quiet", action="store_true")
    w.set_defaults(func=_prepare_wvs)
    r = prep.add_parser("release", help="from the authors' released corpus / benchmark")
    r.add_argument("--input", required=True, type=Path, help="release folder, a parquet file or an Arrow folder")
    r.add_argument("--out", required=True, type=Path)
    r.add_argument("--system-prompt", choices=sorted(SYSTEM_PROMPTS), default="release")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=_prepare_release)

    s = sub.add_parser("synth-wvs", help="write a SYNTHETIC WVS-shaped file for tests and demos")
    s.add_argument("--out", required=True, type=Path, help=".csv, .parquet, .sav or .dta")
    s.add_argument("--respondents", type=int, default=97220)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--extra-columns", type=int, default=0, help="filler columns (the real file has ~600 in all)")
    s.set_defaults(func=_synth)

    for register in COMMANDS.values():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, FileNotFoundError, OSError) as e:
        # Input problems: one clear line, no traceback (--verbose keeps it).
        if args.verbose:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"dvmap: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
