"""Regularized (aging) evolution, REA (Real et al. 2019, "Regularized Evolution for Image Classifier Architecture
Search", Algorithm 1), with NAS-Bench-201's settings: population 10, tournament sample 3.

A population of random cells; each cycle samples ``sample`` members (with replacement, as Algorithm 1 does), mutates
the best of them on one edge into a child, adds the child and removes the *oldest* member, whatever its accuracy.
The result is the best cell ever queried.
"""
from __future__ import annotations

from collections import deque
from typing import Annotated

from cdarts.config import Range
from cdarts.errors import ConfigError
from cdarts.registry import trials
from cdarts.strategies.trials.base import Ops, Query, TrialMethod, Trials

Members = Annotated[int, Range(ge=1, le=10_000)]


def mutate(ops: Ops, trials: Trials) -> Ops:
    """The cell with one edge (uniformly chosen) switched to another op (uniformly chosen among the others)."""
    edge = trials.rng.randrange(len(ops))
    op = trials.rng.choice([p for p in trials.primitives if p != ops[edge]])
    return ops[:edge] + (op,) + ops[edge + 1:]


class Evolution(TrialMethod):
    def __init__(self, population: int, sample: int) -> None:
        self.size, self.sample = population, sample
        self.population: deque[Query] = deque()
        """The living members, oldest first."""

    def initialize(self, trials: Trials) -> None:
        """Fill the population with random cells."""
        while len(self.population) < self.size:
            self.population.append(trials.query(trials.random_cell()))

    def step(self, trials: Trials) -> Query:
        """One cycle: tournament, mutation, the child in, the oldest out."""
        contenders = [trials.rng.choice(self.population) for _ in range(self.sample)]
        parent = max(contenders, key=lambda q: q.score)
        child = trials.query(mutate(parent.ops, trials), parent=parent.index)
        self.population.append(child)
        self.population.popleft()
        return child

    def run(self, trials: Trials) -> None:
        self.initialize(trials)
        while True:
            self.step(trials)


@trials.register("evolution")
def evolution(*, population: Members = 10, sample: Members = 3) -> Evolution:
    """REA: ``population`` cells alive at a time, the parent the best of ``sample`` drawn from them."""
    if sample > population:
        raise ConfigError(f"strategy.sample: {sample} is more than strategy.population ({population}); a tournament "
                          "samples from the population")
    return Evolution(population, sample)
