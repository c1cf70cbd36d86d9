"""DPO with LoRA on preference pairs (MVPBench's method), through TRL's ``DPOTrainer`` and PEFT.

verl has no offline DPO, so this path uses TRL (Rafailov et al. 2023, "Direct Preference Optimization",
arXiv 2305.18290; TRL ``DPOTrainer``, ``loss_type="sigmoid"``):

    loss = -log sigmoid(beta * ((log pi(y_c|x) - log ref(y_c|x)) - (log pi(y_r|x) - log ref(y_r|x))))

with log-probabilities summed over the answer's tokens. The policy is the base model plus a LoRA adapter
(Hu et al. 2021, arXiv 2106.09685); the reference is the same base model with the adapter switched off, so no second
copy of the weights is held. On save the adapter is merged into the weights (PEFT ``merge_and_unload``) and the
model and tokenizer are written as one Hugging Face folder that ``dvmap eval --backend hf`` and
``dvmap eval-pairs`` load directly.

Input: a pairs table as :mod:`dvmap_verl.evaluation.pairs` reads it (what ``dvmap pairs-from-corpus`` writes, or any
table mapped with ``--columns``). Each pair becomes TRL's conversational preference format: ``prompt`` is the user
turn :func:`dvmap_verl.evaluation.pairs.pair_messages` builds (the profile sentence and the question: the same
context the ``likelihood`` readout of ``eval-pairs`` scores), ``chosen``/``rejected`` are one assistant turn each,
and the model's chat template renders them (Qwen3 thinking off, as in the GRPO recipes).

Output folder ``DIR``: the merged model and tokenizer, ``dpo_run.json`` (settings, pairs fingerprint, TRL's log),
and ``checkpoints/checkpoint-N`` (TRL/transformers checkpoints: adapter, optimizer, scheduler, RNG state; the latest
three are kept), from which ``--resume`` continues.

TRL and PEFT are imported only when training starts (extra ``dpo``: ``pip install 'dvmap-verl[dpo]'``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dvmap_verl.errors import EnvironmentProblem, InputError, MissingInputError

RUN_FILE = "dpo_run.json"
CHECKPOINTS = "checkpoints"
#: Settings a ``--resume`` must keep (the pairs are guarded by their fingerprint); the step budget and the
#: logging/saving cadence may change.
GUARDED = ("model", "columns", "lora_rank", "lora_alpha", "lora_dropout", "target_modules", "beta", "learning_rate",
           "batch_size", "gradient_accumulation_steps", "max_length", "seed", "enable_thinking")
#: ``--columns`` keys: ours as ``dvmap_verl.evaluation.pairs`` names them; ``prompt`` is TRL's name for ``question``.
COLUMN_ALIASES = {"prompt": "question"}


@dataclass
class DPOSettings:
    """What ``dvmap train-dpo`` trains with.

    Defaults: ``beta`` 0.1 (the DPO paper's and TRL's default); LoRA rank 16, alpha 32 (scale alpha/rank = 2),
    dropout 0.05 on every linear layer of the blocks (``all-linear``: attention and MLP projections); learning rate
    5e-6 (the Hugging Face alignment-handbook's Zephyr-7B DPO QLoRA recipe), linear decay, AdamW. ``max_steps``
    None trains ``epochs`` passes over the pairs.
    """

    model: str
    pairs: str
    out: str
    columns: dict[str, str] | None = None
    lora_rank: int = 16
    lora_alpha: float = 32.0
    lora_dropout: float = 0.05
    target_modules: str = "all-linear"
    beta: float = 0.1
    learning_rate: float = 5e-6
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    max_length: int = 1024
    save_steps: int = 100
    logging_steps: int = 10
    seed: int = 0
    enable_thinking: bool = False
    gradient_checkpointing: bool = True


# ---------------------------------------------------------------------------------------------------------------
# Pairs
# ---------------------------------------------------------------------------------------------------------------


def parse_column_specs(specs: list[str] | None) -> dict[str, str]:
    """``["prompt=q,chosen=good", "rejected=bad"]`` -> ``{"question": "q", "chosen": "good", "rejected": "bad"}``.

    Each argument may hold several ``OURS=THEIRS`` joined by commas. Raises :class:`InputError` on a malformed spec.
    """
    out: dict[str, str] = {}
    for spec in specs or []:
        for part in filter(None, (p.strip() for p in spec.split(","))):
            ours, sep, theirs = part.partition("=")
            if not sep or not ours.strip() or not theirs.strip():
                raise InputError(f"--columns expects OURS=THEIRS (e.g. prompt=instruction,chosen=good), got {part!r}")
            out[COLUMN_ALIASES.get(ours.strip(), ours.strip())] = theirs.strip()
    return out


def load_training_pairs(path: str | Path, columns: dict[str, str] | None = None) -> pd.DataFrame:
    """The pairs table for training: :func:`dvmap_verl.evaluation.pairs.load_pairs`, then text checks.

    Returns the table (one row per pair; ``question``, ``chosen``, ``rejected`` as non-empty strings). Raises
    :class:`MissingInputError` when ``path`` does not exist and :class:`InputError` naming the file, column and row
    for an unreadable or empty table, a missing column, a cell that is not text, or a pair whose chosen and rejected
    answers are the same text (DPO learns nothing from it; the loss gradient is zero).
    """
    from dvmap_verl.evaluation.pairs import load_pairs

    try:
        frame = load_pairs(path, columns)
    except FileNotFoundError as e:
        raise MissingInputError(f"--pairs {e}; make one with `dvmap pairs-from-corpus`") from None
    except ValueError as e:
        raise InputError(str(e)) from None
    for col in ("question", "chosen", "rejected"):
        for row, value in enumerate(frame[col]):
            if not isinstance(value, str):
                raise InputError(f"{path}: column {col!r} row {row} is {type(value).__name__} {value!r}, not text")
    same = (frame["chosen"].str.strip() == frame["rejected"].str.strip()).to_numpy()
    if same.any():
        row = int(same.nonzero()[0][0])
        raise InputError(f"{path}: row {row}: columns 'chosen' and 'rejected' hold the same answer "
                         f"{frame['chosen'][row]!r} ({int(same.sum())} such row(s)); remove them")
    return frame


def conversational_rows(pairs: pd.DataFrame, enable_thinking: bool = False) -> list[dict[str, Any]]:
    """TRL's conversational preference rows: ``prompt`` (a list of messages, the user turn of ``eval-pairs``),
    ``chosen`` and ``rejected`` (one assistant message each) and ``chat_template_kwargs``."""
    from dvmap_verl.evaluation.pairs import pair_messages

    rows = []
    for rec in pairs.to_dict("records"):
        rows.append({"prompt": [dict(m) for m in pair_messages(rec)],
                     "chosen": [{"role": "assistant", "content": rec["chosen"]}],
                     "rejected": [{"role": "assistant", "content": rec["rejected"]}],
                     "chat_template_kwargs": {"enable_thinking": enable_thinking}})
    return rows


def bridge_generation_prompt(tokenizer, rows: list[dict[str, Any]]) -> str:
    """Make each answered turn start with the generation prompt the model sees at inference; returns the text added.

    Some chat templates render the assistant header alone (``add_generation_prompt=True``, what ``dvmap eval`` and
    ``eval-pairs`` put before the answer) differently from an answered turn: the tiny test template and Gemma-style
    ones add an empty thought block (``<think>\n\n</think>\n\n``) to the first only. TRL then trains the answer
    after the shorter context. When the first row shows such a gap, the missing text is put at the start of every
    ``chosen`` and ``rejected`` turn, so training sees the inference context; when the template renders both the
    same (Qwen3 with thinking off, Llama 3, Qwen2.5) nothing changes and ``""`` is returned. Rows change in place.
    """
    first = rows[0]
    kwargs = first["chat_template_kwargs"]
    head = tokenizer.apply_chat_template(first["prompt"], tokenize=False, add_generation_prompt=True, **kwargs)

    def rendered(extra: str) -> str:
        turn = [{"role": "assistant", "content": extra + first["chosen"][0]["content"]}]
        return tokenizer.apply_chat_template(first["prompt"] + turn, tokenize=False, **kwargs)

    full = rendered("")
    if full.startswith(head):
        return ""
    common = len(os.path.commonprefix([head, full]))
    bridge = head[common:]
    if not rendered(bridge).startswith(head):  # the template rewrites the answer's start: leave it to TRL
        return ""
    for row in rows:
        for key in ("chosen", "rejected"):
            row[key] = [{"role": "assistant", "content": bridge + row[key][0]["content"]}]
    return bridge


# ---------------------------------------------------------------------------------------------------------------
# Run folder
# ---------------------------------------------------------------------------------------------------------------


def require_trl() -> None:
    """Raise :class:`EnvironmentProblem` (one line naming the extra) when TRL or PEFT is not installed."""
    missing = [name for name in ("trl", "peft") if importlib.util.find_spec(name) is None]
    if missing:
        raise EnvironmentProblem(f"dvmap train-dpo needs {' and '.join(missing)}: pip install 'dvmap-verl[dpo]'")


def latest_checkpoint(out: str | Path) -> Path | None:
    """The highest ``checkpoint-N`` folder under ``out/checkpoints`` (transformers' own rule), or None."""
    from transformers.trainer_utils import get_last_checkpoint

    folder = Path(out) / CHECKPOINTS
    if not folder.is_dir():
        return None
    last = get_last_checkpoint(str(folder))
    return Path(last) if last else None


def check_out_dir(settings: DPOSettings, resume: bool, fingerprint: str) -> Path | None:
    """The checkpoint to resume from (None: start at step 0), after checking the folder.

    Raises :class:`InputError` when ``--out`` already holds a run and ``resume`` is False, or when a resume would
    train on other pairs or with other guarded settings (:data:`GUARDED`; the differences are named). Writes nothing.
    """
    from dvmap_verl.jsonl import load_json_object

    out = Path(settings.out)
    previous = load_json_object(out / RUN_FILE, required=False)  # unreadable: RunFileError naming the file
    last = latest_checkpoint(out)
    if not resume:
        # A dpo_run.json alone (no checkpoint, no merged model) is a run that failed before its first checkpoint:
        # nothing to continue, so the corrected command starts afresh over it.
        if last is not None or (out / "config.json").exists():
            raise InputError(f"--out {out} already holds a DPO run; pass --resume to continue it, or choose another "
                             f"folder")
        return None
    if last is None:
        raise InputError(f"--resume {out}: no checkpoint in {out / CHECKPOINTS} to continue from; run without "
                         f"--resume to train from step 0 (into another --out to keep a finished model)")
    if previous is None:
        raise InputError(f"{out}: has checkpoints but no {RUN_FILE}; it was not written by dvmap train-dpo")
    now, before = asdict(settings), previous.get("settings") if isinstance(previous.get("settings"), dict) else {}
    changed = [f"{k}: {before.get(k)!r} -> {now[k]!r}" for k in GUARDED if before.get(k) != now[k]]
    if previous.get("pairs_fingerprint") != fingerprint:
        changed.insert(0, f"pairs: {settings.pairs} is not the table this run trained on ({before.get('pairs')}, "
                          f"{previous.get('n_pairs')} pairs)")
    if changed:
        raise InputError(f"--resume {out}: the run was started with other settings ({'; '.join(changed)}); use the "
                         f"same ones or another --out")
    step = _checkpoint_step(last)
    if settings.max_steps is not None and step is not None and step >= settings.max_steps:
        raise InputError(f"--resume {out}: {last.name} is already at step {step}, not below --max-steps "
                         f"{settings.max_steps}; nothing to train (raise --max-steps to continue)")
    return last


def _checkpoint_step(checkpoint: Path) -> int | None:
    """The global step a TRL checkpoint was saved at (its trainer_state.json), or None when unreadable."""
    import json

    try:
        return int(json.loads((checkpoint / "trainer_state.json").read_text())["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------


def is_main_process() -> bool:
    """Rank 0 of a torchrun/accelerate launch (``RANK``), or a single process: the one that prints."""
    return os.environ.get("RANK", "0") == "0"


def _precision() -> dict[str, Any]:
    """bf16 weights and autocast where the GPU supports it, else fp32 (CPU, older GPUs); pinned memory on GPUs."""
    import torch

    bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return {"bf16": bf16, "fp16": False, "model_init_kwargs": {"dtype": "bfloat16" if bf16 else "float32"},
            "dataloader_pin_memory": torch.cuda.is_available(),
            # On a CPU, torchrun/accelerate processes run data parallel over gloo only when told it is a CPU run.
            "use_cpu": not torch.cuda.is_available()}


def check_prompt_lengths(tokenizer, rows: list[dict[str, Any]], settings: DPOSettings) -> None:
    """:class:`InputError` when a pair's chat prompt (with the generation prompt) has ``max_length`` tokens or more:
    TRL would drop that pair without a word (its answer would be cut away entirely). Pairs whose prompt fits but
    whose prompt + answer do not are kept, the answer cut at the end (TRL's ``keep_start``)."""
    lengths = [len(tokenizer(tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True,
                                                           **r["chat_template_kwargs"]),
                             add_special_tokens=False)["input_ids"]) for r in rows]
    over = [i for i, n in enumerate(lengths) if n >= settings.max_length]
    if over:
        raise InputError(f"--max-length {settings.max_length}: {len(over)} of {len(rows)} pair(s) in {settings.pairs} "
                         f"have a prompt that long or longer (row {over[0]}: {lengths[over[0]]} tokens; longest "
                         f"{max(lengths)}), which would leave no answer token to train; raise --max-length above "
                         f"{max(lengths)} or shorten those questions")


def build_trainer(settings: DPOSettings, rows: list[dict[str, Any]], quiet: bool = False):
    """TRL's ``DPOTrainer`` over ``rows`` with a fresh LoRA adapter on ``settings.model`` (checkpoints in
    ``out/checkpoints``). Raises :class:`InputError` when the tokenizer has no chat template."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer, PrinterCallback
    from trl import DPOConfig, DPOTrainer

    try:
        tokenizer = AutoTokenizer.from_pretrained(settings.model)
    except OSError as e:  # a mistyped folder or hub id (or no network): the user's input, not a bug
        raise InputError(f"--model {settings.model}: no model there ({str(e).splitlines()[0][:200]})") from None
    if not tokenizer.chat_template:
        raise InputError(f"--model {settings.model}: its tokenizer has no chat template; DPO here trains chat turns "
                         f"(use an instruct model, or add a template to tokenizer_config.json)")
    check_prompt_lengths(tokenizer, rows, settings)
    bridge = bridge_generation_prompt(tokenizer, rows)
    if bridge and not quiet and is_main_process():
        print(f"train-dpo: the chat template adds {bridge!r} to the generation prompt only; it is put before each "
              f"answer so that training sees the inference context", file=sys.stderr)
    config = DPOConfig(
        output_dir=str(Path(settings.out) / CHECKPOINTS), beta=settings.beta, learning_rate=settings.learning_rate,
        num_train_epochs=settings.epochs, max_steps=settings.max_steps or -1,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps, max_length=settings.max_length,
        save_strategy="steps", save_steps=settings.save_steps, save_total_limit=3, logging_steps=settings.logging_steps,
        seed=settings.seed, gradient_checkpointing=settings.gradient_checkpointing, report_to="none",
        disable_tqdm=quiet, lr_scheduler_type="linear", ddp_find_unused_parameters=False,  # every adapter is used
        **_precision())
    lora = LoraConfig(r=settings.lora_rank, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                      target_modules=settings.target_modules, task_type="CAUSAL_LM")
    trainer = DPOTrainer(model=settings.model, args=config, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer, peft_config=lora)
    if quiet:  # without the progress bar, transformers prints every log line instead
        trainer.remove_callback(PrinterCallback)
    return trainer


def save_merged(trainer, out: str | Path) -> None:
    """Merge the LoRA adapter into the weights and write model + tokenizer into ``out``, all files or none
    (:func:`dvmap_verl.io.staged_dir`); only the main process writes."""
    from dvmap_verl.io import staged_dir

    if not trainer.is_world_process_zero():
        return
    merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
    merged.config.use_cache = True  # gradient checkpointing switched it off for training; generation wants it
    with staged_dir(out) as stage:
        merged.save_pretrained(str(stage))
        trainer.processing_class.save_pretrained(str(stage))


def train_dpo(settings: DPOSettings, resume: bool = False, quiet: bool = False) -> dict[str, Any]:
    """Train, merge and save; returns the run record (also written to ``out/dpo_run.json``).

    Checks the pairs and the folder before anything is loaded or written (:func:`load_training_pairs`,
    :func:`check_out_dir`); ``resume`` continues from the latest checkpoint in ``out/checkpoints`` (the global step
    continues; with none there, or one already at ``max_steps``, an :class:`InputError`). A prompt of ``max_length``
    tokens or more is an :class:`InputError` before anything is written (:func:`check_prompt_lengths`). Raises :class:`EnvironmentProblem` without TRL/PEFT.
    """
    require_trl()
    from dvmap_verl.evaluation.pairs import pairs_fingerprint
    from dvmap_verl.io import write_json

    pairs = load_training_pairs(settings.pairs, settings.columns)
    fingerprint = pairs_fingerprint(pairs)
    checkpoint = check_out_dir(settings, resume, fingerprint)
    if not quiet and is_main_process():
        start = f"resuming from {checkpoint}" if checkpoint else "from step 0"
        print(f"train-dpo: {len(pairs):,} pairs from {settings.pairs}; {start}", file=sys.stderr)
    trainer = build_trainer(settings, conversational_rows(pairs, settings.enable_thinking), quiet=quiet)
    record = {"settings": asdict(settings), "pairs_fingerprint": fingerprint, "n_pairs": len(pairs)}
    trainer.accelerator.wait_for_everyone()  # every process has checked the folder before the first one writes
    if trainer.is_world_process_zero():
        write_json(Path(settings.out) / RUN_FILE, record)
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    save_merged(trainer, settings.out)
    record.update({"resumed_from": str(checkpoint) if checkpoint else None,
                   "global_step": int(trainer.state.global_step), "train_loss": float(result.training_loss),
                   "log_history": trainer.state.log_history, "merged": True})
    if trainer.is_world_process_zero():
        write_json(Path(settings.out) / RUN_FILE, record)
    return record
