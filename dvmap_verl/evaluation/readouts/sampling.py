"""``sampling``: the empirical distribution of the parsed answers of an item's ``--samples`` samples.

Each sample is generated and its answer read as the reward reads it (:mod:`dvmap_verl.reward.answers`); the report
counts the parsed answers per item (an item none of whose samples parsed is unreadable, and counted).
"""

from __future__ import annotations

from typing import Sequence

from dvmap_verl.evaluation.backends import Request
from dvmap_verl.evaluation.readouts.base import Readout, ReadoutRun, register_readout


@register_readout
class SamplingReadout(Readout):
    name = "sampling"
    description = "parsed answers of --samples samples"

    def run(self, run: ReadoutRun, requests: Sequence[Request]) -> None:
        run.backend.run(requests, run.record_reply, run.on_error)
