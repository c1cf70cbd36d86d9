"""``logprob-after-reasoning``: the model first writes its reasoning (sampled, cut at ``<answer>``), then the
options are scored after it, so models trained to reason are read the same way as with ``logprob``."""

from __future__ import annotations

from dvmap_verl.evaluation.readouts.base import register_readout
from dvmap_verl.evaluation.readouts.logprob import LogprobReadout
from dvmap_verl.evaluation.readouts.scoring import ANSWER_OPEN


@register_readout
class LogprobAfterReasoningReadout(LogprobReadout):
    name = "logprob-after-reasoning"
    description = "sampled reasoning, then option probabilities"
    single_sample = False
    reasoning_first = True
    stop = (ANSWER_OPEN,)  # the reasoning ends where the answer would begin; the options are scored there
