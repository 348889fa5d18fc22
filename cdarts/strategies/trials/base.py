"""The budgeted loop every multi-trial method runs in: look-ups, a simulated clock, the history and the incumbent.

A method proposes cells; ``Trials.query`` trains each one in simulation (a ``Benchmark.training`` look-up), charges
its training seconds to the clock and records it. A query that would take the clock past the budget is not made:
``BudgetSpent`` ends the method, so the simulated time spent never exceeds the budget (NATS-Bench's scripts check
the clock before a query and let the last one overrun it). Every random choice comes from one seeded
``random.Random``, so a seed gives the same queries on every machine.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

from cdarts.errors import ConfigError, DataError
from cdarts.genotypes import NB201_EDGES, nb201_from_ops
from cdarts.nasbench import Benchmark, Training
from cdarts.registry import unknown_name_message

Ops = tuple[str, ...]


@dataclass(frozen=True)
class Query:
    """One simulated training: the cell, the epochs it was trained to and the search metric it reached then, what
    it cost and the clock after it; ``parent`` is the query it was mutated from (evolution)."""

    index: int
    ops: Ops
    epochs: int
    value: float
    cost_s: float
    clock_s: float
    parent: int | None = None

    @property
    def score(self) -> float:
        """The value to maximise: a cell the benchmark has no number for ranks last."""
        return self.value if math.isfinite(self.value) else -math.inf

    @property
    def arch(self) -> str:
        return str(nb201_from_ops(self.ops))


class BudgetSpent(Exception):
    """The next query would take the simulated clock past the budget: the method ends."""


def search_metric(benchmark: Benchmark, metric: str | None) -> str:
    """The metric a method maximises: ``metric``, or the benchmark's first validation metric (never a test one)."""
    if metric is None:
        found = [m for m in benchmark.metrics if "valid" in m.split("_") or m.startswith("valid")]
        if not found:
            raise ConfigError(f"metric: benchmark {benchmark.name!r} has no validation metric to search on "
                              f"({', '.join(benchmark.metrics)}); name one with metric: ...")
        return found[0]
    if metric not in benchmark.metrics:
        raise ConfigError(f"metric: {unknown_name_message('benchmark metric', metric, list(benchmark.metrics))}")
    return metric


class Trials:
    """The queries of one multi-trial run against ``benchmark`` within ``budget_s`` simulated seconds."""

    def __init__(self, benchmark: Benchmark, metric: str, budget_s: float, seed: int) -> None:
        self.benchmark, self.metric, self.budget_s, self.seed = benchmark, metric, budget_s, seed
        self.rng = random.Random(seed)
        self.primitives: tuple[str, ...] = tuple(benchmark.primitives)
        self.history: list[Query] = []
        self.clock_s = 0.0
        self.refused_s: float | None = None
        """The cost of the query that did not fit in the budget."""
        self._trainings: dict[Ops, Training] = {}

    def training(self, ops: Ops) -> Training:
        """The cell's simulated training (looked up once); free: only ``query`` costs time."""
        if ops not in self._trainings:
            training = self.benchmark.training(str(nb201_from_ops(ops)), self.metric)
            if not training.curve or not (math.isfinite(training.seconds) and training.seconds > 0):
                raise DataError(f"benchmark {self.benchmark.name!r}: cell {nb201_from_ops(ops)} has a training of "
                                f"{len(training.curve)} epochs and {training.seconds} s; expected at least one epoch "
                                "and a positive time")
            self._trainings[ops] = training
        return self._trainings[ops]

    def epochs(self, ops: Ops) -> int:
        """How many epochs the cell's simulated training has (12 for NAS-Bench-201's search results)."""
        return len(self.training(ops).curve)

    def query(self, ops: Ops, epochs: int | None = None, trained: int = 0, parent: int | None = None) -> Query:
        """Train the cell from ``trained`` to ``epochs`` epochs (default: all of its training) in simulation: pay
        those epochs' share of its training seconds and see the metric after epoch ``epochs``.

        Raises:
            BudgetSpent: the epochs do not fit in what is left of the budget (nothing is charged or recorded).
        """
        training = self.training(ops)
        total = len(training.curve)
        epochs = total if epochs is None else epochs
        if not 0 <= trained < epochs <= total:
            raise ValueError(f"cannot train from epoch {trained} to {epochs} of a {total}-epoch training")
        cost = training.seconds if epochs - trained == total else training.seconds * (epochs - trained) / total
        if self.clock_s + cost > self.budget_s:
            self.refused_s = cost
            raise BudgetSpent
        self.clock_s += cost
        query = Query(len(self.history), ops, epochs, training.curve[epochs - 1], cost, self.clock_s, parent)
        self.history.append(query)
        return query

    def random_cell(self) -> Ops:
        """A cell drawn uniformly: each edge's op independently."""
        return tuple(self.rng.choice(self.primitives) for _ in NB201_EDGES)

    def best(self, upto: int | None = None) -> Query | None:
        """The incumbent among the first ``upto`` queries (all by default): the most-trained, then the best value;
        the earliest wins a tie. A short training's value is no evidence against a full one (Hyperband)."""
        history = self.history if upto is None else self.history[:upto]
        return max(history, key=lambda q: (q.epochs, q.score), default=None)


class TrialMethod:
    """A multi-trial search method: ``run`` proposes cells to ``trials.query`` until ``BudgetSpent`` ends it."""

    def run(self, trials: Trials) -> None:
        raise NotImplementedError

    def summary(self) -> dict:
        """What the method learnt besides its queries, for ``summary.json`` (e.g. a policy's probabilities)."""
        return {}
