"""Discretizers: the rule that turns continuous architecture weights into a genotype.

A discretizer sees, per cell type, the alpha matrix (one row per edge), the ``(input, node)`` of every row and
the primitive names, and returns per node the chosen ``(op, input)`` pairs; the space wraps those in its
genotype type.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from cdarts.config import PositiveInt, Registered
from cdarts.errors import ConfigError
from cdarts.genotypes import Edge
from cdarts.registry import discretizers


@dataclass(frozen=True)
class TopK:
    """Per edge the strongest op by softmax weight (``exclude`` left out); per node the ``k`` strongest edges,
    in descending order of weight. ``k=None`` keeps every edge, in input order."""

    k: int | None
    exclude: tuple[str, ...]

    def __call__(
        self, alphas: dict[str, Tensor], edges: Sequence[tuple[int, int]], primitives: Sequence[str]
    ) -> dict[str, list[list[Edge]]]:
        allowed = [i for i, name in enumerate(primitives) if name not in self.exclude]
        if not allowed:
            raise ConfigError(f"every primitive is excluded ({', '.join(self.exclude)}); nothing to choose from")
        return {cell: self.cell(alpha, edges, primitives, allowed) for cell, alpha in alphas.items()}

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
def topk(*, k: PositiveInt = 2, exclude: list[Registered("ops")] = ["none"]) -> TopK:  # noqa: B006 - schema default
    """DARTS's rule: top-``k`` incoming edges per node, each with its best non-``none`` op."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return TopK(k, tuple(exclude))


@discretizers.register("argmax")
def argmax(*, exclude: list[Registered("ops")] = []) -> TopK:  # noqa: B006 - schema default
    """NAS-Bench-201's rule: every edge keeps its argmax op, ``none`` included."""
    return TopK(None, tuple(exclude))
