"""The readout registry: what a readout is, what it works with during a run, and the registry itself.

A readout turns what a model does on an item into records of ``predictions.jsonl`` and, in the report, into one
probability vector over the item's options. One readout is one subclass of :class:`Readout` registered by name
(:func:`register_readout`); ``dvmap eval --readout`` offers the selectable ones, :class:`EvalConfig` checks its
settings against it, ``run_eval`` runs it and the report's distributional section reads its records through it.
Readouts from outside the package are registered by a plugin (:mod:`dvmap_verl.plugins`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import pandas as pd

from dvmap_verl.errors import InputError
from dvmap_verl.evaluation.arrays import pad_rows
from dvmap_verl.evaluation.backends import Backend, OnError, Request, ScoringBackend

if TYPE_CHECKING:
    from dvmap_verl.evaluation.evaluate import EvalConfig


@dataclass
class ReadoutRun:
    """What a readout works with while ``run_eval`` runs it: the backend, the run's items (one row per item, with
    ``options``) and settings, and the two ways a record is written (each counts one request done).

    ``record_reply(request, reply)``: a generated reply, read as the reward reads answers (``pred``, and ``probs``
    with ``readout: verbalised`` when the item's template asks for a stated distribution).
    ``record_probs(request, probs, reasoning="", reply=None, logprobs=None)``: a probability over the item's
    options (K floats summing to 1); ``pred`` is its argmax and the record carries this readout's name; a scoring
    readout passes the raw summed ``logprobs`` too (kept for ``--calibrate-temperature``).
    ``on_error(request, exception)``: a request that failed for good (a rerun retries it).
    """

    backend: Backend
    items: pd.DataFrame
    config: "EvalConfig"
    record_reply: Callable[[Request, Any], Any]
    record_probs: Callable[..., Any]
    on_error: OnError

    def options(self, item: int) -> tuple[str, ...]:
        return tuple(self.items["options"].iat[item])

    def scoring_backend(self) -> ScoringBackend:
        """The backend as a :class:`ScoringBackend`; :class:`InputError` when it cannot score options."""
        return as_scoring(self.backend)


class Readout:
    """One way of reading a model's distribution over an item's options. Subclasses set the class attributes and
    implement :meth:`run`; :meth:`item_mass` has a default that fits every readout writing ``probs`` or ``pred``.

    ``name``: what ``--readout`` and ``run.json`` say. ``description``: one line for ``--help`` and the README.
    ``selectable``: offered by ``--readout`` (False for one that follows from other settings: ``verbalised``).
    ``needs_scoring``: needs a :class:`ScoringBackend` (option log-probabilities). ``single_sample``: deterministic,
    so ``--samples`` must be 1. ``stop``: strings generation stops at (kept in the text).
    """

    name: str = ""
    description: str = ""
    selectable: bool = True
    needs_scoring: bool = False
    single_sample: bool = False
    stop: tuple[str, ...] = ()

    def check(self, config: "EvalConfig") -> None:
        """Refuse settings this readout cannot run with (:class:`InputError`), before anything is written."""
        if self.single_sample and config.samples != 1:
            raise InputError(f"the {self.name} readout is deterministic (no sampling): use --samples 1")

    def check_backend(self, backend: Backend) -> None:
        """Refuse a backend this readout cannot use (:class:`InputError`), before any request is made."""
        if self.needs_scoring:
            as_scoring(backend)

    def run(self, run: ReadoutRun, requests: Sequence[Request]) -> None:
        """Make every request's record (``run.record_reply`` / ``run.record_probs``) or report its failure
        (``run.on_error``). ``requests``: one per (item, sample) still missing, with the item's chat messages."""
        raise NotImplementedError

    def item_mass(self, records: pd.DataFrame, codes: np.ndarray, n_items: int, width: int) -> np.ndarray:
        """Unnormalised probability mass per item (``n_items`` x ``width``) from a run's records (``codes[i]``: the
        item row of record i; an optional ``weight`` column weighs records): the sum of the records' ``probs``
        when any record has them (records without are left out), else the count of each parsed ``pred``
        (``pred`` -1, unparsed, adds nothing). The report normalises it; an item with no mass is unreadable."""
        weight = records["weight"].to_numpy(dtype=float) if "weight" in records else np.ones(len(records))
        mass = np.zeros((n_items, width))
        if "probs" in records and records["probs"].notna().any():
            rows = records["probs"].notna().to_numpy()
            np.add.at(mass, codes[rows], pad_rows(records["probs"][rows].tolist(), width) * weight[rows, None])
            return mass
        pred = records["pred"].to_numpy().astype(int)
        ok = pred >= 0
        np.add.at(mass, (codes[ok], pred[ok]), weight[ok])
        return mass


def as_scoring(backend: Backend) -> ScoringBackend:
    """``backend`` as a :class:`ScoringBackend`; :class:`InputError` when it cannot score options."""
    if not isinstance(backend, ScoringBackend):
        raise InputError(f"the {backend.name} backend cannot read option probabilities; use --readout sampling")
    return backend



# ---------------------------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------------------------

_READOUTS: dict[str, Readout] = {}


def register_readout(readout: Readout | type[Readout], *, replace: bool = False) -> Readout:
    """Add ``readout`` (an instance, or a class to instantiate) under its ``name``; a second one of the same name
    is an error unless ``replace``. Returns what it was given, so it works as a class decorator too."""
    obj = readout() if isinstance(readout, type) else readout
    if not obj.name or not isinstance(obj.name, str):
        raise ValueError(f"{type(obj).__name__}: a readout needs a name")
    if obj.name in _READOUTS and not replace:
        raise ValueError(f"readout {obj.name!r} is already registered")
    _READOUTS[obj.name] = obj
    return readout if isinstance(readout, type) else obj


def readout_names(selectable: bool | None = None) -> list[str]:
    """Registered readout names in registration order (plugins loaded first); ``selectable``: only those
    ``--readout`` offers (True) or only the others (False)."""
    from dvmap_verl.plugins import load_plugins

    load_plugins()
    return [n for n, r in _READOUTS.items() if selectable is None or r.selectable == selectable]


def get_readout(name: str) -> Readout:
    """The readout registered as ``name``; :class:`InputError` naming the known ones otherwise."""
    names = readout_names()
    if name not in _READOUTS:
        raise InputError(f"unknown readout {name!r}; known: {', '.join(names)} (a readout from a plugin needs the "
                         f"plugin installed or named in $DVMAP_PLUGINS)")
    return _READOUTS[name]


def find_readout(name: str | None) -> Readout | None:
    """The readout registered as ``name``, or None (a run read without the plugin that made it)."""
    if name is None:
        return None
    readout_names()
    return _READOUTS.get(name)
