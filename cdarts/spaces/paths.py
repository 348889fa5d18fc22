"""One path through a supernet: per cell type, the op each edge runs, or no op at all.

What the sampling strategies (``gdas``, ``rsps``, ``setn``, ``enas``) need from a space beyond the weighted sum, the
same for every space: the supernet runs one path with only the path's ops (``OnePath.one_path``: a step costs about
one discrete network, not the whole supernet), and ``cell_choices`` says what an architecture of the space chooses,
per cell type and node: which of the node's incoming edges (all of them, or ``keep``), and for each its op.

A path is ``{cell type: (op index or OFF, one per alpha row)}``, rows in the space's ``edges`` order and op indices
into its ``primitives``; ``path_from_nodes`` and ``nodes_from_path`` convert to and from a genotype's node lists.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from cdarts.errors import ConfigError
from cdarts.genotypes import Edge

OFF = -1
"""The op index of an edge that the path leaves out (DARTS cells keep ``k`` edges per node)."""

Path = dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class CellChoices:
    """What an architecture of one cell type chooses.

    Attributes:
        nodes: per computed node (in order), the alpha rows of its incoming edges.
        sources: per alpha row, the index of the state the edge reads.
        keep: edges each node keeps (``None``: all of them, as in NAS-Bench-201).
        ops: the primitive indices an edge may run (the discretizer's excluded ops left out).
        num_ops: the number of primitives (the width of an alpha row).
    """

    nodes: tuple[tuple[int, ...], ...]
    sources: tuple[int, ...]
    keep: int | None
    ops: tuple[int, ...]
    num_ops: int


def cell_choices(space: Any, keep: int | None = None, exclude: Sequence[str] = ()) -> dict[str, CellChoices]:
    """Per cell type of ``space``, what an architecture chooses: ``keep`` incoming edges per node (``None``: all) and
    for each one op of the space's primitives but ``exclude``; the genotypes a top-``keep`` discretizer can give."""
    primitives = list(space.primitives)
    ops = tuple(i for i, name in enumerate(primitives) if name not in exclude)
    if not ops:
        raise ConfigError(f"every primitive is excluded ({', '.join(exclude)}); nothing to sample from")
    targets = sorted({node for _, node in space.edges})
    nodes = tuple(tuple(row for row, (_, node) in enumerate(space.edges) if node == target) for target in targets)
    if keep is not None and any(keep > len(rows) for rows in nodes):
        fewest = min(len(rows) for rows in nodes)
        raise ConfigError(f"k={keep} but a node of this space has only {fewest} incoming edges")
    sources = tuple(source for source, _ in space.edges)
    choices = CellChoices(nodes, sources, keep, ops, len(primitives))
    return {cell: choices for cell in space.cell_types}


def path_from_nodes(
    nodes: Mapping[str, Sequence[Sequence[Edge]]], edges: Sequence[tuple[int, int]], primitives: Sequence[str]
) -> Path:
    """The path of a genotype's node lists (``{cell: [[(op, input), ...] per node]}``): its edges on, the rest OFF."""
    targets = sorted({node for _, node in edges})
    rows = {edge: row for row, edge in enumerate(edges)}
    path = {}
    for cell, cell_nodes in nodes.items():
        index = [OFF] * len(edges)
        for target, node in zip(targets, cell_nodes, strict=True):
            for op, source in node:
                index[rows[(source, target)]] = list(primitives).index(op)
        path[cell] = tuple(index)
    return path


def nodes_from_path(path: Path, edges: Sequence[tuple[int, int]], primitives: Sequence[str]) -> dict[str, list]:
    """A path's node lists, inputs in ascending order (what ``space.genotype`` wraps)."""
    targets = sorted({node for _, node in edges})
    return {cell: [[(primitives[index[row]], source) for row, (source, node) in enumerate(edges)
                    if node == target and index[row] != OFF] for target in targets]
            for cell, index in path.items()}


def check_path(path: Path, alphas: Mapping[str, Tensor], weights: Mapping[str, Tensor] | None = None) -> None:
    """Raise ``ValueError`` unless ``path`` (and ``weights``) fit the supernet whose alphas are ``alphas``."""
    if set(path) != set(alphas):
        raise ValueError(f"a path needs the cell types {sorted(alphas)}, got {sorted(path)}")
    for cell, alpha in alphas.items():
        rows, num_ops = alpha.shape
        index = path[cell]
        if len(index) != rows or any(not OFF <= i < num_ops for i in index):
            raise ValueError(f"cell {cell!r}: a path needs {rows} op indices in [{OFF}, {num_ops}), got {index}")
        if weights is not None and tuple(weights[cell].shape) != (rows, num_ops):
            raise ValueError(f"cell {cell!r}: path weights must be {rows}x{num_ops}, got {tuple(weights[cell].shape)}")


class OnePath:
    """Supernet mixin: inside ``with net.one_path(path, weights):`` the forward pass runs only the path's ops.

    ``weights`` (optional, per cell type, shaped like alpha) scales each edge's op: GDAS's hard one-hot samples,
    through which the gradient reaches alpha. Without a path the supernet computes its weighted sum as always.
    """

    path: Path | None = None
    path_weights: dict[str, Tensor] | None = None

    @contextlib.contextmanager
    def one_path(self, path: Path, weights: Mapping[str, Tensor] | None = None) -> Iterator[None]:
        check_path(path, self.alphas(), weights)
        previous = self.path, self.path_weights
        self.path, self.path_weights = dict(path), None if weights is None else dict(weights)
        try:
            yield
        finally:
            self.path, self.path_weights = previous

    def edge_weights(self, cell: str) -> Tensor | None:
        """The current path's weights of ``cell`` (None: the ops run unscaled)."""
        return None if self.path_weights is None else self.path_weights[cell]
