"""Answer extraction and option resolution: one implementation for training rewards and evaluation.

Model output is adversarial input. Every function here accepts any string (or None) and returns in time
bounded by the input length; none of them raises on model output.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Sequence

ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"

# An <answer> block longer than this is not an answer but an essay; it resolves to no option.
MAX_ANSWER_CHARS = 512

# Characters stripped from both ends of an answer: white space, quotes, markdown emphasis, brackets, punctuation.
_STRIP_CHARS = " \t\r\n\"'`*_#~>[](){}“”‘’«».,;:!?。，：；！？"
_SPACES = re.compile(r"\s+")
# "Answer: Agree", "Final answer - Agree", "My answer is Agree", "Option: Agree"
_PREFIX = re.compile(r"^(?:(?:my|the)\s+)?(?:final\s+)?(?:answer|option|choice)\s*(?:is\s*)?[:\-–]?\s*")
# "B", "(b)", "2", "option 2" alone
_LABEL_ONLY = re.compile(r"^(?:option\s*)?\(?([a-z]|\d{1,2})\)?$")
# "B) Agree", "2. Agree", "(2) Agree", "option 2: Agree"
_LABEL_PREFIX = re.compile(r"^(?:option\s*)?\(?([a-z]|\d{1,2})[).:]\s*(\S.*)$")
# Markdown/HTML noise inside the answer.
_MARKUP = re.compile(r"[*_`]+|</?[a-z]+>")


# Bounds on a row's options: a DVMap question has at most 5 short options; a larger value is a broken row, refused
# before any work proportional to its size is done.
MAX_OPTIONS = 32
MAX_OPTIONS_CHARS = 4096


class BadOptions(ValueError):
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


def extract_answer(text: Any) -> str | None:
    """Content of the last ``<answer>…</answer>`` block (tags matched case-insensitively).

    A final ``<answer>`` left open at the end of the text (a truncated response) still counts, so that the format
    reward, not the answer credit, pays for the missing closing tag. Returns None when there is no block.
    """
    if not isinstance(text, str):
        if text is None:
            return None
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    start = text.rfind(ANSWER_OPEN)
    if start < 0:
        low = text.lower()
        start = low.rfind(ANSWER_OPEN)
        if start < 0:
            return None
        text = low
    start += len(ANSWER_OPEN)
    end = text.find(ANSWER_CLOSE, start)
    if end < 0:
        end = text.lower().find(ANSWER_CLOSE, start)
    return text[start:] if end < 0 else text[start:end]


def normalize(answer: str) -> str:
    """Lower-case, markup-free, single-spaced, without surrounding quotes or trailing punctuation."""
    s = answer.lower()
    if "*" in s or "_" in s or "`" in s or "<" in s:
        s = _MARKUP.sub(" ", s)
    s = " ".join(s.split()).strip(_STRIP_CHARS)
    if s.startswith(("answer", "option", "choice", "final", "my ", "the ")):
        s = _PREFIX.sub("", s, count=1).strip(_STRIP_CHARS)
    return s


class OptionSet:
    """Precomputed matcher for one question's options (cached per options tuple)."""

    __slots__ = ("options", "normalized", "exact", "pattern", "labels_ok")

    def __init__(self, options: tuple[str, ...]):
        self.options = options
        self.normalized = tuple(_SPACES.sub(" ", o.lower()).strip(_STRIP_CHARS) for o in options)
        self.exact = {n: i for i, n in enumerate(self.normalized)}
        # Longest first, so that "strongly agree" wins over "agree" at the same position; word boundaries
        # so that "agree" never matches inside "disagree".
        alternatives = sorted(set(self.normalized), key=len, reverse=True)
        self.pattern = re.compile(
            r"(?<!\w)(" + "|".join(re.escape(a) for a in alternatives) + r")(?!\w)"
        ) if alternatives else None
        # Numbers on a binned 1-10 scale ("7") are scale points, not option numbers: ambiguous, so not accepted.
        self.labels_ok = not any(n in ("low", "medium", "high") for n in self.normalized)

    def resolve(self, answer: str | None) -> int | None:
        """Index of the one option the answer names, or None (no answer, no option, or several options)."""
        if answer is None or len(answer) > MAX_ANSWER_CHARS or not self.options:
            return None
        s = normalize(answer)
        if not s:
            return None
        hit = self.exact.get(s)
        if hit is not None:
            return hit
        labelled, label = self._label(s)
        if labelled:
            return label
        named = {self.exact[m.group(1)] for m in self.pattern.finditer(s)}
        return named.pop() if len(named) == 1 else None

    def _label(self, s: str) -> tuple[bool, int | None]:
        """(whether the answer is an option label, its index). "3. Agree" where 3 is not Agree names nothing."""
        m = _LABEL_ONLY.match(s)
        if m:
            i = self._label_index(m.group(1))
            return i is not None, i
        m = _LABEL_PREFIX.match(s)
        if m:
            by_text = self.exact.get(m.group(2).strip(_STRIP_CHARS))
            if by_text is not None:
                by_label = self._label_index(m.group(1))
                return True, by_text if by_label in (None, by_text) else None
        return False, None

    def _label_index(self, label: str) -> int | None:
        if not self.labels_ok:
            return None
        if label.isdigit():
            i = int(label) - 1
        elif len(label) == 1 and "a" <= label <= "z":
            i = ord(label) - ord("a")
        else:
            return None
        return i if 0 <= i < len(self.options) else None


@lru_cache(maxsize=4096)
def option_set(options: tuple[str, ...]) -> OptionSet:
    return OptionSet(options)


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
    """Share of ``tags`` present in ``text`` (the release's format check: presence, not order)."""
    if not tags:
        return 1.0
    if not isinstance(text, str):
        if text is None:
            return 0.0
        text = str(text)
    present = 0
    for tag in tags:
        if tag in text:
            present += 1
    return present / len(tags)


@lru_cache(maxsize=65536)
def truth_index(value: str, options: tuple[str, ...]) -> int:
    """Index of a ground-truth label among parsed options (cached: the reward's hot path); ValueError naming
    both when absent."""
    i = option_set(options).exact.get(_SPACES.sub(" ", value.lower()).strip(_STRIP_CHARS))
    if i is None:
        raise ValueError(f"ground truth {value!r} is not one of the options {list(options)!r}")
    return i


__all__ = [
    "BadOptions",
    "MAX_OPTIONS",
    "MAX_OPTIONS_CHARS",
    "ANSWER_OPEN",
    "ANSWER_CLOSE",
    "MAX_ANSWER_CHARS",
    "OptionSet",
    "extract_answer",
    "format_share",
    "normalize",
    "option_set",
    "parse_options",
    "release_correct",
    "release_rule_applies",
    "extract_answer_release",
    "resolve_answer",
    "truth_index",
]
