"""Option scoring, shared by the probability readouts and every scoring backend.

Exact tokenisation. An option is scored as the continuation tokens of the *full* text (prompt + ``<answer>`` +
option + ``</answer>``), tokenised as one string, never as separately tokenised pieces glued together: a BPE merge
across the boundary (``>A`` in ``<answer>Agree``) would otherwise score token sequences the model never sees. The
shared context is the longest token prefix that every option's full tokenisation has in common with the prompt's;
everything after it is scored, so ``log P(full_i) = log P(shared) + score_i`` and the normalised scores are exactly
``P(full_i) / sum_j P(full_j)``. The closing ``</answer>`` ends each option, so that "1" on a 1-10 scale is not
credited with the mass of "10".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"


@dataclass(frozen=True)
class ScoreRequest:
    """Score ``continuations`` after the chat prompt of ``messages`` followed by ``prefix`` (assistant text)."""

    item: int
    sample: int
    messages: tuple[dict[str, str], ...]
    prefix: str
    continuations: tuple[str, ...]


@dataclass(frozen=True)
class Scores:
    """Summed log-probability of each continuation's scored tokens, and how many tokens that was."""

    logprobs: tuple[float, ...]
    tokens: tuple[int, ...]

    def probs(self) -> list[float]:
        return normalise(self.logprobs)

    def mean_logprobs(self) -> list[float]:
        return [lp / max(n, 1) for lp, n in zip(self.logprobs, self.tokens)]


OnScore = Callable[[ScoreRequest, Scores], None]


def option_request(item: int, sample: int, messages, options: Sequence[str], reasoning: str = "") -> ScoreRequest:
    """The request that scores every option of an item after ``reasoning`` (already cut: :func:`cut_reasoning`)
    and ``<answer>``."""
    return ScoreRequest(item, sample, tuple(messages), reasoning + ANSWER_OPEN,
                        tuple(f"{o}{ANSWER_CLOSE}" for o in options))


def cut_reasoning(completion: str) -> str:
    """The completion up to its first ``<answer>`` (all of it when it has none: an engine that drops the stop
    string, or a model that never answered): what the options are scored after."""
    cut = completion.find(ANSWER_OPEN)
    return completion if cut < 0 else completion[:cut]


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def scoring_start(prefix_ids: Sequence[int], fulls: Sequence[Sequence[int]]) -> int:
    """Where scoring begins: the longest token prefix every full tokenisation shares with the prompt's."""
    start = min(common_prefix_len(prefix_ids, f) for f in fulls)
    if start == 0:
        raise ValueError("nothing precedes the scored text: the prompt tokenises to no shared prefix")
    return start


def normalise(logprobs: Sequence[float]) -> list[float]:
    """Log-probabilities (K,) as probabilities summing to 1 (softmax); non-finite entries get 0, and uniform when
    none is finite."""
    x = np.asarray(logprobs, dtype=np.float64)
    if not len(x) or not np.isfinite(x).any():
        return [1.0 / max(len(x), 1)] * len(x)
    x = np.where(np.isfinite(x), x, -np.inf)
    p = np.exp(x - x.max())
    return (p / p.sum()).tolist()
