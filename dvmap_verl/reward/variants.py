"""The reward's variants: each an object that says what it reads from a row and scores the row's judgement.

``score()`` (reward/__init__.py) looks the variant up in :data:`VARIANTS` and calls its :meth:`Variant.judge`; no
variant is a special case there. A variant reads one of three answers:

- :class:`OptionVariant` (``binary``, ``distance``, ``likert``, ``gaussian``, ``frequency``): the option the reply
  names (answers.py's resolver), turned into a :class:`Judgement`; its ``credit(j, beta, **settings)`` is the score.
- :class:`DistributionVariant` (``rps``): a stated distribution over the options (distribution.py's parser).
- :class:`ReleaseVariant` (``reference``): the authors' own reading in WVS.py, to the character.

``needs`` names the row fields a variant reads beyond the completion and the ground truth (``options``,
``frequency``, ``target``); ``requires`` those without which a row cannot be judged (scored ``beta * format``
with ``parsed = 0``, and a warning once). Adding a variant is one :func:`register_variant` call.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any, Callable, Mapping

from dvmap_verl import stats
from dvmap_verl.errors import InputError
from dvmap_verl.reward.answers import BadOptions, Reply, normalize, option_set, parse_options, truth_index
from dvmap_verl.reward.distribution import parse_distribution, target_distribution

#: The release's format tags; the structured chain of thought answers in <reasoning> then <answer>.
RELEASE_TAGS = ("<reasoning>", "</reasoning>", "<answer>", "</answer>")
#: Presets for ``format_tags``; a list of literal tags works too.
TAG_PRESETS = {
    "release": RELEASE_TAGS,
    "qwen3": ("<think>", "</think>", "<answer>", "</answer>"),
    "answer": ("<answer>", "</answer>"),
    # Per prompt template (prompts.TEMPLATE_FORMAT): a template that asks for no reasoning demands no <reasoning>.
    "free": RELEASE_TAGS,
    "direct": ("<answer>", "</answer>"),
}
#: Width of the ``gaussian`` variant, on option-index distance normalised by (K - 1), as the release's ``WVS_g``.
DEFAULT_SIGMA = 0.25
#: Row fields a variant may declare in ``needs``.
FIELDS = ("options", "frequency", "target")


class Judgement:
    """What a variant sees: the resolved answer, the truth, the scale size and the format share."""

    __slots__ = ("pred", "truth", "k", "fmt", "extra", "correct", "likert")

    def __init__(self, pred: int | None, truth: int, k: int, fmt: float, extra: Mapping[str, Any] | None):
        self.pred, self.truth, self.k, self.fmt, self.extra = pred, truth, k, fmt, extra
        if pred is None:
            self.correct = self.likert = 0.0
        else:
            self.correct = 1.0 if pred == truth else 0.0
            # 1 - |pred - truth| / (K - 1): the paper's Likert consistency for one item.
            self.likert = 1.0 - abs(pred - truth) / (k - 1) if k > 1 else self.correct


warned_rows: set[str] = set()


def warn_once(kind: str, message: str) -> None:
    if kind not in warned_rows:
        warned_rows.add(kind)
        warnings.warn(message + " (reported once)", stacklevel=5)


def unscorable(fmt: float, beta: float, kind: str, message: str) -> dict[str, float]:
    """A row that cannot be judged: format credit only, never an exception (it runs inside a training loop)."""
    warn_once(kind, f"dvmap reward: {message}; such rows score beta * format only, with parsed = 0")
    return {"score": beta * fmt, "acc": 0.0, "format": fmt, "parsed": 0.0, "likert": 0.0}


def format_tags_of(format_tags: Any) -> tuple[str, ...]:
    """A :data:`TAG_PRESETS` name or a list of literal tags -> the tags; an unknown preset is a ValueError."""
    if isinstance(format_tags, str):
        tags = TAG_PRESETS.get(format_tags)
        if tags is None:
            raise InputError(f"unknown format_tags preset {format_tags!r}; known: {sorted(TAG_PRESETS)}")
        return tags
    return tuple(str(t) for t in format_tags)


def _truth_text(ground_truth: Any) -> str | None:
    if isinstance(ground_truth, str):
        return ground_truth if ground_truth.strip() else None
    if isinstance(ground_truth, bytes):
        return _truth_text(ground_truth.decode("utf-8", "replace"))
    if ground_truth is None or (isinstance(ground_truth, float) and math.isnan(ground_truth)):
        return None
    return str(ground_truth)


class Variant:
    """A reward variant: ``name``, a one-line ``description`` (the README's list), the row fields it ``needs``
    and ``requires``. :meth:`judge` scores one completion and returns the SCORE_KEYS dict, never raising on model
    output or a bad row."""

    def __init__(self, name: str, description: str, needs: tuple[str, ...] = (), requires: tuple[str, ...] = ()):
        unknown = set(needs) - set(FIELDS)
        if unknown or not set(requires) <= set(needs):
            raise ValueError(f"reward variant {name!r}: needs {needs} must be among {FIELDS} and hold requires "
                             f"{requires}")
        self.name, self.description, self.needs, self.requires = name, description, tuple(needs), tuple(requires)

    def judge(self, solution: str, ground_truth: Any, options: Any, extra: Mapping[str, Any] | None, beta: float,
              format_tags: Any, params: dict[str, Any]) -> dict[str, float]:
        """Read the reply once (answers.py: NFKC, thinking removed, the last block that answers), check the row
        (options, ground truth among them), then :meth:`read_and_score`."""
        tags = format_tags_of(format_tags)  # before the reply: a wrong setting raises on the first row
        reply = Reply(solution)
        fmt = reply.format_share(tags)
        try:
            opts = parse_options(options)
        except BadOptions as e:
            return unscorable(fmt, beta, "options", f"unusable options: {e}")
        truth_text = _truth_text(ground_truth)
        if truth_text is None:
            return unscorable(fmt, beta, "ground_truth", f"ground truth {ground_truth!r} is empty")
        truth = None
        if opts:
            try:
                truth = truth_index(truth_text, opts)
            except ValueError:
                return unscorable(fmt, beta, "truth_not_an_option",
                                  f"ground truth {truth_text[:80]!r} is not one of the options {list(opts)[:8]!r}")
        elif "options" in self.requires:
            return unscorable(fmt, beta, f"{self.name}_options",
                              f"reward variant {self.name!r} needs the row's options to read its answer")
        return self.read_and_score(reply, opts, truth, truth_text, fmt, extra, beta, params)

    def read_and_score(self, reply: Reply, opts: tuple[str, ...], truth: int | None, truth_text: str, fmt: float,
                       extra: Mapping[str, Any] | None, beta: float, params: dict[str, Any]) -> dict[str, float]:
        raise NotImplementedError


class OptionVariant(Variant):
    """Scores the option the reply names: ``credit(judgement, beta, **settings) -> float``."""

    def __init__(self, name: str, credit: Callable[..., float], description: str, needs: tuple[str, ...] = ("options",),
                 requires: tuple[str, ...] = ()):
        super().__init__(name, description, needs, requires)
        self.credit = credit

    def read_and_score(self, reply, opts, truth, truth_text, fmt, extra, beta, params):
        if opts:
            pred = reply.answer(option_set(opts).resolve)[1]
            k = len(opts)
        else:  # no options known: the truth is the only option we can recognise
            truth, k = 0, 1
            said = normalize(truth_text)
            pred = reply.answer(lambda a: 0 if normalize(a) == said else None)[1]
        j = Judgement(pred, truth, k, fmt, extra)
        return {"score": float(self.credit(j, beta, **params)), "acc": j.correct, "format": fmt,
                "parsed": 0.0 if pred is None else 1.0, "likert": j.likert}


class DistributionVariant(Variant):
    """Scores a stated distribution over the options against the row's target: 1 - RPS(p, t) / (K - 1) + beta *
    format. Strictly proper: in expectation over targets drawn from q, it is maximised only at p = q."""

    def read_and_score(self, reply, opts, truth, truth_text, fmt, extra, beta, params):
        k = len(opts)
        probs = reply.answer(lambda a: parse_distribution(a, opts))[1]
        if probs is None:
            return {"score": beta * fmt, "acc": 0.0, "format": fmt, "parsed": 0.0, "likert": 0.0}
        target, source = target_distribution(extra, truth, k)
        if source == "point" and isinstance(extra, Mapping) and extra.get("target") is not None:
            warn_once("target", f"reward variant {self.name!r}: extra_info['target'] = "
                                f"{str(extra.get('target'))[:60]} is not a distribution over the {k} options; such "
                                f"rows are scored against the truth alone")
        arg = max(range(k), key=probs.__getitem__)
        return {"score": 1.0 - stats.rps(probs, target, k, scale="normalised") + beta * fmt,
                "acc": 1.0 if arg == truth else 0.0, "format": fmt, "parsed": 1.0,
                "likert": 1.0 - abs(arg - truth) / (k - 1) if k > 1 else 1.0}


_RELEASE_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


class ReleaseVariant(Variant):
    """Exactly the release's WVS.py: 0.2 per tag, 2.0 on an exact string match of the last <answer> in the last
    300 characters; its partial-credit branch never fires (it iterates the options string). Reads no row field."""

    def judge(self, solution, ground_truth, options, extra, beta, format_tags, params):
        tail = solution[-300:]
        found = _RELEASE_ANSWER.findall(tail)
        answer = found[-1].strip() if found else None
        fmt_points = sum(0.2 for t in RELEASE_TAGS if t in solution)
        exact = answer is not None and answer == str(ground_truth).strip()
        return {"score": fmt_points + (2.0 if exact else 0.0), "acc": 1.0 if exact else 0.0,
                "format": fmt_points / 0.8, "parsed": 1.0 if answer is not None else 0.0,
                "likert": 1.0 if exact else 0.0}


def _binary(j: Judgement, beta: float, **_: Any) -> float:
    return j.correct + beta * j.fmt


def _distance(j: Judgement, beta: float, alpha: float = 1.0, **_: Any) -> float:
    # Paper Table 5's Likert-adjusted soft reward: alpha * (1 - |pred - truth| / (K - 1)) + beta * format.
    return alpha * j.likert + beta * j.fmt


def _gaussian(j: Judgement, beta: float, sigma: float = DEFAULT_SIGMA, **_: Any) -> float:
    if j.pred is None:
        return beta * j.fmt
    d = abs(j.pred - j.truth) / max(j.k - 1, 1)
    return math.exp(-d * d / (2 * sigma * sigma)) + j.correct + beta * j.fmt


def _frequency(j: Judgement, beta: float, **_: Any) -> float:
    return j.correct * (1.0 - _cell_frequency(j.extra)) + beta * j.fmt


def _cell_frequency(extra: Any) -> float:
    """The true answer's share in its cell, in [0, 1]. Missing, NaN or non-numeric: 0 (plain binary credit), out
    of range: clipped; each reported once, since a training loop must go on."""
    raw = extra.get("frequency") if isinstance(extra, Mapping) else None
    try:
        freq = float(raw)
    except (TypeError, ValueError):
        freq = math.nan
    if math.isnan(freq):
        warn_once("frequency", f"reward variant 'frequency': extra_info['frequency'] is {raw!r}, not a number; "
                               f"such rows get plain binary credit")
        return 0.0
    if not 0.0 <= freq <= 1.0:
        warn_once("frequency_range", f"reward variant 'frequency': extra_info['frequency'] = {freq!r} lies "
                                     f"outside [0, 1]; clipped")
        return min(max(freq, 0.0), 1.0)
    return freq


#: name -> variant: what ``variant=`` accepts (and what the README's reward settings table lists).
VARIANTS: dict[str, Variant] = {}


def register_variant(variant: Variant, *, replace: bool = False) -> Variant:
    """Add ``variant`` under its name; a second one of the same name is an error unless ``replace``."""
    if variant.name in VARIANTS and not replace:
        raise ValueError(f"reward variant {variant.name!r} is already registered")
    VARIANTS[variant.name] = variant
    return variant


for _v in (
    OptionVariant("binary", _binary, "paper §4.2: 1(answer = truth) + beta * format share"),
    ReleaseVariant("reference", "the authors' release (WVS.py): 0.2 per tag + 2.0 on exact string match in the last "
                                "300 chars"),
    OptionVariant("distance", _distance, "ordinal credit alpha * (1 - |pred - truth| / (K - 1)) by option index "
                                         "(WVS_d's intent, bug fixed)"),
    OptionVariant("likert", _distance, "paper Table 5's Likert-adjusted soft reward: the distance variant under the "
                                       "paper's name"),
    OptionVariant("gaussian", _gaussian, "exp(-d^2 / 2 sigma^2) on normalised index distance, +1 on exact (WVS_g)"),
    OptionVariant("frequency", _frequency, "correctness scaled by 1 - frequency of the true answer in its cell "
                                           "(WVS_p)", needs=("options", "frequency")),
    DistributionVariant("rps", "a stated distribution (distribution template) scored 1 - RPS(p, target) / (K - 1) + "
                               "beta * format against extra_info.target (else counts, else the truth's point mass)",
                        needs=("options", "target"), requires=("options",)),
):
    register_variant(_v)
