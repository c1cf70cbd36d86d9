"""``verbalised``: the distribution the model states itself, asked with the ``distribution`` template.

Not chosen with ``--readout``: a sampling run whose prompts use the distribution template records, per reply that
states a readable distribution, its ``probs`` with ``readout: verbalised`` (:class:`PredictionWriter`), and the
report averages them per item (replies that named a single option instead are left out of the distribution).
"""

from __future__ import annotations

from dvmap_verl.evaluation.readouts.base import register_readout
from dvmap_verl.evaluation.readouts.sampling import SamplingReadout


@register_readout
class VerbalisedReadout(SamplingReadout):
    name = "verbalised"
    description = "the distribution the model states (the distribution template)"
    selectable = False
