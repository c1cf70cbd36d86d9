"""``logprob``: the probability of each option's text right after the prompt and ``<answer>``, normalised over the
options; no sampling. The scoring (exact tokenisation, the shared prefix) is :mod:`.scoring`'s; a backend that
reads option probabilities is a :class:`~dvmap_verl.evaluation.backends.ScoringBackend`.
"""

from __future__ import annotations

from typing import Sequence

from dvmap_verl.evaluation.backends import Reply, Request, as_reply
from dvmap_verl.evaluation.readouts.base import Readout, ReadoutRun, register_readout
from dvmap_verl.evaluation.readouts.scoring import ScoreRequest, Scores, cut_reasoning, option_request

#: Items per reasoning-then-scoring round: a kill loses at most this many.
SCORING_CHUNK = 32


@register_readout
class LogprobReadout(Readout):
    name = "logprob"
    description = "option probabilities right after the prompt, no sampling"
    needs_scoring = True
    single_sample = True
    reasoning_first = False  # generate (up to ``stop``) first, then score the options after that reasoning

    def run(self, run: ReadoutRun, requests: Sequence[Request]) -> None:
        """One chunk of :data:`SCORING_CHUNK` requests at a time, so that finished records land as they finish."""
        for start in range(0, len(requests), SCORING_CHUNK):
            self._run_chunk(run, requests[start:start + SCORING_CHUNK])

    def _run_chunk(self, run: ReadoutRun, chunk: Sequence[Request]) -> None:
        replies: dict[tuple[int, int], Reply] = {}
        if self.reasoning_first:
            run.backend.run(chunk, lambda r, reply: replies.__setitem__((r.item, r.sample), as_reply(reply)),
                            run.on_error)
            chunk = [r for r in chunk if (r.item, r.sample) in replies]  # a failed reasoning is already counted
        by_key = {(r.item, r.sample): r for r in chunk}
        reasoning = {key: cut_reasoning(replies[key].text if key in replies else "") for key in by_key}

        def on_scores(sr: ScoreRequest, scores: Scores) -> None:
            key = (sr.item, sr.sample)
            run.record_probs(by_key[key], scores.probs(), reasoning[key], replies.get(key), scores.logprobs)

        run.scoring_backend().score(self.score_requests(run, chunk, reasoning), on_scores, run.on_error)

    def score_requests(self, run: ReadoutRun, chunk: Sequence[Request],
                       reasoning: dict[tuple[int, int], str]) -> list[ScoreRequest]:
        """Per request: every option of its item, scored after its reasoning (if any) and ``<answer>``."""
        return [option_request(r.item, r.sample, r.messages, run.options(r.item),
                               reasoning=reasoning[r.item, r.sample]) for r in chunk]
