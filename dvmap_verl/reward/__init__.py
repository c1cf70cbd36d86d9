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
import warnings
from typing import Any, Mapping

from dvmap_verl.errors import InputError
from dvmap_verl.reward.answers import (BadOptions, Reply, extract_answer, format_share, normalize,  # noqa: F401
                                       option_set, parse_options, truth_index)
from dvmap_verl.reward.variants import (DEFAULT_SIGMA, RELEASE_TAGS, TAG_PRESETS, VARIANTS,  # noqa: F401
                                        DistributionVariant, Judgement, OptionVariant, ReleaseVariant, Variant,
                                        register_variant, warn_once, warned_rows)

#: Weight of the format share. The release pays 0.2 per tag (0.8 for all four) against 2.0 for a correct answer;
#: with correctness scaled to 1, the same ratio 0.8 / 2.0 gives beta = 0.4.
DEFAULT_BETA = 0.4

#: Keys returned for every sample (verl requires the same keys on every sample and logs each one).
SCORE_KEYS = ("score", "acc", "format", "parsed", "likert")

_warned_rows = warned_rows  # the rows' warn-once memory (tests clear it)


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
    Settings (variant, beta, sigma, format_tags) that are wrong raise InputError (a ValueError): a configuration error.

    >>> score("<reasoning>r</reasoning><answer>Agree.</answer>", "Agree", ["Agree", "Disagree"])["score"]
    1.4
    >>> score("<answer>Disagree</answer>", "Agree", "Agree, Disagree")["acc"]
    0.0
    """
    if not isinstance(solution_str, str):
        solution_str = "" if solution_str is None else str(solution_str)
    try:
        judge = VARIANTS[variant].judge
    except (KeyError, TypeError):
        raise InputError(f"unknown reward variant {variant!r}; known: {sorted(VARIANTS)}") from None
    if type(beta) is not float:
        beta = _setting("beta", beta)
    for name in ("sigma", "alpha"):
        value = params.get(name)
        if value is not None and (type(value) is not float or not 0.0 < value < math.inf):
            params[name] = _setting(name, value)  # converts strings; refuses NaN, inf and sigma <= 0
    return judge(solution_str, ground_truth, options, extra, beta, format_tags, params)


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
        warn_once("extra_info", f"dvmap reward: extra_info is a {type(extra_info).__name__}, not a dict; its rows "
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


__all__ = ["DEFAULT_BETA", "RELEASE_TAGS", "SCORE_KEYS", "TAG_PRESETS", "VARIANTS", "Variant", "compute_score",
           "register_variant", "score"]
