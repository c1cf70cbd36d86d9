"""Model backends for evaluation, behind one interface.

A backend receives :class:`Request` objects (one per item and sample) and calls ``on_result(request, reply)`` for each
completion as it arrives, ``reply`` a :class:`Reply` (the text, the reasoning the server split off, why generation
ended, what kind of reply it was); a request that fails for good calls ``on_error(request, exception)`` instead, so
that the run records what finished and a rerun resumes the rest. Consumers take a plain ``str`` too (:func:`as_reply`),
so stub backends in tests and older callers keep working.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from dvmap_verl.errors import InputError


@dataclass(frozen=True)
class Request:
    item: int
    sample: int
    messages: tuple[dict[str, str], ...]


#: What a reply held, for the run's counts: answer text; nothing at all; only tool calls; only reasoning.
REPLY_KINDS = ("text", "empty", "tool_call", "reasoning_only")


@dataclass(frozen=True)
class Reply:
    """One completion as a backend got it.

    ``text``: the answer text (``message.content``, text parts joined; ``""`` when there is none).
    ``reasoning``: what the server returned apart as reasoning (``reasoning_content`` / ``reasoning``), or None.
    ``finish_reason``: ``"stop"``, ``"length"`` (cut at ``max_tokens``), ``"tool_calls"``... as the engine says; None
    when it does not say. ``kind``: one of :data:`REPLY_KINDS`. ``dropped_parts``: content parts that were not text
    (images, audio, refusals) and are not in ``text``.
    """

    text: str
    reasoning: str | None = None
    finish_reason: str | None = None
    kind: str = ""
    dropped_parts: int = 0

    def __post_init__(self):
        if not self.kind:
            object.__setattr__(self, "kind", reply_kind(self.text, self.reasoning))
        if self.kind not in REPLY_KINDS:
            raise ValueError(f"unknown reply kind {self.kind!r}; known: {REPLY_KINDS}")


def reply_kind(text: str | None, reasoning: str | None = None, tool_calls: bool = False) -> str:
    """``text`` when the reply holds any non-blank text; otherwise ``tool_call``, ``reasoning_only`` or ``empty``."""
    if text and text.strip():
        return "text"
    if tool_calls:
        return "tool_call"
    return "reasoning_only" if reasoning and reasoning.strip() else "empty"


def as_reply(result: "Reply | str") -> Reply:
    """A backend's result as a :class:`Reply` (a plain string is a text reply whose finish reason is unknown)."""
    return result if isinstance(result, Reply) else Reply("" if result is None else str(result))


@dataclass
class GenerationSettings:
    temperature: float = 0.7
    max_tokens: int = 1024
    seed: int = 0
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    stop: tuple[str, ...] = ()  # generation ends at the first of these (kept in the text)


OnResult = Callable[[Request, Reply], None]
OnError = Callable[[Request, BaseException], None]


class Backend(Protocol):
    name: str

    def run(self, requests: Sequence[Request], on_result: OnResult, on_error: OnError) -> None: ...

    # Backends that can read option probabilities also have
    # ``score(requests: Sequence[ScoreRequest], on_result: OnScore, on_error: OnError)`` (see ``readouts``).


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to and including the first stop string (for engines that cannot stop on strings)."""
    ends = [text.find(s) + len(s) for s in stop if s and s in text]
    return text[:min(ends)] if ends else text


def make_backend(kind: str, model: str, settings: GenerationSettings, **options: Any) -> Backend:
    """``kind``: ``vllm`` (offline, GPU), ``openai`` (any OpenAI-compatible chat server) or ``hf`` (transformers).

    ``replicas`` (a number or ``auto``) other than 1 runs that many engine copies as Ray actors
    (:mod:`dvmap_verl.evaluation.backends.replicas`); ``ray_address`` joins a running cluster.
    """
    replicas = options.pop("replicas", 1)
    ray_address = options.pop("ray_address", None)
    if str(replicas) != "1":
        if kind == "openai":
            raise InputError("--replicas is for local engines (vllm, hf); an OpenAI server scales with --concurrency")
        from dvmap_verl.evaluation.backends.replicas import ReplicatedBackend

        engine = {k: v for k, v in options.items() if v is not None and k in _ENGINE_OPTIONS[kind]}
        chunk = int(options.get("batch_size") or 8) if kind == "hf" else int(options.get("chunk") or 256)
        return ReplicatedBackend(kind, model, settings, replicas=replicas, ray_address=ray_address, chunk=chunk,
                                 **engine)
    if kind == "hf":
        from dvmap_verl.evaluation.backends.hf import HFBackend

        return HFBackend(model, settings, batch_size=options.get("batch_size", 8))
    if kind == "openai":
        from dvmap_verl.evaluation.backends.openai import OpenAIBackend

        return OpenAIBackend(model, settings, base_url=options.get("base_url") or "http://127.0.0.1:8000/v1",
                             api_key=options.get("api_key"), concurrency=options.get("concurrency", 16),
                             timeout=options.get("timeout", 120.0), max_retries=options.get("max_retries", 6),
                             tokenizer=options.get("tokenizer"))
    if kind == "vllm":
        from dvmap_verl.evaluation.backends.vllm import VLLMBackend

        return VLLMBackend(model, settings, tensor_parallel_size=options.get("tensor_parallel_size", 1),
                           max_model_len=options.get("max_model_len"))
    raise InputError(f"unknown backend {kind!r}; known: vllm, openai, hf")


#: What each local engine takes, so that a replica gets exactly its own engine's options.
_ENGINE_OPTIONS = {"hf": {"batch_size"}, "vllm": {"tensor_parallel_size", "max_model_len"}}
