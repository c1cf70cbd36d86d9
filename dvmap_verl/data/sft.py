"""SFT warm-start data: prepared DVMap splits -> verl's SFT parquet.

verl 0.9.1's SFT trainer (``python -m verl.trainer.sft_trainer``) reads every row through ``MultiTurnSFTDataset``:
a ``messages`` column holding the chat (``data.messages_key``), tokenised turn by turn, with the loss on the
assistant turns only. Each row written here is the GRPO prompt exactly as ``dvmap prepare`` wrote it (system and
user messages) followed by one assistant message, the target answer block:

- a point target: ``<answer>\\n{answer}\\n</answer>`` (the ground truth the GRPO reward compares against);
- a prompt of the ``distribution`` template: ``<answer>`` then one ``Option: p`` line per option, ``p`` the row's
  target distribution as the rps reward reads it (``extra_info.target``, else ``counts``, else the point mass on
  the answer: :func:`dvmap_verl.reward.distribution.target_distribution`).

The answer block only: the corpus has no reasoning text to imitate, so the warm start teaches the answer and its
tags, and GRPO afterwards rewards the reasoning format. Columns: ``messages``, ``response`` (the assistant text),
``data_source``, ``extra_info`` (kept from the input row).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

SFT_SPLITS = ("train", "val")
NEEDED = ("prompt", "reward_model", "extra_info")


def answer_block(row: dict[str, Any], source: str = "row") -> str:
    """The assistant message for one prepared row (module docstring); InputError naming ``source`` when the row
    has no ground truth or its answer is not one of its options."""
    from dvmap_verl.data.prompts import states_distribution
    from dvmap_verl.errors import InputError
    from dvmap_verl.reward.distribution import format_distribution, target_distribution

    truth = (row.get("reward_model") or {}).get("ground_truth")
    if not isinstance(truth, str) or not truth.strip():
        raise InputError(f"{source}: no reward_model.ground_truth to train on")
    user = " ".join(str(m.get("content", "")) for m in row["prompt"] if m.get("role") == "user")
    if not states_distribution(user):
        return f"<answer>\n{truth}\n</answer>"
    extra = row.get("extra_info") or {}
    options = [str(o) for o in (extra.get("options") or [])]
    if truth not in options:
        raise InputError(f"{source}: answer {truth!r} is not one of extra_info.options {options}")
    target, _ = target_distribution(extra, options.index(truth), len(options))
    return f"<answer>\n{format_distribution(options, target)}\n</answer>"


def sft_table(path: Path):
    """One prepared split (verl RL parquet) -> the SFT table (pyarrow), row by row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dvmap_verl.errors import InputError

    table = pq.read_table(path)
    missing = [c for c in NEEDED if c not in table.column_names]
    if missing:
        raise InputError(f"{path}: no column(s) {', '.join(missing)}: not a split written by dvmap prepare")
    rows = table.select(list(NEEDED)).to_pylist()
    messages, responses = [], []
    for i, row in enumerate(rows):
        if not isinstance(row["prompt"], list) or not row["prompt"]:
            raise InputError(f"{path}: row {i}: prompt is not a list of chat messages")
        reply = answer_block(row, f"{path}: row {i}")
        messages.append([{"role": m["role"], "content": m["content"]} for m in row["prompt"]] +
                        [{"role": "assistant", "content": reply}])
        responses.append(reply)
    source = table.column("data_source") if "data_source" in table.column_names else \
        pa.array(["dvmap"] * len(rows), pa.string())
    return pa.table({"messages": messages, "response": pa.array(responses, pa.string()), "data_source": source,
                     "extra_info": table.column("extra_info")})


def prepare_sft(data: Path, out: Path, splits: Sequence[str] = SFT_SPLITS, overwrite: bool = False) -> dict:
    """Write ``out/<split>.parquet`` for each split of the prepared folder ``data`` (``train`` is required,
    ``val`` is used when present). Returns ``{split: rows}``. Refuses an ``out`` that already holds SFT files unless
    ``overwrite``; every file is written whole or not at all."""
    from dvmap_verl.data.dataset import write_table
    from dvmap_verl.errors import InputError, MissingInputError

    data, out = Path(data), Path(out)
    if not (data / "train.parquet").is_file():
        raise MissingInputError(f"{data / 'train.parquet'}: not found; --data is the folder `dvmap prepare wvs` or "
                                f"`dvmap prepare release` wrote")
    present = [s for s in splits if (out / f"{s}.parquet").exists()]
    from dvmap_verl.io import MANIFEST, read_manifest

    owned = read_manifest(out) or {}
    prepared = [f"{s}.parquet" for s in present if f"{s}.parquet" in owned]
    if out.resolve() == data.resolve():  # --overwrite replaces SFT files, never a prepared set's
        raise InputError(f"--out {out} is the --data folder: the SFT files would replace its prepared train/val "
                         f"parquet; write the SFT set to another folder")
    if prepared:
        raise InputError(f"--out {out}: {', '.join(prepared)} belong to a prepared set ({out / MANIFEST} lists "
                         f"them); write the SFT set to another folder")
    if present and not overwrite:
        raise InputError(f"{out}: already holds {', '.join(s + '.parquet' for s in present)}; add --overwrite")
    tables = {s: sft_table(data / f"{s}.parquet") for s in splits if (data / f"{s}.parquet").is_file()}
    for split, table in tables.items():  # all read and checked before the first write
        write_table(table, out / f"{split}.parquet")
    return {split: table.num_rows for split, table in tables.items()}
