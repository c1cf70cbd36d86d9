"""The ``dvmap`` command: prepare data, synthesise WVS, evaluate, baselines, report, demo."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from typing import Sequence

from dvmap_verl.commands import (analyze, baselines, compare, curves, demo, doctor, eval_pairs, evaluate,
                                 import_benchmark, import_run, merge, pairs_from_corpus, prepare, question_bank,
                                 report, smoke, synth_wvs, train_dpo, utility)
from dvmap_verl.errors import DvmapError
from dvmap_verl.commands.common import Parser, quiet_libraries  # noqa: F401 (quiet_libraries: re-exported)

#: The sub-commands in ``dvmap --help`` order; each module has ``add_parser(subparsers)`` and ``run(args)``.
COMMANDS = [prepare, synth_wvs, question_bank, evaluate, eval_pairs, pairs_from_corpus, baselines, report,
            import_run, compare, analyze, utility, doctor, smoke, curves, merge, demo, import_benchmark, train_dpo]


def build_parser() -> argparse.ArgumentParser:
    """The ``dvmap`` parser: ``-v`` and one sub-parser per module in :data:`COMMANDS` (``args.func`` is its ``run``)."""
    parser = Parser(prog="dvmap", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log details; show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub).set_defaults(func=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dvmap``; the exit status. Bad input or an unusable environment (a :class:`DvmapError`, or an
    ``OSError`` the operating system raised: disk full, permission denied) is one line ``dvmap: error: ...`` and 2
    (``--verbose`` shows its traceback); Ctrl-C is 130; any other exception is a bug in this package: its traceback,
    a line saying so, and 1."""
    try:
        parser = build_parser()  # plugins load here: a broken one is the user's environment, one line
    except DvmapError as e:
        print(f"dvmap: error: {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if getattr(args, "quiet", False):
        quiet_libraries()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        # Everything finished is on disk (results are appended as they arrive): the same command resumes. A command
        # whose outputs land whole or not at all (prepare) says so instead.
        print(getattr(args, "interrupted", None)
              or "dvmap: interrupted; finished work is saved, rerun the same command to resume", file=sys.stderr)
        return 130
    except DvmapError as e:
        if args.verbose:
            raise
        print(f"dvmap: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        if isinstance(e, OSError) and e.errno is not None and not args.verbose:
            # The operating system refused a file operation (no space, no permission, a file where a folder
            # belongs): the machine's state, not a bug; the message names the path.
            print(f"dvmap: error: {e}", file=sys.stderr)
            return 2
        traceback.print_exc()
        print(f"dvmap {args.command}: this is a bug in dvmap-verl, not a problem with your input: please report it "
              f"to the dvmap-verl maintainers (the project's issue tracker) with the command and the traceback above",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
