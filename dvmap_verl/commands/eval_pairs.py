"""``dvmap eval-pairs``: MVPBench-style preference pairs, likelihood and judge readouts, PAA."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dvmap_verl.commands.common import (QUIET, check_local_models, non_negative_int, positive_int, preflight_vllm,
                                        temperature)


def add_parser(subparsers) -> argparse.ArgumentParser:
    ep = subparsers.add_parser("eval-pairs", help="MVPBench-style preference pairs: likelihood and judge readouts, PAA")
    ep.add_argument("--data", required=True, type=Path, help="pairs table (parquet or JSONL; see dvmap_verl."
                                                               "evaluation.pairs for the columns)")
    ep.add_argument("--backend", choices=["vllm", "openai", "hf"], required=True, help="as for dvmap eval")
    ep.add_argument("--model", required=True, help="local path, HF id, or the served model name (openai)")
    ep.add_argument("--out", required=True, type=Path, help="run folder (rerun to resume)")
    ep.add_argument("--readout", nargs="+", choices=["likelihood", "judge"], default=["likelihood", "judge"],
                    help="likelihood: mean token log-prob of each answer; judge: pick A/B in both orders")
    ep.add_argument("--columns", nargs="+", metavar="OURS=THEIRS",
                    help="map the table's column names onto ours (question, chosen, rejected, profile, country...)")
    ep.add_argument("--temperature", type=temperature, default=0.0, help="judge sampling temperature in [0, 2]")
    ep.add_argument("--max-tokens", type=positive_int, default=32, help="judge completion length limit")
    ep.add_argument("--seed", type=int, default=0, help="seed of sampling and of --limit's subset")
    ep.add_argument("--limit", type=positive_int, help="a seeded random subset of N pairs")
    ep.add_argument("--base-url", help="OpenAI-compatible server")
    ep.add_argument("--api-key", help="default: $OPENAI_API_KEY")
    ep.add_argument("--tokenizer", help="openai + likelihood: tokenizer with the chat template (default: --model)")
    ep.add_argument("--batch-size", type=positive_int, default=8, help="hf: prompts per generate call")
    ep.add_argument("--bootstrap", type=non_negative_int, default=1000, help="bootstrap draws for the intervals")
    ep.add_argument("--quiet", **QUIET)
    return ep


def run(args: argparse.Namespace) -> int:
    from dvmap_verl.evaluation import pairs as P
    from dvmap_verl.evaluation.backends import GenerationSettings, make_backend
    from dvmap_verl.evaluation.evaluate import run_lock

    check_local_models(args, "model" if args.backend != "openai" else None, "tokenizer")
    config = P.PairsConfig(backend=args.backend, model=args.model, data=str(args.data), readouts=list(args.readout),
                           columns=P.parse_columns(args.columns), temperature=args.temperature,
                           max_tokens=args.max_tokens, seed=args.seed, limit=args.limit)
    pairs = P.load_pairs(args.data, config.columns)  # a wrong table fails before a model loads
    if args.limit and args.limit < len(pairs):
        pairs = pairs.sample(n=args.limit, random_state=args.seed).sort_index().reset_index(drop=True)
    if not args.quiet:
        print(f"pairs: {args.data}: {len(pairs):,}")
    if args.backend == "vllm":
        preflight_vllm("dvmap eval-pairs --backend vllm", 1, "1")
    settings = GenerationSettings(temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed)
    with run_lock(args.out):
        P.check_pairs_run(args.out, config, pairs)  # another table or other settings: refused before a model loads
        backend = make_backend(args.backend, args.model, settings, base_url=args.base_url, api_key=args.api_key,
                               batch_size=args.batch_size, tokenizer=args.tokenizer)
        status = P.run_pairs(backend, args.out, config, pairs, quiet=args.quiet)
    for line in status["errors"]:
        print(f"  failed: {line}", file=sys.stderr)
    out = P.pairs_report(args.out, bootstrap=args.bootstrap)
    P.print_summary(out)
    print(f"report -> {Path(args.out) / 'report.md'}, metrics.json")
    return 1 if status["failed"] else 0
