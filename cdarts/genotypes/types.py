"""The genotype types of the two spaces (DARTS cells, NAS-Bench-201 cells), validated when built, and the size
limits every genotype is held to."""
from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

from cdarts.errors import ConfigError

Edge = tuple[str, int]
"""One chosen ``(op name, input node)`` pair."""

MAX_NODES = 16
"""The most intermediate nodes a cell may have (the DARTS space uses 4, NAS-Bench-201 3): a cell's cost grows with
the square of its nodes, so a larger genotype is refused when parsed, before anything is built from it."""

MAX_EDGES_PER_NODE = MAX_NODES + 1
"""The most ``(op, input)`` pairs one DARTS-cell node may take: as many as the last node of the largest cell has
inputs (DARTS's top-k picks 2)."""


def _edges(pairs: Sequence[Sequence[Any]], where: str) -> tuple[Edge, ...]:
    if not isinstance(pairs, (list, tuple)):
        raise ConfigError(f"{where}: expected a list of (op name, input index) pairs, got {pairs!r}")
    result = []
    for pair in pairs:
        if (
            not isinstance(pair, (list, tuple))
            or len(pair) != 2
            or not isinstance(pair[0], str)
            or isinstance(pair[1], bool)
            or not isinstance(pair[1], int)
        ):
            raise ConfigError(f"{where}: expected (op name, input index) pairs, got {pair!r}")
        result.append((pair[0], pair[1]))
    return tuple(result)


def _concat(values: Sequence[int], edges: tuple[Edge, ...], where: str) -> tuple[int, ...]:
    """The concatenated node indices; their count is the node count, so ``edges`` must divide evenly over it."""
    if not isinstance(values, (list, tuple, range)):
        raise ConfigError(f"{where}_concat: expected a list of node indices, got {values!r}")
    if not values or not edges or len(edges) % len(values):
        raise ConfigError(f"{where}: {len(edges)} edges do not divide evenly over {len(values)} nodes")
    if len(values) > MAX_NODES:
        raise ConfigError(f"{where}: {len(values)} nodes; a cell has at most {MAX_NODES} intermediate nodes")
    if len(edges) // len(values) > MAX_EDGES_PER_NODE:
        raise ConfigError(f"{where}: {len(edges) // len(values)} edges per node; a node takes at most "
                          f"{MAX_EDGES_PER_NODE}")
    try:
        concat = tuple(operator.index(c) for c in values)
    except TypeError:
        raise ConfigError(f"{where}_concat: expected node indices, got {values!r}") from None
    bad = [c for c in concat if not 0 <= c < 2 + len(concat)]
    if bad:
        valid = f"0..{len(concat) + 1}"
        raise ConfigError(f"{where}_concat: no node {bad[0]} in a cell of {len(concat)} nodes (valid: {valid})")
    return concat


@dataclass(frozen=True)
class DartsGenotype:
    """A DARTS-space architecture: per cell type, ``k`` ``(op, input)`` pairs for each intermediate node.

    Inputs 0 and 1 are the outputs of the two previous cells, ``j >= 2`` the cell's node ``j``; the cell output is
    the concatenation of the ``concat`` nodes.
    """

    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]

    space = "darts"

    def __post_init__(self) -> None:
        for cell in ("normal", "reduce"):
            edges = _edges(getattr(self, cell), cell)
            concat = _concat(getattr(self, f"{cell}_concat"), edges, cell)
            object.__setattr__(self, cell, edges)
            object.__setattr__(self, f"{cell}_concat", concat)
            per_node = len(edges) // len(concat)
            for index, (_, source) in enumerate(edges):
                node = 2 + index // per_node
                if not 0 <= source < node:
                    raise ConfigError(f"{cell}: node {node} cannot take input {source} (valid: 0..{node - 1})")

    def nodes(self, cell: str) -> list[list[Edge]]:
        """The cell's edges grouped per intermediate node (node 2 first)."""
        edges, count = getattr(self, cell), len(getattr(self, f"{cell}_concat"))
        per_node = len(edges) // count
        return [list(edges[i * per_node : (i + 1) * per_node]) for i in range(count)]

    def ops(self) -> list[str]:
        """Every op of both cells, normal first."""
        return [op for op, _ in self.normal + self.reduce]

    def to_json(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "normal": [list(e) for e in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [list(e) for e in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    def __str__(self) -> str:
        def fmt(edges: tuple[Edge, ...]) -> str:
            return "[" + ", ".join(f"({op!r}, {i})" for op, i in edges) + "]"

        def rng(concat: tuple[int, ...]) -> str:
            contiguous = list(concat) == list(range(concat[0], concat[-1] + 1))
            return f"range({concat[0]}, {concat[-1] + 1})" if contiguous else str(list(concat))

        return (
            f"Genotype(normal={fmt(self.normal)}, normal_concat={rng(self.normal_concat)}, "
            f"reduce={fmt(self.reduce)}, reduce_concat={rng(self.reduce_concat)})"
        )


@dataclass(frozen=True)
class NB201Genotype:
    """A NAS-Bench-201 cell: for nodes 1..3, one op per incoming edge from every earlier node."""

    node_edges: tuple[tuple[Edge, ...], ...]

    space = "nas-bench-201"

    def __post_init__(self) -> None:
        if not isinstance(self.node_edges, (list, tuple)):
            raise ConfigError(f"expected one list of (op, input) pairs per node, got {self.node_edges!r}")
        if len(self.node_edges) > MAX_NODES:
            raise ConfigError(f"{len(self.node_edges)} nodes; a cell has at most {MAX_NODES}")
        nodes = tuple(_edges(node, f"node {j + 1}") for j, node in enumerate(self.node_edges))
        for j, node in enumerate(nodes, start=1):
            if sorted(i for _, i in node) != list(range(j)):
                raise ConfigError(f"node {j} must have exactly one edge from each of nodes 0..{j - 1}, got {node!r}")
        object.__setattr__(self, "node_edges", nodes)

    def nodes(self, cell: str = "cell") -> list[list[Edge]]:
        return [list(node) for node in self.node_edges]

    def ops(self) -> list[str]:
        return [op for node in self.node_edges for op, _ in node]

    def to_json(self) -> dict[str, Any]:
        return {"space": self.space, "arch": str(self)}

    def __str__(self) -> str:
        return "+".join("|" + "|".join(f"{op}~{i}" for op, i in node) + "|" for node in self.node_edges)


Genotype = Union[DartsGenotype, NB201Genotype]  # noqa: UP007 - a runtime alias, valid on Python 3.10 too
