"""Discretisation under a budget: change a discretizer's choice, one swap at a time, until its cost fits.

A swap replaces one chosen ``(op, input)`` of a node by another: the same edge with another op, or (when the rule
chooses edges, as top-k does) another edge of the same node with any allowed op. It saves cost and gives up the
softmax weight of the old pair for that of the new. Each step takes the swap that gives up the least weight per unit
of cost saved, unless a swap that alone fits the budget gives up no more than that one (then the least costly such
swap ends it). Every swap lowers the cost, so the loop ends; it ends over the budget only at the cheapest choice the
rule allows, and then the budget is refused.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from torch import Tensor

from cdarts.costs.base import CostTable, format_amount
from cdarts.errors import ConfigError
from cdarts.genotypes import Edge


@dataclass
class BudgetFit:
    """A discretizer's choice (per cell type, per node, ``(op, input)`` pairs) and, under a budget, its cost, the
    choice before any change (``free``) and its cost, and the changes in the order they were made."""

    nodes: dict[str, list[list[Edge]]]
    cost: float | None = None
    unconstrained: float | None = None
    changes: list[str] = field(default_factory=list)
    free: dict[str, list[list[Edge]]] | None = None

    def __post_init__(self) -> None:
        if self.free is None:
            self.free = self.nodes


@dataclass(frozen=True)
class _Swap:
    group: str
    node: int
    slot: int
    row: int
    column: int
    saving: float
    loss: float


def fit_budget(
    nodes: Mapping[str, list[list[Edge]]],
    weights: Mapping[str, Tensor],
    table: CostTable,
    limit: float,
    allowed: list[int],
    choose_edges: bool,
) -> BudgetFit:
    """``nodes`` changed until ``table`` costs them at most ``limit`` (see the module docstring).

    Raises:
        ConfigError: the cheapest choice the rule allows is over ``limit``.
    """
    node_ids = sorted({node for _, node in table.edges})
    rows_of = {node: [r for r, (_, n) in enumerate(table.edges) if n == node] for node in node_ids}
    w = {group: weights[group].tolist() for group in nodes}
    costs = {group: table.rows[group].tolist() for group in nodes}
    chosen = {group: [[(table.row(source, node), table.column(op)) for op, source in edges]
                      for node, edges in zip(node_ids, per_node, strict=False)] for group, per_node in nodes.items()}

    def as_nodes() -> dict[str, list[list[Edge]]]:
        result = {}
        for group, per_node in chosen.items():
            result[group] = []
            for pairs in per_node:
                ordered = sorted(pairs, key=lambda p: -w[group][p[0]][p[1]]) if choose_edges else sorted(pairs)
                result[group].append([(table.primitives[c], table.edges[r][0]) for r, c in ordered])
        return result

    def swaps() -> list[_Swap]:
        found = []
        for group, per_node in chosen.items():
            for index, pairs in enumerate(per_node):
                taken = {r for r, _ in pairs}
                for slot, (row, column) in enumerate(pairs):
                    rows = [row] + ([r for r in rows_of[node_ids[index]] if r not in taken] if choose_edges else [])
                    for new_row in rows:
                        for new_column in allowed:
                            saving = costs[group][row][column] - costs[group][new_row][new_column]
                            if saving > 0:
                                loss = w[group][row][column] - w[group][new_row][new_column]
                                found.append(_Swap(group, index, slot, new_row, new_column, saving, loss))
        return found

    cost = unconstrained = table.choice_cost(as_nodes())
    changes = []
    while cost > limit:
        options = swaps()
        if not options:
            raise ConfigError(f"budget {format_amount(limit, table.unit)} is below the cheapest genotype this "
                              f"discretizer can return ({format_amount(cost, table.unit)})")
        best = min(options, key=lambda s: (s.loss / s.saving, -s.saving))
        finishing = [s for s in options if cost - s.saving <= limit and s.loss <= best.loss]
        move = min(finishing, key=lambda s: (s.loss, -s.saving)) if finishing else best
        row, column = chosen[move.group][move.node][move.slot]
        chosen[move.group][move.node][move.slot] = (move.row, move.column)
        changes.append(
            f"{move.group} node {node_ids[move.node]}: ({table.primitives[column]!r}, {table.edges[row][0]}) -> "
            f"({table.primitives[move.column]!r}, {table.edges[move.row][0]}), "
            f"-{format_amount(move.saving, table.unit)}, weight {w[move.group][row][column]:.3f} -> "
            f"{w[move.group][move.row][move.column]:.3f}"
        )
        cost = table.choice_cost(as_nodes())
    return BudgetFit(as_nodes(), cost, unconstrained, changes, {g: [list(e) for e in n] for g, n in nodes.items()})
