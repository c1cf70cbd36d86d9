"""``dvmap question-bank``: draft question-bank entries (YAML) from an SPSS/Stata file's variable and value labels."""

from __future__ import annotations

import argparse
from pathlib import Path

HEADER = """Question bank DRAFTED by `dvmap question-bank` from {input}'s variable and value labels: review it.
- text: the variable labels are codebook titles, not the question; replace them with the WVS questionnaire's wording
  before training (the model reads this text).
- options: the value labels in code order (missing codes -1..-5 left out); `code N` marks a code without a label.
- category: {category} until you set it; split: train or cross_value (held out for the cross-value split).
Schema: dvmap_verl/data/bank.py (README, Question bank)."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("question-bank", help="draft question-bank entries (YAML) from a .sav/.dta file's "
                                                    "variable and value labels, for review")
    p.add_argument("--input", required=True, type=Path, help="the WVS (or joint EVS/WVS) SPSS .sav or Stata .dta file")
    p.add_argument("--questions", required=True, metavar="VAR,...", help="variables to draft, e.g. Q57,Q58,Q199")
    p.add_argument("--out", required=True, type=Path, help="the bank file to write (.yaml)")
    p.add_argument("--split", choices=["train", "cross_value"], default="train", help="split role of every entry")
    p.add_argument("--category", default=None, help="category of every entry (default: UNREVIEWED)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from dvmap_verl.data.bank import dump_bank, load_bank
    from dvmap_verl.data.bank_draft import DRAFT_CATEGORY, draft_entries
    from dvmap_verl.errors import InputError
    from dvmap_verl.io import atomic_path

    variables = [v.strip() for v in args.questions.split(",") if v.strip()]
    if not variables:
        raise InputError(f"--questions: no variable names in {args.questions!r}")
    seen: dict[str, str] = {}
    for v in variables:
        if v.upper() in seen:
            raise InputError(f"--questions: {v} given twice")
        seen[v.upper()] = v
    if args.out.is_dir():
        raise InputError(f"--out {args.out}: is a folder; give the bank file's path (e.g. {args.out / 'bank.yaml'})")
    if args.out.exists() and not args.overwrite:
        raise InputError(f"{args.out}: exists; pass --overwrite to replace it, or choose another --out")
    category = args.category or DRAFT_CATEGORY
    entries = draft_entries(args.input, variables, args.split, category)
    text = dump_bank(entries, name=f"draft from {args.input.name}",
                     header=HEADER.format(input=args.input.name, category=category))
    with atomic_path(args.out) as tmp:
        tmp.write_text(text, encoding="utf-8")
        load_bank(tmp)  # what was written reads back as a bank (else nothing is left behind)
    print(f"{len(entries)} draft entr{'y' if len(entries) == 1 else 'ies'} -> {args.out}: review the question texts "
          f"(variable labels are not the questionnaire's wording) before training")
    return 0
