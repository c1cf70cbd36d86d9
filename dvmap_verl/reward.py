"""The DVMap reward for verl: r = 1(answer = truth) + beta * r_format (paper §4.2), and its named variants.

Use it from any verl project::

    reward.custom_reward_function.path=pkg://dvmap_verl.reward
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.variant=binary   # optional settings, see compute_score

Fields read per sample: ``reward_model.ground_truth`` (the true option text) and, from ``extra_info``, ``options``
(a list, or the release's ``"Options"`` string joined by ``", "``) and, for the ``frequency`` variant only,
``frequency``. Without options the answer is compared with the ground truth alone.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any, Callable, Mapping, Sequence

from dvmap_verl.answers import truth_index, extract_answer, format_share, normalize, option_set, parse_options

#: The release's format tags; the structured chain of thought answers in <reasoning> then <answer>.
RELEASE_TAGS = ("<reasoning>", "</reasoning>", "<answer>", "</answer>")
#: Presets for ``format_tags``; a list of literal tags works too.
TAG_PRESETS = {
    "release": RELEASE_TAGS,
    "qwen3": ("<think>", "</think>", "<answer>", "</answer>"),
    "answer": ("<answer>", "</answer>"),
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


def _distance(j: Judgement, beta: float, **_: Any) -> float:
    return j.likert + beta * j.fmt


def _gaussian(j: Judgement, beta: float, sigma: float = DEFAULT_SIGMA, **_: Any) -> float:
    if j.pred is None:
        return beta * j.fmt
    d = abs(j.pred - j.truth) / max(j.k - 1, 1)
    return math.exp(-d * d / (2 * sigma * sigma)) + j.correct + beta * j.fmt


def _frequency(j: Judgement, beta: float, **_: Any) -> float:
    freq = j.extra.get("frequency") if j.extra else None
    if freq is None:
        raise ValueError("reward variant 'frequency' needs extra_info['frequency'] (the answer's share in its cell)")
    return j.correct * (1.0 - float(freq)) + beta * j.fmt


#: name -> (scorer, one-line description). ``reference`` is scored separately (it does not resolve options).
VARIANTS: dict[str, tuple[Callable[..., float] | None, str]] = {
    "binary": (_binary, "paper §4.2: 1(answer = truth) + beta * format share"),
    "reference": (None, "the authors' release (WVS.py): 0.2 per tag + 2.0 on exact string match in the last 300 chars"),
    "distance": (_distance, "ordinal credit 1 - |pred - truth| / (K - 1) by option index (WVS_d's intent, bug fixed)"),
    "gaussian": (_gaussian, "exp(-d^2 / 2 sigma^2) on normalised index distance, +1 on exact (WVS_g)"),
    "frequency": (_frequency, "correctness scaled by 1 - frequency of the true answer in its cell (WVS_p)"),
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
        raise ValueError(f"unknown format_tags preset {format_tags!r}; known: {sorted(TAG_PRESETS)}")
    return tuple(str(t) for t in format_tags)


def _options_from(extra_info: Any) -> tuple[str, ...]:
    if not extra_info:
        return ()
    opts = extra_info.get("options")
    if opts is None:
        opts = extra_info.get("Options")
    return parse_options(opts)


def score(
    solution_str: Any,
    ground_truth: Any,
    options: Sequence[str] | str | None = None,
    *,
    variant: str = "binary",
    beta: float = DEFAULT_BETA,
    format_tags: Any = "release",
    extra: Mapping[str, Any] | None = None,
    **params: Any,
) -> dict[str, float]:
    """Score one completion. Returns a dict with :data:`SCORE_KEYS`; never raises on model output."""
    if not isinstance(solution_str, str):
        solution_str = "" if solution_str is None else str(solution_str)
    try:
        scorer = VARIANTS[variant][0]
    except KeyError:
        raise ValueError(f"unknown reward variant {variant!r}; known: {sorted(VARIANTS)}") from None
    if variant == "reference":
        return _reference(solution_str, ground_truth)
    opts = parse_options(options)
    tags = TAG_PRESETS.get(format_tags) if isinstance(format_tags, str) else None
    fmt = format_share(solution_str, tags if tags is not None else _tags(format_tags))
    answer = extract_answer(solution_str)
    if opts:
        truth = truth_index(ground_truth if type(ground_truth) is str else str(ground_truth), opts)
        pred = option_set(opts).resolve(answer)
        k = len(opts)
    else:
        # No options known: the truth is the only option we can recognise.
        truth, k = 0, 1
        pred = 0 if answer is not None and normalize(answer) == normalize(str(ground_truth)) else None
    j = Judgement(pred, truth, k, fmt, extra)
    return {
        "score": float(scorer(j, beta, **params)),
        "acc": j.correct,
        "format": fmt,
        "parsed": 0.0 if pred is None else 1.0,
        "likert": j.likert,
    }


_VERL_PASSED = frozenset({"reward_router_address", "reward_model_tokenizer"})
_warned: set[str] = set()


def _warn_unknown(kwargs: Mapping[str, Any]) -> None:
    for key in kwargs.keys() - _VERL_PASSED - _warned:
        _warned.add(key)
        warnings.warn(f"dvmap_verl.reward.compute_score ignores unknown setting {key!r} "
                      f"(known: variant, beta, format_tags, sigma)", stacklevel=3)


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
    **_ignored: Any,
) -> dict[str, float]:
    """verl 0.9.1 custom reward entry point (``reward.custom_reward_function.name=compute_score``).

    Settings (``reward.custom_reward_function.reward_kwargs``):
      variant: one of :data:`VARIANTS` (default ``binary``, the paper's reward).
      beta: weight of the format share (default 0.4 = the release's format/correctness ratio 0.8 / 2.0).
      format_tags: ``release`` (<reasoning>/<answer> tags), ``qwen3`` (<think>/<answer>), ``answer``, or a list.
      sigma: width of the ``gaussian`` variant.
    verl's own extra arguments (reward router address, reward-model tokenizer) are ignored; any other unknown
    setting is reported once, since it is most likely a misspelt reward_kwargs key.
    """
    if _ignored:
        _warn_unknown(_ignored)
    return score(
        solution_str,
        ground_truth,
        _options_from(extra_info),
        variant=variant,
        beta=beta,
        format_tags=format_tags,
        extra=extra_info,
        sigma=sigma,
    )


__all__ = ["DEFAULT_BETA", "RELEASE_TAGS", "SCORE_KEYS", "TAG_PRESETS", "VARIANTS", "compute_score", "score"]
