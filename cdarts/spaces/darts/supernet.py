"""The DARTS supernet S: mixed ops (a softmax-weighted sum of every primitive), the search cell, and the network
holding one alpha per cell type."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from cdarts.ops import DARTS_PRIMITIVES, build_op
from cdarts.ops.layers import FactorizedReduce
from cdarts.spaces.base import StageOutputs, StageTaps
from cdarts.spaces.darts.macro import DartsStem, Stem, cell_edges, preprocess, reduction_indices, stage_ends
from cdarts.spaces.fastpath.cells import cell_nodes
from cdarts.spaces.fastpath.edges import factorized_reduce
from cdarts.spaces.fastpath.inputs import EdgeInputs, NodeInputs
from cdarts.spaces.fastpath.layout import keep_layout
from cdarts.spaces.fastpath.plan import plan_sources
from cdarts.spaces.paths import OFF, OnePath


class MixedOp(nn.Module):
    """``sum_k w_k op_k(x)`` over the primitives. ``skip_zero`` leaves out the ``none`` op: it adds zero, and its
    alpha still gets its gradient through the softmax of the others. ``pool_bn`` follows pooling ops with a
    non-affine BN, as DARTS does (NAS-Bench-201 does not)."""

    def __init__(
        self, primitives: Sequence[str], channels: int, stride: int, pool_bn: bool = True, skip_zero: bool = True
    ) -> None:
        super().__init__()
        self.ops = nn.ModuleList()
        self.computed: list[int] = []
        for index, name in enumerate(primitives):
            op = build_op(name, channels, stride, affine=False)
            if pool_bn and "pool" in name:
                op = nn.Sequential(op, nn.BatchNorm2d(channels, affine=False))
            self.ops.append(op)
            if name != "none" or not skip_zero:
                self.computed.append(index)

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        return sum(weights[i] * self.ops[i](x) for i in self.computed)

    def forward_one(self, x: Tensor, index: int, weights: Tensor | None = None) -> Tensor:
        """Op ``index`` alone. With ``weights`` (a hard one-hot row that carries alpha's gradient, GDAS) its output
        is scaled by ``weights[index]`` and the other weights are added as scalars: zero in the forward pass, their
        gradient is the output's summed gradient (the straight-through estimate of Dong & Yang's public code)."""
        out = self.ops[index](x)
        if weights is None:
            return out
        return out * weights[index] + torch.cat([weights[:index], weights[index + 1 :]]).sum()


class SearchCell(nn.Module):
    """A supernet cell: every edge a MixedOp; node ``j`` sums its incoming edges; output concatenates the nodes.

    ``share_inputs`` computes the cell source by source (``cdarts.spaces.fastpath``): the ReLU, pools and skip of
    each node once for all edges that read it; ``batch_edges`` also runs each op of those edges as one grouped conv
    and one BatchNorm (implies ``share_inputs``). Both are exact regroupings of the plain edge-by-edge sum.
    """

    def __init__(
        self,
        primitives: Sequence[str],
        nodes: int,
        c_pp: int,
        c_p: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
        skip_zero: bool = True,
        share_inputs: bool = True,
        batch_edges: bool = True,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.nodes = nodes
        self.preprocess0, self.preprocess1 = preprocess(c_pp, c_p, c, reduction_prev, affine=False)
        self.edges = nn.ModuleList(
            MixedOp(primitives, c, 2 if reduction and i < 2 else 1, skip_zero=skip_zero) for i, _ in cell_edges(nodes)
        )
        self.batch_edges = batch_edges
        self.plans = None
        if share_inputs or batch_edges:
            self.plans = plan_sources(cell_edges(nodes), list(self.edges), skip_zero)

    def forward(self, s0: Tensor, s1: Tensor, weights: Tensor) -> Tensor:
        if self.plans is not None:
            pre0 = self.preprocess0
            if isinstance(pre0, FactorizedReduce):
                s0 = factorized_reduce(EdgeInputs([NodeInputs(s0)], [1]), [pre0])
            else:
                s0 = pre0(s0)
            states = [s0, self.preprocess1(s1)]
            return torch.cat(cell_nodes(states, self.plans, weights, self.nodes, self.batch_edges), dim=1)
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.nodes):
            states.append(sum(self.edges[offset + i](h, weights[offset + i]) for i, h in enumerate(states)))
            offset += len(states) - 1
        return torch.cat(states[2:], dim=1)

    def forward_path(self, s0: Tensor, s1: Tensor, index: Sequence[int], weights: Tensor | None = None) -> Tensor:
        """Only the ops of a path (``cdarts.spaces.paths``): per edge the op ``index[row]``, or nothing for ``OFF``;
        ``weights`` scales them as in ``MixedOp.forward_one``."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for node in range(self.nodes):
            rows = [(offset + i, h) for i, h in enumerate(states) if index[offset + i] != OFF]
            if not rows:
                raise ValueError(f"node {node + 2} of the path has no edge")
            states.append(sum(self.edges[row].forward_one(h, index[row], None if weights is None else weights[row])
                              for row, h in rows))
            offset += len(states) - 1
        return torch.cat(states[2:], dim=1)


@contextlib.contextmanager
def replaying(module: nn.Module, requires_grad: list[bool]) -> Iterator[None]:
    """The recomputed pass of a checkpointed module: it must do what the first pass did, once more.

    BatchNorms leave their running statistics as they are: momentum 0 keeps every call the same as in the first
    pass (so the same tensors are saved for backward) while ``(1 - 0) * running + 0 * batch`` changes nothing; the
    batch counts are put back afterwards. Parameters require grad as they did in the first pass (a strategy that
    froze them for its forward pass has unfrozen them by the time backward recomputes).
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    for m in norms:
        m.momentum = 0.0
    for p, flag in zip(params, requires_grad, strict=True):
        p.requires_grad_(flag)
    try:
        yield
    finally:
        for m, (momentum, count) in zip(norms, saved, strict=True):
            m.momentum = momentum
            m.num_batches_tracked.copy_(count)
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


class DartsSupernet(OnePath, nn.Module):
    """The search network S: mixed-op cells sharing one alpha per cell type; inside ``one_path`` only a path's ops
    run (``cdarts.spaces.paths``: no fast path, no cell checkpointing, which serve the weighted sum).

    Architecture parameters (``alphas_normal``, ``alphas_reduce``) are kept apart from the weights:
    ``arch_parameters()`` and ``weight_parameters()`` are disjoint and together cover ``parameters()``.

    Speed switches, all exact (same outputs and gradients up to float rounding, same state dict): ``skip_zero``,
    ``share_inputs`` and ``batch_edges`` (see ``SearchCell``), ``channels_last`` memory format, and
    ``checkpoint_cells``, which recomputes each cell in the backward pass instead of keeping its activations
    (BatchNorm running statistics are updated once, in the forward pass).
    """

    def __init__(
        self,
        num_classes: int,
        in_chans: int = 3,
        channels: int = 16,
        layers: int = 8,
        nodes: int = 4,
        stem: Stem = "cifar",
        stem_multiplier: int = 3,
        primitives: Sequence[str] = DARTS_PRIMITIVES,
        skip_zero: bool = True,
        share_inputs: bool = True,
        batch_edges: bool = True,
        channels_last: bool = True,
        checkpoint_cells: bool = False,
        stage_taps: StageTaps = "after_reduction",
    ) -> None:
        super().__init__()
        self.primitives = tuple(primitives)
        self.edges = cell_edges(nodes)
        self.channels_last, self.checkpoint_cells = channels_last, checkpoint_cells
        self.stem = DartsStem(stem, in_chans, channels, stem_multiplier)
        c_pp, c_p = self.stem.out_channels
        reduction_prev, c_curr = self.stem.reduces, channels
        self.cells = nn.ModuleList()
        reductions = reduction_indices(layers)
        for i in range(layers):
            reduction = i in reductions
            c_curr = c_curr * 2 if reduction else c_curr
            self.cells.append(SearchCell(
                self.primitives, nodes, c_pp, c_p, c_curr, reduction, reduction_prev, skip_zero, share_inputs,
                batch_edges,
            ))
            reduction_prev = reduction
            c_pp, c_p = c_p, nodes * c_curr
        self.stage_ends = stage_ends(layers, stage_taps)
        self.num_features = c_p
        self.classifier = nn.Linear(c_p, num_classes)
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(len(self.edges), len(self.primitives)))
        self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(len(self.edges), len(self.primitives)))
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def alphas(self) -> dict[str, nn.Parameter]:
        """Architecture parameters by cell type, rows in ``cell_edges`` order, columns in ``primitives`` order."""
        return {"normal": self.alphas_normal, "reduce": self.alphas_reduce}

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas().values())

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def run_cell(self, cell: SearchCell, s0: Tensor, s1: Tensor, weights: Tensor) -> Tensor:
        if not (self.checkpoint_cells and torch.is_grad_enabled() and self.training):
            return cell(s0, s1, weights)
        first_pass: list[list[bool]] = []

        def forward(*inputs: Tensor) -> Tensor:
            if not first_pass:
                first_pass.append([p.requires_grad for p in cell.parameters()])
                return cell(*inputs)
            with replaying(cell, first_pass[0]):
                return cell(*inputs)

        return checkpoint(forward, s0, s1, weights, use_reentrant=False)

    def forward_stages(self, x: Tensor) -> StageOutputs:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        weights = None if self.path is not None else {name: F.softmax(a, dim=-1) for name, a in self.alphas().items()}
        s0, s1 = self.stem(x)
        stages = []
        for i, cell in enumerate(self.cells):
            kind = "reduce" if cell.reduction else "normal"
            if weights is None:
                s0, s1 = s1, cell.forward_path(s0, s1, self.path[kind], self.edge_weights(kind))
            else:
                s0, s1 = s1, self.run_cell(cell, s0, s1, weights[kind])
            stages += [keep_layout(s1)] * self.stage_ends.count(i)  # twice when the last cell reduces
        logits = self.classifier(F.adaptive_avg_pool2d(keep_layout(s1), 1).flatten(1))
        return StageOutputs(logits, stages)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_stages(x).logits
