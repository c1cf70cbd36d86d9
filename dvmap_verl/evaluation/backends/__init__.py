"""Model backends for evaluation, behind one interface.

A backend receives :class:`Request` objects (one per item and sample) and calls ``on_result(request, reply)`` for each
completion as it arrives, ``reply`` a :class:`Reply` (the text, the reasoning the server split off, why generation
ended, what kind of reply it was); a request that fails for good calls ``on_error(request, exception)`` instead, so
that the run records what finished and a rerun resumes the rest. Consumers take a plain ``str`` too (:func:`as_reply`),
so stub backends in tests and older callers keep working.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence, runtime_checkable

from dvmap_verl.errors import InputError

if TYPE_CHECKING:  # readouts imports this module: the types only, at check time
    from dvmap_verl.evaluation.readouts.scoring import OnScore, ScoreRequest


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


@runtime_checkable
class Backend(Protocol):
    """What every backend does: generate one reply per request, reporting each through ``on_result`` or
    ``on_error`` as it lands (never raising for one failed request)."""

    name: str

    def run(self, requests: Sequence[Request], on_result: OnResult, on_error: OnError) -> None: ...


@runtime_checkable
class ScoringBackend(Backend, Protocol):
    """A backend that can also read option probabilities: per :class:`~dvmap_verl.evaluation.readouts.ScoreRequest`
    the summed log-probability of each continuation's tokens, exactly tokenised
    (:mod:`dvmap_verl.evaluation.readouts.scoring`), reported as ``on_result(request, Scores)``. The probability
    readouts need one (``Readout.needs_scoring``); ``isinstance(backend, ScoringBackend)`` says whether it is one."""

    def score(self, requests: Sequence["ScoreRequest"], on_result: "OnScore", on_error: OnError) -> None: ...


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to and including the first stop string (for engines that cannot stop on strings)."""
    ends = [text.find(s) + len(s) for s in stop if s and s in text]
    return text[:min(ends)] if ends else text




# ---------------------------------------------------------------------------------------------------------------
# The backend registry
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackendSpec:
    """A registered backend.

    ``factory(model, settings, **options)`` builds it, called with exactly the options named in ``defaults``
    (an option not given, or given as None, takes its default there: the one place the defaults are stated).
    ``replica_chunk(options)``: requests per chunk when it runs as Ray replicas
    (:mod:`dvmap_verl.evaluation.backends.replicas`); None when it cannot (``no_replicas`` says why).
    """

    name: str
    factory: Callable[..., Backend]
    defaults: dict[str, Any] = field(default_factory=dict)
    replica_chunk: Callable[[dict[str, Any]], int] | None = None
    no_replicas: str = ""

    def options(self, given: dict[str, Any]) -> dict[str, Any]:
        """This backend's options from ``given`` (others ignored), defaults where absent or None."""
        return {k: given[k] if given.get(k) is not None else v for k, v in self.defaults.items()}


_BACKENDS: dict[str, BackendSpec] = {}


def register_backend(name: str, factory: Callable[..., Backend], defaults: dict[str, Any] | None = None, *,
                     replica_chunk: Callable[[dict[str, Any]], int] | None = None, no_replicas: str = "",
                     replace: bool = False) -> BackendSpec:
    """Add a backend under ``name`` (see :class:`BackendSpec`); a second one of the same name is an error unless
    ``replace``. Returns the entry."""
    if name in _BACKENDS and not replace:
        raise ValueError(f"backend {name!r} is already registered")
    spec = BackendSpec(name, factory, dict(defaults or {}), replica_chunk, no_replicas)
    _BACKENDS[name] = spec
    return spec


def backend_names() -> list[str]:
    """Registered backends, in registration order (plugins loaded first: :mod:`dvmap_verl.plugins`)."""
    from dvmap_verl.plugins import load_plugins

    load_plugins()
    return list(_BACKENDS)


def get_backend(name: str) -> BackendSpec:
    """The entry of ``name``; :class:`~dvmap_verl.errors.InputError` naming the known ones otherwise."""
    names = backend_names()
    if name not in _BACKENDS:
        raise InputError(f"unknown backend {name!r}; known: {', '.join(names)}")
    return _BACKENDS[name]


def make_backend(kind: str, model: str, settings: GenerationSettings, **options: Any) -> Backend:
    """A backend of the registered ``kind`` (``vllm``: offline, GPU; ``openai``: any OpenAI-compatible chat
    server; ``hf``: transformers) for ``model``, generating with ``settings``; ``options``: the backend's own
    (:attr:`BackendSpec.defaults`), others ignored.

    ``replicas`` (a number or ``auto``) other than 1 runs that many engine copies as Ray actors
    (:mod:`dvmap_verl.evaluation.backends.replicas`); ``ray_address`` joins a running cluster.
    """
    spec = get_backend(kind)
    replicas = options.pop("replicas", 1)
    ray_address = options.pop("ray_address", None)
    if str(replicas) != "1":
        if spec.replica_chunk is None:
            local = ", ".join(n for n, s in _BACKENDS.items() if s.replica_chunk is not None)
            why = f"; {spec.no_replicas}" if spec.no_replicas else ""
            raise InputError(f"--replicas is for local engines ({local}){why}")
        from dvmap_verl.evaluation.backends.replicas import ReplicatedBackend

        engine = {k: options[k] for k in spec.defaults if options.get(k) is not None}  # the replica fills the rest
        return ReplicatedBackend(kind, model, settings, replicas=replicas, ray_address=ray_address,
                                 chunk=spec.replica_chunk(options), **engine)
    return spec.factory(model, settings, **spec.options(options))


def _hf(model: str, settings: GenerationSettings, **options: Any) -> Backend:
    from dvmap_verl.evaluation.backends.hf import HFBackend

    return HFBackend(model, settings, **options)


def _openai(model: str, settings: GenerationSettings, **options: Any) -> Backend:
    from dvmap_verl.evaluation.backends.openai import OpenAIBackend

    return OpenAIBackend(model, settings, **options)


def _vllm(model: str, settings: GenerationSettings, **options: Any) -> Backend:
    from dvmap_verl.evaluation.backends.vllm import VLLMBackend

    return VLLMBackend(model, settings, **options)


register_backend("vllm", _vllm, {"tensor_parallel_size": 1, "max_model_len": None},
                 replica_chunk=lambda o: int(o.get("chunk") or 256))
register_backend("openai", _openai, {"base_url": "http://127.0.0.1:8000/v1", "api_key": None, "concurrency": 16,
                                     "timeout": 120.0, "max_retries": 6, "tokenizer": None},
                 no_replicas="an OpenAI server scales with --concurrency")
register_backend("hf", _hf, {"batch_size": 8}, replica_chunk=lambda o: int(o.get("batch_size") or 8))
