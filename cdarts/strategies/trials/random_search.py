"""Random search (RS) without weight sharing (Bergstra & Bengio 2012; NAS-Bench-201's "RS" baseline): cells drawn
uniformly, each trained in simulation, until the budget is spent; the best one found is the result."""
from __future__ import annotations

from cdarts.registry import trials
from cdarts.strategies.trials.base import TrialMethod, Trials


class RandomSearch(TrialMethod):
    def run(self, trials: Trials) -> None:
        while True:
            trials.query(trials.random_cell())


@trials.register("random")
def random_search() -> RandomSearch:
    """Random search: uniform cells until the simulated budget is spent (no parameters)."""
    return RandomSearch()
