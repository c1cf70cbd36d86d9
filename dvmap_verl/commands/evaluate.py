"""``dvmap eval``: run a model on benchmark items (resumable) and write the report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dvmap_verl.commands.common import (DROP_OVERLAP, QUIET, check_local_models, non_negative_int, positive_int,
                                        positive_seconds, preflight_vllm, print_replies, print_report, replicas,
                                        temperature, unique_paths)
from dvmap_verl.errors import InputError

def add_parser(subparsers) -> argparse.ArgumentParser:
    from dvmap_verl.data.prompts import USER_TEMPLATES
    from dvmap_verl.evaluation.backends import backend_names
    from dvmap_verl.evaluation.readouts import readout_names

    e = subparsers.add_parser("eval", help="run a model on benchmark items (resumable) and write the report")
    e.add_argument("--backend", choices=backend_names(), required=True,
                   help="vllm (local GPU), openai (any OpenAI-compatible server) or hf (transformers, CPU/GPU)")
    e.add_argument("--model", required=True, help="local path, HF id, or the served model name (openai)")
    e.add_argument("--data", required=True, type=Path, nargs="+",
                   help="VeRL parquet file(s) from dvmap prepare, or release locations (clone root, folders, files)")
    e.add_argument("--out", required=True, type=Path, help="run folder (rerun the same command to resume)")
    e.add_argument("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    e.add_argument("--api-key", help="default: $OPENAI_API_KEY")
    e.add_argument("--samples", type=positive_int, default=1, help="samples per item (paper: 1)")
    e.add_argument("--temperature", type=temperature, default=0.7, help="sampling temperature in [0, 2] (paper: 0.7)")
    e.add_argument("--max-tokens", type=positive_int, default=1024, help="completion length limit")
    e.add_argument("--seed", type=int, default=0, help="seed of sampling and of --limit's subset")
    e.add_argument("--limit", type=positive_int, help="evaluate a seeded random subset of N items")
    e.add_argument("--concurrency", type=positive_int, default=16, help="openai: requests in flight")
    e.add_argument("--timeout", type=positive_seconds, default=120.0, help="openai: seconds per request (> 0)")
    e.add_argument("--max-retries", type=non_negative_int, default=6, help="openai: retries per request")
    e.add_argument("--batch-size", type=positive_int, default=8, help="hf: prompts per generate call")
    e.add_argument("--tensor-parallel-size", type=positive_int, default=1, help="vllm: GPUs per engine")
    e.add_argument("--replicas", type=replicas, default="1",
                   help="engine copies as Ray actors (vllm, hf): a number, or auto = every GPU Ray sees / TP")
    e.add_argument("--ray-address", help="join a running Ray cluster (default: $RAY_ADDRESS, else a local one)")
    e.add_argument("--enable-thinking", action="store_true", help="Qwen3 thinking (training recipes: off)")
    e.add_argument("--template", choices=sorted(USER_TEMPLATES),
                   help="re-render every prompt with this template (paper Table 4: release/paper structured CoT, "
                        "free reasoning, direct answer); default: the prompts as prepared")
    e.add_argument("--flip", nargs="?", const="Income Bracket", default=None, metavar="ATTRIBUTE",
                   help="also run counterfactual items with ATTRIBUTE inverted (default Income High<->Low)")
    e.add_argument("--flip-map", nargs="+", metavar="FROM=TO", help="value swaps for --flip (both directions)")
    e.add_argument("--readout", choices=readout_names(selectable=True), default="sampling",
                   help="how the model's distribution over the options is read: sampling (parsed answers of "
                        "--samples samples), logprob (option probabilities right after the prompt, no sampling), "
                        "logprob-after-reasoning (sampled reasoning, then option probabilities); a run made with "
                        "the distribution template also reads its stated distributions (verbalised)")
    e.add_argument("--answer-from-reasoning", action="store_true",
                   help="a reply with no <answer> block takes the last one in its reasoning (the server's "
                        "reasoning_content); recorded in run.json, and a resume must keep it")
    e.add_argument("--option-order", default="given", metavar="given|reversed|shuffled:K",
                   help="show each item's options as given, reversed, or in K seeded permutations (orders ride on "
                        "the sample axis: --samples per order); answers are mapped back to the canonical order and "
                        "the report adds position bias and cross-order consistency; a resume must keep it")
    e.add_argument("--calibrate-temperature", metavar="SPLIT",
                   help="logprob readouts: fit one temperature on SPLIT's items (softmax(logp / T)), apply it to "
                        "the other items; recorded in run.json, the report shows ECE, TV and RPS before and after")
    e.add_argument("--calibrate-on", choices=["rps", "tv"], default=None,
                   help="what --calibrate-temperature minimises (default: mean RPS)")
    e.add_argument("--tokenizer", help="openai + logprob readouts: tokenizer whose chat template renders the "
                                       "prompt for /completions (default: --model)")
    e.add_argument("--train", type=Path, help="training split for the baselines in the report; test items it also "
                                              "holds (same profile and question, or prompt) are refused")
    e.add_argument("--drop-overlap", **DROP_OVERLAP)
    e.add_argument("--bootstrap", type=non_negative_int, default=1000,
                   help="bootstrap draws for the 95%% intervals (0 = none)")
    e.add_argument("--no-report", action="store_true", help="only generate; run `dvmap report` later")
    e.add_argument("--quiet", **QUIET)
    return e


def run(args: argparse.Namespace) -> int:
    check_local_models(args, "model" if args.backend != "openai" else None, "tokenizer")
    if args.backend == "vllm":
        preflight_vllm("dvmap eval --backend vllm", args.tensor_parallel_size, args.replicas)
    config, items = _config_and_items(args)
    status, released = _generate(args, config, items)
    if released:
        for line in status["errors"]:
            print(f"  failed: {line}", file=sys.stderr)
        print(f"dvmap: all {status['failed']} request(s) failed and none was answered; nothing was kept in "
              f"{args.out}, so this command can be rerun with other settings", file=sys.stderr)
        return 1
    print(f"predictions -> {Path(args.out) / 'predictions.jsonl'} ({status['written']} new, "
          f"{status['resumed_from']} resumed, {status['failed']} failed)")
    for line in status["errors"]:
        print(f"  failed: {line}", file=sys.stderr)
    if config.calibrate_temperature is not None:
        _calibrate(args, config)
    if not args.no_report:
        from dvmap_verl.evaluation.report import build_report

        print_report(build_report(args.out, bootstrap=args.bootstrap), args.out)
    else:
        from dvmap_verl.evaluation.report import run_replies

        print_replies(run_replies(args.out))
    return 1 if status["failed"] else 0


def _config_and_items(args: argparse.Namespace):
    """The run's settings (engine included) and its items; every data problem surfaces here, before anything is
    written or a model is loaded."""
    from dvmap_verl.evaluation.evaluate import EvalConfig, build_items, describe_sources
    from dvmap_verl.evaluation.launch import engine_settings, flip_settings, without_training_items

    attribute, mapping = flip_settings(args.flip, args.flip_map)
    if args.calibrate_on is not None and not args.calibrate_temperature:  # else silently ignored
        raise InputError(f"--calibrate-on {args.calibrate_on} chooses what --calibrate-temperature SPLIT minimises; "
                         f"give --calibrate-temperature too, or leave --calibrate-on out")
    args.data = unique_paths(args.data)
    config = EvalConfig(backend=args.backend, model=args.model, data=[str(p) for p in args.data],
                        samples=args.samples, temperature=args.temperature, max_tokens=args.max_tokens,
                        seed=args.seed, limit=args.limit, enable_thinking=args.enable_thinking,
                        template=args.template, flip_attribute=attribute, flip_map=mapping,
                        train=str(args.train) if args.train else None, readout=args.readout,
                        answer_from_reasoning=args.answer_from_reasoning, option_order=args.option_order,
                        calibrate_temperature=args.calibrate_temperature, calibrate_on=args.calibrate_on or "rps")
    if args.train:
        from dvmap_verl.data.completeness import check_input

        check_input(args.train, "--train", "dvmap eval")
    if args.readout != "sampling" and str(args.replicas) != "1":
        raise InputError(f"--readout {args.readout} runs on one engine: --replicas is for sampling runs")
    items = build_items(config)
    if not args.quiet:
        print("items: " + "; ".join(describe_sources(items)))
    if args.train:
        items = without_training_items(items, args.train, args.drop_overlap, "dvmap eval")
    if config.calibrate_temperature is not None:
        from dvmap_verl.evaluation.calibration import check_calibration_split

        check_calibration_split(items, config.calibrate_temperature)
    config.engine = engine_settings(config, items, replicas=args.replicas, ray_address=args.ray_address,
                                    tensor_parallel_size=args.tensor_parallel_size, batch_size=args.batch_size)
    return config, items


def _calibrate(args: argparse.Namespace, config) -> None:
    """``--calibrate-temperature``: fit T on the held-out split's records and record it in run.json."""
    from dvmap_verl.evaluation.calibration import calibrate_run

    fit = calibrate_run(args.out, config.calibrate_temperature, config.calibrate_on)
    print(f"temperature T = {fit['temperature']:.4f} fitted on split {fit['split']} ({fit['records']} "
          f"record(s)), mean {fit['objective'].upper()} {fit['loss_before']:.4f} -> {fit['loss_after']:.4f}; "
          f"recorded in {Path(args.out) / 'run.json'}")


def _generate(args: argparse.Namespace, config, items) -> tuple[dict, bool]:
    """Start the engine and run the items; (run_eval's status, whether the run folder was released because every
    request failed and nothing was written)."""
    from dvmap_verl.evaluation.backends import make_backend
    from dvmap_verl.evaluation.evaluate import prepare_run, run_eval, run_lock
    from dvmap_verl.evaluation.launch import RunClaim

    engine = config.engine
    claimed = RunClaim(args.out)
    with run_lock(args.out):
        prepare_run(args.out, config, items)
        # A run whose engine never started, or that failed before its first prediction (the server is down),
        # leaves no folder behind: a corrected rerun is a new run, not a resume refused for its settings.
        with claimed.released_on_error():
            backend = make_backend(args.backend, args.model, config.generation(), base_url=args.base_url,
                                   api_key=args.api_key, concurrency=args.concurrency, timeout=args.timeout,
                                   max_retries=args.max_retries, batch_size=args.batch_size,
                                   tensor_parallel_size=args.tensor_parallel_size, replicas=args.replicas,
                                   ray_address=engine["ray_address"], max_model_len=engine.get("max_model_len"),
                                   tokenizer=args.tokenizer)
            if getattr(backend, "settings", None) and isinstance(backend.settings, dict):
                print(f"engine: {backend.settings}")
            status = run_eval(backend, args.out, config, quiet=args.quiet, items=items)
        # Every request failed and nothing was written: the folder is released as when the server is down at
        # the start, so a rerun with corrected settings (--model, --base-url) is not refused as a resume.
        released = bool(not status["written"] and status["failed"] and claimed.release())
    return status, released
