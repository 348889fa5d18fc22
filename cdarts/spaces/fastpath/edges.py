"""One primitive for a batch of edges: staged convs, FactorizedReduce and shared ops (pools, skip, zero) computed
from the edges' shared inputs, grouped where the plan allows."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cdarts.ops.layers import FactorizedReduce
from cdarts.spaces.fastpath.grouped import bn_group, conv_group, phase_dilation, reads_stride_grid, shared_bn
from cdarts.spaces.fastpath.inputs import EdgeInputs, NodeInputs
from cdarts.spaces.fastpath.layout import from_phases, keep_layout
from cdarts.spaces.fastpath.plan import OpGroup, stages_of


def run_stages(inputs: EdgeInputs, stages: list[list[nn.Sequential]]) -> Tensor:
    """Stage by stage (each: ReLU, convs, BN) for all the edges at once; ``stages[j]`` holds every edge's stage j.
    The first stage reads the nodes' shared ``relu(h)``, or its stride grid or phases (see ``conv_group``)."""
    x = None
    for j, stage in enumerate(stages):
        layers = [list(edge_stage)[1:] for edge_stage in stage]
        first = [edge_layers[0] for edge_layers in layers]
        d = phase_dilation(first[0], inputs.h.shape[-2:]) if j == 0 else 0
        if d and not all(_pointwise(m) for m in layers[0][1:]):
            d = 0
        if j > 0:
            x = conv_group(F.relu(x), first)
        elif d:
            x = conv_group(inputs.phases(d), first, grid=d)
        elif reads_stride_grid(first[0]):
            x = conv_group(inputs.sampled(0, first[0].stride), first, grid=first[0].stride[0])
        else:
            x = conv_group(inputs.relu(), first)
        for depth in range(1, len(layers[0])):
            modules = [edge_layers[depth] for edge_layers in layers]
            x = bn_group(x, modules) if isinstance(modules[0], nn.BatchNorm2d) else conv_group(x, modules)
        if d:
            x = from_phases(x, d)
    return x


def _pointwise(module: nn.Module) -> bool:
    """Position-independent: a 1x1 unstrided conv or a BatchNorm (they may run on pixel grids)."""
    if isinstance(module, nn.BatchNorm2d):
        return True
    return module.kernel_size == (1, 1) and module.stride == (1, 1) and module.padding in ((0, 0), "valid")


def factorized_reduce(inputs: EdgeInputs, ops: list[FactorizedReduce]) -> Tensor:
    """FactorizedReduce of the edges: 1x1 convs on the even and the odd pixel grid of ``relu(h)``."""
    conv_1, conv_2 = ops[0].conv_1, ops[0].conv_2
    if min(inputs.h.shape[-2:]) >= 2 and reads_stride_grid(conv_1) and reads_stride_grid(conv_2):
        out_1 = conv_group(inputs.sampled(0, conv_1.stride), [op.conv_1 for op in ops], conv_1.stride[0])
        out_2 = conv_group(inputs.sampled(1, conv_2.stride), [op.conv_2 for op in ops], conv_2.stride[0])
    else:
        relu = inputs.relu()
        shifted = keep_layout(relu)[:, :, 1:, 1:] if min(relu.shape[-2:]) >= 2 else relu
        out_1 = conv_group(relu, [op.conv_1 for op in ops])
        out_2 = conv_group(shifted, [op.conv_2 for op in ops])
    if out_2.shape[-2:] != out_1.shape[-2:]:
        pad_w, pad_h = out_1.shape[-1] - out_2.shape[-1], out_1.shape[-2] - out_2.shape[-2]
        out_2 = F.pad(out_2, (0, pad_w, 0, pad_h))
    edges = len(ops)
    halves = [half for pair in zip(out_1.chunk(edges, 1), out_2.chunk(edges, 1), strict=True) for half in pair]
    return bn_group(torch.cat(halves, 1), [op.bn for op in ops])


def edge_op(inputs: EdgeInputs, group: OpGroup, modules: list[nn.Module]) -> Tensor:
    """One primitive for the edges of ``inputs`` (``modules``: theirs), outputs one after the other along the
    channels."""
    if group.kind == "stages":
        stages = [stages_of(op) for op in modules]
        return run_stages(inputs, [list(s) for s in zip(*stages, strict=True)])
    if group.kind == "reduce":
        return factorized_reduce(inputs, modules)
    return torch.cat([op(h) for op, h in zip(modules, inputs.edge_nodes(), strict=True)], 1)


def shared_op(inputs: NodeInputs, group: OpGroup, modules: list[nn.Module]) -> tuple[Tensor, bool]:
    """A ``SHARED`` op of one node for all its edges (``modules``: theirs), and whether its output differs per edge
    (see ``shared_bn``)."""
    first = modules[0]
    if group.kind == "identity":
        return keep_layout(inputs.h), False
    if group.kind == "zero":
        return keep_layout(first(inputs.h)), False
    pool = first[0] if isinstance(first, nn.Sequential) else first
    pooled = inputs.pooled(pool)
    if isinstance(first, nn.Sequential):
        return shared_bn(pooled, [op[1] for op in modules])
    return keep_layout(pooled), False
