"""``dvmap curves ROLLOUT_DIR``: per-step training curves of the reward's acc, format, parsed and likert.

verl 0.9.1 logs only ``critic/score/*`` during training: the reward's extra keys reach the logger in validation
alone. What it does write, when ``trainer.rollout_data_dir`` is set (the recipes set it), is one JSONL per step with
every rollout's prompt, response, score and the reward's extra keys (``RayPPOTrainer._write_generations``, in a
background thread). This module turns those dumps into curves: ``curves.csv`` (one row per step), ``curves.png``
and TensorBoard scalars (``dvmap/<metric>``), which a ``--tensorboard`` folder puts beside verl's own.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dvmap_verl.io import atomic_path, save_figure

METRICS = ("score", "acc", "format", "parsed", "likert")
_STEP_FILE = re.compile(r"^(\d+)\.jsonl$")


class CurvesInputError(ValueError):
    pass


def step_files(rollout_dir: Path) -> list[tuple[int, Path]]:
    if not rollout_dir.is_dir():
        raise CurvesInputError(f"{rollout_dir}: no such folder (the run's trainer.rollout_data_dir)")
    files = sorted((int(m.group(1)), p) for p in rollout_dir.iterdir() if (m := _STEP_FILE.match(p.name)))
    if not files:
        raise CurvesInputError(f"{rollout_dir}: no <step>.jsonl dumps; was trainer.rollout_data_dir set for the run?")
    return files


def step_summary(path: Path, step: int, tokenizer: Any = None) -> dict[str, Any]:
    """Means of the reward's keys and the response length over one step's rollouts (unreadable lines skipped)."""
    values: dict[str, list[float]] = {m: [] for m in METRICS}
    lengths, tokens, skipped = [], [], 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                skipped += 1
                continue
            if not isinstance(row, dict):
                skipped += 1
                continue
            for m in METRICS:
                v = row.get(m)
                if isinstance(v, (int, float)) and math.isfinite(v):
                    values[m].append(float(v))
            out = row.get("output")
            if isinstance(out, str):
                lengths.append(len(out))
                if tokenizer is not None:
                    tokens.append(len(tokenizer(out, add_special_tokens=False)["input_ids"]))
    summary: dict[str, Any] = {"step": step, "rollouts": len(lengths), "skipped_lines": skipped}
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

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    frame = pd.DataFrame([step_summary(p, s, tokenizer) for s, p in step_files(rollout_dir)])
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "curves.csv") as tmp:
        frame.to_csv(tmp, index=False)
    _plot(frame, out / "curves.png")
    _tensorboard(frame, Path(tensorboard) if tensorboard else out / "tensorboard")
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


def _tensorboard(frame: pd.DataFrame, folder: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(folder))
    try:
        for row in frame.to_dict("records"):
            for key, value in row.items():
                if key != "step" and isinstance(value, float) and math.isfinite(value):
                    writer.add_scalar(f"dvmap/{key}", value, int(row["step"]))
    finally:
        writer.close()
