"""Readouts: one probability vector over an item's options, from what a model does. A registry
(:mod:`.base`): each readout is one module here, registered by name; ``dvmap eval --readout`` offers the
selectable ones (:func:`readout_names`), and a plugin adds more (:mod:`dvmap_verl.plugins`).

- ``sampling``: the empirical distribution of the parsed answers of the item's samples (computed by the report).
- ``logprob``: the probability of each option's text right after the prompt and ``<answer>``, normalised over the
  options; no sampling.
- ``logprob-after-reasoning``: the model first writes its reasoning (sampled, cut at ``<answer>``), then the options
  are scored after it, so models trained to reason are read the same way.
- ``verbalised``: the distribution the model states itself (the ``distribution`` template).

How options are scored (exact tokenisation across the answer tag) is :mod:`.scoring`.
"""

from __future__ import annotations

import importlib
import pkgutil

from dvmap_verl.evaluation.readouts.scoring import (ANSWER_CLOSE, ANSWER_OPEN, OnScore, ScoreRequest, Scores,
                                                    common_prefix_len, cut_reasoning, normalise, option_request,
                                                    scoring_start)
from dvmap_verl.evaluation.readouts.base import (Readout, ReadoutRun, as_scoring, find_readout, get_readout,
                                                 readout_names, register_readout)
# The built-in readouts, registered in this order (the order of --readout's choices).
from dvmap_verl.evaluation.readouts.sampling import SamplingReadout
from dvmap_verl.evaluation.readouts.logprob import SCORING_CHUNK, LogprobReadout
from dvmap_verl.evaluation.readouts.logprob_after_reasoning import LogprobAfterReasoningReadout
from dvmap_verl.evaluation.readouts.verbalised import VerbalisedReadout

# Any other module of this package is a readout too: adding one is adding its file (registered after these).
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
del _module

#: The built-in readouts and those that read option probabilities (kept for older imports; the registry,
#: :func:`readout_names`, also holds the readouts plugins add).
READOUTS = ("sampling", "logprob", "logprob-after-reasoning", "verbalised")
PROBABILITY_READOUTS = ("logprob", "logprob-after-reasoning")

__all__ = ["ANSWER_CLOSE", "ANSWER_OPEN", "OnScore", "ScoreRequest", "Scores", "common_prefix_len", "cut_reasoning",
           "normalise", "option_request", "scoring_start", "Readout", "ReadoutRun", "as_scoring", "find_readout",
           "get_readout", "readout_names", "register_readout", "SamplingReadout", "LogprobReadout",
           "LogprobAfterReasoningReadout", "VerbalisedReadout", "SCORING_CHUNK", "READOUTS", "PROBABILITY_READOUTS"]
