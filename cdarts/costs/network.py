"""The network a cost is about, and every (cell, edge, candidate op) slot of it at the shape it runs at.

The network is the space's discrete network (``space.discrete``: the search width, the evaluation depth, unless
``channels``/``layers`` say otherwise) built with *every* candidate op in each cell's pool, as the weight-shared
evaluation network E holds them. Shapes are read, not derived: forward hooks on the pool's op modules record what
each edge reads and writes during dummy forwards, one per probe genotype, the probes together covering every
(node, input) pair of every cell. So the same code serves any cell wiring, stem or reduction pattern of a space.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from torch import nn

from cdarts.errors import ConfigError
from cdarts.genotypes import Edge, Genotype
from cdarts.registry import unknown_name_message


@dataclass(frozen=True)
class Layout:
    """How costs read a space's networks (spaces differ in these few points only).

    Attributes:
        groups: the cell types, as the supernet's ``alphas()`` names them.
        depth: the discrete network's depth keyword, and the space attribute that holds its default.
        one_per_node: a genotype takes one edge per node in a probe (DARTS: ``k`` edges per node, uniform) rather
            than every edge (NAS-Bench-201: a cell has them all).
        group_of: the cell type of a network cell.
        options: the keyword arguments that make ``space.discrete`` hold every candidate and call each op module.
    """

    groups: tuple[str, ...]
    depth: tuple[str, str]
    one_per_node: bool
    group_of: Callable[[nn.Module], str]
    options: Callable[[Any], dict[str, Any]]


LAYOUTS: dict[str, Layout] = {
    "darts": Layout(
        ("normal", "reduce"), ("layers", "eval_layers"), True,
        lambda cell: "reduce" if cell.reduction else "normal",
        lambda space: {"shared": True, "nodes": space.nodes, "primitives": space.primitives, "batch_edges": False},
    ),
    "nas-bench-201": Layout(
        ("cell",), ("cells_per_stage", "cells_per_stage"), False, lambda cell: "cell",
        lambda space: {"shared": True, "primitives": space.primitives},
    ),
}

_KEY = re.compile(r"^n(\d+)_i(\d+)_(.+)$")
"""A cell pool's module key: ``n{node}_i{input}_{op}``."""


def layout(space: Any) -> Layout:
    name = getattr(space, "name", type(space).__name__)
    if name not in LAYOUTS:
        raise ConfigError(f"costs: {unknown_name_message('space', name, list(LAYOUTS))} (costs know these spaces)")
    return LAYOUTS[name]


@dataclass(frozen=True)
class Slot:
    """One candidate op in one cell: its alpha row and column, its module, and the shapes it reads and writes."""

    cell: int
    group: str
    row: int
    op: str
    module: nn.Module
    shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    @property
    def signature(self) -> str:
        """``sep_conv_3x3:16x32x32->16x16x16``: the op and its shapes, which fix its module's construction; a
        latency table times each signature once."""
        return f"{self.op}:{'x'.join(map(str, self.shape))}->{'x'.join(map(str, self.out_shape))}"


class CostNetwork:
    """The candidate network of ``space`` at ``input_shape`` (``channels``/``layers`` override the sizes), its slots,
    and the probe genotypes that ran it."""

    def __init__(
        self, space: Any, input_shape: tuple[int, ...], channels: int | None = None, layers: int | None = None
    ) -> None:
        self.space, self.layout = space, layout(space)
        key, default = self.layout.depth
        self.input_shape = tuple(int(d) for d in input_shape)
        self.sizes = {"channels": channels or space.channels, key: layers or getattr(space, default)}
        with torch.random.fork_rng(devices=[]):  # building must not move the run's random stream
            self.network = space.discrete(None, **self.layout.options(space), **self.sizes).eval()
        self.edges = tuple(space.edges)
        self.primitives = tuple(space.primitives)
        self.probes = self.probe_genotypes()
        self.slots = self._slots()

    @property
    def groups(self) -> tuple[str, ...]:
        return self.layout.groups

    def description(self) -> dict[str, Any]:
        """What the numbers are about: space, sizes, input shape, primitives, and a fingerprint of the structure
        (every slot's signature and every other parameter's shape), JSON-ready."""
        slots = sorted(f"{s.cell}/{s.group}/{s.row}/{s.signature}" for s in self.slots)
        pooled = {id(p) for s in self.slots for p in s.module.parameters()}
        others = [f"{name}:{tuple(p.shape)}" for name, p in self.network.named_parameters() if id(p) not in pooled]
        digest = hashlib.sha256("\n".join(slots + others).encode()).hexdigest()[:16]
        return {"space": self.space.name, **self.sizes, "input_shape": list(self.input_shape),
                "num_classes": self.space.num_classes, "primitives": list(self.primitives), "fingerprint": digest}

    def genotype(self, nodes: dict[str, list[list[Edge]]]) -> Genotype:
        return self.space.genotype(nodes)

    def probe_genotypes(self, op: str | None = None) -> list[Genotype]:
        """Genotypes of one op (default: the first that is not ``none``) whose union covers every (node, input)
        pair."""
        op = op or next((p for p in self.primitives if p != "none"), None)
        if op is None:
            raise ConfigError("costs: the space has no candidate op but 'none'")
        node_ids = sorted({node for _, node in self.edges})
        sources = {node: [s for s, n in self.edges if n == node] for node in node_ids}
        if not self.layout.one_per_node:
            return [self.genotype({g: [[(op, s) for s in sources[n]] for n in node_ids] for g in self.groups})]
        count = max(len(s) for s in sources.values())
        return [self.genotype({g: [[(op, sources[n][p % len(sources[n])])] for n in node_ids] for g in self.groups})
                for p in range(count)]

    def _slots(self) -> list[Slot]:
        shapes: dict[tuple[int, int, int], tuple[tuple[int, ...], tuple[int, ...]]] = {}
        handles = []
        for index, cell in enumerate(self.network.cells):
            for key, module in cell.ops.items():
                node, source, _ = _parse_key(key)

                def record(_module, args, output, where=(index, node, source)) -> None:
                    shapes[where] = (tuple(args[0].shape[1:]), tuple(output.shape[1:]))

                handles.append(module.register_forward_hook(record))
        try:
            with torch.no_grad():
                for probe in self.probes:
                    self.network.select(probe)
                    self.network(torch.zeros(1, *self.input_shape))
        finally:
            for handle in handles:
                handle.remove()
        slots = []
        for index, cell in enumerate(self.network.cells):
            group = self.layout.group_of(cell)
            for key, module in cell.ops.items():
                node, source, op = _parse_key(key)
                shape, out_shape = shapes[(index, node, source)]
                row = self.edges.index((source, node))
                slots.append(Slot(index, group, row, op, module, shape, out_shape))
        return slots

    @cached_property
    def signatures(self) -> dict[str, Slot]:
        """One slot per distinct signature, in first-seen order."""
        found: dict[str, Slot] = {}
        for slot in self.slots:
            found.setdefault(slot.signature, slot)
        return found

    def probe_slots(self, probe: Genotype) -> list[Slot]:
        """The slots ``probe`` runs (its ops in every cell)."""
        chosen = set()
        node_ids = sorted({node for _, node in self.edges})
        for group in self.groups:
            for node, edges in zip(node_ids, probe.nodes(group), strict=False):
                chosen |= {(group, self.edges.index((source, node)), op) for op, source in edges}
        return [s for s in self.slots if (s.group, s.row, s.op) in chosen]


def _parse_key(key: str) -> tuple[int, int, str]:
    match = _KEY.match(key)
    if match is None:
        raise ValueError(f"unexpected op key {key!r} in a cell pool (expected n<node>_i<input>_<op>)")
    return int(match.group(1)), int(match.group(2)), match.group(3)


def table_rows(network: CostNetwork, cost: Callable[[Slot], float]) -> dict[str, torch.Tensor]:
    """Per cell type, ``cost(slot)`` summed over the cells of that type, as ``(edges, primitives)`` float64. ``none``
    costs nothing: an edge whose op is ``none`` is no edge (a genotype leaves it out)."""
    rows = {g: torch.zeros(len(network.edges), len(network.primitives), dtype=torch.float64) for g in network.groups}
    for slot in network.slots:
        if slot.op == "none":
            continue
        rows[slot.group][slot.row, network.primitives.index(slot.op)] += cost(slot)
    return rows
