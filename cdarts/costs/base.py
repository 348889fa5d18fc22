"""What every cost is: a number per (cell type, edge, candidate op) of a space, plus a fixed part.

A ``CostTable`` holds, for each cell type (an alpha matrix: ``normal``/``reduce`` in DARTS, ``cell`` in
NAS-Bench-201), the cost of each candidate op on each edge summed over every cell of that type in the network the
cost is about, and the fixed part (stem, cell preprocessing, classifier, NAS-Bench-201's residual blocks). The
expected cost of a distribution over ops is then linear in it, and for a genotype (a one-hot distribution) it is the
exact cost of the discrete network: what ``cdarts-inspect`` counts.

Targets and budgets are written with units: ``600M`` or ``5.4M`` (MACs, parameters), ``12ms`` or ``800us``
(latency); a bare number is in the cost's own unit.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import torch
from torch import Tensor

from cdarts.config import Parsed
from cdarts.errors import ConfigError
from cdarts.genotypes import Edge, Genotype

Quantity = Literal["count", "time"]

COUNT_UNITS = {"": 1.0, "K": 1e3, "k": 1e3, "M": 1e6, "G": 1e9}
TIME_UNITS = {"us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}
"""Unit suffixes: counts in units of one, times in milliseconds (the latency tables' unit)."""

_AMOUNT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(K|k|M|G|ms|us|µs|s)?\s*$")
TARGET_HELP = "a positive number with an optional unit: 600M, 5.4M, 250K, 1.2G (MACs, parameters), 12ms, 800us"


@dataclass(frozen=True)
class Amount:
    """A parsed target: ``value`` in units of one (counts) or milliseconds (times); ``quantity`` None when the text
    had no unit (then it is in whatever unit the cost has)."""

    value: float
    quantity: Quantity | None

    def resolve(self, table: CostTable, what: str = "target") -> float:
        """The amount in ``table``'s unit; a count given for a latency (or a time for a count) is an error."""
        if self.quantity is not None and self.quantity != table.quantity:
            given = "a latency" if self.quantity == "time" else "a count"
            example = "12ms" if table.quantity == "time" else "600M"
            raise ConfigError(f"{what} is {given}, but the {table.name!r} cost is measured in {table.unit} "
                              f"(give e.g. {example})")
        return self.value


def parse_target(value: Any) -> Amount:
    """``600M`` -> 6e8 (a count), ``12ms`` -> 12.0 (milliseconds), ``0.5`` -> 0.5 (the cost's unit).

    Raises:
        ValueError: naming the value and the accepted forms (the config validator reports it with its path).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"invalid target {value!r}; expected {TARGET_HELP}")
    if isinstance(value, str):
        match = _AMOUNT.match(value)
        if match is None:
            raise ValueError(f"invalid target {value!r}; expected {TARGET_HELP}")
        number, unit = float(match.group(1)), match.group(2) or ""
        quantity: Quantity | None = "time" if unit in TIME_UNITS else ("count" if unit else None)
        number *= TIME_UNITS[unit] if unit in TIME_UNITS else COUNT_UNITS[unit]
    else:
        number, quantity = float(value), None
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"invalid target {value!r}; expected {TARGET_HELP}")
    return Amount(number, quantity)


Target = Annotated[str | float, Parsed(parse_target)]
"""A config value ``parse_target`` reads: ``600M``, ``5.4M``, ``12ms`` or a bare positive number."""


def format_amount(value: float, unit: str) -> str:
    """``612.3M MACs``, ``1.02M params``, ``3.41 ms``."""
    if unit == "ms":
        return f"{value:.3g} ms" if value < 100 else f"{value:.1f} ms"
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.4g}{suffix} {unit}"
    return f"{value:.0f} {unit}"


@dataclass
class CostTable:
    """Per cell type a ``(edges, primitives)`` float64 matrix of op costs, and the fixed part.

    Attributes:
        name: the registered cost (``macs``, ``params``, ``latency``).
        unit: what one unit is (``MACs``, ``params``, ``ms``).
        quantity: ``count`` or ``time``, which target units apply.
        rows: cell type -> costs, rows in the space's ``edges`` order, columns in ``primitives`` order.
        fixed: the cost of everything that is not a candidate op.
        network: what network the numbers are about (space, sizes, input shape): shown in reports and checked
            against latency tables.
        device: the device a latency table was measured on; None for counts.
    """

    name: str
    unit: str
    quantity: Quantity
    rows: dict[str, Tensor]
    fixed: float
    primitives: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    network: dict[str, Any] = field(default_factory=dict)
    device: dict[str, Any] | None = None

    def expected(self, weights: Mapping[str, Tensor], keep: int | None = None) -> Tensor:
        """``fixed + sum`` over cell types of ``weights * rows``: the expected cost when each edge draws its op from
        ``weights`` (softmax of alpha, or a sampling strategy's distribution). Differentiable in ``weights``.

        ``keep=k`` is for a discretizer that keeps ``k`` edges per node (top-k): each edge's cost then counts with
        its share of the node's edges, ``min(1, k * s / sum(s))`` of its non-``none`` weight ``s`` (without that an
        expected DARTS cell would have all 14 edges where its genotype has 8). Both agree with a genotype's exact
        cost when the weights are one-hot (``none`` on the edges it leaves out).
        """
        missing = sorted(set(self.rows) - set(weights))
        if missing:
            raise ValueError(f"no op weights for cell type(s) {', '.join(missing)}; got {', '.join(weights)}")
        total = torch.tensor(self.fixed, dtype=torch.float64)
        for group, costs in self.rows.items():
            w = weights[group].to(torch.float64)
            per_edge = (w * costs.to(w.device)).sum(-1)
            if keep is not None:
                per_edge = per_edge * self.keep_share(w, keep)
            total = total.to(w.device) + per_edge.sum()
        return total

    def keep_share(self, w: Tensor, keep: int) -> Tensor:
        """Per edge, ``min(1, keep / sum(s))`` over the edges of its node, ``s`` their non-``none`` weights, divided
        by its own ``s``: times its (non-``none``) expected cost, the cost it adds when ``keep`` edges per node stay."""
        strength = 1 - w[:, self.primitives.index("none")] if "none" in self.primitives else torch.ones_like(w[:, 0])
        strength = strength.clamp_min(1e-12)
        node_ids = sorted({node for _, node in self.edges})
        nodes = torch.tensor([node_ids.index(node) for _, node in self.edges], device=w.device)
        totals = torch.zeros(len(node_ids), dtype=w.dtype, device=w.device).index_add(0, nodes, strength)
        return torch.minimum(1 / strength, keep / totals[nodes])

    def choice_cost(self, nodes: Mapping[str, Sequence[Sequence[Edge]]]) -> float:
        """The exact cost of a discretizer's choice: per cell type, per node (first node first), ``(op, input)``."""
        total = self.fixed
        node_ids = sorted({node for _, node in self.edges})
        for group, per_node in nodes.items():
            costs = self.rows[group]
            for node, edges in zip(node_ids, per_node, strict=False):
                for op, source in edges:
                    total += float(costs[self.row(source, node), self.column(op)])
        return total

    def genotype_cost(self, genotype: Genotype) -> float:
        """The exact cost of ``genotype``'s discrete network (equal to counting it, see the module docstring)."""
        return self.choice_cost({group: genotype.nodes(group) for group in self.rows})

    def one_hot(self, genotype: Genotype, scale: float = 1e4) -> dict[str, Tensor]:
        """Alphas whose softmax is ``genotype`` exactly: each chosen ``(op, input)`` has weight 1 on its edge, every
        other edge all its weight on ``none`` (needs ``none`` among the primitives when edges are left out)."""
        node_ids = sorted({node for _, node in self.edges})
        alphas = {}
        for group in self.rows:
            chosen: dict[int, int] = {}
            for node, edges in zip(node_ids, genotype.nodes(group), strict=False):
                for op, source in edges:
                    chosen[self.row(source, node)] = self.column(op)
            if len(chosen) < len(self.edges) and "none" not in self.primitives:
                raise ValueError("a genotype that leaves edges out is one-hot only over primitives with 'none'")
            alpha = torch.zeros(len(self.edges), len(self.primitives))
            for row in range(len(self.edges)):
                alpha[row, chosen[row] if row in chosen else self.primitives.index("none")] = scale
            alphas[group] = alpha
        return alphas

    def row(self, source: int, node: int) -> int:
        try:
            return self.edges.index((source, node))
        except ValueError:
            raise ConfigError(f"no edge from input {source} to node {node} in this space") from None

    def column(self, op: str) -> int:
        try:
            return self.primitives.index(op)
        except ValueError:
            raise ConfigError(f"op {op!r} is not a candidate of this space ({', '.join(self.primitives)})") from None

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: the cost's name and unit, its fixed part, the network and (latency) the device."""
        return {"cost": self.name, "unit": self.unit, "fixed": self.fixed, "network": self.network,
                "device": self.device}
