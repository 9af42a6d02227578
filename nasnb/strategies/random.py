"""Random search: sample uniformly, keep the best.

The baseline every NAS method must beat, and often a hard one: with a good search space and the
same budget, random search matched several published methods (Li & Talwalkar, "Random Search and
Reproducibility for Neural Architecture Search", UAI 2019; Yang et al., "NAS evaluation is
frustratingly hard", ICLR 2020).
"""
from __future__ import annotations

from nasnb.strategies.base import Strategy


class RandomSearch(Strategy):
    """Each step samples an architecture uniformly from the space, independently of the past."""

    replayable = True  # propose() draws only from self.rng (a checkpoint may replay it: storage.py)

    def propose(self):
        return self.space.sample(self.rng), {}
