"""The resource regulariser: a penalty on the expected cost (MACs, parameters, latency) of the architecture.

The expected cost is linear in the op distribution of every edge (softmax of alpha, or a sampling strategy's
distribution), plus the fixed part of the network (see ``cdarts.costs``); with a one-hot distribution it is the exact
cost of the discrete network. Three forms, each in units of ``target`` so that ``weight`` means the same whatever
the cost:

- ``hinge``: ``weight * max(0, cost / target - 1)``: nothing below the target (a target above every architecture's
  cost leaves the search untouched).
- ``absolute``: ``weight * |cost / target - 1|`` (TuNAS): pulls the cost to the target from both sides.
- ``ratio``: ``weight * log(1 + cost / target) ** exponent`` (FBNet's ``w * log(cost)^b``, with the cost in units
  of the target, and added to the loss rather than multiplying it, as every term of a strategy's loss is).

In a short DARTS-family search alpha stays close to uniform, so the expected cost hardly moves while the derived
genotype (an argmax over small differences) follows its gradient much further: a hinge on the expected cost goes on
pushing long after the genotype is under the target. ``straight_through`` evaluates the penalty at the genotype the
discretizer derives now (its one-hot distribution) with the expected cost's gradient, so the push stops once the
genotype fits and resumes if it drifts over.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import torch
from torch import Tensor, nn

from cdarts.config import Component, NonNegativeFloat, Range, build
from cdarts.costs.base import CostTable, Target, format_amount, parse_target
from cdarts.errors import ConfigError
from cdarts.registry import losses

Form = Literal["hinge", "absolute", "ratio"]


class ResourceLoss(nn.Module):
    """``forward(weights)``: the penalty of the expected cost under per-cell-type op ``weights``."""

    def __init__(self, table: CostTable, target: float, form: Form = "hinge", weight: float = 1.0,
                 exponent: float = 0.6, keep: int | None = None, straight_through: bool = False) -> None:
        super().__init__()
        if form not in ("hinge", "absolute", "ratio"):
            raise ValueError(f"resource: form must be 'hinge', 'absolute' or 'ratio', got {form!r}")
        self.table, self.target, self.form = table, float(target), form
        self.weight, self.exponent, self.keep = float(weight), float(exponent), keep
        self.straight_through = straight_through

    def expected(self, weights: Mapping[str, Tensor]) -> Tensor:
        """The expected cost (float64, differentiable; ``keep``: see ``CostTable.expected``)."""
        return self.table.expected(weights, self.keep)

    def forward(self, weights: Mapping[str, Tensor]) -> Tensor:
        ratio = self.expected(weights) / self.target
        if self.form == "hinge":
            penalty = torch.relu(ratio - 1)
        elif self.form == "absolute":
            penalty = (ratio - 1).abs()
        else:
            penalty = torch.log1p(ratio) ** self.exponent
        dtype = next(iter(weights.values())).dtype
        return (self.weight * penalty).to(dtype)

    def hardened(self, weights: Mapping[str, Tensor], genotype: Any) -> dict[str, Tensor]:
        """``weights`` with the values of ``genotype``'s one-hot distribution and the gradient of ``weights``."""
        hard = {g: torch.softmax(a, -1) for g, a in self.table.one_hot(genotype).items()}
        return {g: w + (hard[g].to(w) - w).detach() for g, w in weights.items()}

    def extra_repr(self) -> str:
        return (f"cost={self.table.name}, target={format_amount(self.target, self.table.unit)}, form={self.form!r}, "
                f"weight={self.weight}")


@losses.register("resource")
def resource(
    space: Any,
    input_shape: tuple[int, ...],
    keep: int | None = None,
    *,
    cost: Component("costs") = {"type": "macs"},  # noqa: B006 - schema default
    target: Target | None = None,
    form: Form = "hinge",
    weight: NonNegativeFloat = 1.0,
    exponent: Annotated[float, Range(gt=0, le=10)] = 0.6,
    straight_through: bool = False,
) -> ResourceLoss:
    """A penalty on the expected ``cost`` of the architecture relative to ``target`` (``600M``, ``5.4M``, ``12ms``;
    a bare number is in the cost's unit). ``form``: ``hinge`` (only above the target), ``absolute`` (TuNAS) or
    ``ratio`` (FBNet, ``exponent`` its ``b``). ``straight_through``: the penalty of the derived genotype's exact cost,
    with the expected cost's gradient (see the module docstring). Used as a strategy's ``resource`` slot, which passes
    ``keep``, the edges per node its discretizer keeps (top-k's ``k``; None: all)."""
    if target is None:
        raise ConfigError("resource: 'target' is required, e.g. target: 600M (MACs or parameters) or 12ms (latency)")
    table = build("costs", cost, space, tuple(input_shape))
    value = parse_target(target).resolve(table, f"resource target {target!r}")
    return ResourceLoss(table, value, form, weight, exponent, keep, straight_through)
