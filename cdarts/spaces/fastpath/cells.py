"""A cell's computed nodes on the fast path: supernet cells (weighted sums of every op) and discrete cells (the
genotype's ops), source node by source node, each batch of edges at once where it pays."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from cdarts.spaces.fastpath.edges import edge_op, shared_op
from cdarts.spaces.fastpath.inputs import EdgeInputs, NodeInputs
from cdarts.spaces.fastpath.plan import OpGroup, SourcePlan, Wave, op_kind, split_plan

BATCH_LIMIT = 1 << 19
"""Largest activation (elements, all edges together) for which one grouped conv beats one conv per edge on CPU.

Measured on 2-core AMD EPYC (oneDNN, channels-last, forward + backward of 3x3 and 5x5 depthwise convs, 4 edges):
batched is 2-4x faster at 16K-64K elements per edge, even at 128K, and 1.5-3x slower from 256K up, where the
batched tensor no longer fits the per-core L2 cache. GPUs batch whatever the size (launches, not caches, cost there).
"""


def _accumulate(acc: Tensor | None, out: Tensor, weight: Tensor) -> Tensor:
    weight = weight.to(out.dtype)
    return out * weight if acc is None else torch.addcmul(acc, out, weight)


def batched_sum(nodes: list[NodeInputs], plan: SourcePlan, weights: Tensor) -> Tensor:
    """``sum_k w[e, k] op_k(h_e)`` for all the plan's edges at once, one after the other along the channels.

    Shared ops are added by broadcasting each node's output over its edges (the plan's nodes have equal counts).
    """
    edges, n = len(plan.rows), len(nodes)
    inputs = EdgeInputs(nodes, plan.counts)
    columns = weights.t().reshape(-1, 1, n, edges // n, 1, 1, 1)
    acc = None
    for group in plan.edge_ops:
        out = edge_op(inputs, group, group.modules).unflatten(1, (n, edges // n, -1))
        acc = _accumulate(acc, out, columns[group.column])
    for group in plan.shared_ops:
        outs, per_edge = [], False
        for i, node in enumerate(nodes):
            out, differs = shared_op(node, group, group.modules[i * edges // n : (i + 1) * edges // n])
            outs.append(out)
            per_edge = per_edge or differs
        if per_edge:
            out = torch.cat(outs, 1).unflatten(1, (n, edges // n, -1))
        else:
            out = (outs[0].unsqueeze(1) if n == 1 else torch.stack(outs, 1)).unsqueeze(2)
        acc = _accumulate(acc, out, columns[group.column])
    return acc.flatten(1, 3)


def cell_nodes(
    states: list[Tensor], plans: list[SourcePlan], weights: Tensor, nodes: int, batch_edges: bool
) -> list[Tensor]:
    """The cell's computed nodes from its two inputs in ``states``, source by source.

    Each source adds its edges' terms to the partial sums of the nodes after it; node ``s + 1`` is complete once
    source ``s`` is done. With ``batch_edges`` (and an activation within ``BATCH_LIMIT`` on CPU) a plan's edges run at
    once; otherwise source by source and edge by edge, each op's term added straight into its target's partial sum.
    """
    partial: dict[int, Tensor] = {}
    for joint in plans:
        h = states[joint.sources[0]]
        edges = len(joint.rows)
        batched = batch_edges and edges > 1 and (h.device.type != "cpu" or edges * h.numel() <= BATCH_LIMIT)
        for plan in [joint] if batched else split_plan(joint):
            node_inputs = [NodeInputs(states[source]) for source in plan.sources]
            rows = weights[plan.rows]
            if batched:
                terms = batched_sum(node_inputs, plan, rows).chunk(edges, 1)
                for target, part in zip(plan.targets, terms, strict=True):
                    partial[target] = part if target not in partial else partial[target] + part
            else:
                _edge_by_edge(node_inputs[0], plan, rows, partial)
            if plan.sources[-1] >= 1:
                states.append(partial.pop(plan.sources[-1] + 1))
    if len(states) != 2 + nodes:
        raise RuntimeError(f"computed {len(states) - 2} nodes, expected {nodes}")
    return states[2:]


def _edge_by_edge(node: NodeInputs, plan: SourcePlan, rows: Tensor, partial: dict[int, Tensor]) -> None:
    """One node's edges one at a time, each op's term added straight into the target's partial sum."""
    edges = len(plan.rows)
    shared = [(group, *shared_op(node, group, group.modules)) for group in plan.shared_ops]
    single = EdgeInputs([node], [1])
    for e, target in enumerate(plan.targets):
        acc = partial.get(target)
        for group in plan.edge_ops:
            acc = _accumulate(acc, edge_op(single, group, group.modules[e : e + 1]), rows[e, group.column])
        for group, out, per_edge in shared:
            acc = _accumulate(acc, out.chunk(edges, 1)[e] if per_edge else out, rows[e, group.column])
        partial[target] = acc



def discrete_nodes(
    states: list[Tensor], waves: list[Wave], ops: nn.ModuleDict, finish: Callable[[nn.Module, Tensor], Tensor]
) -> list[Tensor]:
    """The computed nodes of a discrete cell from its two inputs in ``states``, wave by wave; each edge's output
    passes through ``finish(module, output)`` (drop-path) before it is added to its target.

    Within a wave, edges of one group run as one grouped conv (on CPU within ``BATCH_LIMIT``), their shared
    ``relu(h)`` computed once per node; the others run with their own modules.
    """
    partial: dict[int, Tensor] = {}
    for wave in waves:
        node_inputs = {source: NodeInputs(states[source]) for source in wave.sources}
        for group, batchable in zip(wave.groups, wave.batchable, strict=True):
            h = states[group[0].source]
            modules = [ops[edge.key] for edge in group]
            if batchable and (h.device.type != "cpu" or len(group) * h.numel() <= BATCH_LIMIT):
                order = sorted({edge.source for edge in group})
                counts = [sum(edge.source == source for edge in group) for source in order]
                inputs = EdgeInputs([node_inputs[source] for source in order], counts)
                outs = edge_op(inputs, OpGroup(0, op_kind(modules[0]), modules), modules).chunk(len(group), 1)
            else:
                outs = [module(states[edge.source]) for module, edge in zip(modules, group, strict=True)]
            for module, edge, out in zip(modules, group, outs, strict=True):
                out = finish(module, out)
                partial[edge.target] = out if edge.target not in partial else partial[edge.target] + out
        states.append(partial.pop(wave.completes))
    return states[2:]
