"""The ``dvmap`` command: prepare data, synthesise WVS, evaluate, baselines, report, demo."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from dvmap_verl.commands import (analyze, baselines, compare, curves, demo, doctor, eval_pairs, evaluate, import_run,
                                 merge, pairs_from_corpus, prepare, report, smoke, synth_wvs, utility)
from dvmap_verl.commands.common import Parser, quiet_libraries  # noqa: F401 (quiet_libraries: re-exported)

#: The sub-commands in ``dvmap --help`` order; each module has ``add_parser(subparsers)`` and ``run(args)``.
COMMANDS = [prepare, synth_wvs, evaluate, eval_pairs, pairs_from_corpus, baselines, report, import_run, compare,
            analyze, utility, doctor, smoke, curves, merge, demo]


def build_parser() -> argparse.ArgumentParser:
    """The ``dvmap`` parser: ``-v`` and one sub-parser per module in :data:`COMMANDS` (``args.func`` is its ``run``)."""
    parser = Parser(prog="dvmap", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log details; show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub).set_defaults(func=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from dvmap_verl.evaluation.backends.replicas import ReplicaStartError
    from dvmap_verl.evaluation.evaluate import RunLockedError
    from dvmap_verl.preflight import PreflightError

    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "quiet", False):
        quiet_libraries()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        # Everything finished is on disk (results are appended as they arrive): the same command resumes.
        print("dvmap: interrupted; finished work is saved, rerun the same command to resume", file=sys.stderr)
        return 130
    except (ValueError, KeyError, FileNotFoundError, OSError, RunLockedError, ImportError, PreflightError,
            ReplicaStartError) as e:
        # Input problems: one clear line, no traceback (--verbose keeps it).
        if args.verbose:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"dvmap: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
