"""Per-GPU memory estimate of a verl GRPO run (actor, reference, vLLM rollout), for ``dvmap doctor``.

verl's hybrid engine runs three phases on the same GPUs, one after another; a run fits when the largest phase fits.
All sizes are bytes; the report prints GiB (2**30 bytes; an "80 GB" A100/H100 has 80 GiB).

Model: ``P`` parameters (counted layer by layer from ``config.json``: embeddings, per decoder layer the q/k/v/o and
gate/up/down projections and the RMSNorm weights, the final norm, the LM head unless tied), ``L`` layers, hidden size
``h``, query width ``q = heads * head_dim``, key/value width ``kv = kv_heads * head_dim``, MLP width ``I``,
vocabulary ``V``. ``N`` GPUs shard the actor with FSDP (ZeRO-3: parameters, gradients and optimiser states are all
split N ways). ``b`` = bytes of the actor's ``model_dtype`` (fp32: 4, bf16: 2).

Trainable parameters ``T``: ``P`` for full fine-tuning; for LoRA of rank ``r`` on every linear layer of the decoder
(PEFT's ``all-linear``, which leaves the LM head out) ``T = L * r * sum(in + out)`` over q, k, v, o, gate, up, down
(Hu et al. 2021, LoRA, arXiv 2106.09685, §4: a (d x r) and an (r x k) matrix per adapted weight). verl casts the
adapter to the base model's dtype (``transformer_impl._build_lora_module``), so it is stored in ``b`` bytes too.

1. Actor training phase (vLLM asleep: verl frees its KV cache and weights between rollouts)::

     weights   P * b / N                  (PEFT keeps the frozen base in model_dtype)
     gradients T * b / N                  (FSDP keeps sharded gradients in the parameter dtype)
     Adam      T * 2b / N                 (exp_avg, exp_avg_sq in the parameter dtype)
     gathered  2 * 2 * max(layer, embedding) parameters   (FSDP's bf16 all-gather of the current unit and the
                                                          prefetched one; none without FSDP)
     activations, one micro-batch of ``t`` tokens (``ppo_max_token_len_per_gpu`` with dynamic batching, else
     micro-batch x (prompt + response)), divided by the Ulysses sequence-parallel size:
       without checkpointing  t * L * A
       with checkpointing     t * (L * 2h + A)       (each layer keeps its bf16 input; one layer is recomputed)
     logits    t * V * 6                  (bf16 logits, their bf16 log-softmax kept for backward, the bf16 gradient)

   For fp32 weights (verl's default ``model_dtype``) weights + gradients + Adam = 16 bytes per trainable parameter:
   the ZeRO paper's mixed-precision Adam accounting (Rajbhandari et al. 2020, ZeRO, arXiv 1910.02054, §3.1: 2 + 2
   bytes of fp16 weights and gradients plus K = 12 bytes of fp32 master weights, momentum and variance; FSDP's
   fp32-sharded mixed precision holds the same 16). With ``offload_policy`` (FSDP2's CPUOffloadPolicy) weights,
   gradients and Adam live in CPU memory and only the gathered units come to the GPU.

   ``A``, activation bytes per token per decoder layer, follows Korthikanti et al. 2022 (Reducing Activation
   Recomputation in Large Transformer Models, arXiv 2205.05198, §4.1: count every tensor autograd keeps) for a
   Hugging Face Qwen3/Llama layer in bf16 with FlashAttention (Dao et al. 2022: no s x s score matrix is stored)::

     A = 16h + 10q + 10kv + 8I
       = 2 RMSNorms x (4h fp32 input + 2h normalised)            12h
       + q/k/v input 2h + q/k RMSNorm 6(q + kv) + rotated q, k 2(q + kv) + v 2kv + attention output 2q
       + MLP input 2h + gate, SiLU(gate), up, product 4 x 2I

2. Log-prob phase (old and reference log-probs, forward only): the actor's weights (loaded for its forward even
   when offloaded), its Adam states unless ``optimizer_offload``, the gathered units, ``t * A`` (one layer's
   activations) and ``t * V * 2`` (bf16 logits). The reference adds nothing on top: verl 0.9.1 runs every
   forward-only FSDP model with CPU-offloaded parameters (``transformer_impl._build_fsdp_module``), and under LoRA
   the reference *is* the actor with its adapter switched off.

3. Rollout phase: the actor's resident state + vLLM's share ``gpu_memory_utilization * G`` of the GPU's memory
   ``G`` (vLLM sizes weights + activations + KV cache to that fraction of total memory: vLLM docs, EngineArgs
   ``gpu_memory_utilization``). vLLM's weights are ``2P / TP`` bytes; what is left of its share is KV cache, of
   which one full-length sequence takes ``(prompt + response) * L * 2 * kv * 2`` bytes.

   Actor resident between its own phases: weights unless ``param_offload``, Adam unless ``optimizer_offload``
   (verl's engine moves them to CPU after each phase: ``engine/base.py`` BaseEngineCtx), nothing with
   ``offload_policy``.

Every phase adds ``overhead`` (CUDA context, NCCL buffers, allocator fragmentation: 2 GiB, an assumption).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

GIB = 2**30
OVERHEAD_BYTES = 2 * GIB
LOGIT_BYTES_TRAIN = 6  # bf16 logits + bf16 log-softmax + bf16 gradient, per token per vocabulary entry
LOGIT_BYTES_FORWARD = 2
DTYPE_BYTES = {"fp32": 4, "float32": 4, "bf16": 2, "bfloat16": 2, "fp16": 2, "float16": 2}


@dataclass(frozen=True)
class ModelShape:
    """A decoder-only transformer's sizes (Hugging Face ``config.json`` names)."""

    hidden_size: int
    num_hidden_layers: int
    intermediate_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    tie_word_embeddings: bool
    qk_norm: bool = True  # Qwen3 normalises q and k per head

    @property
    def q_width(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.num_key_value_heads * self.head_dim

    def linear_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of the seven linear layers of one decoder layer: q, k, v, o, gate, up, down."""
        h, q, kv, i = self.hidden_size, self.q_width, self.kv_width, self.intermediate_size
        return [(h, q), (h, kv), (h, kv), (q, h), (h, i), (h, i), (i, h)]

    def layer_params(self) -> int:
        norms = 2 * self.hidden_size + (2 * self.head_dim if self.qk_norm else 0)
        return sum(a * b for a, b in self.linear_shapes()) + norms

    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    def params(self) -> int:
        heads = 1 if self.tie_word_embeddings else 2
        return self.num_hidden_layers * self.layer_params() + heads * self.embedding_params() + self.hidden_size

    def lora_params(self, rank: int) -> int:
        """Adapter parameters of rank ``rank`` on every decoder linear layer (PEFT ``all-linear``)."""
        return self.num_hidden_layers * rank * sum(a + b for a, b in self.linear_shapes())

    def activation_bytes_per_token(self) -> int:
        """``A`` of the module docstring: bytes autograd keeps per token for one decoder layer (bf16)."""
        h, q, kv, i = self.hidden_size, self.q_width, self.kv_width, self.intermediate_size
        return 16 * h + 10 * q + 10 * kv + 8 * i

    def kv_cache_bytes_per_token(self) -> int:
        return self.num_hidden_layers * 2 * self.kv_width * 2


def _shape(hidden, layers, inter, heads, kv_heads, vocab, tie, head_dim=128, qk_norm=True) -> ModelShape:
    return ModelShape(hidden, layers, inter, heads, kv_heads, head_dim, vocab, tie, qk_norm)


#: Published ``config.json`` values of the models the recipes name (Hugging Face model cards, Qwen3 and Llama 3.2).
PRESETS: dict[str, ModelShape] = {
    "Qwen/Qwen3-0.6B": _shape(1024, 28, 3072, 16, 8, 151936, True),
    "Qwen/Qwen3-1.7B": _shape(2048, 28, 6144, 16, 8, 151936, True),
    "Qwen/Qwen3-4B": _shape(2560, 36, 9728, 32, 8, 151936, True),
    "Qwen/Qwen3-8B": _shape(4096, 36, 12288, 32, 8, 151936, False),
    "Qwen/Qwen3-14B": _shape(5120, 40, 17408, 40, 8, 151936, False),
    "meta-llama/Llama-3.2-3B-Instruct": _shape(3072, 28, 8192, 24, 8, 128256, True, qk_norm=False),
}


def shape_from_config(config: Mapping[str, Any], source: str = "config.json") -> ModelShape:
    """A :class:`ModelShape` from a Hugging Face config dict; a missing field is an InputError naming it."""
    from dvmap_verl.errors import InputError

    cfg = dict(config.get("text_config") or config)
    try:
        heads = int(cfg["num_attention_heads"])
        hidden = int(cfg["hidden_size"])
        return ModelShape(hidden, int(cfg["num_hidden_layers"]), int(cfg["intermediate_size"]), heads,
                          int(cfg.get("num_key_value_heads") or heads), int(cfg.get("head_dim") or hidden // heads),
                          int(cfg["vocab_size"]), bool(cfg.get("tie_word_embeddings", False)),
                          qk_norm=str(cfg.get("model_type", "")).startswith("qwen3"))
    except KeyError as e:
        raise InputError(f"{source}: no {e.args[0]!r} field; the memory estimate needs the model's sizes") from None


def model_shape(path: str) -> tuple[ModelShape | None, str]:
    """The shape of the model at ``path`` (a local folder's config.json, else a known preset) and where it came
    from; (None, reason) when neither is available."""
    cfg = Path(path).expanduser() / "config.json"
    if cfg.is_file():
        return shape_from_config(json.loads(cfg.read_text()), str(cfg)), str(cfg)
    if path in PRESETS:
        return PRESETS[path], f"preset {path}"
    return None, f"{path}: no local config.json and not a known preset ({', '.join(PRESETS)})"


@dataclass(frozen=True)
class Setup:
    """What the estimate needs from a run's config (field names follow verl's config keys)."""

    model: ModelShape
    n_gpus: int = 1
    gpu_memory_bytes: int = 80 * GIB
    model_dtype_bytes: int = 4
    lora_rank: int = 0
    gradient_checkpointing: bool = True
    tokens_per_micro_batch: int = 16384
    sequence_parallel: int = 1
    param_offload: bool = False
    optimizer_offload: bool = False
    offload_policy: bool = False
    fsdp: bool = True
    rollout_tp: int = 1
    gpu_memory_utilization: float = 0.6
    max_sequence_length: int = 2048
    dynamic_bsz: bool = True
    overhead_bytes: int = OVERHEAD_BYTES

    @property
    def tp(self) -> int:
        """The rollout's tensor-parallel size as it can run: it must divide the GPU count, so a TP of 2 on one
        GPU is estimated (and proposed, by :func:`overrides_that_fit`) as 1."""
        return math.gcd(max(self.rollout_tp, 1), max(self.n_gpus, 1))

    @property
    def trainable(self) -> int:
        return self.model.lora_params(self.lora_rank) if self.lora_rank > 0 else self.model.params()


@dataclass(frozen=True)
class Estimate:
    """Per-GPU bytes of each phase (``parts`` names every term) and whether the largest fits."""

    parts: dict[str, dict[str, int]]
    gpu_memory_bytes: int
    vllm_kv_bytes: int
    min_kv_bytes: int

    def phase(self, name: str) -> int:
        return sum(self.parts[name].values())

    @property
    def peak(self) -> tuple[str, int]:
        name = max(self.parts, key=self.phase)
        return name, self.phase(name)

    @property
    def fits(self) -> bool:
        return self.peak[1] <= self.gpu_memory_bytes and self.vllm_kv_bytes >= self.min_kv_bytes


def actor_state(s: Setup) -> dict[str, int]:
    """Sharded weights, gradients and Adam states of the actor in the training phase (bytes per GPU)."""
    if s.offload_policy:
        return {"weights": 0, "gradients": 0, "adam": 0}
    n, b = s.n_gpus, s.model_dtype_bytes
    return {"weights": s.model.params() * b // n, "gradients": s.trainable * b // n,
            "adam": s.trainable * 2 * b // n}


def gathered_units(s: Setup) -> int:
    """FSDP's bf16 all-gather buffers: the current unit and the prefetched one (0 without FSDP)."""
    return 2 * 2 * max(s.model.layer_params(), s.model.embedding_params()) if s.fsdp else 0


def activations(s: Setup) -> int:
    """Activation bytes of one micro-batch in the training phase (module docstring, item 1)."""
    t, m = math.ceil(s.tokens_per_micro_batch / s.sequence_parallel), s.model
    per_token = m.num_hidden_layers * 2 * m.hidden_size + m.activation_bytes_per_token() \
        if s.gradient_checkpointing else m.num_hidden_layers * m.activation_bytes_per_token()
    return t * per_token


def logits(s: Setup, bytes_per_entry: int = LOGIT_BYTES_TRAIN) -> int:
    return math.ceil(s.tokens_per_micro_batch / s.sequence_parallel) * s.model.vocab_size * bytes_per_entry


def resident(s: Setup) -> dict[str, int]:
    """What the actor keeps on the GPU outside its own training phase."""
    state = actor_state(s)
    return {"actor weights (resident)": 0 if s.param_offload else state["weights"],
            "actor Adam (resident)": 0 if s.optimizer_offload else state["adam"]}


def estimate(s: Setup) -> Estimate:
    """Per-GPU memory of the three phases of a verl hybrid-engine GRPO step (module docstring)."""
    t = math.ceil(s.tokens_per_micro_batch / s.sequence_parallel)
    train = {**{f"actor {k}": v for k, v in actor_state(s).items()}, "FSDP gathered units": gathered_units(s),
             "activations": activations(s), "logits": logits(s), "overhead": s.overhead_bytes}
    # The actor's own forward (old log-probs) loads its weights even when they are offloaded; the reference
    # (CPU-offloaded in verl 0.9.1, or the actor itself under LoRA) adds no more than that.
    ref = {"actor weights": actor_state(s)["weights"], "actor Adam (resident)": resident(s)["actor Adam (resident)"],
           "FSDP gathered units": gathered_units(s), "forward activations": t * s.model.activation_bytes_per_token(),
           "logits": logits(s, LOGIT_BYTES_FORWARD), "overhead": s.overhead_bytes}
    vllm_share = int(s.gpu_memory_utilization * s.gpu_memory_bytes)
    rollout = {**resident(s), "vLLM share": vllm_share, "overhead": s.overhead_bytes}
    vllm_weights = 2 * s.model.params() // s.tp
    kv = vllm_share - vllm_weights
    min_kv = s.max_sequence_length * s.model.kv_cache_bytes_per_token() // s.tp
    return Estimate({"actor training": train, "log-probs": ref, "rollout": rollout},
                    s.gpu_memory_bytes, kv, min_kv)


def gib(n: float) -> str:
    return f"{n / GIB:.1f}"


def breakdown(s: Setup, e: Estimate) -> list[str]:
    """The report's lines: the setup, each phase's terms, the verdict."""
    lines = [f"{s.model.params() / 1e9:.2f}B parameters, trainable {s.trainable / 1e9:.3f}B "
             f"({s.trainable / s.model.params():.2%}{f', LoRA rank {s.lora_rank}' if s.lora_rank else ''}); "
             f"{s.n_gpus} GPU(s) of {gib(s.gpu_memory_bytes)} GiB; model_dtype {s.model_dtype_bytes} bytes; "
             f"{s.tokens_per_micro_batch} tokens per micro-batch; gradient checkpointing "
             f"{'on' if s.gradient_checkpointing else 'off'}"]
    for name, parts in e.parts.items():
        terms = ", ".join(f"{k} {gib(v)}" for k, v in parts.items() if v)
        lines.append(f"{name}: {gib(e.phase(name))} GiB = {terms}")
    lines.append(f"vLLM KV cache {gib(e.vllm_kv_bytes)} GiB after {gib(2 * s.model.params() // s.tp)} GiB of "
                 f"weights (one {s.max_sequence_length}-token sequence needs {gib(e.min_kv_bytes)} GiB)")
    return lines


def setup_from_config(cfg, gpu_memory_bytes: int) -> tuple[Setup | None, str]:
    """A :class:`Setup` from a composed verl ``ppo_trainer`` config; (None, why) when the model's sizes are
    unknown (a hub id that is not a preset, with no local config.json)."""
    arr = cfg.actor_rollout_ref
    shape, source = model_shape(str(arr.model.path))
    if shape is None:
        return None, source
    actor, fsdp = arr.actor, arr.actor.fsdp_config
    seq = int(cfg.data.max_prompt_length) + int(cfg.data.max_response_length)
    dynamic = bool(actor.get("use_dynamic_bsz", False))
    micro = actor.get("ppo_micro_batch_size_per_gpu") or 1
    return Setup(
        model=shape, n_gpus=int(cfg.trainer.n_gpus_per_node) * int(cfg.trainer.nnodes),
        gpu_memory_bytes=gpu_memory_bytes, model_dtype_bytes=DTYPE_BYTES[str(fsdp.get("model_dtype") or "fp32")],
        lora_rank=int(arr.model.get("lora_rank") or 0),
        gradient_checkpointing=bool(arr.model.get("enable_gradient_checkpointing", False)),
        tokens_per_micro_batch=int(actor.ppo_max_token_len_per_gpu) if dynamic else int(micro) * seq,
        sequence_parallel=int(actor.get("ulysses_sequence_parallel_size") or 1),
        param_offload=bool(fsdp.get("param_offload")), optimizer_offload=bool(fsdp.get("optimizer_offload")),
        offload_policy=bool(fsdp.get("offload_policy")),
        rollout_tp=int(arr.rollout.tensor_model_parallel_size),
        gpu_memory_utilization=float(arr.rollout.gpu_memory_utilization), max_sequence_length=seq,
        dynamic_bsz=dynamic,
    ), source


_ACTOR = "actor_rollout_ref.actor"


def _checkpointing(s: Setup):
    if not s.gradient_checkpointing:
        return ["actor_rollout_ref.model.enable_gradient_checkpointing=true"], replace(s, gradient_checkpointing=True)
    return None


def _offload(s: Setup):
    if not (s.param_offload and s.optimizer_offload):
        return ([f"{_ACTOR}.fsdp_config.param_offload=true", f"{_ACTOR}.fsdp_config.optimizer_offload=true"],
                replace(s, param_offload=True, optimizer_offload=True))
    return None


def _utilization(s: Setup):
    """The largest gpu_memory_utilization (in steps of 0.05) that fits the rollout phase and still leaves vLLM a
    full-length sequence of KV cache."""
    e = estimate(s)
    spare = s.gpu_memory_bytes - (e.phase("rollout") - e.parts["rollout"]["vLLM share"])
    u = math.floor(20 * spare / s.gpu_memory_bytes) / 20
    need = (2 * s.model.params() + s.max_sequence_length * s.model.kv_cache_bytes_per_token()) / s.tp
    if e.phase("rollout") <= s.gpu_memory_bytes or u >= s.gpu_memory_utilization or u * s.gpu_memory_bytes < need:
        return None
    return [f"actor_rollout_ref.rollout.gpu_memory_utilization={u:.2f}"], replace(s, gpu_memory_utilization=u)


def _tokens(s: Setup):
    """Halve the micro-batch's tokens while the training phase does not fit (not below one full sequence)."""
    t = s.tokens_per_micro_batch
    while t // 2 >= s.max_sequence_length and estimate(replace(s, tokens_per_micro_batch=t)).phase(
            "actor training") > s.gpu_memory_bytes:
        t //= 2
    if t == s.tokens_per_micro_batch:
        return None
    switch = [] if s.dynamic_bsz else [f"{_ACTOR}.use_dynamic_bsz=true"]
    return switch + [f"{_ACTOR}.ppo_max_token_len_per_gpu={t}"], replace(s, tokens_per_micro_batch=t,
                                                                          dynamic_bsz=True)


def _lora(s: Setup):
    if s.lora_rank:
        return None
    return (["actor_rollout_ref.model.lora_rank=32", "actor_rollout_ref.model.lora_alpha=32",
             "actor_rollout_ref.rollout.load_format=safetensors", f"{_ACTOR}.optim.lr=5e-5"],
            replace(s, lora_rank=32))


def _offload_policy(s: Setup):
    if s.offload_policy:
        return None
    return [f"{_ACTOR}.fsdp_config.offload_policy=true"], replace(s, offload_policy=True)


#: Changes tried in order, cumulatively, until the run fits: the cheapest first, a change of method (LoRA) and the
#: slowest (FSDP2 CPU offload of every state) last.
FIXES = (_checkpointing, _offload, _tokens, _utilization, _lora, _tokens, _utilization, _offload_policy, _tokens,
         _utilization)


def _apply(fixes, s: Setup) -> tuple[list[str], Setup]:
    chosen: list[str] = []
    for fix in fixes:
        if estimate(s).fits:
            break
        step = fix(s)
        if step:
            chosen += step[0]
            s = step[1]
    return chosen, s


def overrides_that_fit(s: Setup) -> list[str] | None:
    """Hydra overrides that make ``s`` fit, or None when none does: :data:`FIXES` applied in order until it fits,
    then every fix the result does without dropped again (so a halved micro-batch tried before LoRA is not kept
    when LoRA alone was enough)."""
    pre: list[str] = []
    if s.tp != s.rollout_tp:  # the proposal must run as written: a TP the GPUs cannot hold is set to one they can
        pre, s = [f"actor_rollout_ref.rollout.tensor_model_parallel_size={s.tp}"], replace(s, rollout_tp=s.tp)
    fixes = list(FIXES)
    chosen, end = _apply(fixes, s)
    if not estimate(end).fits:
        return None
    for i in reversed(range(len(fixes))):
        trial = fixes[:i] + fixes[i + 1:]
        fewer, end = _apply(trial, s)
        if estimate(end).fits and len(fewer) <= len(chosen):
            fixes, chosen = trial, fewer
    return pre + chosen


def gpus_that_fit(s: Setup, limit: int = 64) -> int | None:
    """The fewest GPUs (powers of two up to ``limit``) on which ``s`` fits unchanged."""
    n = s.n_gpus * 2
    while n <= limit:
        if estimate(replace(s, n_gpus=n)).fits:
            return n
        n *= 2
    return None
