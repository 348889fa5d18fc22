"""Discretizers: the rule that turns continuous architecture weights into a genotype.

A discretizer sees, per cell type, the alpha matrix (one row per edge), the ``(input, node)`` of every row and
the primitive names, and returns per node the chosen ``(op, input)`` pairs; the space wraps those in its
genotype type. A discretizer that needs the space itself (a cost budget does) has ``bind(space, input_shape)``,
which the engine calls once and uses the discretizer it returns.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from cdarts.config import Component, PositiveInt, Registered, build
from cdarts.costs.base import Amount, CostTable, Target, parse_target
from cdarts.costs.budget import BudgetFit, fit_budget
from cdarts.errors import ConfigError
from cdarts.genotypes import Edge
from cdarts.registry import discretizers


@dataclass(frozen=True)
class TopK:
    """Per edge the strongest op by softmax weight (``exclude`` left out); per node the ``k`` strongest edges,
    in descending order of weight. ``k=None`` keeps every edge, in input order.

    With a ``budget`` (and once bound to a space), a choice over the budget is changed until it fits, each change
    the swap of one edge's op, or of one edge for another of its node, that loses the least softmax weight per unit
    of cost saved (see ``cdarts.costs.budget``); ``explain`` says what changed.
    """

    k: int | None
    exclude: tuple[str, ...]
    budget: Amount | None = None
    cost: dict | None = None
    table: CostTable | None = None
    limit: float | None = None

    def bind(self, space: Any, input_shape: tuple[int, ...]) -> TopK:
        """This discretizer with its budget's cost table for ``space`` (itself when it has no budget)."""
        if self.budget is None:
            return self
        table = build("costs", self.cost or {"type": "macs"}, space, tuple(input_shape))
        return replace(self, table=table, limit=self.budget.resolve(table, "discretizer budget"))

    def __call__(
        self, alphas: dict[str, Tensor], edges: Sequence[tuple[int, int]], primitives: Sequence[str]
    ) -> dict[str, list[list[Edge]]]:
        return self.explain(alphas, edges, primitives).nodes

    def explain(
        self, alphas: dict[str, Tensor], edges: Sequence[tuple[int, int]], primitives: Sequence[str]
    ) -> BudgetFit:
        """The choice, and (with a bound budget) its cost, the unconstrained choice's cost and the changes made."""
        allowed = [i for i, name in enumerate(primitives) if name not in self.exclude]
        if not allowed:
            raise ConfigError(f"every primitive is excluded ({', '.join(self.exclude)}); nothing to choose from")
        nodes = {cell: self.cell(alpha, edges, primitives, allowed) for cell, alpha in alphas.items()}
        if self.budget is not None and self.table is None:
            raise RuntimeError("a discretizer with a budget must be bound to a space first (bind(space, shape))")
        if self.table is None:
            return BudgetFit(nodes)
        weights = {cell: torch.softmax(alpha.detach().double(), dim=-1) for cell, alpha in alphas.items()}
        return fit_budget(nodes, weights, self.table, self.limit, allowed, self.k is not None)

    def cell(
        self, alpha: Tensor, edges: Sequence[tuple[int, int]], primitives: Sequence[str], allowed: list[int]
    ) -> list[list[Edge]]:
        weights = torch.softmax(alpha.detach().float(), dim=-1)[:, allowed]
        best_weight, best_index = weights.max(dim=-1)
        nodes: dict[int, list[tuple[float, Edge]]] = {}
        for row, (source, node) in enumerate(edges):
            op = primitives[allowed[int(best_index[row])]]
            nodes.setdefault(node, []).append((float(best_weight[row]), (op, source)))
        result = []
        for node in sorted(nodes):
            candidates = nodes[node]
            if self.k is None:
                result.append([edge for _, edge in candidates])
                continue
            if self.k > len(candidates):
                raise ConfigError(f"k={self.k} but node {node} has only {len(candidates)} incoming edges")
            ranked = sorted(candidates, key=lambda item: -item[0])
            result.append([edge for _, edge in ranked[: self.k]])
        return result


@discretizers.register("topk")
def topk(
    *,
    k: PositiveInt = 2,
    exclude: list[Registered("ops")] = ["none"],  # noqa: B006 - schema default
    budget: Target | None = None,
    cost: Component("costs") = {"type": "macs"},  # noqa: B006
) -> TopK:
    """DARTS's rule: top-``k`` incoming edges per node, each with its best non-``none`` op. With a ``budget``
    (``600M``, ``5.4M``, ``12ms``) of ``cost``, a genotype over it is changed until it fits."""
    return TopK(k, tuple(exclude), _budget(budget), cost)


@discretizers.register("argmax")
def argmax(
    *,
    exclude: list[Registered("ops")] = [],  # noqa: B006 - schema default
    budget: Target | None = None,
    cost: Component("costs") = {"type": "macs"},  # noqa: B006
) -> TopK:
    """NAS-Bench-201's rule: every edge keeps its argmax op, ``none`` included; ``budget`` as for ``topk``."""
    return TopK(None, tuple(exclude), _budget(budget), cost)


def _budget(budget: str | float | None) -> Amount | None:
    try:
        return None if budget is None else parse_target(budget)
    except ValueError as exc:
        raise ConfigError(f"budget: {exc}") from None
