"""``dvmap utility``: general ability of trained vs base via lm-evaluation-harness (Appendix H)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dvmap_verl.commands.common import check_local_models, positive_int


def add_parser(subparsers) -> argparse.ArgumentParser:
    ut = subparsers.add_parser("utility",
                               help="general ability of trained vs base via lm-evaluation-harness (Appendix H)")
    ut.add_argument("--model", required=True, help="the trained model (local folder or hub id)")
    ut.add_argument("--base", help="the base model, run with the same settings")
    ut.add_argument("--tasks", default="mmlu,arc_easy,gsm8k,hellaswag,ifeval",
                    help="comma-separated lm-eval tasks (default: the paper's Table 11)")
    ut.add_argument("--out", required=True, type=Path, help="folder for utility.md/json and results.json per model")
    ut.add_argument("--backend", choices=["hf", "vllm"], default="hf", help="lm-eval's model type")
    ut.add_argument("--limit", type=positive_int, help="first N documents per task (a quick look)")
    ut.add_argument("--include-path", help="folder of extra lm-eval task YAMLs")
    ut.add_argument("--batch-size", default="8", help="lm-eval batch size (a number or 'auto')")
    ut.add_argument("--device", help="e.g. cuda:0 or cpu (hf backend); default: cuda if torch sees a GPU, else cpu")
    return ut


def run(args: argparse.Namespace) -> int:
    from dvmap_verl.evaluation.utility import run_utility

    check_local_models(args, "model", "base")
    summary = run_utility(args.model, args.out, tasks=[t for t in args.tasks.split(",") if t], base=args.base,
                          backend=args.backend, limit=args.limit, include_path=args.include_path,
                          batch_size=args.batch_size, device=args.device)
    for r in summary["rows"]:
        print(f"{r['task']:>20} {r['metric']:<16} trained {r['trained']:.4f}" +
              (f"  base {r['base']:.4f}  delta {r['delta']:+.4f}" if "base" in r else ""))
    print(f"utility -> {Path(args.out) / 'utility.md'}, utility.json, results.json per model")
    return 0
