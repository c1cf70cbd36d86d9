"""``dvmap curves ROLLOUT_DIR``: per-step training curves of the reward's acc, format, parsed and likert.

verl 0.9.1 logs only ``critic/score/*`` during training: the reward's extra keys reach the logger in validation
alone. What it does write, when ``trainer.rollout_data_dir`` is set (the recipes set it), is one JSONL per step with
every rollout's prompt, response, score and the reward's extra keys (``RayPPOTrainer._write_generations``, in a
background thread). This module turns those dumps into curves: ``curves.csv`` (one row per step), ``curves.png``
and TensorBoard scalars (``dvmap/<metric>``), which a ``--tensorboard`` folder puts beside verl's own.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dvmap_verl.io import atomic_path, remove_stale_tmp, save_figure
from dvmap_verl.errors import InputError

METRICS = ("score", "acc", "format", "parsed", "likert")
_STEP_FILE = re.compile(r"^(\d+)\.jsonl$")


class CurvesInputError(InputError):
    pass


def step_files(rollout_dir: Path) -> list[tuple[int, Path]]:
    if not rollout_dir.is_dir():
        raise CurvesInputError(f"{rollout_dir}: no such folder (the run's trainer.rollout_data_dir)")
    files = sorted((int(m.group(1)), p) for p in rollout_dir.iterdir() if (m := _STEP_FILE.match(p.name)))
    if not files:
        raise CurvesInputError(f"{rollout_dir}: no <step>.jsonl dumps; was trainer.rollout_data_dir set for the run?")
    return files


def rollout_problem(row: dict) -> str | None:
    """Why a rollout dump record cannot be counted, or None: the reward's keys, when present, are finite numbers
    (or null) and ``output`` is a string."""
    for m in METRICS:
        v = row.get(m)
        if v is not None and not (type(v) in (int, float, bool) and math.isfinite(v)):
            return f"{m} must be a finite number"
    if row.get("output") is not None and not isinstance(row["output"], str):
        return "output must be a string"
    return None


def step_summary(path: Path, step: int, tokenizer: Any = None) -> dict[str, Any]:
    """Means of the reward's keys and the response length over one step's rollouts. Lines that cannot be read
    (torn, too long or deep, not an object, a non-finite score: :func:`dvmap_verl.evaluation.runs.read_jsonl`) are
    set aside and counted in ``skipped_lines``; ``skipped_why`` names the first."""
    from dvmap_verl.jsonl import read_jsonl

    values: dict[str, list[float]] = {m: [] for m in METRICS}
    lengths, tokens = [], []
    scan = read_jsonl(path, rollout_problem, last_line_whole=True)  # verl closes every dump it writes
    for row in scan.records:
        for m in METRICS:
            v = row.get(m)
            if v is not None:
                values[m].append(float(v))
        out = row.get("output")
        if isinstance(out, str):
            lengths.append(len(out))
            if tokenizer is not None:
                tokens.append(len(tokenizer(out, add_special_tokens=False)["input_ids"]))
    summary: dict[str, Any] = {"step": step, "rollouts": len(lengths), "skipped_lines": scan.skipped,
                               "skipped_why": scan.describe(path)}
    for m in METRICS:
        summary[m] = float(np.mean(values[m])) if values[m] else float("nan")
    summary["response_chars"] = float(np.mean(lengths)) if lengths else float("nan")
    if tokenizer is not None:
        summary["response_tokens"] = float(np.mean(tokens)) if tokens else float("nan")
    return summary


def build_curves(rollout_dir: str | Path, out_dir: str | Path | None = None, tensorboard: str | Path | None = None,
                 tokenizer_path: str | None = None) -> pd.DataFrame:
    rollout_dir = Path(rollout_dir)
    out = Path(out_dir) if out_dir else rollout_dir / "curves"
    tokenizer = None
    if tokenizer_path:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
        except (OSError, ValueError) as e:  # no such repo or folder, no network, not a tokenizer folder
            raise InputError(f"--tokenizer {tokenizer_path}: cannot load it ({e})") from e
    frame = pd.DataFrame([step_summary(p, s, tokenizer) for s, p in step_files(rollout_dir)])
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(out)
    with atomic_path(out / "curves.csv") as tmp:
        frame.to_csv(tmp, index=False)
    _plot(frame, out / "curves.png")
    _tensorboard(frame.drop(columns=["skipped_why"]), Path(tensorboard) if tensorboard else out / "tensorboard",
                 ours_alone=not tensorboard)
    return frame


def _plot(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_len) = plt.subplots(1, 2, figsize=(11, 4))
    for m in ("acc", "format", "parsed", "likert"):
        ax.plot(frame["step"], frame[m], marker="o", markersize=3, label=m)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("training step")
    ax.set_title("Reward components per step (training rollouts)")
    ax.legend(fontsize=8)
    col = "response_tokens" if "response_tokens" in frame else "response_chars"
    ax_len.plot(frame["step"], frame[col], marker="o", markersize=3, color="tab:gray")
    ax_len.set_xlabel("training step")
    ax_len.set_title("Mean response length (" + col.split("_")[1] + ")")
    from matplotlib.ticker import MaxNLocator

    for a in (ax, ax_len):  # steps are whole numbers: no 1.5 on the axis
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    save_figure(fig, path)


#: Suffix of the event files ``curves`` writes, so a rerun replaces its own and never verl's.
EVENT_SUFFIX = ".dvmap_curves"


def _tensorboard(frame: pd.DataFrame, folder: Path, ours_alone: bool = False) -> None:
    """The scalars as one event file; a rerun replaces the event file(s) an earlier ``curves`` wrote there (in a
    folder of ``curves``' own, ``ours_alone``, every event file) once the new one is complete."""
    from torch.utils.tensorboard import SummaryWriter

    before = set(folder.glob("events.out.tfevents.*")) if folder.is_dir() else set()
    old = {f for f in before if ours_alone or f.name.endswith(EVENT_SUFFIX)}
    writer = SummaryWriter(log_dir=str(folder), filename_suffix=EVENT_SUFFIX)
    try:
        for row in frame.to_dict("records"):
            for key, value in row.items():
                if key != "step" and isinstance(value, float) and math.isfinite(value):
                    writer.add_scalar(f"dvmap/{key}", value, int(row["step"]))
    finally:
        writer.close()
    for f in old:
        f.unlink(missing_ok=True)
