"""The DVMap reward for verl: r = 1(answer = truth) + beta * r_format (paper §4.2), and its named variants.

Use it from any verl project::

    reward.custom_reward_function.path=pkg://dvmap_verl.reward
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.variant=binary   # optional settings, see compute_score

Fields read per sample: ``reward_model.ground_truth`` (the true option text) and, from ``extra_info``, ``options``
(a list, or the release's ``"Options"`` string joined by ``", "``), for the ``frequency`` variant ``frequency``, and
for the ``rps`` variant ``target`` (probabilities in option order; else ``counts``; else the truth's point mass). Without options the answer is compared with the ground truth alone.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any, Callable, Mapping

from dvmap_verl.reward.answers import (BadOptions, Reply, extract_answer, format_share, normalize,  # noqa: F401
                                       option_set, parse_options, truth_index)
from dvmap_verl.reward.distribution import parse_distribution, ranked_probability_score, target_distribution
from dvmap_verl.errors import InputError

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

#: Weight of the format share. The release pays 0.2 per tag (0.8 for all four) against 2.0 for a correct answer;
#: with correctness scaled to 1, the same ratio 0.8 / 2.0 gives beta = 0.4.
DEFAULT_BETA = 0.4
#: Width of the ``gaussian`` variant, on option-index distance normalised by (K - 1), as the release's ``WVS_g``.
DEFAULT_SIGMA = 0.25

#: Keys returned for every sample (verl requires the same keys on every sample and logs each one).
SCORE_KEYS = ("score", "acc", "format", "parsed", "likert")


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
        _warn_once("frequency", f"reward variant 'frequency': extra_info['frequency'] is {raw!r}, not a number; "
                                f"such rows get plain binary credit")
        return 0.0
    if not 0.0 <= freq <= 1.0:
        _warn_once("frequency_range", f"reward variant 'frequency': extra_info['frequency'] = {freq!r} lies "
                                      f"outside [0, 1]; clipped")
        return min(max(freq, 0.0), 1.0)
    return freq


#: name -> (scorer, one-line description). ``reference`` is scored separately (it does not resolve options).
VARIANTS: dict[str, tuple[Callable[..., float] | None, str]] = {
    "binary": (_binary, "paper §4.2: 1(answer = truth) + beta * format share"),
    "reference": (None, "the authors' release (WVS.py): 0.2 per tag + 2.0 on exact string match in the last 300 chars"),
    "distance": (_distance, "ordinal credit alpha * (1 - |pred - truth| / (K - 1)) by option index (WVS_d's intent, "
                            "bug fixed)"),
    "likert": (_distance, "paper Table 5's Likert-adjusted soft reward: the distance variant under the paper's name"),
    "gaussian": (_gaussian, "exp(-d^2 / 2 sigma^2) on normalised index distance, +1 on exact (WVS_g)"),
    "frequency": (_frequency, "correctness scaled by 1 - frequency of the true answer in its cell (WVS_p)"),
    "rps": (None, "a stated distribution (distribution template) scored 1 - RPS(p, target) / (K - 1) + beta * format "
                  "against extra_info.target (else counts, else the truth's point mass)"),
}

_REFERENCE_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def _reference(solution: str, ground_truth: str) -> dict[str, float]:
    """Exactly the release's WVS.py: its partial-credit branch never fires (it iterates the options string)."""
    tail = solution[-300:]
    found = _REFERENCE_ANSWER.findall(tail)
    answer = found[-1].strip() if found else None
    fmt_points = sum(0.2 for t in RELEASE_TAGS if t in solution)
    exact = answer is not None and answer == str(ground_truth).strip()
    return {
        "score": fmt_points + (2.0 if exact else 0.0),
        "acc": 1.0 if exact else 0.0,
        "format": fmt_points / 0.8,
        "parsed": 1.0 if answer is not None else 0.0,
        "likert": 1.0 if exact else 0.0,
    }


def _tags(format_tags: Any) -> tuple[str, ...]:
    if isinstance(format_tags, str):
        raise InputError(f"unknown format_tags preset {format_tags!r}; known: {sorted(TAG_PRESETS)}")
    return tuple(str(t) for t in format_tags)


def _setting(name: str, value: Any) -> float:
    """A numeric setting, also when a Hydra override passed it as a string; a bad one is a configuration error."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"dvmap reward setting {name}={value!r} is not a number") from None
    if not math.isfinite(number) or (name == "sigma" and number <= 0):
        raise InputError(f"dvmap reward setting {name}={value!r} must be finite" + (" and > 0" if name == "sigma"
                                                                                 else ""))
    return number


_warned_rows: set[str] = set()


def _warn_once(kind: str, message: str) -> None:
    if kind not in _warned_rows:
        _warned_rows.add(kind)
        warnings.warn(message + " (reported once)", stacklevel=4)


def _unscorable(fmt: float, beta: float, kind: str, message: str) -> dict[str, float]:
    """A row that cannot be judged: format credit only, never an exception (it runs inside a training loop)."""
    _warn_once(kind, f"dvmap reward: {message}; such rows score beta * format only, with parsed = 0")
    return {"score": beta * fmt, "acc": 0.0, "format": fmt, "parsed": 0.0, "likert": 0.0}


def _truth_text(ground_truth: Any) -> str | None:
    if isinstance(ground_truth, str):
        return ground_truth if ground_truth.strip() else None
    if isinstance(ground_truth, bytes):
        return _truth_text(ground_truth.decode("utf-8", "replace"))
    if ground_truth is None or (isinstance(ground_truth, float) and math.isnan(ground_truth)):
        return None
    return str(ground_truth)


def score(
    solution_str: Any,
    ground_truth: Any,
    options: Any = None,
    *,
    variant: str = "binary",
    beta: float = DEFAULT_BETA,
    format_tags: Any = "release",
    extra: Mapping[str, Any] | None = None,
    **params: Any,
) -> dict[str, float]:
    """Score one completion. Returns a dict with :data:`SCORE_KEYS`; never raises on model output or on a bad row.

    A row that cannot be judged (no usable ground truth, truth not among the options, broken options) scores
    ``beta * format`` with ``acc = parsed = likert = 0``, and a warning naming the problem is issued once.
    Settings (variant, beta, sigma, format_tags) that are wrong raise ValueError: that is a configuration error.

    >>> score("<reasoning>r</reasoning><answer>Agree.</answer>", "Agree", ["Agree", "Disagree"])["score"]
    1.4
    >>> score("<answer>Disagree</answer>", "Agree", "Agree, Disagree")["acc"]
    0.0
    """
    if not isinstance(solution_str, str):
        solution_str = "" if solution_str is None else str(solution_str)
    try:
        scorer = VARIANTS[variant][0]
    except (KeyError, TypeError):
        raise InputError(f"unknown reward variant {variant!r}; known: {sorted(VARIANTS)}") from None
    if type(beta) is not float:
        beta = _setting("beta", beta)
    for name in ("sigma", "alpha"):
        value = params.get(name)
        if value is not None and (type(value) is not float or not 0.0 < value < math.inf):
            params[name] = _setting(name, value)  # converts strings; refuses NaN, inf and sigma <= 0
    if variant == "reference":
        return _reference(solution_str, ground_truth)
    tags = TAG_PRESETS.get(format_tags) if isinstance(format_tags, str) else None
    # One reading for every variant (answers.py): NFKC, thinking removed, the last block that names an option.
    reply = Reply(solution_str)
    fmt = reply.format_share(tags if tags is not None else _tags(format_tags))
    try:
        opts = parse_options(options)
    except BadOptions as e:
        return _unscorable(fmt, beta, "options", f"unusable options: {e}")
    truth_text = _truth_text(ground_truth)
    if truth_text is None:
        return _unscorable(fmt, beta, "ground_truth", f"ground truth {ground_truth!r} is empty")
    if opts:
        try:
            truth = truth_index(truth_text, opts)
        except ValueError:
            return _unscorable(fmt, beta, "truth_not_an_option",
                               f"ground truth {truth_text[:80]!r} is not one of the options {list(opts)[:8]!r}")
        if variant == "rps":
            return _rps(reply, opts, truth, fmt, beta, extra)
        pred = reply.answer(option_set(opts).resolve)[1]
        k = len(opts)
    elif variant == "rps":
        return _unscorable(fmt, beta, "rps_options", "reward variant 'rps' needs the row's options to read a stated "
                                                     "distribution")
    else:
        # No options known: the truth is the only option we can recognise.
        truth, k = 0, 1
        said = normalize(truth_text)
        pred = reply.answer(lambda a: 0 if normalize(a) == said else None)[1]
    j = Judgement(pred, truth, k, fmt, extra)
    return {
        "score": float(scorer(j, beta, **params)),
        "acc": j.correct,
        "format": fmt,
        "parsed": 0.0 if pred is None else 1.0,
        "likert": j.likert,
    }


def _rps(reply: Reply, opts: tuple[str, ...], truth: int, fmt: float, beta: float,
         extra: Mapping[str, Any] | None) -> dict[str, float]:
    """Strictly proper: in expectation over targets drawn from q, 1 - RPS(p, t) is maximised only at p = q."""
    k = len(opts)
    probs = reply.answer(lambda a: parse_distribution(a, opts))[1]
    if probs is None:
        return {"score": beta * fmt, "acc": 0.0, "format": fmt, "parsed": 0.0, "likert": 0.0}
    target, source = target_distribution(extra, truth, k)
    if source == "point" and isinstance(extra, Mapping) and extra.get("target") is not None:
        _warn_once("target", f"reward variant 'rps': extra_info['target'] = {str(extra.get('target'))[:60]} is not a "
                             f"distribution over the {k} options; such rows are scored against the truth alone")
    arg = max(range(k), key=probs.__getitem__)
    return {
        "score": 1.0 - ranked_probability_score(probs, target) / max(k - 1, 1) + beta * fmt,
        "acc": 1.0 if arg == truth else 0.0,
        "format": fmt,
        "parsed": 1.0,
        "likert": 1.0 - abs(arg - truth) / (k - 1) if k > 1 else 1.0,
    }


_VERL_PASSED = frozenset({"reward_router_address", "reward_model_tokenizer"})
_warned: set[str] = set()


def _warn_unknown(kwargs: Mapping[str, Any]) -> None:
    for key in kwargs.keys() - _VERL_PASSED - _warned:
        _warned.add(key)
        warnings.warn(f"dvmap_verl.reward.compute_score ignores unknown setting {key!r} "
                      f"(known: variant, beta, format_tags, sigma, alpha)", stacklevel=3)


def compute_score(
    data_source: str | None = None,
    solution_str: Any = None,
    ground_truth: Any = None,
    extra_info: Mapping[str, Any] | None = None,
    *,
    variant: str = "binary",
    beta: float = DEFAULT_BETA,
    format_tags: Any = "release",
    sigma: float = DEFAULT_SIGMA,
    alpha: float = 1.0,
    **_ignored: Any,
) -> dict[str, float]:
    """verl 0.9.1 custom reward entry point (``reward.custom_reward_function.name=compute_score``).

    Settings (``reward.custom_reward_function.reward_kwargs``):
      variant: one of :data:`VARIANTS` (default ``binary``, the paper's reward).
      beta: weight of the format share (default 0.4 = the release's format/correctness ratio 0.8 / 2.0).
      format_tags: ``release`` (<reasoning>/<answer> tags), ``qwen3`` (<think>/<answer>), ``answer``, or a list.
      sigma: width of the ``gaussian`` variant.
      alpha: weight of the ordinal credit in ``distance`` / ``likert`` (paper Table 5; default 1).
    verl's own extra arguments (reward router address, reward-model tokenizer) are ignored; any other unknown
    setting is reported once, since it is most likely a misspelt reward_kwargs key.

    No row raises and no score is NaN. A row that cannot be judged (ground truth None/empty or not among the
    options; options that are None/NaN-holding, non-text or over the size bounds) scores ``beta * format`` with
    ``parsed = 0``; an ``extra_info`` that is not a dict is read as no options; for ``variant=frequency`` a missing
    or non-numeric frequency gives plain binary credit and one outside [0, 1] is clipped. Each is warned about once.
    """
    if _ignored:
        _warn_unknown(_ignored)
    if extra_info is None or type(extra_info) is dict or isinstance(extra_info, Mapping):
        options = None
        if extra_info:
            options = extra_info.get("options")
            if options is None:
                options = extra_info.get("Options")
    else:
        _warn_once("extra_info", f"dvmap reward: extra_info is a {type(extra_info).__name__}, not a dict; its rows "
                                 f"are scored without options (the ground truth alone is recognised)")
        options, extra_info = None, None
    return score(
        solution_str,
        ground_truth,
        options,
        variant=variant,
        beta=beta,
        format_tags=format_tags,
        extra=extra_info,
        sigma=sigma,
        alpha=alpha,
    )


__all__ = ["DEFAULT_BETA", "RELEASE_TAGS", "SCORE_KEYS", "TAG_PRESETS", "VARIANTS", "compute_score", "score"]
