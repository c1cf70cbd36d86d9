"""``dvmap import-benchmark NAME --input PATH --out DIR``: a peer opinion benchmark as DVMap evaluation items.

Writes ``DIR/{NAME}_{TEMPLATE}.parquet`` (what ``dvmap eval --data`` reads; the file name, kept in the eval's
``run.json``, records the prompt format) and ``DIR/stats.json``, together or not at all.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    from dvmap_verl.data.benchmarks import importers

    known = importers()
    p = subparsers.add_parser(
        "import-benchmark", help="a peer opinion benchmark (GlobalOpinionQA, OpinionQA, SubPOP, WorldValuesBench) "
                                 "as evaluation items")
    p.add_argument("name", choices=[i.name for i in known], help="the benchmark")
    p.add_argument("--input", required=True, type=Path, help="the benchmark's file or folder, as it ships")
    p.add_argument("--out", required=True, type=Path, help="folder for the items parquet and stats.json")
    p.add_argument("--template", help="prompt format; " + "; ".join(
        f"{i.name}: {'|'.join(i.templates)} (default {i.templates[0]})" for i in known))
    p.add_argument("--skip-bad-rows", action="store_true",
                   help="count and list malformed rows in stats.json instead of stopping at the first")
    p.add_argument("--draws", type=int, help="answers per item of the sampling floor (default: the benchmark's)")
    return p


def run(args: argparse.Namespace) -> int:
    from dvmap_verl.data.benchmarks import import_benchmark

    stats = import_benchmark(args.name, args.input, args.out, template=args.template,
                             skip_bad_rows=args.skip_bad_rows, draws=args.draws)
    out = Path(args.out)
    print(f"{args.name}: {stats['items']:,} items ({stats['questions']:,} questions x {stats['groups']:,} groups; "
          f"{stats['ordinal_items']:,} ordinal, {len(stats['non_ordinal_items']):,} not) -> "
          f"{out / stats['items_file']}")
    if stats["bad_rows"]["count"] or stats["set_aside"]:
        print(f"{stats['bad_rows']['count']:,} malformed row(s) skipped, {len(stats['set_aside']):,} item(s) set "
              f"aside: listed in {out / 'stats.json'}")
    return 0
