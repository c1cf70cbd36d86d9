"""``dvmap utility``: does DVMap training cost general ability? (paper Appendix H, Table 11)

A thin wrapper over lm-evaluation-harness (``lm_eval.simple_evaluate``): the trained model and, with ``--base``, the
base model run the same tasks with the same settings; the output is each model's ``results.json`` (lm-eval's own)
and a table of every task's metric with its standard error and the trained - base delta. No benchmark code lives
here: tasks, prompts and metrics are lm-eval's (``--include-path`` adds task YAMLs of your own).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from dvmap_verl.io import atomic_path, write_json
from dvmap_verl.errors import MissingInputError, MissingPackage

PAPER_TASKS = ("mmlu", "arc_easy", "gsm8k", "hellaswag", "ifeval")


def _require():
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise MissingPackage("dvmap utility needs lm-evaluation-harness: pip install 'dvmap-verl[analysis]'") from None
    return lm_eval, TaskManager


def pick_device(device: str | None, backend: str = "hf") -> str:
    """The device lm-eval runs on: ``device`` if given, else ``cuda`` when torch sees a GPU, else ``cpu``.

    Raises :class:`dvmap_verl.preflight.PreflightError` (before anything loads or is written) when lm-eval is not
    installed, when ``device`` asks for CUDA on a machine without it, or for the vllm backend without a GPU and vLLM.
    """
    from dvmap_verl.preflight import cuda_devices, require

    require("dvmap utility", packages=["lm_eval"], install="pip install 'dvmap-verl[analysis]'")
    if backend == "vllm":
        require("dvmap utility --backend vllm", gpus=1, packages=["vllm"], instead="--backend hf (picks the CPU)")
    if device is None:
        return "cuda" if cuda_devices() else "cpu"
    if device.startswith("cuda"):
        require(f"dvmap utility --device {device}", gpus=1, instead="--device cpu, or leave --device out")
    return device


def evaluate_model(path: str, tasks: Sequence[str], backend: str = "hf", limit: int | None = None,
                   include_path: str | None = None, batch_size: int | str = 8, device: str | None = None,
                   seed: int = 0) -> dict[str, Any]:
    lm_eval, TaskManager = _require()
    args = f"pretrained={path}" + (",dtype=bfloat16" if backend == "vllm" else "")
    kwargs: dict[str, Any] = {}
    if device:
        kwargs["device"] = device
    return lm_eval.simple_evaluate(model=backend, model_args=args, tasks=list(tasks), limit=limit,
                                   batch_size=batch_size, task_manager=TaskManager(include_path=include_path),
                                   random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
                                   fewshot_random_seed=seed, log_samples=False, **kwargs)


def metric_rows(results: dict[str, Any]) -> dict[tuple[str, str], tuple[float, float]]:
    """(task, metric) -> (value, standard error) from lm-eval's ``results``."""
    rows = {}
    for task, metrics in results.get("results", {}).items():
        for key, value in metrics.items():
            if "," not in key or key.startswith(("alias", "name")) or "_stderr" in key:
                continue
            if not isinstance(value, (int, float)):
                continue
            metric, filt = key.split(",", 1)
            err = metrics.get(f"{metric}_stderr,{filt}")
            rows[(task, metric if filt == "none" else f"{metric} ({filt})")] = (
                float(value), float(err) if isinstance(err, (int, float)) else float("nan"))
    return rows


def run_utility(model: str, out_dir: str | Path, tasks: Sequence[str] = PAPER_TASKS, base: str | None = None,
                backend: str = "hf", limit: int | None = None, include_path: str | None = None,
                batch_size: int | str = 8, device: str | None = None) -> dict[str, Any]:
    out = Path(out_dir)
    device = pick_device(device, backend)
    models = {"trained": model, **({"base": base} if base else {})}
    for name, path in models.items():  # a local path that is not there: say so, before lm-eval tries the hub
        if (path.startswith((".", "/", "~")) or Path(path).is_absolute()) and not Path(path).expanduser().exists():
            raise MissingInputError(f"{path}: no such model folder (--{'model' if name == 'trained' else 'base'})")
    tables = {}
    for name, path in models.items():
        res = evaluate_model(path, tasks, backend, limit, include_path, batch_size, device)
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / "results.json") as tmp:
            tmp.write_text(json.dumps(res, indent=2, default=str))
        tables[name] = metric_rows(res)
    rows = []
    for (task, metric), (value, err) in sorted(tables["trained"].items()):
        row = {"task": task, "metric": metric, "trained": value, "trained_stderr": err}
        if base:
            b, b_err = tables["base"].get((task, metric), (float("nan"), float("nan")))
            row |= {"base": b, "base_stderr": b_err, "delta": value - b}
        rows.append(row)
    summary = {"models": models, "tasks": list(tasks), "backend": backend, "limit": limit, "rows": rows}
    write_json(out / "utility.json", summary)
    with atomic_path(out / "utility.md") as tmp:
        tmp.write_text(_markdown(summary))
    return summary


def _cell(v: float, e: float) -> str:
    return f"{v:.4f}" + (f" ± {e:.4f}" if not math.isnan(e) else "")


def _markdown(summary: dict) -> str:
    base = "base" in summary["models"]
    lines = ["# General utility (lm-evaluation-harness)", "",
             f"Trained `{summary['models']['trained']}`" + (f", base `{summary['models']['base']}`" if base else "")
             + f"; backend {summary['backend']}" + (f", first {summary['limit']} documents per task"
                                                     if summary["limit"] else "") + ".", "",
             "| task | metric | trained | " + ("base | delta |" if base else ""),
             "|---|---|---|" + ("---|---|" if base else "")]
    for r in summary["rows"]:
        line = f"| {r['task']} | {r['metric']} | {_cell(r['trained'], r['trained_stderr'])} |"
        if base:
            line += f" {_cell(r['base'], r['base_stderr'])} | {r['delta']:+.4f} |"
        lines.append(line)
    return "\n".join(lines) + "\n"
