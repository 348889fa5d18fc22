"""Which ops the fast path runs how, and the plan of a cell: its edges grouped by input node, then by primitive."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from cdarts.ops.layers import FactorizedReduce, Zero

POOLS = (nn.MaxPool2d, nn.AvgPool2d)

SHARED = ("pool", "identity", "zero")
"""Op kinds whose output is the same for every edge reading a node (pools: in training, where their BN uses batch
statistics); they run once per node."""


def is_stage(module: nn.Module) -> bool:
    """ReLU, one or more zero-padded convs, an optional BatchNorm: DilConv, ReLUConvBN, half a SepConv."""
    children = list(module.children()) if isinstance(module, nn.Sequential) else []
    if len(children) < 2 or not isinstance(children[0], nn.ReLU):
        return False
    *convs, last = children[1:]
    body = convs if isinstance(last, nn.BatchNorm2d) else [*convs, last]
    return bool(body) and isinstance(children[1], nn.Conv2d) and all(
        isinstance(c, nn.Conv2d) and c.padding_mode == "zeros" for c in body
    )


def op_kind(op: nn.Module) -> str:
    """How the fast path computes an op: ``zero``, ``identity``, ``pool``, ``stages``, ``reduce`` or ``other``."""
    if isinstance(op, Zero):
        return "zero"
    if isinstance(op, nn.Identity):
        return "identity"
    if isinstance(op, FactorizedReduce):
        return "reduce"
    if isinstance(op, POOLS) or (
        isinstance(op, nn.Sequential) and len(op) == 2 and isinstance(op[0], POOLS)
        and isinstance(op[1], nn.BatchNorm2d)
    ):
        return "pool"
    if is_stage(op) or (isinstance(op, nn.Sequential) and len(op) > 0 and all(is_stage(m) for m in op)):
        return "stages"
    return "other"


def stages_of(op: nn.Module) -> list[nn.Sequential]:
    return [op] if is_stage(op) else list(op)


@dataclass
class OpGroup:
    """One primitive of one source node: its alpha column, kind, and the modules of the edges reading the node."""

    column: int
    kind: str
    modules: list[nn.Module]


@dataclass
class SourcePlan:
    """The edges that read some nodes: their alpha rows and target nodes (node by node, each in target order) and
    their ops by kind. One node usually; the cell's two input nodes together when their edges run batched."""

    sources: list[int]
    counts: list[int]
    """Edges per source node."""
    rows: list[int]
    targets: list[int]
    edge_ops: list[OpGroup]
    """Ops each edge computes with its own weights (convs, FactorizedReduce, unknown ops)."""
    shared_ops: list[OpGroup]
    """Ops computed once per node for all its edges (see ``SHARED``)."""


def plan_sources(edges: Sequence[tuple[int, int]], mixed_ops: Sequence[nn.Module], skip_zero: bool) -> list[SourcePlan]:
    """Group a cell's edges by input node; ``edges[row] = (source, target)`` and ``mixed_ops[row].ops[column]``.

    The first plan covers nodes 0 and 1 together (both are ready when the cell starts, and every intermediate node
    reads both); ``split_plan`` gives their separate plans.
    """
    plans = []
    sources = sorted({s for s, _ in edges})
    for group in [sources[:2], *([s] for s in sources[2:])]:
        per_source = [sorted((r for r, (s, _) in enumerate(edges) if s == source), key=lambda r: edges[r][1])
                      for source in group]
        rows = [row for source_rows in per_source for row in source_rows]
        ops = []
        for column, op in enumerate(mixed_ops[rows[0]].ops):
            kind = op_kind(op)
            if kind != "zero" or not skip_zero:
                ops.append(OpGroup(column, kind, [mixed_ops[row].ops[column] for row in rows]))
        plans.append(SourcePlan(group, [len(r) for r in per_source], rows, [edges[row][1] for row in rows],
                                [g for g in ops if g.kind not in SHARED], [g for g in ops if g.kind in SHARED]))
    return plans


def split_plan(plan: SourcePlan) -> list[SourcePlan]:
    """One plan per source node of ``plan``."""
    if len(plan.sources) == 1:
        return [plan]
    out, start = [], 0
    for source, count in zip(plan.sources, plan.counts, strict=True):
        part = slice(start, start + count)

        def narrow(groups: list[OpGroup], part: slice = part) -> list[OpGroup]:
            return [OpGroup(g.column, g.kind, g.modules[part]) for g in groups]

        out.append(SourcePlan([source], [count], plan.rows[part], plan.targets[part], narrow(plan.edge_ops),
                              narrow(plan.shared_ops)))
        start += count
    return out


@dataclass
class DiscreteEdge:
    """One op of a discrete cell: it reads node ``source`` and adds into node ``target``; ``key`` names its module."""

    source: int
    target: int
    key: str


@dataclass
class Wave:
    """The edges reading some nodes (the cell's two inputs together, then one computed node at a time), grouped by
    the module kind and structure they share (``batchable``) so that each group can run as one; afterwards node
    ``completes`` has all its terms."""

    sources: list[int]
    groups: list[list[DiscreteEdge]]
    batchable: list[bool]
    completes: int


def plan_discrete(edges: Sequence[DiscreteEdge], ops: nn.ModuleDict, nodes: int) -> list[Wave]:
    """Group a discrete cell's edges by input node, then by primitive: edges whose modules have the same kind and
    parameter shapes (the same primitive at the same stride) can share one grouped conv."""
    waves = []
    for sources in [[0, 1], *([s] for s in range(2, 1 + nodes))]:
        groups: dict[tuple, list[DiscreteEdge]] = {}
        for edge in sorted((e for e in edges if e.source in sources), key=lambda e: e.source):
            module = ops[edge.key]
            kind = op_kind(module)
            shapes = tuple(tuple(p.shape) for p in module.parameters())
            signature = (kind, shapes, repr(module)) if kind in ("stages", "reduce") else (kind, edge.key)
            groups.setdefault(signature, []).append(edge)
        batchable = [signature[0] in ("stages", "reduce") and len(group) > 1 for signature, group in groups.items()]
        waves.append(Wave(sources, list(groups.values()), batchable, sources[-1] + 1))
    return waves
