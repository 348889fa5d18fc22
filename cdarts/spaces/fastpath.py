"""The exact fast path of a supernet cell: edges computed per input node, their shared work done once.

Every edge that reads node ``h`` starts its conv ops with ``relu(h)``, its pools with ``pool(h)`` and its skip with
``h``. The fast path computes those once per node, and (for small activations, see ``BATCH_LIMIT``) runs each conv
op of all those edges as one grouped convolution (the edges' weights concatenated) with one BatchNorm over all their
channels. Strided dilated convs and FactorizedReduce read only every other pixel: they run on that subsample, taken
once per node. Parameters and buffers stay in the per-edge modules, so state dicts and checkpoints are the same on
either path; only the arithmetic is regrouped, which changes results by float rounding only.

Channels-last tensors stay channels-last in the backward pass too (``keep_layout``): a gradient in the default
layout, as broadcasting, slicing and pooling produce, sends every elementwise kernel after it down a strided path
that is ~20x slower on CPU.

Ops the planner does not recognise by structure run edge by edge with their own modules, so any registered
primitive still works.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cdarts.ops.layers import FactorizedReduce, Zero

POOLS = (nn.MaxPool2d, nn.AvgPool2d)

SHARED = ("pool", "identity", "zero")
"""Op kinds whose output is the same for every edge reading a node (pools: in training, where their BN uses batch
statistics); they run once per node."""

BATCH_LIMIT = 1 << 19
"""Largest activation (elements, all edges together) for which one grouped conv beats one conv per edge on CPU.

Measured on 2-core AMD EPYC (oneDNN, channels-last, forward + backward of 3x3 and 5x5 depthwise convs, 4 edges):
batched is 2-4x faster at 16K-64K elements per edge, even at 128K, and 1.5-3x slower from 256K up, where the
batched tensor no longer fits the per-core L2 cache. GPUs batch whatever the size (launches, not caches, cost there).
"""


# --- which ops run how -------------------------------------------------------------------------------------------


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


# --- memory layout -----------------------------------------------------------------------------------------------


def is_channels_last(x: Tensor) -> bool:
    """Channels vary fastest (dense, or a channel slice of a channels-last tensor)."""
    return x.dim() == 4 and x.stride(1) == 1 and x.shape[1] > 1


class _KeepLayout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad if is_channels_last(grad) else grad.contiguous(memory_format=torch.channels_last)


def keep_layout(x: Tensor) -> Tensor:
    """``x``; in the backward pass, its gradient is brought to channels-last if ``x`` is channels-last."""
    return _KeepLayout.apply(x) if is_channels_last(x) and torch.is_grad_enabled() and x.requires_grad else x


def _memory_format(x: Tensor) -> torch.memory_format:
    return torch.channels_last if is_channels_last(x) else torch.contiguous_format


class _Subsample(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, offset: int, steps: tuple[int, int]) -> Tensor:
        ctx.shape, ctx.format, ctx.offset, ctx.steps = x.shape, _memory_format(x), offset, steps
        return x[:, :, offset :: steps[0], offset :: steps[1]].contiguous(memory_format=ctx.format)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        out = torch.empty(ctx.shape, dtype=grad.dtype, device=grad.device, memory_format=ctx.format).zero_()
        out[:, :, ctx.offset :: ctx.steps[0], ctx.offset :: ctx.steps[1]] = grad
        return out, None, None


def subsample(x: Tensor, offset: int, steps: tuple[int, int]) -> Tensor:
    """``x[:, :, offset::steps[0], offset::steps[1]]`` as a dense tensor, in ``x``'s layout both ways."""
    return _Subsample.apply(x, offset, steps)


def _to_phases(x: Tensor, d: int) -> Tensor:
    n, c, h, w = x.shape
    if is_channels_last(x):
        y = x.permute(0, 2, 3, 1).reshape(n, h // d, d, w // d, d, c).permute(2, 4, 0, 1, 3, 5)
        return y.reshape(d * d * n, h // d, w // d, c).permute(0, 3, 1, 2)
    return x.reshape(n, c, h // d, d, w // d, d).permute(3, 5, 0, 1, 2, 4).reshape(d * d * n, c, h // d, w // d)


def _from_phases(y: Tensor, d: int) -> Tensor:
    m, c, hd, wd = y.shape
    n = m // (d * d)
    if is_channels_last(y):
        z = y.permute(0, 2, 3, 1).reshape(d, d, n, hd, wd, c).permute(2, 3, 0, 4, 1, 5)
        return z.reshape(n, hd * d, wd * d, c).permute(0, 3, 1, 2)
    return y.reshape(d, d, n, c, hd, wd).permute(2, 3, 4, 0, 5, 1).reshape(n, c, hd * d, wd * d)


class _Phases(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, d: int, inverse: bool) -> Tensor:
        ctx.d, ctx.inverse = d, inverse
        return _from_phases(x, d) if inverse else _to_phases(x, d)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        return (_to_phases(grad, ctx.d) if ctx.inverse else _from_phases(grad, ctx.d)), None, None


def to_phases(x: Tensor, d: int) -> Tensor:
    """``(N, C, H, W) -> (d * d * N, C, H / d, W / d)``: the ``d x d`` pixel grids of ``x`` (phase ``(a, b)`` holds
    ``x[..., a::d, b::d]``) stacked along the batch, in ``x``'s memory format both ways."""
    return _Phases.apply(x, d, False)


def from_phases(y: Tensor, d: int) -> Tensor:
    """The inverse of ``to_phases``."""
    return _Phases.apply(y, d, True)


# --- convs and BatchNorms of several edges at once ---------------------------------------------------------------


def _cat(tensors: list[Tensor]) -> Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


def reads_stride_grid(conv: nn.Conv2d) -> bool:
    """Whether the conv reads only the pixels on its stride grid: stride > 1 with a 1x1 kernel (FactorizedReduce),
    or dilation equal to the stride with "same" padding (DARTS' dil_conv in reduction cells).

    Such a conv equals an undilated, unstrided one on ``x[..., ::s, ::s]`` (same products, same order), which
    oneDNN runs 5-15x faster on CPU than the dilated strided conv.
    """
    if not isinstance(conv.padding, tuple) or conv.stride[0] != conv.stride[1]:
        return False
    return all(
        s > 1 and (d == s or k == 1) and 2 * p == s * (k - 1) and p % s == 0
        for s, d, p, k in zip(conv.stride, conv.dilation, conv.padding, conv.kernel_size, strict=True)
    )


def unused_border(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """How many taps on each side of the kernel read only padding, for every output pixel, along one dimension.

    At small resolutions (a 5x5 kernel on 2x2 pixels) they are most of the kernel; dropping them (and as much
    padding) gives the same output with a smaller conv, and their weights get the exact zero gradient they would.
    """
    out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1

    def unused(tap: int) -> bool:
        first = dilation * tap - padding
        return first > size - 1 or first + stride * (out - 1) < 0

    border = 0
    while 2 * (border + 1) < kernel and dilation * (border + 1) <= padding and unused(border) and unused(
        kernel - 1 - border
    ):
        border += 1
    return border


def phase_dilation(conv: nn.Conv2d, size: tuple[int, int]) -> int:
    """The dilation ``d`` of an unstrided dilated conv with "same" padding on a map whose sides ``d`` divides, else 0.

    Such a conv (DARTS' dil_conv) reads each of the ``d x d`` pixel grids of its input separately: it equals an
    undilated conv on each grid (``to_phases``), which oneDNN runs 1.2-3x faster on CPU (forward and backward), and
    the 1x1 convs and BatchNorm after it can stay on the grids (BN sees the same pixels either way).
    """
    d = conv.dilation[0]
    if d < 2 or conv.dilation != (d, d) or conv.stride != (1, 1) or not isinstance(conv.padding, tuple):
        return 0
    same = all(2 * p == d * (k - 1) and p % d == 0 for p, k in zip(conv.padding, conv.kernel_size, strict=True))
    return d if same and size[0] % d == 0 and size[1] % d == 0 else 0


def conv_group(x: Tensor, convs: list[nn.Conv2d], grid: int = 1) -> Tensor:
    """The same conv of several edges as one grouped conv; ``x`` holds the edges' inputs one after the other.
    ``grid > 1``: ``x`` is already the pixel grid(s) the conv reads, its stride grid (see ``reads_stride_grid``)
    or its phases (see ``phase_dilation``); the conv runs undilated and unstrided on it."""
    c = convs[0]
    bias = _cat([m.bias for m in convs]) if c.bias is not None else None
    weight = _cat([m.weight for m in convs])
    stride, padding, dilation = c.stride, c.padding, c.dilation
    if grid > 1:
        padding, stride, dilation = (padding[0] // grid, padding[1] // grid), (1, 1), (1, 1)
    if isinstance(padding, tuple):
        borders = [unused_border(n, k, s, p, d) for n, k, s, p, d in
                   zip(x.shape[-2:], weight.shape[-2:], stride, padding, dilation, strict=True)]
        if any(borders):
            bh, bw = borders
            weight = weight[:, :, bh : weight.shape[2] - bh, bw : weight.shape[3] - bw]
            padding = (padding[0] - dilation[0] * bh, padding[1] - dilation[1] * bw)
    return F.conv2d(x, weight, bias, stride, padding, dilation, c.groups * len(convs))


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


def _momentum(bn: nn.BatchNorm2d, norms: list[nn.BatchNorm2d]) -> float:
    """Count the batch as nn.BatchNorm2d does and return the running-average factor it would use."""
    torch._foreach_add_([m.num_batches_tracked for m in norms], 1)
    return 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum


def bn_group(x: Tensor, norms: list[nn.BatchNorm2d]) -> Tensor:
    """The BatchNorms of several edges as one, over their concatenated channels; running statistics included."""
    bn = norms[0]
    updating = bn.training and bn.track_running_stats
    momentum = _momentum(bn, norms) if updating else 0.0
    use_running = bn.running_mean is not None and (updating or not bn.training)
    mean = _cat([m.running_mean for m in norms]) if use_running else None
    var = _cat([m.running_var for m in norms]) if use_running else None
    weight = _cat([m.weight for m in norms]) if bn.affine else None
    bias = _cat([m.bias for m in norms]) if bn.affine else None
    out = F.batch_norm(x, mean, var, weight, bias, bn.training or bn.running_mean is None, momentum, bn.eps)
    if updating and len(norms) > 1:
        channels = bn.num_features
        torch._foreach_copy_([m.running_mean for m in norms], list(mean.split(channels)))
        torch._foreach_copy_([m.running_var for m in norms], list(var.split(channels)))
    return out


def shared_bn(x: Tensor, norms: list[nn.BatchNorm2d]) -> tuple[Tensor, bool]:
    """Non-affine BatchNorms of several edges on the same input. In training one output serves every edge: the
    first BatchNorm runs as usual, the others' running statistics take the same batch statistics.

    Returns the output and whether it differs per edge (eval mode: each edge's running statistics), in which case it
    holds the edges' outputs one after the other along the channels.
    """
    bn = norms[0]
    if not bn.training or len(norms) == 1 or bn.affine:
        return bn_group(torch.cat([x] * len(norms), 1), norms), True
    updating = bn.track_running_stats
    momentum = _momentum(bn, norms) if updating else 0.0
    mean, var = (bn.running_mean, bn.running_var) if updating else (None, None)
    out = F.batch_norm(x, mean, var, None, None, True, momentum, bn.eps)
    if updating:
        with torch.no_grad():
            batch_var, batch_mean = torch.var_mean(x.float(), dim=(0, 2, 3), correction=1)
            rest = norms[1:]
            for name, value in (("running_mean", batch_mean), ("running_var", batch_var)):
                buffers = [getattr(m, name) for m in rest]
                torch._foreach_mul_(buffers, 1.0 - momentum)
                torch._foreach_add_(buffers, [momentum * value] * len(rest))
    return keep_layout(out), False


# --- one node's edges --------------------------------------------------------------------------------------------


class NodeInputs:
    """What the edges reading node ``h`` derive from it, each computed once: ``relu(h)``, its stride-grid samples,
    their copies repeated once per edge (for batched convs), and pooling outputs."""

    def __init__(self, h: Tensor) -> None:
        self.h = h
        self.cache: dict[tuple, Tensor] = {}

    def relu(self, repeat: int = 1) -> Tensor:
        return self.sampled(None, (1, 1), repeat)

    def sampled(self, offset: int | None, steps: tuple[int, int], repeat: int = 1) -> Tensor:
        """``relu(h)[..., offset::steps[0], offset::steps[1]]`` (``offset=None``: all of it), ``repeat`` times."""
        key = (offset, steps, repeat)
        if key not in self.cache:
            if repeat > 1:
                self.cache[key] = torch.cat([self.sampled(offset, steps)] * repeat, 1)
            elif offset is None:
                self.cache[key] = F.relu(self.h)
            else:
                self.cache[key] = subsample(self.relu(), offset, steps)
        return self.cache[key]

    def phases(self, d: int, repeat: int = 1) -> Tensor:
        """``to_phases(relu(h), d)``, ``repeat`` times along the channels."""
        key = ("phases", d, repeat)
        if key not in self.cache:
            base = to_phases(self.relu(), d) if repeat == 1 else self.phases(d)
            self.cache[key] = base if repeat == 1 else torch.cat([base] * repeat, 1)
        return self.cache[key]

    def pooled(self, pool: nn.Module) -> Tensor:
        key = ("pool", repr(pool))
        if key not in self.cache:
            self.cache[key] = pool(self.h)
        return self.cache[key]


class EdgeInputs:
    """The inputs of a batch of edges reading one or more nodes: each node's derived tensors (``NodeInputs``),
    repeated once per edge reading it, the nodes one after the other along the channels."""

    def __init__(self, nodes: list[NodeInputs], counts: list[int]) -> None:
        self.nodes, self.counts = nodes, counts
        self.edges = sum(counts)
        self.h = nodes[0].h
        self.cache: dict[tuple, Tensor] = {}

    def _joined(self, key: tuple, derive: str, *args: object) -> Tensor:
        if len(self.nodes) == 1:
            return getattr(self.nodes[0], derive)(*args, self.counts[0])
        if key not in self.cache:
            parts = [getattr(node, derive)(*args, count) for node, count in zip(self.nodes, self.counts, strict=True)]
            self.cache[key] = torch.cat(parts, 1)
        return self.cache[key]

    def relu(self) -> Tensor:
        return self._joined(("relu",), "relu")

    def sampled(self, offset: int, steps: tuple[int, int]) -> Tensor:
        return self._joined(("sampled", offset, steps), "sampled", offset, steps)

    def phases(self, d: int) -> Tensor:
        return self._joined(("phases", d), "phases", d)

    def edge_nodes(self) -> list[Tensor]:
        """Each edge's input node."""
        return [node.h for node, count in zip(self.nodes, self.counts, strict=True) for _ in range(count)]


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


# --- discrete cells ----------------------------------------------------------------------------------------------


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
