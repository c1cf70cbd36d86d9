"""Data-parallel evaluation: N copies of a backend as Ray actors, on every GPU of a node or of many nodes.

Each actor holds one engine (vLLM with ``tensor_parallel_size`` GPUs reserved through Ray resources, or the
transformers model on CPUs). The driver keeps the one writer: it hands out small chunks of requests, the next chunk
to whichever actor finishes first (so a slow replica never holds the others back), and passes every completion to
``on_result`` as its chunk lands, so the run folder, resume, the lock and the settings guard work exactly as with
one engine, and a kill loses at most the chunks in flight.

Why actors and not Ray Data's LLM batch API (``ray.data.llm``, a vLLM engine processor over a Dataset): that API
owns batching, retries and output (a Dataset written at the end or iterated), which is the right shape for a
one-shot offline job. Our runs need the opposite: per-record appends to one ``predictions.jsonl`` that a resume can
trust, skipping pairs already done, and a failed request recorded (not retried forever) so that a rerun retries just
it. With actors the driver already sees every completion as it lands; with Ray Data we would iterate its output back
to the driver anyway and give up the per-chunk accounting. Actors also run the transformers backend on CPUs, so the
orchestration is tested where CI runs.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from dvmap_verl.evaluation.backends import GenerationSettings, OnError, OnResult, Reply, Request, as_reply
from dvmap_verl.evaluation.readouts import OnScore, ScoreRequest, Scores, as_scoring
from dvmap_verl.errors import EnvironmentProblem, InputError


class _BackendActor:
    """One engine replica (runs inside a Ray actor)."""

    def __init__(self, kind: str, model: str, settings: GenerationSettings, options: dict[str, Any],
                 torch_threads: int | None = None):
        if torch_threads:
            import torch

            torch.set_num_threads(torch_threads)
        from dvmap_verl.evaluation.backends import make_backend

        self.backend = make_backend(kind, model, settings, **options)

    def run(self, requests: list[Request]) -> list[tuple[bool, Reply | str]]:
        """Per request: ``(True, Reply)`` or ``(False, the error's text)``."""
        return _collect(self.backend.run, requests, as_reply)

    def score(self, requests: list[ScoreRequest]) -> list[tuple[bool, Scores | str]]:
        """Per request: ``(True, Scores)`` or ``(False, the error's text)``; the engine's own ``score``."""
        return _collect(as_scoring(self.backend).score, requests, lambda scores: scores)

    def ready(self) -> bool:
        return True


def _collect(method, requests: list, convert) -> list[tuple[bool, Any]]:
    """``method(requests, on_result, on_error)``'s outcomes in request order: ``(True, convert(result))`` or
    ``(False, "Type: message")``; a request it never reported is ``(False, "no result")``."""
    slot = {(r.item, r.sample): i for i, r in enumerate(requests)}
    out: list[tuple[bool, Any]] = [(False, "no result")] * len(requests)

    def ok(r, result) -> None:
        out[slot[r.item, r.sample]] = (True, convert(result))

    def failed(r, e: BaseException) -> None:
        out[slot[r.item, r.sample]] = (False, f"{type(e).__name__}: {e}")

    method(requests, ok, failed)
    return out


class ReplicaStartError(EnvironmentProblem):
    """A replica's engine could not be built (its actor died in its constructor); the message is the cause's own."""


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*): ?(.*)$", re.DOTALL)


def cause_message(error: BaseException) -> str:
    """The message of the exception a Ray error wraps, without its type name, so that a replica that cannot load
    its model fails with the same line as one engine does: ``RayTaskError.cause`` when Ray kept the exception
    object, else the last exception of the remote traceback that ``RayActorError``/``ActorDiedError`` carries as
    text (``error_msg``, ANSI colours removed); the error's own last line when neither is found."""
    for _ in range(8):  # RayTaskError (and its as_instanceof_cause copies) wrap the cause itself
        inner = getattr(error, "cause", None)
        if not isinstance(inner, BaseException):
            break
        error = inner
    if not type(error).__module__.startswith("ray."):
        return str(error)
    text = _ANSI.sub("", str(getattr(error, "error_msg", None) or error)).strip()
    lines = text.splitlines()
    frames = [i for i, line in enumerate(lines) if line.lstrip().startswith('File "')]
    if frames:
        rest = lines[frames[-1] + 1:]
        while rest and (rest[0].startswith(" ") or not rest[0].strip()):  # the frame's source line and carets
            rest = rest[1:]
        match = _EXCEPTION_LINE.match("\n".join(rest).strip())
        if match:
            return match.group(2).strip() or match.group(1)
    return (lines or [type(error).__name__])[-1]


def resolve_replicas(replicas: str | int, gpus_per_replica: int, ray_module) -> int:
    """``auto``: every GPU Ray sees divided by the GPUs one replica needs (at least 1)."""
    if str(replicas) != "auto":
        return int(replicas)
    gpus = int(ray_module.cluster_resources().get("GPU", 0))
    if gpus_per_replica <= 0 or gpus == 0:
        raise InputError("--replicas auto counts GPUs, and Ray sees none: give a number of replicas")
    return max(gpus // gpus_per_replica, 1)


class ReplicatedBackend:
    name = "ray"

    def __init__(self, kind: str, model: str, settings: GenerationSettings, replicas: str | int = "auto",
                 ray_address: str | None = None, chunk: int = 8, cpus_per_replica: float = 1,
                 **options: Any):
        import ray

        if not ray.is_initialized():
            # RAY_ADDRESS (set by our Slurm script) or --ray-address joins a running cluster; otherwise a local one.
            ray.init(address=ray_address, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
        self._ray = ray
        gpus = int(options.get("tensor_parallel_size", 1)) if kind == "vllm" else 0
        self.replicas = resolve_replicas(replicas, gpus, ray)
        self.chunk = max(1, chunk)
        actor_cls = ray.remote(num_gpus=gpus, num_cpus=cpus_per_replica)(_BackendActor)
        threads = max(int(cpus_per_replica), 1) if kind == "hf" else None
        self.actors = [actor_cls.remote(kind, model, settings, options, threads) for _ in range(self.replicas)]
        try:
            ray.get([a.ready.remote() for a in self.actors])  # fail here, before any request, if one cannot start
        except ray.exceptions.RayError as e:
            for actor in self.actors:
                ray.kill(actor)
            raise ReplicaStartError(cause_message(e)) from None
        self.done_per_replica = [0] * self.replicas
        self.settings = {"replicas": self.replicas, "gpus_per_replica": gpus, "cpus_per_replica": cpus_per_replica,
                         "chunk": self.chunk, "ray_address": ray_address or "local or RAY_ADDRESS"}

    def run(self, requests: Sequence[Request], on_result: OnResult, on_error: OnError,
            progress=None) -> None:
        self._dispatch("run", requests, on_result, on_error, progress)

    def score(self, requests: Sequence[ScoreRequest], on_result: OnScore, on_error: OnError,
              progress=None) -> None:
        """Option scoring (:class:`~dvmap_verl.evaluation.backends.ScoringBackend`) on the replicas, chunked and
        handed out as :meth:`run` does; a replica whose engine cannot score fails its chunks, counted."""
        self._dispatch("score", requests, on_result, on_error, progress)

    def _dispatch(self, method: str, requests: Sequence, on_result, on_error: OnError, progress=None) -> None:
        """The next chunk to whichever replica finishes first; each result passed on as its chunk lands."""
        ray = self._ray
        chunks = [list(requests[i:i + self.chunk]) for i in range(0, len(requests), self.chunk)]
        queue = list(reversed(chunks))
        pending: dict[Any, tuple[int, list[Request]]] = {}

        def submit(replica: int) -> None:
            if queue:
                chunk = queue.pop()
                pending[getattr(self.actors[replica], method).remote(chunk)] = (replica, chunk)

        for replica in range(self.replicas):
            for _ in range(2):  # one chunk computing, one queued: no replica waits on the driver
                submit(replica)
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            replica, chunk = pending.pop(ref)
            try:
                results = ray.get(ref)
            except ray.exceptions.RayError as e:  # its chunk fails (a rerun retries it)
                last = (str(e).strip().splitlines() or [type(e).__name__])[-1]
                for r in chunk:
                    on_error(r, RuntimeError(f"replica {replica}: {type(e).__name__}: {last}"))
                if isinstance(e, ray.exceptions.RayActorError):
                    continue  # the replica itself is gone: no new work for it
                submit(replica)
                continue
            for r, (ok, value) in zip(chunk, results):
                if ok:
                    on_result(r, value)
                else:
                    on_error(r, RuntimeError(value))
            self.done_per_replica[replica] += len(chunk)
            if progress is not None:
                progress(self.done_per_replica)
            submit(replica)
        # Chunks left when every replica has died fail too, so that the run records them.
        for chunk in reversed(queue):
            for r in chunk:
                on_error(r, RuntimeError("no replica left to run this request"))
