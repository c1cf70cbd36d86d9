"""Reading an answer: one implementation for every reward variant, the evaluation and the verbalised readout.

How a completion is read (README, "How an answer is read"):

1. Normalise: Unicode NFKC (full-width ``＜answer＞`` is ``<answer>``), zero-width characters and the BOM removed,
   non-breaking spaces as spaces (:func:`~dvmap_verl.reward.options.normalize_text`).
2. Remove the thinking: every ``<think>…</think>`` span, an unclosed ``<think>`` to the end of the text (a reply cut
   at max tokens), and, when ``</think>`` comes before any ``<think>`` (the chat template opened it), all text before
   it. What is left is the reply.
3. Tags match in any case. The answer is the content of the **last** ``<answer>`` block of the reply that the
   caller accepts (resolves to an option; parses as a distribution): an empty block, or a tag mentioned in prose,
   does not override an earlier real answer. A later block that holds a negation cue (``I don't agree``, ``No.``)
   is a real answer that takes the earlier ones back: the reading stops there, with no answer. A block ends at
   ``</answer>``, at the next ``<answer>``, or at the end of the text (a truncated final block still counts; the
   format share pays for the missing tag).

Options are resolved by meaning (:mod:`dvmap_verl.reward.options`). The authors' rule (:func:`extract_answer_release`,
:func:`release_correct`) keeps its own extractor, to the character. Model output is adversarial input: every
function here accepts any string (or None), runs in time linear in its length and never raises on model output.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Callable, Iterator, Sequence, TypeVar

from dvmap_verl.reward.options import (MAX_ANSWER_CHARS, STRIP_CHARS, OptionSet, holds_negation, takes_back,  # noqa: F401
                                       normalize, normalize_text, option_set)
from dvmap_verl.errors import InputError

ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
#: At most this many non-blank ``<answer>`` blocks (and :data:`MAX_BLOCKS_SEEN` in all) are tried from the last one
#: back: a bound on the work an answer full of tags can cause.
MAX_BLOCKS = 8
MAX_BLOCKS_SEEN = 32
# Lower-cases ASCII letters only: keeps every index of the text (str.lower does not, e.g. for "İ").
_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
# A think tag in any case, or an answer tag not written in lower case; constant work per "<", nothing to backtrack.
_ODD_TAG = re.compile(r"</?(?:(?i:think)|(?!answer>)(?i:answer))>")
_THINK_SPAN = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)

T = TypeVar("T")

# Bounds on a row's options: a DVMap question has at most 5 short options; a larger value is a broken row, refused
# before any work proportional to its size is done.
MAX_OPTIONS = 32
MAX_OPTIONS_CHARS = 4096


class BadOptions(InputError):
    """A row's options cannot be used (too large, or holding None/NaN/non-text entries)."""


def parse_options(options: Any) -> tuple[str, ...]:
    """Options as a tuple of strings, from a list/array or the release's ``", "``-joined string.

    The release stores options as one string joined by ``", "``; no DVMap option contains ``", "`` itself.
    Raises :class:`BadOptions` (naming the problem) for options that no row of a DVMap dataset can hold: more than
    :data:`MAX_OPTIONS` entries or :data:`MAX_OPTIONS_CHARS` characters, or an entry that is None, NaN or not text.
    """
    if options is None:
        return ()
    if type(options) is tuple and len(options) <= MAX_OPTIONS and all(type(o) is str for o in options) \
            and sum(map(len, options)) <= MAX_OPTIONS_CHARS:
        return options  # the hot path: already clean
    if isinstance(options, str):
        if len(options) > MAX_OPTIONS_CHARS:
            raise BadOptions(f"options string of {len(options):,} characters (at most {MAX_OPTIONS_CHARS:,})")
        return _split_options(options)
    if isinstance(options, bytes):
        return parse_options(options.decode("utf-8", "replace"))
    if getattr(options, "ndim", None) == 0:  # a 0-d numpy array holds one value: the joined string, usually
        return parse_options(options.item())
    try:
        n = len(options)
    except TypeError:
        raise BadOptions(f"options of type {type(options).__name__} (expected a list or a string)") from None
    if n > MAX_OPTIONS:
        raise BadOptions(f"{n:,} options (at most {MAX_OPTIONS})")
    out = tuple(options)
    try:
        return _checked_options(out)  # cached: a training set has a handful of distinct option lists
    except TypeError:  # an unhashable entry (a list, a dict): not text either
        return _checked_options_uncached(out)


@lru_cache(maxsize=4096)
def _checked_options(options: tuple) -> tuple[str, ...]:
    return _checked_options_uncached(options)


def _checked_options_uncached(out: tuple) -> tuple[str, ...]:
    if not all(type(o) is str for o in out):
        if not all(isinstance(o, (str, bytes)) for o in out):
            bad = next(o for o in out if not isinstance(o, (str, bytes)))
            raise BadOptions(f"an option is {bad!r} (options must be text)")
        out = tuple(o if isinstance(o, str) else o.decode("utf-8", "replace") for o in out)
    if sum(map(len, out)) > MAX_OPTIONS_CHARS:
        raise BadOptions(f"options of {sum(map(len, out)):,} characters in all (at most {MAX_OPTIONS_CHARS:,})")
    return out


@lru_cache(maxsize=4096)
def _split_options(joined: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in joined.split(", ") if part.strip())


def _as_text(text: Any) -> str | None:
    if isinstance(text, str):
        return text
    if text is None:
        return None
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


class Reply:
    """A completion, normalised, with its thinking removed (``text``); ``full`` keeps the thinking, for the format
    share of presets that ask for think tags. ``low``: a twin of ``text`` in which answer tags are looked for: the
    text itself when every answer/think tag in it is already lower case (the hot path), else its lower case (same
    indices)."""

    __slots__ = ("full", "text", "low", "_folded")

    def __init__(self, completion: Any):
        full = normalize_text(_as_text(completion) or "")
        self.full = full
        if _ODD_TAG.search(full) is None:  # one C-level pass: no think tag, and every answer tag in lower case
            self.text = self.low = full
            self._folded = False  # low is not lower-cased: only the tags are known to be
        else:
            low = _lower(full)
            self.text, self.low = _without_thinking(full, low)
            self._folded = True

    def _folded_text(self, whole: bool) -> str:
        """Lower case of the whole completion (``whole``) or of the reply (kept)."""
        if whole:
            return _lower(self.full)
        if not self._folded:
            self.low, self._folded = _lower(self.text), True
        return self.low

    def blocks(self) -> list[str]:
        """Contents of the reply's ``<answer>`` blocks, last first (at most :data:`MAX_BLOCKS` non-blank ones)."""
        return list(self._blocks())

    def _blocks(self) -> Iterator[str]:
        text, low = self.text, self.low
        end, seen, nonblank = len(low), 0, 0
        pos = low.rfind(ANSWER_OPEN)
        while pos >= 0 and nonblank < MAX_BLOCKS and seen < MAX_BLOCKS_SEEN:
            start = pos + len(ANSWER_OPEN)
            close = low.find(ANSWER_CLOSE, start, end)
            content = text[start:close if close >= 0 else end]
            yield content
            seen += 1
            if content and not content.isspace():
                nonblank += 1
            end = pos
            pos = low.rfind(ANSWER_OPEN, 0, pos)  # lazily: only when the caller asks for an earlier block

    def answer(self, accept: Callable[[str], T | None]) -> tuple[str | None, T | None]:
        """(content, accept(content)) of the last block that ``accept`` does not map to None and that no later block
        holding a negation cue takes back; when there is none, (the last non-blank block, else the last block, else
        None when there is no block; None)."""
        first = last = None
        for content in self._blocks():
            if last is None:
                last = content
            if not content or content.isspace():
                continue
            if first is None:
                first = content
            value = accept(content)
            if value is not None:
                return content, value
            if takes_back(content):  # "<answer>Agree</answer><answer>I don't agree</answer>" or "~~Agree~~": withdrawn
                break
        return (first if first is not None else last), None

    def format_share(self, tags: Sequence[str]) -> float:
        """Share of ``tags`` present, in any case: think tags anywhere in the completion, the others in the reply
        (outside the thinking)."""
        if not tags:
            return 1.0
        present = 0
        for t, think, closing in _tag_plan(tuple(tags)):
            # Written in lower case (the usual) or, failing that, in any case. Closing tags sit near the end, so
            # searching from there is faster; presence either way.
            where = self.full if think else self.text
            if (where.rfind(t) if closing else where.find(t)) >= 0 or self._folded_text(think).find(t) >= 0:
                present += 1
        return present / len(tags)


@lru_cache(maxsize=256)
def _tag_plan(tags: tuple[str, ...]) -> tuple[tuple[str, bool, bool], ...]:
    """Per tag: (lower case, whether it is a think tag, whether it is a closing tag)."""
    return tuple((t.lower(), t.lower() in (THINK_OPEN, THINK_CLOSE), t.startswith("</")) for t in map(str, tags))


def _without_thinking(text: str, low: str) -> tuple[str, str]:
    """``text`` and ``low`` without the thinking spans (the module's rule 2)."""
    if "think>" not in low:
        return text, low
    first_open, first_close = low.find(THINK_OPEN), low.find(THINK_CLOSE)
    if first_close >= 0 and (first_open < 0 or first_close < first_open):
        # The prompt opened the thinking: everything before the first </think> is thinking.
        cut = first_close + len(THINK_CLOSE)
        text, low = text[cut:], low[cut:]
        first_open = low.find(THINK_OPEN)
    if first_open < 0:
        return text, low
    last_close = low.rfind(THINK_CLOSE)
    unclosed = low.find(THINK_OPEN, last_close + 1 if last_close >= 0 else 0)
    if unclosed >= 0:  # a <think> after the last </think>: thinking to the end (a reply cut at max tokens)
        text, low = text[:unclosed], low[:unclosed]
        if first_open == unclosed:
            return text, low
    # Every <think> left has a </think> after it. One C-level pass: each lazy span stops at the first </think>.
    text = _THINK_SPAN.sub("", text)
    return text, _lower(text)


def _lower(text: str) -> str:
    """``text`` with letters lower-cased and every index kept."""
    if text.isascii():
        return text.lower()
    # U+0130 (dotted capital I) lower-cases to two characters: fold it to one first.
    low = (text.replace("\u0130", "i") if "\u0130" in text else text).lower()
    return low if len(low) == len(text) else text.translate(_ASCII_LOWER)


def read_answer(completion: Any, accept: Callable[[str], T | None]) -> tuple[str | None, T | None]:
    """Read a completion by the module's rule: (the answer's text, ``accept`` of it).

    ``accept`` maps a block's content to a value or None (e.g. ``option_set(options).resolve``); the answer is the
    last block it accepts. Returns (None, None) for a completion without an ``<answer>`` block.

    >>> read_answer("<think><answer>Agree</answer></think><answer>Disagree</answer> (in <answer></answer> tags)",
    ...             option_set(("Agree", "Disagree")).resolve)
    ('Disagree', 1)
    """
    return Reply(completion).answer(accept)


def extract_answer(text: Any, options: Any = None) -> str | None:
    """The answer's text by the module's rule; None when there is no ``<answer>`` block.

    With ``options``, the content of the last block that resolves to one of them (else the last non-blank block);
    without, the last non-blank block. Text is NFKC-normalised and the thinking removed first.
    """
    if options is None:
        return Reply(text).answer(_nothing)[0]
    return read_answer(text, option_set(parse_options(options)).resolve)[0]


def _nothing(_: str) -> None:
    return None


def resolve_completion(completion: Any, options: Any) -> int | None:
    """Index of the option a whole completion answers (its last block that names one), or None."""
    return read_answer(completion, option_set(parse_options(options)).resolve)[1]


def resolve_answer(answer: str | None, options: Any) -> int | None:
    """Index in ``options`` of the option that ``answer`` names, or None."""
    return option_set(parse_options(options)).resolve(answer)


def extract_answer_release(text: Any) -> str | None:
    """The authors' ``extract_answer_from_model_output`` (eval_api_parallel.py), to the character: the text after
    the last ``<answer>`` (case-sensitive), up to the first ``</answer>`` after it, stripped; None when there is no
    ``<answer>`` or the last one is not closed."""
    if not isinstance(text, str):
        return None
    parts = text.split(ANSWER_OPEN)
    if len(parts) < 2:
        return None
    last = parts[-1]
    if ANSWER_CLOSE not in last:
        return None
    return last.split(ANSWER_CLOSE)[0].strip()


def release_rule_applies(options: Any, truth: str) -> bool:
    """The authors' evaluation skips an item whose answer is not a substring of its ``Options`` string."""
    joined = options if isinstance(options, str) else ", ".join(parse_options(options))
    return truth in joined


def release_correct(completion: Any, options: Any, truth: str) -> bool:
    """The authors' evaluation rule (eval_api_parallel.py), to the character.

    Correct if the extracted answer equals the truth, or contains the truth and none of the other options; all
    comparisons are case-sensitive substring tests on the stripped answer, and the options are the ``Options``
    string split on ``","`` and stripped (so an option holding a comma becomes two). Items for which
    :func:`release_rule_applies` is False are skipped by their script, not scored.

    >>> release_correct("<answer>Agree</answer>", "Strongly agree, Agree, Disagree", "Agree")
    True
    >>> release_correct("<answer>I agree</answer>", "Agree, Disagree", "Disagree")  # "agree" is not "Agree"
    False
    >>> release_correct("<answer>I disagree</answer>", "Agree, Disagree", "Agree")  # nor "Disagree"
    False
    """
    predicted = extract_answer_release(completion)
    joined = options if isinstance(options, str) else ", ".join(parse_options(options))
    others = [o for o in (part.strip() for part in joined.strip().split(",")) if o != truth]
    if predicted == truth:
        return True
    return bool(predicted) and truth in predicted and all(o not in predicted for o in others)


def format_share(text: Any, tags: Sequence[str]) -> float:
    """Share of ``tags`` present in ``text``, in any case (the release's format check: presence, not order); tags
    inside the thinking count only when they are think tags (see :meth:`Reply.format_share`)."""
    if not tags:
        return 1.0
    if text is None:
        return 0.0
    return Reply(text).format_share(tags)


@lru_cache(maxsize=65536)
def truth_index(value: str, options: tuple[str, ...]) -> int:
    """Index of a ground-truth label among parsed options (cached: the reward's hot path); ValueError naming
    both when absent."""
    i = option_set(options).exact.get(" ".join(normalize_text(value).lower().split()).strip(STRIP_CHARS))
    if i is None:
        raise InputError(f"ground truth {value!r} is not one of the options {list(options)!r}")
    return i


__all__ = [
    "BadOptions",
    "MAX_BLOCKS",
    "MAX_OPTIONS",
    "MAX_OPTIONS_CHARS",
    "ANSWER_OPEN",
    "ANSWER_CLOSE",
    "MAX_ANSWER_CHARS",
    "OptionSet",
    "Reply",
    "extract_answer",
    "format_share",
    "normalize",
    "normalize_text",
    "option_set",
    "parse_options",
    "read_answer",
    "release_correct",
    "release_rule_applies",
    "extract_answer_release",
    "resolve_answer",
    "resolve_completion",
    "truth_index",
]
