"""``dvmap doctor +recipe=NAME [overrides...]``: the checks that fail in seconds instead of after minutes of Ray and
vLLM startup. It takes exactly the training command's arguments, composes the same config, and prints one line per
check; a blocker makes it exit non-zero.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import importlib.util
import io
import math
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"
SPLIT_FILES = ("train_files", "val_files")


@dataclass
class Check:
    name: str
    status: str
    detail: str

    def line(self) -> str:
        return f"[{self.status:>4}] {self.name}: {self.detail}"


#: The config's GPU counts, each a positive integer, and the shorthand override that may set it.
COUNTS = (("trainer.n_gpus_per_node", "dvmap.gpus"), ("trainer.nnodes", None),
          ("actor_rollout_ref.rollout.tensor_model_parallel_size", None))


def check_counts(cfg, overrides: Sequence[str]) -> None:
    """:class:`InputError` naming the override when a GPU count of the composed config is not a positive integer
    (0 GPUs, ``dvmap.gpus=abc``, ``1.5``): every estimate divides by them."""
    from omegaconf import OmegaConf

    from dvmap_verl.errors import InputError

    for key, shorthand in COUNTS:
        try:
            value = OmegaConf.select(cfg, key, throw_on_missing=True)
        except Exception as e:  # an interpolation that does not resolve
            value = f"unresolvable ({str(e).splitlines()[0][:80]})"
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            continue
        given = [o for o in overrides if o.lstrip("+").split("=", 1)[0] in (key, shorthand)]
        raise InputError(f"{given[-1] if given else key}: {key} is {value!r}; it must be a whole number of at "
                         f"least 1")


def _gpus(cfg, visible: int | None) -> Check:
    need = int(cfg.trainer.n_gpus_per_node)
    nodes = int(cfg.trainer.nnodes)
    tp = int(cfg.actor_rollout_ref.rollout.tensor_model_parallel_size)
    if visible is None:
        try:
            import torch

            visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        except ImportError:
            visible = 0
    detail = (f"{visible} visible on this node; the config asks for {need} per node x {nodes} node(s), rollout "
              f"tensor-parallel {tp}")
    if need % tp:
        return Check("GPUs", FAIL, detail + f": {need} GPUs per node is not divisible by TP {tp}: set "
                     f"actor_rollout_ref.rollout.tensor_model_parallel_size={math.gcd(need, tp)}")
    if visible < need:
        return Check("GPUs", FAIL, detail + f": set trainer.n_gpus_per_node={visible}" if visible else
                     detail + ": no CUDA device (training needs GPUs)")
    return Check("GPUs", OK, detail)


def _pins() -> dict[str, str]:
    """What ``verl[vllm]`` pins (torch, vLLM, transformers): the stack verl 0.9.x is tested on."""
    from packaging.requirements import Requirement

    pins = {}
    for text in md.requires("verl") or []:
        req = Requirement(text)
        if req.marker is not None and req.marker.evaluate({"extra": "vllm"}) and \
                not req.marker.evaluate({"extra": ""}):
            exact = [s.version for s in req.specifier if s.operator == "=="]
            if exact:
                pins[req.name] = exact[0]
    return pins


def _versions(cfg) -> list[Check]:
    checks = []
    pins = _pins()
    have = {}
    for name in ("verl", "torch", "vllm", "transformers"):
        try:
            have[name] = md.version(name)
        except md.PackageNotFoundError:
            have[name] = None
    try:
        import torch

        cuda = torch.version.cuda or "none (CPU build)"
    except ImportError:
        cuda = "none"
    rows = ", ".join(f"{k} {v or 'missing'}" for k, v in have.items()) + f", CUDA {cuda}"
    off = [f"{k} {have[k]} (verl[vllm] pins {v})" for k, v in pins.items() if have.get(k) and have[k] != v]
    if cfg.actor_rollout_ref.rollout.name == "vllm" and not have["vllm"]:
        checks.append(Check("versions", FAIL, rows + "; the rollout is vLLM: pip install 'dvmap-verl[gpu]'"))
    elif off:
        checks.append(Check("versions", WARN, rows + "; off verl's tested stack: " + "; ".join(off)))
    else:
        checks.append(Check("versions", OK, rows))
    attn = str(cfg.actor_rollout_ref.model.get("override_config", {}).get("attn_implementation", ""))
    has_fa = importlib.util.find_spec("flash_attn") is not None
    if attn == "flash_attention_2" and not has_fa:
        checks.append(Check("flash-attn", FAIL, "attn_implementation is flash_attention_2 but flash_attn is not "
                            "importable: install a wheel matching torch/CUDA/Python (README, GPU install), or add "
                            "actor_rollout_ref.model.override_config.attn_implementation=sdpa"))
    else:
        checks.append(Check("flash-attn", OK, f"attn_implementation {attn or 'default'}; flash_attn "
                            f"{'importable' if has_fa else 'not installed (not needed)'}"))
    if cfg.actor_rollout_ref.rollout.name == "vllm" and importlib.util.find_spec("flashinfer") is None:
        if os.environ.get("VLLM_USE_FLASHINFER_SAMPLER") == "0":
            checks.append(Check("flashinfer", OK, "not installed; VLLM_USE_FLASHINFER_SAMPLER=0 is set"))
        else:
            checks.append(Check("flashinfer", FAIL, "not installed, so vLLM's FlashInfer sampler dies with 'No module "
                                "named flashinfer': export VLLM_USE_FLASHINFER_SAMPLER=0 (or install flashinfer)"))
    else:
        checks.append(Check("flashinfer", OK, "importable" if cfg.actor_rollout_ref.rollout.name == "vllm" and
                            importlib.util.find_spec("flashinfer") else "not needed"))
    return checks


def _data(cfg) -> tuple[Check, list[str]]:
    import pyarrow.parquet as pq

    parts, files, missing = [], [], []
    for key in SPLIT_FILES:
        value = cfg.data.get(key)
        for f in ([value] if isinstance(value, str) else list(value or [])):
            if not Path(f).is_file():
                missing.append(f"{key} {f}")
            else:
                files.append(f)
                parts.append(f"{Path(f).name} {pq.ParquetFile(f).metadata.num_rows:,} rows")
    if missing:
        return Check("data", FAIL, "missing: " + "; ".join(missing) + " (dvmap.data_dir or DVMAP_DATA_DIR points at "
                     "the output of dvmap prepare)"), files
    return Check("data", OK, ", ".join(parts)), files


def _model(cfg) -> tuple[Check, Any]:
    path = str(cfg.actor_rollout_ref.model.path)
    try:
        from transformers import AutoConfig, AutoTokenizer

        config = AutoConfig.from_pretrained(path)
        tok = AutoTokenizer.from_pretrained(path)
    except Exception as e:  # any loading failure is the finding
        return Check("model", FAIL, f"{path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}"), None
    return Check("model", OK, f"{path}: {config.model_type}, {getattr(config, 'num_hidden_layers', '?')} layers, "
                 f"tokenizer vocab {len(tok):,}"), tok


def prompt_lengths(tokenizer, files: Sequence[str], chat_kwargs: dict, limit: int | None = None) -> list[int]:
    """Token counts of the training prompts exactly as verl's RLHFDataset counts them (the chat template with the
    generation prompt and the data's apply_chat_template_kwargs, then tokenised without extra special tokens, as
    ``apply_chat_template(tokenize=True)`` does), tokenised in one batch."""
    import pandas as pd

    texts = []
    for f in files:
        prompts = pd.read_parquet(f, columns=["prompt"])["prompt"]
        for msgs in prompts.iloc[:limit] if limit else prompts:
            texts.append(tokenizer.apply_chat_template([dict(m) for m in msgs], add_generation_prompt=True,
                                                       tokenize=False, **chat_kwargs))
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _prompts(cfg, tokenizer, files: list[str]) -> Check:
    import numpy as np

    if tokenizer is None or not files:
        return Check("prompt lengths", SKIP, "needs the model's tokenizer and the data")
    kwargs = dict(cfg.data.get("apply_chat_template_kwargs") or {})
    lengths = np.array(prompt_lengths(tokenizer, files, kwargs))
    limit = int(cfg.data.max_prompt_length)
    over = int((lengths > limit).sum())
    detail = (f"{len(lengths):,} prompts: longest {lengths.max()}, p99 {int(np.percentile(lengths, 99))} tokens "
              f"against max_prompt_length {limit}")
    if over:
        dropped = "filter_overlong_prompts drops" if cfg.data.get("filter_overlong_prompts") else \
            "truncation=" + str(cfg.data.get("truncation")) + " meets"
        status = WARN if over < len(lengths) else FAIL
        return Check("prompt lengths", status, f"{detail}; {dropped} {over:,} ({over / len(lengths):.1%}): raise "
                     f"data.max_prompt_length to {int(lengths.max())}")
    return Check("prompt lengths", OK, detail)


def _disk(cfg) -> list[Check]:
    checks = []
    ckpt = Path(str(cfg.trainer.default_local_dir))
    ray_tmp = Path(os.environ.get("RAY_TMPDIR", "/tmp/ray"))
    for name, path, need_gb in (("checkpoint disk", ckpt, 50), ("Ray temp disk", ray_tmp, 10)):
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free = shutil.disk_usage(probe).free / 2**30
        status = OK if free >= need_gb else WARN
        checks.append(Check(name, status, f"{path}: {free:,.0f} GiB free (an 8B checkpoint with optimiser state "
                            f"takes ~100 GiB; vLLM and Ray spill to the temp dir)" if status == WARN else
                            f"{path}: {free:,.0f} GiB free"))
    return checks


def _gpu_memory_bytes(gpu_memory_gb: float | None) -> tuple[int | None, str]:
    """Memory of one GPU: ``--gpu-memory-gb`` (GiB) when given, else the smallest visible CUDA device."""
    if gpu_memory_gb is not None:
        return int(gpu_memory_gb * 2**30), f"--gpu-memory-gb {gpu_memory_gb:g}"
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.device_count():
            sizes = [torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count())]
            return min(sizes), f"smallest visible GPU ({torch.cuda.get_device_name(0)})"
    except ImportError:
        pass
    return None, "no GPU visible"


def memory_check(cfg, gpu_memory_gb: float | None) -> Check:
    """The per-GPU memory estimate of :mod:`dvmap_verl.training.memory`: a FAIL names overrides that fit."""
    from dvmap_verl.training import memory

    total, where = _gpu_memory_bytes(gpu_memory_gb)
    if total is None:
        return Check("memory", SKIP, "no GPU visible: give --gpu-memory-gb (GiB per GPU, e.g. 80) to check the fit")
    setup, source = memory.setup_from_config(cfg, total)
    if setup is None:
        return Check("memory", SKIP, f"model sizes unknown ({source})")
    est = memory.estimate(setup)
    lines = memory.breakdown(setup, est)
    phase, peak = est.peak
    head = f"peak {memory.gib(peak)} GiB per GPU ({phase}) against {memory.gib(total)} GiB ({where}; sizes from " \
           f"{source})"
    detail = "\n         ".join([head, *lines])
    if est.fits:
        return Check("memory", OK, detail)
    fix = memory.overrides_that_fit(setup)
    more = memory.gpus_that_fit(setup)
    hints = [f"fits with: {' '.join(fix)}" if fix else "no override in dvmap's list makes it fit"]
    if est.vllm_kv_bytes < est.min_kv_bytes:  # the cause is vLLM's share, whatever the peak says
        need = 2 * setup.model.params() // setup.tp + est.min_kv_bytes
        hints.insert(0, f"vLLM's share ({setup.gpu_memory_utilization:g} x {memory.gib(total)} GiB) is below its "
                        f"{memory.gib(2 * setup.model.params() // setup.tp)} GiB of weights plus one sequence's KV "
                        f"cache: actor_rollout_ref.rollout.gpu_memory_utilization needs at least "
                        f"{math.ceil(20 * need / total) / 20:.2f}")
        hints = [h for h in hints if not h.startswith("no override")]
    if more:
        hints.append(f"or unchanged on {more} GPUs (trainer.n_gpus_per_node x trainer.nnodes = {more})")
    return Check("memory", FAIL, detail + "\n         does not fit: " + "; ".join(hints))


def run_doctor(overrides: Sequence[str], visible_gpus: int | None = None,
               emit: Callable[[str], None] = print, gpu_memory_gb: float | None = None) -> list[Check]:
    from dvmap_verl.errors import DvmapError
    from dvmap_verl.training.dryrun import compose_ppo_config, validate_recipe

    checks: list[Check] = []

    def add(c: Check) -> None:
        checks.append(c)
        emit(c.line())

    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # verl's own chatter while validating; the verdict is ours to print
            cfg = compose_ppo_config(overrides)
            check_counts(cfg, overrides)
            validate_recipe(cfg)
    except DvmapError:
        raise
    except Exception as e:
        add(Check("config", FAIL, f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"))
        return checks
    add(Check("config", OK, f"{cfg.trainer.get('experiment_name')} composed and validated by verl"))
    add(_gpus(cfg, visible_gpus))
    add(memory_check(cfg, gpu_memory_gb))
    for c in _versions(cfg):
        add(c)
    data, files = _data(cfg)
    add(data)
    model, tok = _model(cfg)
    add(model)
    add(_prompts(cfg, tok, [f for f in files if "train" in Path(f).name] or files))
    for c in _disk(cfg):
        add(c)
    return checks


def blockers(checks: Sequence[Check]) -> list[Check]:
    return [c for c in checks if c.status == FAIL]
