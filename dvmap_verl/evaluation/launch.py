"""What ``dvmap eval`` (and ``dvmap baselines``) settle before an engine starts: the value-flip settings, the
engine settings (vLLM's ``max_model_len`` from the longest prompt), the training-overlap guard, and the claim on
the run folder that removes what a run which never started wrote.

Errors: :class:`dvmap_verl.errors.InputError` for bad options or test items the training table also holds.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from dvmap_verl.errors import InputError
from dvmap_verl.evaluation.evaluate import DEFAULT_FLIP, ITEMS, LOCK, PREDICTIONS, RUN, EvalConfig, load_items


def flip_settings(flip: str | None, flip_map: list[str] | None) -> tuple[str | None, dict[str, str]]:
    """``--flip ATTRIBUTE`` and ``--flip-map FROM=TO ...`` as (attribute, value swaps in both directions).

    No ``flip``: ``(None, {})``. Without ``flip_map`` only the default attribute (Income Bracket) has a map.
    Raises InputError for a pair without ``=`` or another attribute without a map.
    """
    if not flip:
        return None, {}
    if flip_map:
        mapping: dict[str, str] = {}
        for pair in flip_map:
            a, sep, b = pair.partition("=")
            if not sep:
                raise InputError(f"--flip-map expects FROM=TO, got {pair!r}")
            mapping[a] = b
            mapping.setdefault(b, a)
        return flip, mapping
    if flip != DEFAULT_FLIP[0]:
        raise InputError(f"--flip {flip!r} needs --flip-map FROM=TO (the default map is for Income Bracket)")
    return DEFAULT_FLIP


def engine_settings(config: EvalConfig, items: pd.DataFrame, *, replicas: str, ray_address: str | None,
                    tensor_parallel_size: int, batch_size: int) -> dict[str, Any]:
    """The engine part of ``run.json``: replicas and Ray address (default ``$RAY_ADDRESS``), plus for vLLM the
    tensor-parallel size, prefix caching and ``max_model_len`` (longest rendered prompt + ``max_tokens``, from
    :func:`dvmap_verl.evaluation.backends.vllm.max_model_len_for`), for hf the batch size."""
    engine: dict[str, Any] = {"replicas": replicas, "ray_address": ray_address or os.environ.get("RAY_ADDRESS") or None}
    if config.backend == "vllm":
        from dvmap_verl.evaluation.backends.vllm import max_model_len_for

        messages = [json.loads(m) for m in items["messages"]]
        engine.update(tensor_parallel_size=tensor_parallel_size, enable_prefix_caching=True,
                      max_model_len=max_model_len_for(config.model, messages,
                                                      config.generation().chat_template_kwargs, config.max_tokens))
    elif config.backend == "hf":
        engine.update(batch_size=batch_size)
    return engine


def without_training_items(items: pd.DataFrame, train: Path, drop: bool, command: str) -> pd.DataFrame:
    """The test items minus those the training table also holds (same profile and question, or prompt), printing
    what it read and dropped; with ``drop`` False an overlap raises InputError counting them (see --drop-overlap)."""
    from dvmap_verl.evaluation.baselines import drop_items, training_overlap

    train_items = load_items([train], test_items=False)
    print(f"train: {train}: {len(train_items):,} rows")
    overlap = training_overlap(train_items, items)
    if not overlap.any():
        return items
    n, total = int(overlap.sum()), int((~items["counterfactual"]).sum())
    what = (f"{n:,} of the {total:,} test items also occur in the training table {train} (same profile and "
            f"question, or the same prompt)")
    if not drop:
        raise InputError(f"{command}: {what}; scores on them measure recall, not generalisation. Give a test set "
                         f"disjoint from --train, or pass --drop-overlap to leave them out (counted)")
    kept = drop_items(items, overlap)
    print(f"NOTE: --drop-overlap: {what}; dropped them, {int((~kept['counterfactual']).sum()):,} items left")
    return kept


class RunClaim:
    """Whether this command created the run folder; if the run never starts, what it wrote is removed again."""

    def __init__(self, out: Path):
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
        predictions = self.out / PREDICTIONS
        if self.claimed_before or (predictions.exists() and predictions.stat().st_size > 0):
            return False
        for name in (RUN, ITEMS, PREDICTIONS, LOCK):
            (self.out / name).unlink(missing_ok=True)
        if not self.existed and not any(self.out.iterdir()):
            self.out.rmdir()
        return True
