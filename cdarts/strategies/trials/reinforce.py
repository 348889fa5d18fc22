"""REINFORCE over a per-edge categorical policy (Williams 1992; NAS-Bench-201's "RL" baseline, after Zoph & Le 2017).

The policy holds one logit per (edge, op), initialised at 1e-3 times a standard normal as NAS-Bench-201 does. Each
step samples a cell (every edge independently from the softmax of its logits), trains it in simulation, and takes an
Adam step on ``-log p(cell) * (reward - baseline)``, where the reward is the search metric and the baseline its
bias-corrected exponential moving average (momentum 0.9), updated with the reward before the step as in NATS-Bench's
script. The result is the best cell queried (not the policy's argmax), as NAS-Bench-201 reports it.
"""
from __future__ import annotations

import math
from typing import Annotated

import torch

from cdarts.config import Fraction, Range
from cdarts.genotypes import NB201_EDGES
from cdarts.registry import trials
from cdarts.strategies.trials.base import TrialMethod, Trials


class MovingAverage:
    """An exponential moving average with bias correction: the mean of the values seen so far, recent ones weighted
    ``1 / momentum`` times more per step."""

    def __init__(self, momentum: float) -> None:
        self.momentum, self.numerator, self.denominator = momentum, 0.0, 0.0

    def update(self, value: float) -> None:
        self.numerator = self.momentum * self.numerator + (1 - self.momentum) * value
        self.denominator = self.momentum * self.denominator + (1 - self.momentum)

    @property
    def value(self) -> float:
        return self.numerator / self.denominator


class Reinforce(TrialMethod):
    def __init__(self, lr: float, momentum: float) -> None:
        self.lr, self.momentum = lr, momentum
        self.logits: torch.Tensor | None = None
        self.primitives: tuple[str, ...] = ()

    def probabilities(self) -> torch.Tensor:
        """The policy: one row of op probabilities per edge (``NB201_EDGES`` order)."""
        assert self.logits is not None, "run the method first"
        return self.logits.detach().softmax(-1)

    def run(self, trials: Trials) -> None:
        self.primitives = trials.primitives
        generator = torch.Generator().manual_seed(trials.seed)
        self.logits = torch.nn.Parameter(1e-3 * torch.randn(len(NB201_EDGES), len(self.primitives),
                                                            generator=generator, dtype=torch.float64))
        optimizer = torch.optim.Adam([self.logits], lr=self.lr)
        baseline = MovingAverage(self.momentum)
        choices = range(len(self.primitives))
        while True:
            actions = [trials.rng.choices(choices, weights=row)[0] for row in self.probabilities().tolist()]
            reward = trials.query(tuple(self.primitives[a] for a in actions)).value
            if not math.isfinite(reward):
                continue
            baseline.update(reward)
            log_prob = self.logits.log_softmax(-1)[torch.arange(len(actions)), actions].sum()
            loss = -log_prob * (reward - baseline.value)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def summary(self) -> dict:
        rows = self.probabilities().tolist() if self.logits is not None else []
        return {"policy": {f"{i}->{j}": dict(zip(self.primitives, row, strict=True))
                           for (i, j), row in zip(NB201_EDGES, rows, strict=True)}}


@trials.register("reinforce")
def reinforce(*, lr: Annotated[float, Range(gt=0, le=10)] = 0.01, momentum: Fraction = 0.9) -> Reinforce:
    """REINFORCE: Adam at ``lr`` on the policy's logits (NATS-Bench's 0.01), baseline EMA ``momentum``."""
    return Reinforce(lr, momentum)
