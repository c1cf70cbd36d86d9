"""``dvmap smoke --gpus 1``: one command that proves a cluster install, offline, in minutes.

It chains what a real run does at the smallest size: a tiny local model (or ``--model``), synthetic data, 2 GRPO
steps of a shipped recipe with the one-GPU overrides measured on an H100, the per-step curves, verl's checkpoint
merge, ``dvmap eval --backend vllm`` on a few items, and a pass/fail summary with step times and log paths.
``--dry-run`` prints every command with its full Hydra overrides and runs nothing.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from dvmap_verl.errors import InputError

DVMAP = [sys.executable, "-m", "dvmap_verl.cli"]


@dataclass
class Step:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)

    def shell(self) -> str:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        return (env + " " if env else "") + " ".join(shlex.quote(a) for a in self.argv)


_HYDRA_SPECIAL = re.compile(r"[\\()\[\]{}:=, \t'\"$]")


def hydra_path(path: Path | str, flag: str = "--out") -> str:
    """``path`` as a Hydra override value: its special characters (``,``, brackets, ``=``, spaces...) escaped by
    Hydra's own rule, checked by parsing it back; a path Hydra cannot carry (quotes, ``${``) is a ValueError naming
    it, in one line."""
    text = str(path)
    try:
        from hydra._internal.grammar.utils import escape_special_characters
        from hydra.core.override_parser.overrides_parser import OverridesParser
    except ImportError:  # no Hydra here (dry run on a laptop): refuse what would need escaping
        if _HYDRA_SPECIAL.search(text):
            raise InputError(f"{flag} {text}: Hydra reads ',', brackets, '=', quotes and spaces in an override "
                             f"specially; choose a path without them") from None
        return text
    escaped = escape_special_characters(text)
    try:
        ok = "${" not in text and OverridesParser.create().parse_override(f"k={escaped}").value() == text
    except Exception:  # Hydra's grammar errors are its own exception types
        ok = False
    if not ok:
        raise InputError(f"{flag} {text}: Hydra cannot carry this path in an override (quotes or '${{'); choose "
                         f"a path without them")
    return escaped


def train_overrides(recipe: str, model: Path, data: Path, out: Path, gpus: int, steps: int = 2) -> list[str]:
    """The recipe at smoke size: what one GPU and a tiny model need (each measured on one H100 with verl 0.9.1).
    Paths are escaped for Hydra (:func:`hydra_path`)."""
    hydra_path(out)  # named as the user gave it: --out (the tiny model and the data lie under it)
    model, data = hydra_path(model, "--model"), hydra_path(data)
    ckpt, rollouts = hydra_path(out / "checkpoints"), hydra_path(out / "rollouts")
    return [
        f"+recipe={recipe}",
        f"actor_rollout_ref.model.path={model}",
        f"dvmap.data_dir={data}",
        f"trainer.n_gpus_per_node={gpus}",
        "trainer.nnodes=1",
        f"data.train_batch_size={8 * gpus}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={8 * gpus}",
        # The tiny model's 500-token BPE vocabulary splits the ~450-token prompt into ~1,450 tokens.
        "data.max_prompt_length=2048",
        "data.max_response_length=256",
        "data.val_max_samples=16",
        f"trainer.total_training_steps={steps}",
        "trainer.logger=[console]",
        f"trainer.save_freq={steps}",  # one checkpoint, at the last step, for the merge
        f"trainer.test_freq={steps}",
        f"trainer.default_local_dir={ckpt}",
        f"trainer.rollout_data_dir={rollouts}",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
        # The tiny model has no flash-attn kernels to gain from; sdpa needs no extra package.
        "actor_rollout_ref.model.override_config.attn_implementation=sdpa",
        # Faster start: less memory reserved, no CUDA-graph capture.
        "actor_rollout_ref.rollout.gpu_memory_utilization=0.4",
        "actor_rollout_ref.rollout.enforce_eager=true",
    ]


def plan(out: Path, gpus: int = 1, recipe: str = "dvmap_qwen3_0.6b", model: str | None = None,
         items: int = 16) -> list[Step]:
    out = Path(out).resolve()
    data, merged = out / "data", out / "merged"
    model_dir = Path(model).resolve() if model else out / "tiny_model"
    env = {} if importlib.util.find_spec("flashinfer") else {"VLLM_USE_FLASHINFER_SAMPLER": "0"}
    steps = []
    if not model:
        steps.append(Step("tiny model", [sys.executable, "-m", "dvmap_verl.training.tiny", str(model_dir), "--gpu"]))
    steps += [
        Step("synthetic WVS", DVMAP + ["synth-wvs", "--out", str(out / "wvs.parquet"), "--respondents", "6000"]),
        Step("prepare", DVMAP + ["prepare", "wvs", "--input", str(out / "wvs.parquet"), "--out", str(data),
                                 "--overwrite", "--quiet"]),
        Step("train (2 GRPO steps)", [sys.executable, "-m", "verl.trainer.main_ppo",
                                      *train_overrides(recipe, model_dir, data, out, gpus)], env),
        Step("curves", DVMAP + ["curves", str(out / "rollouts"), "--out", str(out / "curves")]),
        Step("merge", DVMAP + ["merge", str(out / "checkpoints"), str(merged)]),
        Step("eval (vLLM)", DVMAP + ["eval", "--backend", "vllm", "--model", str(merged), "--data",
                                     str(data / "cross_demographic.parquet"), "--limit", str(items), "--max-tokens",
                                     "256", "--out", str(out / "eval"), "--bootstrap", "0"], env),
    ]
    return steps


_STEP_TIME = re.compile(r"timing_s/step:([0-9.]+)")


def run(steps: list[Step], out: Path, emit=print) -> int:
    logs = Path(out) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    failed = False
    results = []
    for i, step in enumerate(steps, 1):
        log = logs / f"{i:02d}_{re.sub(r'[^a-z0-9]+', '_', step.name.lower()).strip('_')}.log"
        if failed:
            results.append((step.name, "skipped", 0.0, log))
            continue
        t0 = time.perf_counter()
        with open(log, "w") as fh:
            fh.write("$ " + step.shell() + "\n")
            fh.flush()
            rc = subprocess.call(step.argv, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **step.env})
        dt = time.perf_counter() - t0
        status = "ok" if rc == 0 else f"FAILED (exit {rc})"
        failed = rc != 0
        results.append((step.name, status, dt, log))
        emit(f"[{i}/{len(steps)}] {step.name}: {status} in {dt:.0f}s  (log {log})")
    emit("\nsmoke summary: " + ("FAIL" if failed else "PASS"))
    for name, status, dt, log in results:
        extra = ""
        if name.startswith("train") and log.exists():
            times = _STEP_TIME.findall(log.read_text(errors="replace"))
            extra = f"; GRPO step times {', '.join(f'{float(t):.1f}s' for t in times)}" if times else ""
        emit(f"  {name:<22} {status:<18} {dt:6.0f}s{extra}  {log}")
    return 1 if failed else 0


def preflight(gpus: int) -> None:
    """Refuse at once, before any step starts or ``--out`` is made, on a machine that cannot run the smoke test.

    Raises :class:`dvmap_verl.preflight.PreflightError` naming what is missing (CUDA GPUs, vLLM, verl, Ray) and
    the CPU alternative.
    """
    from dvmap_verl.preflight import require

    require("dvmap smoke", gpus=gpus, packages=["verl", "vllm", "ray"],
            instead="`dvmap demo --out DIR` runs the pipeline at toy size; `dvmap smoke --dry-run` prints the "
                    "commands")
