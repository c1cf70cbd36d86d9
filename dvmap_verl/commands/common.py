"""What every ``dvmap`` command module shares: the help formatter, argparse value types, shared option settings,
the local-model check and the run-summary printers.

Argparse types raise :class:`argparse.ArgumentTypeError` (argparse turns it into a usage error, exit 2); the other
helpers raise :class:`dvmap_verl.errors.InputError` for bad input. Nothing here imports a heavy library at import
time: ``dvmap --help`` must stay fast.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from dvmap_verl.errors import InputError

#: ``--quiet``, ``--drop-overlap`` and ``--overwrite`` read the same in every command that has them.
QUIET = {"action": "store_true", "help": "no progress bars or per-split lines"}
DROP_OVERLAP = {"action": "store_true",
                "help": "leave out (and count) test items the training table also holds, instead of refusing"}
OVERWRITE = {"action": "store_true",
             "help": "replace a prepared set already in --out (its files that the new set lacks are removed)"}


class HelpFormatter(argparse.HelpFormatter):
    """``--help`` shows each option's default, unless there is none, it is a switch, or the help already says."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        unset = default is None or default is False or default == argparse.SUPPRESS
        if unset or "default" in text or not action.option_strings or isinstance(action, argparse._HelpAction):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else "%(default)s"
        return f"{text} (default: {shown})"


class Parser(argparse.ArgumentParser):
    """Every parser and sub-parser (``add_subparsers`` reuses the parent's class) formats help the same way."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def int_at_least(minimum: int):
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


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def finite_in(low: float, high: float, *, low_open: bool = False, high_open: bool = False, unit: str = ""):
    """argparse type: a finite number in the interval from ``low`` to ``high`` (open ends as given). NaN, infinities
    and values outside are usage errors, so nothing of the kind reaches a server or ``run.json``."""
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


fraction = finite_in(0.0, 1.0, high_open=True)
unit_interval = finite_in(0.0, 1.0)
temperature = finite_in(0.0, 2.0)  # the range OpenAI-compatible servers accept
positive_seconds = finite_in(0.0, float("inf"), low_open=True, unit="seconds")


def replicas(text: str) -> str:
    """argparse type of ``--replicas``: ``auto`` or a positive whole number, as text."""
    return "auto" if text == "auto" else str(positive_int(text))


def unique_paths(paths: list[Path], flag: str = "--data") -> list[Path]:
    """``paths`` with repeats (after resolving) collapsed, each one named in a note: a file given twice is read once."""
    seen: dict[Path, Path] = {}
    for p in paths:
        key = p.resolve()
        if key in seen:
            print(f"NOTE: {flag} {p} is {seen[key]} again; it is read once", file=sys.stderr)
            continue
        seen[key] = p
    return list(seen.values())


def looks_local(model: str) -> bool:
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


def check_local_models(args: argparse.Namespace, *options: str | None) -> None:
    """Refuse a model option that is a local path which does not exist, before any engine or Ray starts.

    Raises InputError: "--model PATH: no such local folder (...)". Repo ids (org/name) pass unchecked.
    """
    for option in options:
        value = getattr(args, option, None) if option else None
        if value and looks_local(value) and not _exists(value):
            raise InputError(f"--{option} {value}: no such local folder (a Hugging Face repo id looks like "
                             f"org/name)")


def preflight_vllm(what: str, tensor_parallel_size: int, replicas: str) -> None:
    """Refuse ``--backend vllm`` without vLLM or enough GPUs (raises :class:`dvmap_verl.preflight.PreflightError`)."""
    from dvmap_verl.preflight import require

    gpus = tensor_parallel_size * (int(replicas) if replicas != "auto" else 1)
    require(what, gpus=gpus, packages=["vllm"],
            instead="--backend hf (transformers; runs on a CPU) or --backend openai --base-url URL (any server)")


def print_replies(replies: dict) -> None:
    """Per split: the replies that hold no answer or were cut short; a WARNING line for each kind above 1%."""
    for split, c in replies.get("by_split", {}).items():
        print(f"{'replies ' + split:>28}: {c['replies']:,}; truncated {c['truncated']:,}, empty {c['empty']:,}, "
              f"tool-call-only {c['tool_call']:,}, reasoning-only {c['reasoning_only']:,}"
              + (f", answered from reasoning {c['answered_from_reasoning']:,}" if c["answered_from_reasoning"] else "")
              + (f", non-text parts dropped {c['dropped_parts']:,}" if c["dropped_parts"] else ""))
    for line in replies.get("warnings", []):
        print(f"WARNING: {line}")


def print_report(out: dict, run_dir) -> None:
    """The console summary of :func:`dvmap_verl.evaluation.report.build_report`'s result for ``run_dir``."""
    if out.get("synthetic"):
        print("NOTE: SYNTHETIC DATA - these numbers test the pipeline, not a model's alignment.")
    for line in out.get("warnings", []):
        print(f"NOTE: {line}")
    rows = {**({"model": out["model"]} if "model" in out else {}), **out.get("baselines", {})}
    for name, m in rows.items():
        print(f"{name:>28}: acc {m.get('acc', float('nan')):.3f}  LC {m.get('lc', float('nan')):.3f}  "
              f"WD {m.get('wd', float('nan')):.3f}  unparsed {m.get('unparsed_rate', 0):.1%}")
    if "model" in out:
        _print_correctness(out["model"])
    if "flip" in out:
        print(f"{'value flip rate':>28}: {out['flip']['flip_rate']:.3f} over {out['flip']['pairs']} pairs")
    print_replies(out.get("replies", {}))
    print(f"report -> {Path(run_dir) / 'report.md'}, metrics.json, {len(out['plots'])} plot(s)")


def _print_correctness(m: dict) -> None:
    print(f"{'correctness':>28}: Acc above by {m['correctness']}; resolver {m['resolver_acc']:.3f}, the authors' "
          f"rule {m['release_acc']:.3f}" + (f" ({m['release_skipped']} items their script skips)"
                                             if m.get("release_skipped") else ""))
    if "imported" in m:
        imp = m["imported"]
        print(f"{'imported is_correct':>28}: {imp['their_is_correct_acc']:.3f}; recomputed "
              f"{imp['release_recomputed_acc']:.3f}; disagreeing rows {imp['disagreements']}")


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
