"""The ``dvmap`` command: prepare data, synthesise WVS, evaluate, baselines, report, demo."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

def _prepare_wvs(args: argparse.Namespace) -> int:
    from dvmap_verl.data.prepare import EmptySplitError, prepare_wvs
    from dvmap_verl.data.splits import SplitConfig

    config = SplitConfig(
        max_profiles_per_country=args.max_profiles_per_country,
        cross_country_max_profiles_per_country=args.cross_country_max_profiles_per_country,
        cross_value_max_profiles_per_country=args.cross_value_max_profiles_per_country,
        disagreement_max_profiles_per_country=args.disagreement_max_profiles_per_country,
        val_frac=args.val_frac,
        cross_demographic_frac=args.cross_demographic_frac,
        seed=args.seed,
    )
    try:
        stats = prepare_wvs(args.input, args.out, config=config, consensus=args.consensus, labels=args.labels,
                            template=args.template, system=args.system_prompt, overwrite=args.overwrite,
                            quiet=args.quiet, targets=args.targets, target_smoothing=args.target_smoothing,
                            drop_duplicate_respondents=args.drop_duplicate_respondents, bank=args.bank,
                            train_countries=args.train_countries, unseen_countries=args.unseen_countries,
                            weights=args.weights)
    except EmptySplitError as e:  # the input was read fine but yields nothing: exit 1, not a usage error (2)
        print(f"dvmap: error: {e}", file=sys.stderr)
        return 1
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
    # What the input lacked or had changed, stated once (all zero/empty for a clean file).
    print(f"question columns absent: {', '.join(stats['questions_missing']) or 'none'}; duplicated respondents "
          f"dropped: {stats['duplicate_respondents_dropped']:,}; text mapped to codes: "
          f"{stats['values_coerced'] or 'none'}; codes out of range (missing): {stats['values_out_of_range'] or 'none'}")
    return 0


def _prepare_release(args: argparse.Namespace) -> int:
    from dvmap_verl.data.release import prepare_release

    prepare_release(args.input, args.out, template=args.template, system=args.system_prompt,
                    overwrite=args.overwrite, quiet=args.quiet, targets=args.targets)
    print(f"VeRL parquet, corpus.parquet and stats.json -> {args.out}")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from dvmap_verl.data import synth
    frame = synth.generate(args.respondents, seed=args.seed, extra_columns=args.extra_columns,
                           countries=args.countries, questions=args.questions, layout=args.layout)
    files = synth.write(frame, args.out)
    print(f"SYNTHETIC WVS-shaped data ({len(frame):,} respondents x {frame.shape[1]} columns; not survey data) -> "
          + ", ".join(map(str, files)))
    return 0


def _flip_settings(args: argparse.Namespace) -> tuple[str | None, dict[str, str]]:
    from dvmap_verl.evaluation.evaluate import DEFAULT_FLIP

    if not args.flip:
        return None, {}
    if args.flip_map:
        mapping = {}
        for pair in args.flip_map:
            a, sep, b = pair.partition("=")
            if not sep:
                raise ValueError(f"--flip-map expects FROM=TO, got {pair!r}")
            mapping[a] = b
            mapping.setdefault(b, a)
        return args.flip, mapping
    if args.flip != DEFAULT_FLIP[0]:
        raise ValueError(f"--flip {args.flip!r} needs --flip-map FROM=TO (the default map is for Income Bracket)")
    return DEFAULT_FLIP


def _eval(args: argparse.Namespace) -> int:
    from dvmap_verl.evaluation.backends import make_backend
    from dvmap_verl.evaluation.evaluate import (EvalConfig, build_items, describe_sources, prepare_run, run_eval,
                                                run_lock)
    from dvmap_verl.evaluation.report import build_report

    _check_local_models(args, "model" if args.backend != "openai" else None, "tokenizer")
    if args.backend == "vllm":
        _preflight_vllm("dvmap eval --backend vllm", args.tensor_parallel_size, args.replicas)
    attribute, mapping = _flip_settings(args)
    args.data = _unique_paths(args.data)
    config = EvalConfig(backend=args.backend, model=args.model, data=[str(p) for p in args.data],
                        samples=args.samples, temperature=args.temperature, max_tokens=args.max_tokens,
                        seed=args.seed, limit=args.limit, enable_thinking=args.enable_thinking,
                        template=args.template, flip_attribute=attribute, flip_map=mapping,
                        train=str(args.train) if args.train else None, readout=args.readout,
                        answer_from_reasoning=args.answer_from_reasoning, option_order=args.option_order,
                        calibrate_temperature=args.calibrate_temperature, calibrate_on=args.calibrate_on)
    if args.train:
        from dvmap_verl.data.completeness import check_input

        check_input(args.train, "--train", "dvmap eval")
    if args.readout != "sampling" and str(args.replicas) != "1":
        raise ValueError(f"--readout {args.readout} runs on one engine: --replicas is for sampling runs")
    items = build_items(config)  # data problems surface before anything is written or a model is loaded
    if not args.quiet:
        print("items: " + "; ".join(describe_sources(items)))
    if args.train:
        items = _without_training_items(items, args.train, args.drop_overlap, "dvmap eval")
    if config.calibrate_temperature is not None:
        from dvmap_verl.evaluation.calibration import check_calibration_split

        check_calibration_split(items, config.calibrate_temperature)
    engine = {"replicas": args.replicas, "ray_address": args.ray_address or os.environ.get("RAY_ADDRESS") or None}
    if args.backend == "vllm":
        from dvmap_verl.evaluation.backends.vllm import max_model_len_for

        engine.update(tensor_parallel_size=args.tensor_parallel_size, enable_prefix_caching=True,
                      max_model_len=max_model_len_for(args.model, [json.loads(m) for m in items["messages"]],
                                                      config.generation().chat_template_kwargs, args.max_tokens))
    elif args.backend == "hf":
        engine.update(batch_size=args.batch_size)
    config.engine = engine
    claimed = _RunClaim(args.out)
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
        released = not status["written"] and status["failed"] and claimed.release()
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
        from dvmap_verl.evaluation.calibration import calibrate_run

        fit = calibrate_run(args.out, config.calibrate_temperature, config.calibrate_on)
        print(f"temperature T = {fit['temperature']:.4f} fitted on split {fit['split']} ({fit['records']} "
              f"record(s)), mean {fit['objective'].upper()} {fit['loss_before']:.4f} -> {fit['loss_after']:.4f}; "
              f"recorded in {Path(args.out) / 'run.json'}")
    if not args.no_report:
        _print_report(build_report(args.out, bootstrap=args.bootstrap), args.out)
    else:
        from dvmap_verl.evaluation.report import run_replies

        _print_replies(run_replies(args.out))
    return 1 if status["failed"] else 0


def _eval_pairs(args: argparse.Namespace) -> int:
    from dvmap_verl.evaluation import pairs as P
    from dvmap_verl.evaluation.backends import GenerationSettings, make_backend
    from dvmap_verl.evaluation.evaluate import run_lock

    _check_local_models(args, "model" if args.backend != "openai" else None, "tokenizer")
    config = P.PairsConfig(backend=args.backend, model=args.model, data=str(args.data), readouts=list(args.readout),
                           columns=P.parse_columns(args.columns), temperature=args.temperature,
                           max_tokens=args.max_tokens, seed=args.seed, limit=args.limit)
    pairs = P.load_pairs(args.data, config.columns)  # a wrong table fails before a model loads
    if args.limit and args.limit < len(pairs):
        pairs = pairs.sample(n=args.limit, random_state=args.seed).sort_index().reset_index(drop=True)
    if not args.quiet:
        print(f"pairs: {args.data}: {len(pairs):,}")
    if args.backend == "vllm":
        _preflight_vllm("dvmap eval-pairs --backend vllm", 1, "1")
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


def _pairs_from_corpus(args: argparse.Namespace) -> int:
    from dvmap_verl.evaluation.evaluate import load_items
    from dvmap_verl.evaluation.pairs import pairs_from_items, write_pairs

    pairs = pairs_from_items(load_items([str(p) for p in args.data]))
    print(f"{len(pairs):,} pairs -> {write_pairs(pairs, args.out)}")
    return 0


def _baselines(args: argparse.Namespace) -> int:
    from dvmap_verl.evaluation.evaluate import EvalConfig, build_items, describe_sources, prepare_run, run_lock
    from dvmap_verl.evaluation.report import build_report
    from dvmap_verl.data.completeness import check_input

    check_input(args.train, "--train", "dvmap baselines")
    config = EvalConfig(backend="none", model="(baselines only)", data=[str(p) for p in _unique_paths(args.test, "--test")],
                        train=str(args.train), samples=0)
    items = build_items(config)
    print("test: " + "; ".join(describe_sources(items)))
    items = _without_training_items(items, args.train, args.drop_overlap, "dvmap baselines")
    with run_lock(args.out):
        prepare_run(args.out, config, items)
        _print_report(build_report(args.out, bootstrap=0), args.out)
    return 0


def _report(args: argparse.Namespace) -> int:
    from dvmap_verl.evaluation.report import build_report

    _print_report(build_report(args.run_dir, train=args.train, bootstrap=args.bootstrap,
                               correctness=args.correctness), args.run_dir)
    return 0


def _print_replies(replies: dict) -> None:
    """Per split: the replies that hold no answer or were cut short; a WARNING line for each kind above 1%."""
    for split, c in replies.get("by_split", {}).items():
        print(f"{'replies ' + split:>28}: {c['replies']:,}; truncated {c['truncated']:,}, empty {c['empty']:,}, "
              f"tool-call-only {c['tool_call']:,}, reasoning-only {c['reasoning_only']:,}"
              + (f", answered from reasoning {c['answered_from_reasoning']:,}" if c["answered_from_reasoning"] else "")
              + (f", non-text parts dropped {c['dropped_parts']:,}" if c["dropped_parts"] else ""))
    for line in replies.get("warnings", []):
        print(f"WARNING: {line}")


def _print_report(out: dict, run_dir) -> None:
    if out.get("synthetic"):
        print("NOTE: SYNTHETIC DATA - these numbers test the pipeline, not a model's alignment.")
    for line in out.get("warnings", []):
        print(f"NOTE: {line}")
    rows = {**({"model": out["model"]} if "model" in out else {}), **out.get("baselines", {})}
    for name, m in rows.items():
        print(f"{name:>28}: acc {m.get('acc', float('nan')):.3f}  LC {m.get('lc', float('nan')):.3f}  "
              f"WD {m.get('wd', float('nan')):.3f}  unparsed {m.get('unparsed_rate', 0):.1%}")
    if "model" in out:
        m = out["model"]
        print(f"{'correctness':>28}: Acc above by {m['correctness']}; resolver {m['resolver_acc']:.3f}, the authors' "
              f"rule {m['release_acc']:.3f}" + (f" ({m['release_skipped']} items their script skips)"
                                                 if m.get("release_skipped") else ""))
        if "imported" in m:
            imp = m["imported"]
            print(f"{'imported is_correct':>28}: {imp['their_is_correct_acc']:.3f}; recomputed "
                  f"{imp['release_recomputed_acc']:.3f}; disagreeing rows {imp['disagreements']}")
    if "flip" in out:
        print(f"{'value flip rate':>28}: {out['flip']['flip_rate']:.3f} over {out['flip']['pairs']} pairs")
    _print_replies(out.get("replies", {}))
    print(f"report -> {Path(run_dir) / 'report.md'}, metrics.json, {len(out['plots'])} plot(s)")


def _import_run(args: argparse.Namespace) -> int:
    from dvmap_verl.evaluation.import_run import import_release_csv
    from dvmap_verl.evaluation.report import build_report

    import_release_csv(args.release_csv, args.benchmark, args.out, model=args.model)
    _print_report(build_report(args.out, train=args.train, bootstrap=args.bootstrap), args.out)
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from dvmap_verl.training.doctor import blockers, run_doctor

    checks = run_doctor(args.overrides, visible_gpus=args.gpus, gpu_memory_gb=args.gpu_memory_gb)
    bad = blockers(checks)
    print(f"doctor: {len(bad)} blocker(s)" + (": " + ", ".join(c.name for c in bad) if bad else "; ready to train"))
    return 1 if bad else 0


def _smoke(args: argparse.Namespace) -> int:
    from dvmap_verl.training import smoke
    if not args.dry_run:
        smoke.preflight(args.gpus)  # before any step starts or the output folder is made
    steps = smoke.plan(args.out, gpus=args.gpus, recipe=args.recipe, model=args.model, items=args.items)
    if args.dry_run:
        for i, step in enumerate(steps, 1):
            print(f"# [{i}/{len(steps)}] {step.name}\n{step.shell()}")
        return 0
    return smoke.run(steps, args.out)


def _curves(args: argparse.Namespace) -> int:
    from dvmap_verl.training.curves import build_curves

    out = args.out or args.rollout_dir / "curves"
    frame = build_curves(args.rollout_dir, out, tensorboard=args.tensorboard, tokenizer_path=args.tokenizer)
    for why in frame.loc[frame["skipped_lines"] > 0, "skipped_why"]:
        print(f"NOTE: {why}", file=sys.stderr)
    last = frame.iloc[-1]
    print(f"{len(frame)} step(s); last step {int(last['step'])}: acc {last['acc']:.3f}, format {last['format']:.3f}, "
          f"parsed {last['parsed']:.3f}, likert {last['likert']:.3f}")
    print(f"curves -> {out / 'curves.csv'}, {out / 'curves.png'}; TensorBoard scalars (dvmap/*) -> "
          f"{args.tensorboard or out / 'tensorboard'}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from dvmap_verl.training.checkpoints import merge_fsdp_checkpoint

    print(f"merged Hugging Face model -> {merge_fsdp_checkpoint(args.checkpoint, args.target, args.trust_remote_code)}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from dvmap_verl.evaluation.compare import _fmt_ci, compare_runs

    out = compare_runs(args.runs, args.out, names=args.names, bootstrap=args.bootstrap, seed=args.seed,
                       drop_overlap=args.drop_overlap)
    for line in out["tables_read"]:
        print(f"read: {line}")
    frame = out["_headline_frame"]
    print(frame.loc["all"].to_string(float_format=lambda v: f"{v:.3f}") if "all" in frame.index else frame)
    for d in out["differences"]:
        print(f"{d['run']} - {out['reference']} on {d['shared_items']:,} shared items: "  # --bootstrap 0: no intervals
              f"Acc {_fmt_ci(d['d_acc'], d['d_acc_lo'], d['d_acc_hi'])}, "
              f"LC {_fmt_ci(d['d_lc'], d['d_lc_lo'], d['d_lc_hi'])}, WD {d['d_wd']:+.3f}")
    for note in out["notes"]:
        print(f"NOTE: {note}")
    print(f"compare -> {Path(args.out) / 'compare.md'}, compare.json, {len(out['plots'])} plot(s)")
    return 0


def _semantic(args: argparse.Namespace) -> int:
    from dvmap_verl.evaluation.semantic import analyze_semantic

    out = analyze_semantic(args.train, args.cross_value, args.runs, args.out, embedder=args.embedder,
                           bootstrap=args.bootstrap, seed=args.seed)
    for q in out["questions"]:
        print(f"{q['q_id']:>6}: d_min {q['d_min']:.3f} (nearest {q['nearest']}), d_avg {q['d_avg']:.3f}, "
              f"gain {q['gain']:+.3f} over {q['items']} items")
    for col in ("d_min", "d_avg"):
        c = out[col]
        ci = c.get("pearson_ci95", [float("nan")] * 2)
        print(f"{col}: Pearson r {c['pearson']:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}], Spearman {c['spearman']:+.3f} "
              f"over {c['n']} questions (paper: r = {out['paper_r'][col]})")
    print(f"semantic -> {Path(args.out) / 'semantic.json'}, semantic_distance_vs_gain.png")
    return 0


def _utility(args: argparse.Namespace) -> int:
    from dvmap_verl.evaluation.utility import run_utility

    _check_local_models(args, "model", "base")
    summary = run_utility(args.model, args.out, tasks=[t for t in args.tasks.split(",") if t], base=args.base,
                          backend=args.backend, limit=args.limit, include_path=args.include_path,
                          batch_size=args.batch_size, device=args.device)
    for r in summary["rows"]:
        print(f"{r['task']:>20} {r['metric']:<16} trained {r['trained']:.4f}" +
              (f"  base {r['base']:.4f}  delta {r['delta']:+.4f}" if "base" in r else ""))
    print(f"utility -> {Path(args.out) / 'utility.md'}, utility.json, results.json per model")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from dvmap_verl.demo import run_demo

    run_demo(args.out, respondents=args.respondents, limit=args.limit, seed=args.seed)
    return 0


def _preflight_vllm(what: str, tensor_parallel_size: int, replicas: str) -> None:
    from dvmap_verl.preflight import require

    gpus = tensor_parallel_size * (int(replicas) if replicas != "auto" else 1)
    require(what, gpus=gpus, packages=["vllm"],
            instead="--backend hf (transformers; runs on a CPU) or --backend openai --base-url URL (any server)")


def _without_training_items(items, train: Path, drop: bool, command: str):
    """The test items minus those the training table also holds, or an error counting them (see --drop-overlap)."""
    from dvmap_verl.evaluation.baselines import drop_items, training_overlap
    from dvmap_verl.evaluation.evaluate import load_items

    train_items = load_items([train], test_items=False)
    print(f"train: {train}: {len(train_items):,} rows")
    overlap = training_overlap(train_items, items)
    if not overlap.any():
        return items
    n, total = int(overlap.sum()), int((~items["counterfactual"]).sum())
    what = (f"{n:,} of the {total:,} test items also occur in the training table {train} (same profile and "
            f"question, or the same prompt)")
    if not drop:
        raise ValueError(f"{command}: {what}; scores on them measure recall, not generalisation. Give a test set "
                         f"disjoint from --train, or pass --drop-overlap to leave them out (counted)")
    kept = drop_items(items, overlap)
    print(f"NOTE: --drop-overlap: {what}; dropped them, {int((~kept['counterfactual']).sum()):,} items left")
    return kept


class _RunClaim:
    """Whether this command created the run folder; if the run never starts, what it wrote is removed again."""

    def __init__(self, out: Path):
        from dvmap_verl.evaluation.evaluate import RUN

        self.out, self.existed, self.claimed_before = Path(out), Path(out).exists(), (Path(out) / RUN).exists()

    @contextlib.contextmanager
    def released_on_error(self):
        """On an error, remove what this command wrote, unless the folder held a run before or this run wrote a
        prediction (then it is a partial run that the same command resumes)."""
        try:
            yield
        except BaseException:
            self.release()
            raise

    def release(self) -> bool:
        """Remove what this command wrote (and the folder, if it made it) when the folder held no run before and
        no prediction was written; True when it did."""
        from dvmap_verl.evaluation.evaluate import ITEMS, LOCK, PREDICTIONS, RUN

        predictions = self.out / PREDICTIONS
        if self.claimed_before or (predictions.exists() and predictions.stat().st_size > 0):
            return False
        for name in (RUN, ITEMS, PREDICTIONS, LOCK):
            (self.out / name).unlink(missing_ok=True)
        if not self.existed and not any(self.out.iterdir()):
            self.out.rmdir()
        return True


def _looks_local(model: str) -> bool:
    """Whether ``model`` names a local folder rather than a Hugging Face repo id: absolute, ./ ../ or ~, or a
    relative path whose first part exists here (``Qwen/Qwen3-8B`` is a repo id unless ./Qwen exists)."""
    if os.path.isabs(model) or model.startswith(("./", "../", "~")) or model in (".", ".."):
        return True
    return os.sep in model and Path(model.split(os.sep, 1)[0]).exists()


def _exists(path: str) -> bool:
    try:
        return Path(path).expanduser().exists()
    except (RuntimeError, OSError):  # "~nouser/x": no such home directory
        return False


def _check_local_models(args: argparse.Namespace, *options: str | None) -> None:
    """Refuse a model option that is a local path which does not exist, before any engine or Ray starts.

    Raises ValueError: "--model PATH: no such local folder (...)". Repo ids (org/name) pass unchecked.
    """
    for option in options:
        value = getattr(args, option, None) if option else None
        if value and _looks_local(value) and not _exists(value):
            raise ValueError(f"--{option} {value}: no such local folder (a Hugging Face repo id looks like "
                             f"org/name)")


def _int_at_least(minimum: int):
    """An argparse type: a whole number >= ``minimum`` (0 or negative counts are usage errors, not no-ops)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}" if minimum else
                                             f"must be 0 or more, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _unique_paths(paths: list[Path], flag: str = "--data") -> list[Path]:
    """``paths`` with repeats (after resolving) collapsed, each one named in a note: a file given twice is read once."""
    seen: dict[Path, Path] = {}
    for p in paths:
        key = p.resolve()
        if key in seen:
            print(f"NOTE: {flag} {p} is {seen[key]} again; it is read once", file=sys.stderr)
            continue
        seen[key] = p
    return list(seen.values())


def _replicas(text: str) -> str:
    return "auto" if text == "auto" else str(_positive_int(text))


def _finite_in(low: float, high: float, *, low_open: bool = False, high_open: bool = False, unit: str = ""):
    """argparse type: a finite number in the interval from ``low`` to ``high`` (open ends as given). NaN, infinities
    and values outside are usage errors, so nothing of the kind reaches a server or ``run.json``."""
    import math

    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    want = f"a finite number of {unit} > {low:g}" if low_open and math.isinf(high) else f"a finite number in {interval}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number{' of ' + unit if unit else ''}, got {text!r}") \
                from None
        inside = (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
        if not math.isfinite(value) or not inside:
            raise argparse.ArgumentTypeError(f"must be {want}, got {text}")
        return value

    return parse


_fraction = _finite_in(0.0, 1.0, high_open=True)
_unit_interval = _finite_in(0.0, 1.0)
_temperature = _finite_in(0.0, 2.0)  # the range OpenAI-compatible servers accept
_positive_seconds = _finite_in(0.0, float("inf"), low_open=True, unit="seconds")


class _HelpFormatter(argparse.HelpFormatter):
    """``--help`` shows each option's default, unless there is none, it is a switch, or the help already says."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        unset = default is None or default is False or default == argparse.SUPPRESS
        if unset or "default" in text or not action.option_strings or isinstance(action, argparse._HelpAction):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else "%(default)s"
        return f"{text} (default: {shown})"


class _Parser(argparse.ArgumentParser):
    """Every parser and sub-parser (``add_subparsers`` reuses the parent's class) formats help the same way."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def quiet_libraries() -> None:
    """``--quiet`` for the libraries too: no transformers/Hugging Face Hub/datasets/tqdm progress bars, and
    transformers' warnings only as errors. Environment variables reach libraries imported later (and worker
    processes); libraries already imported are switched off directly."""
    os.environ.update(HF_HUB_DISABLE_PROGRESS_BARS="1", HF_DATASETS_DISABLE_PROGRESS_BARS="1", TQDM_DISABLE="1",
                      TRANSFORMERS_VERBOSITY="error", TRANSFORMERS_NO_ADVISORY_WARNINGS="1")
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    if "transformers" in sys.modules:
        import transformers

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()


def build_parser() -> argparse.ArgumentParser:
    from dvmap_verl.data.archetypes import CONSENSUS_RULES
    from dvmap_verl.data.prompts import SYSTEM_PROMPTS, USER_TEMPLATES
    from dvmap_verl.evaluation.readouts import readout_names
    from dvmap_verl.evaluation.report import CORRECTNESS

    parser = _Parser(prog="dvmap", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log details; show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    quiet = {"action": "store_true", "help": "no progress bars or per-split lines"}
    drop_overlap = {"action": "store_true",
                    "help": "leave out (and count) test items the training table also holds, instead of refusing"}
    overwrite = {"action": "store_true",
                 "help": "replace a prepared set already in --out (its files that the new set lacks are removed)"}

    prep = sub.add_parser("prepare", help="build VeRL parquet splits").add_subparsers(dest="source", required=True)
    w = prep.add_parser("wvs", help="from a raw WVS Wave 7 file (.csv, .sav, .dta, .parquet)")
    w.add_argument("--input", required=True, type=Path, help="the WVS Wave 7 file (.csv, .sav, .dta or .parquet)")
    w.add_argument("--out", required=True, type=Path, help="output folder for the splits, corpus and stats.json")
    w.add_argument("--max-profiles-per-country", type=_non_negative_int, default=400,
                   help="profiles per training country (default 400: the paper's size); 0 = no cap")
    w.add_argument("--cross-country-max-profiles-per-country", type=_non_negative_int, default=64,
                   help="profiles per unseen country in cross_country (default 64); 0 = no cap")
    w.add_argument("--cross-value-max-profiles-per-country", type=_non_negative_int, default=105,
                   help="profiles per country in cross_value (default 105); 0 = no cap")
    w.add_argument("--disagreement-max-profiles-per-country", type=_non_negative_int, default=100,
                   help="disagreeing (H > 0) profiles per country in disagreement.parquet (default 100); 0 = no cap")
    w.add_argument("--val-frac", type=_fraction, default=0.115, help="share of training profiles held out as val")
    w.add_argument("--cross-demographic-frac", type=_fraction, default=0.10,
                   help="share of training-country profiles held out as cross_demographic")
    w.add_argument("--seed", type=int, default=0, help="seed of the profile caps and the split assignment")
    w.add_argument("--consensus", choices=CONSENSUS_RULES, default="strict",
                   help="strict: H = 0 (paper); majority: H >= 0 ablation (paper Table 3); all: every pair, ties to "
                        "the lower option (distribution training: the target is the counts)")
    w.add_argument("--targets", choices=["point", "distribution"], default="point",
                   help="distribution: also write extra_info.target, the profile's answer distribution, for the "
                        "rps reward")
    w.add_argument("--target-smoothing", type=_unit_interval, default=0.0, metavar="LAMBDA",
                   help="distribution targets: mix a consensus row's point mass with its (country, question, "
                        "gender, life stage) cell: (1 - LAMBDA) * point + LAMBDA * cell (default 0)")
    w.add_argument("--labels", type=Path, help="JSON {variable: {code: label}} for a CSV's religion/language codes, "
                   "or to map a column exported as label text back to its codes")
    w.add_argument("--drop-duplicate-respondents", action="store_true",
                   help="keep the first of duplicated respondents (same country and D_INTERVIEW, or identical rows) "
                        "and count the rest in stats.json (default: refuse the file)")
    w.add_argument("--template", choices=sorted(USER_TEMPLATES), default="release",
                   help="user prompt: release (byte-exact structured CoT, default), paper (Algorithm 1), free (free "
                        "reasoning) or direct (answer only): the paper's Table 4 settings")
    w.add_argument("--system-prompt", choices=sorted(SYSTEM_PROMPTS), default=None,
                   help="system message (default: the one the template asks for: release's <reasoning>/<answer> "
                        "format, answer_only for direct)")
    w.add_argument("--bank", type=Path, default=None,
                   help="question bank YAML (README: Question bank; dvmap question-bank drafts one); default: the "
                        "paper's 23 questions")
    w.add_argument("--train-countries", default=None, metavar="ISO3,...|all-others",
                   help="training countries (ISO alpha-3 codes, or all-others); default: the paper's 10")
    w.add_argument("--unseen-countries", default=None, metavar="ISO3,...|all-others",
                   help="cross-country (unseen) countries (ISO alpha-3 codes, all-others, or none); default: the "
                        "paper's 8")
    w.add_argument("--weights", default=None, metavar="COLUMN",
                   help="survey weight column (W_WEIGHT; S018 in the joint EVS/WVS file): weighted answer counts "
                        "beside the raw ones; distribution targets use them")
    w.add_argument("--overwrite", **overwrite)
    w.add_argument("--quiet", **quiet)
    w.set_defaults(func=_prepare_wvs)
    r = prep.add_parser("release", help="from the authors' released corpus / benchmark")
    r.add_argument("--input", required=True, type=Path,
                   help="the release's clone root, DVMap_Corpus or Triple-Generalization_Evaluation_Benchmark, "
                        "or one parquet file or Cross-* folder")
    r.add_argument("--out", required=True, type=Path, help="output folder for the splits, corpus and stats.json")
    r.add_argument("--template", choices=sorted(USER_TEMPLATES), default=None,
                   help="re-render every prompt from the row's attributes with this template (default: keep the "
                        "release's prompts verbatim)")
    r.add_argument("--system-prompt", choices=sorted(SYSTEM_PROMPTS), default=None,
                   help="system message (default: the one the template asks for; the release's without --template)")
    r.add_argument("--targets", choices=["point", "distribution"], default="point",
                   help="distribution: extra_info.target = the row's (country, question) cell distribution, the "
                        "only real distribution the release holds (it has no respondent data)")
    r.add_argument("--overwrite", **overwrite)
    r.add_argument("--quiet", **quiet)
    r.set_defaults(func=_prepare_release)
    from dvmap_verl.commands import prepare_sft

    prepare_sft.add_parser(prep)

    s = sub.add_parser("synth-wvs", help="write a SYNTHETIC WVS-shaped file for tests and demos")
    s.add_argument("--out", required=True, type=Path, help=".csv, .parquet, .sav or .dta")
    s.add_argument("--respondents", type=_positive_int, default=97220, help="rows (the real file has 97,220)")
    s.add_argument("--seed", type=int, default=0, help="random seed")
    s.add_argument("--extra-columns", type=_non_negative_int, default=0,
                   help="filler columns (the real file has ~600 in all)")
    s.add_argument("--countries", default=None, metavar="N|ISO3,...",
                   help="how many countries (the paper's 18 first, then other ISO countries) or a list of ISO "
                        "alpha-3 codes; default: the paper's 18")
    s.add_argument("--questions", type=_positive_int, default=None, metavar="N",
                   help="value questions (the paper's 23 first, then synthetic WVS-numbered items); default 23")
    s.add_argument("--layout", choices=["wvs7", "joint"], default="wvs7",
                   help="variable names: WVS-7 (default) or the joint EVS/WVS 2017-2022 file's (README)")
    s.set_defaults(func=_synth)
    from dvmap_verl.commands import question_bank

    question_bank.add_parser(sub)

    e = sub.add_parser("eval", help="run a model on benchmark items (resumable) and write the report")
    e.add_argument("--backend", choices=["vllm", "openai", "hf"], required=True,
                   help="vllm (local GPU), openai (any OpenAI-compatible server) or hf (transformers, CPU/GPU)")
    e.add_argument("--model", required=True, help="local path, HF id, or the served model name (openai)")
    e.add_argument("--data", required=True, type=Path, nargs="+",
                   help="VeRL parquet file(s) from dvmap prepare, or release locations (clone root, folders, files)")
    e.add_argument("--out", required=True, type=Path, help="run folder (rerun the same command to resume)")
    e.add_argument("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    e.add_argument("--api-key", help="default: $OPENAI_API_KEY")
    e.add_argument("--samples", type=_positive_int, default=1, help="samples per item (paper: 1)")
    e.add_argument("--temperature", type=_temperature, default=0.7, help="sampling temperature in [0, 2] (paper: 0.7)")
    e.add_argument("--max-tokens", type=_positive_int, default=1024, help="completion length limit")
    e.add_argument("--seed", type=int, default=0, help="seed of sampling and of --limit's subset")
    e.add_argument("--limit", type=_positive_int, help="evaluate a seeded random subset of N items")
    e.add_argument("--concurrency", type=_positive_int, default=16, help="openai: requests in flight")
    e.add_argument("--timeout", type=_positive_seconds, default=120.0, help="openai: seconds per request (> 0)")
    e.add_argument("--max-retries", type=_non_negative_int, default=6, help="openai: retries per request")
    e.add_argument("--batch-size", type=_positive_int, default=8, help="hf: prompts per generate call")
    e.add_argument("--tensor-parallel-size", type=_positive_int, default=1, help="vllm: GPUs per engine")
    e.add_argument("--replicas", type=_replicas, default="1",
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
    e.add_argument("--calibrate-on", choices=["rps", "tv"], default="rps",
                   help="what --calibrate-temperature minimises (default: mean RPS)")
    e.add_argument("--tokenizer", help="openai + logprob readouts: tokenizer whose chat template renders the "
                                       "prompt for /completions (default: --model)")
    e.add_argument("--train", type=Path, help="training split for the baselines in the report; test items it also "
                                              "holds (same profile and question, or prompt) are refused")
    e.add_argument("--drop-overlap", **drop_overlap)
    e.add_argument("--bootstrap", type=_non_negative_int, default=1000,
                   help="bootstrap draws for the 95%% intervals (0 = none)")
    e.add_argument("--no-report", action="store_true", help="only generate; run `dvmap report` later")
    e.add_argument("--quiet", **quiet)
    e.set_defaults(func=_eval)

    ep = sub.add_parser("eval-pairs", help="MVPBench-style preference pairs: likelihood and judge readouts, PAA")
    ep.add_argument("--data", required=True, type=Path, help="pairs table (parquet or JSONL; see dvmap_verl."
                                                               "evaluation.pairs for the columns)")
    ep.add_argument("--backend", choices=["vllm", "openai", "hf"], required=True, help="as for dvmap eval")
    ep.add_argument("--model", required=True, help="local path, HF id, or the served model name (openai)")
    ep.add_argument("--out", required=True, type=Path, help="run folder (rerun to resume)")
    ep.add_argument("--readout", nargs="+", choices=["likelihood", "judge"], default=["likelihood", "judge"],
                    help="likelihood: mean token log-prob of each answer; judge: pick A/B in both orders")
    ep.add_argument("--columns", nargs="+", metavar="OURS=THEIRS",
                    help="map the table's column names onto ours (question, chosen, rejected, profile, country...)")
    ep.add_argument("--temperature", type=_temperature, default=0.0, help="judge sampling temperature in [0, 2]")
    ep.add_argument("--max-tokens", type=_positive_int, default=32, help="judge completion length limit")
    ep.add_argument("--seed", type=int, default=0, help="seed of sampling and of --limit's subset")
    ep.add_argument("--limit", type=_positive_int, help="a seeded random subset of N pairs")
    ep.add_argument("--base-url", help="OpenAI-compatible server")
    ep.add_argument("--api-key", help="default: $OPENAI_API_KEY")
    ep.add_argument("--tokenizer", help="openai + likelihood: tokenizer with the chat template (default: --model)")
    ep.add_argument("--batch-size", type=_positive_int, default=8, help="hf: prompts per generate call")
    ep.add_argument("--bootstrap", type=_non_negative_int, default=1000, help="bootstrap draws for the intervals")
    ep.add_argument("--quiet", **quiet)
    ep.set_defaults(func=_eval_pairs)

    pc = sub.add_parser("pairs-from-corpus", help="DVMap items -> preference pairs (chosen = the profile's "
                                                   "answer, rejected = the option farthest from it on the scale)")
    pc.add_argument("--data", required=True, type=Path, nargs="+", help="prepared split(s) or release locations")
    pc.add_argument("--out", required=True, type=Path, help="pairs file (.parquet or .jsonl)")
    pc.set_defaults(func=_pairs_from_corpus)

    b = sub.add_parser("baselines", help="score the baselines on test items, no model needed")
    b.add_argument("--train", required=True, type=Path, help="training split the baselines learn from")
    b.add_argument("--test", required=True, type=Path, nargs="+",
                   help="items to score: VeRL parquet file(s) or release locations, as for eval --data")
    b.add_argument("--out", required=True, type=Path, help="run folder for metrics.json, report.md and plots")
    b.add_argument("--drop-overlap", **drop_overlap)
    b.set_defaults(func=_baselines)

    rp = sub.add_parser("report", help="metrics.json, report.md and plots for a run folder")
    rp.add_argument("run_dir", type=Path, help="a run folder written by dvmap eval or dvmap baselines")
    rp.add_argument("--train", type=Path, help="training split for the baselines (default: the run's --train)")
    rp.add_argument("--bootstrap", type=_non_negative_int, default=1000,
                    help="bootstrap draws for the 95%% intervals (0 = none)")
    rp.add_argument("--correctness", choices=CORRECTNESS, default="resolver",
                    help="model Acc by the reward's resolver (default) or the authors' evaluation rule exactly "
                         "(release; lenient is its old name, kept one release)")
    rp.set_defaults(func=_report)

    im = sub.add_parser("import-run", help="the authors' evaluation CSVs as a run folder (report, compare)")
    im.add_argument("--release-csv", required=True, type=Path, nargs="+",
                    help="CSV file(s) written by the authors' eval_api_parallel.py")
    im.add_argument("--benchmark", required=True, type=Path,
                    help="the benchmark they evaluated (a Cross-* folder, the benchmark folder or the clone root)")
    im.add_argument("--out", required=True, type=Path, help="a new run folder")
    im.add_argument("--model", help="name shown in reports (default: the first CSV's file name)")
    im.add_argument("--train", type=Path, help="training split for the baselines in the report")
    im.add_argument("--bootstrap", type=_non_negative_int, default=1000,
                    help="bootstrap draws for the 95%% intervals (0 = none)")
    im.set_defaults(func=_import_run)

    cp = sub.add_parser("compare", help="runs side by side, with paired bootstrap differences from the first")
    cp.add_argument("runs", type=Path, nargs="+", help="run folders; the first is the reference")
    cp.add_argument("--out", required=True, type=Path, help="folder for compare.md, compare.json and plots")
    cp.add_argument("--names", nargs="+", help="a name per run (default: the folder names)")
    cp.add_argument("--bootstrap", type=_non_negative_int, default=1000, help="paired bootstrap draws (0 = none)")
    cp.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    cp.add_argument("--drop-overlap", **drop_overlap)
    cp.set_defaults(func=_compare)

    an = sub.add_parser("analyze", help="the paper's appendix analyses").add_subparsers(dest="analysis",
                                                                                         required=True)
    se = an.add_parser("semantic", help="cross-value accuracy gain vs semantic distance (Appendix J, Table 12)")
    se.add_argument("--train", required=True, type=Path, help="the training split (its questions)")
    se.add_argument("--cross-value", required=True, type=Path, help="the cross-value split (the unseen questions)")
    se.add_argument("--runs", required=True, type=Path, nargs=2, metavar=("BASE", "TRAINED"),
                    help="two run folders evaluated on the cross-value split")
    se.add_argument("--embedder", default="sentence-transformers/all-MiniLM-L6-v2",
                    help="sentence-transformers model, local folder or hub id (the paper names none)")
    se.add_argument("--out", required=True, type=Path, help="folder for semantic.json and the scatter plot")
    se.add_argument("--bootstrap", type=_non_negative_int, default=1000, help="bootstrap draws over questions")
    se.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    se.set_defaults(func=_semantic)

    ut = sub.add_parser("utility", help="general ability of trained vs base via lm-evaluation-harness (Appendix H)")
    ut.add_argument("--model", required=True, help="the trained model (local folder or hub id)")
    ut.add_argument("--base", help="the base model, run with the same settings")
    ut.add_argument("--tasks", default="mmlu,arc_easy,gsm8k,hellaswag,ifeval",
                    help="comma-separated lm-eval tasks (default: the paper's Table 11)")
    ut.add_argument("--out", required=True, type=Path, help="folder for utility.md/json and results.json per model")
    ut.add_argument("--backend", choices=["hf", "vllm"], default="hf", help="lm-eval's model type")
    ut.add_argument("--limit", type=_positive_int, help="first N documents per task (a quick look)")
    ut.add_argument("--include-path", help="folder of extra lm-eval task YAMLs")
    ut.add_argument("--batch-size", default="8", help="lm-eval batch size (a number or 'auto')")
    ut.add_argument("--device", help="e.g. cuda:0 or cpu (hf backend); default: cuda if torch sees a GPU, else cpu")
    ut.set_defaults(func=_utility)

    dr = sub.add_parser("doctor", help="check GPUs, versions, data, model and prompt lengths before training",
                        description="Takes the training command's arguments: dvmap doctor +recipe=NAME [overrides]")
    dr.add_argument("overrides", nargs="+", help="+recipe=NAME and any Hydra overrides, as for main_ppo")
    dr.add_argument("--gpus", type=_non_negative_int, help="GPUs to assume visible (default: ask torch)")
    dr.add_argument("--gpu-memory-gb", type=_finite_in(0, 4096, low_open=True, unit="GiB"), metavar="GIB",
                    help="memory of one GPU in GiB for the memory check (default: the visible GPUs'; an '80 GB' "
                         "A100/H100 has 80)")
    dr.set_defaults(func=_doctor)

    sm = sub.add_parser("smoke", help="prove a cluster install: tiny model, synthetic data, 2 GRPO steps, eval")
    sm.add_argument("--gpus", type=_positive_int, default=1, help="GPUs on this node to use")
    sm.add_argument("--recipe", default="dvmap_qwen3_0.6b", help="the recipe whose settings are exercised")
    sm.add_argument("--model", help="a local model folder instead of the tiny one")
    sm.add_argument("--items", type=_positive_int, default=16, help="benchmark items for the vLLM evaluation")
    sm.add_argument("--out", type=Path, default=Path("smoke_out"), help="folder for every step's output and log")
    sm.add_argument("--dry-run", action="store_true", help="print every command with its overrides; run nothing")
    sm.set_defaults(func=_smoke)

    cu = sub.add_parser("curves", help="per-step training curves from verl's rollout dumps (trainer.rollout_data_dir)")
    cu.add_argument("rollout_dir", type=Path, help="the run's trainer.rollout_data_dir (<step>.jsonl files)")
    cu.add_argument("--out", type=Path, help="folder for curves.csv and curves.png (default ROLLOUT_DIR/curves)")
    cu.add_argument("--tensorboard", type=Path,
                    help="TensorBoard folder for the scalars, e.g. verl's tensorboard_log/<project>/<experiment>")
    cu.add_argument("--tokenizer", help="model or tokenizer folder, to report response length in tokens")
    cu.set_defaults(func=_curves)

    mg = sub.add_parser("merge", help="a verl FSDP checkpoint -> a Hugging Face model folder (verl's merger)")
    mg.add_argument("checkpoint", help="checkpoints/<project>/<experiment> (latest step), global_step_N or its actor")
    mg.add_argument("target", help="output folder")
    mg.add_argument("--trust-remote-code", action="store_true", help="for models with custom code")
    mg.set_defaults(func=_merge)

    d = sub.add_parser("demo", help="the whole pipeline on a CPU: synthetic data, tiny model, report")
    d.add_argument("--out", required=True, type=Path, help="folder for every stage's output and the log")
    d.add_argument("--respondents", type=_positive_int, default=20000, help="synthetic respondents")
    d.add_argument("--limit", type=_positive_int, default=60, help="benchmark items for the tiny model")
    d.add_argument("--seed", type=int, default=0, help="random seed")
    d.set_defaults(func=_demo)

    from dvmap_verl.commands import import_benchmark  # a command module (dvmap_verl/commands/)
    import_benchmark.add_parser(sub).set_defaults(func=import_benchmark.run)

    from dvmap_verl.commands import train_dpo

    train_dpo.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from dvmap_verl.evaluation.backends.replicas import ReplicaStartError
    from dvmap_verl.errors import DvmapError
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
            ReplicaStartError, DvmapError) as e:
        # Input problems: one clear line, no traceback (--verbose keeps it).
        if args.verbose:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"dvmap: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
