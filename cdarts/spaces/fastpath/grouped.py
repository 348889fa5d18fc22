"""The same conv or BatchNorm of several edges as one call: weights and statistics concatenated along the channels,
exact up to float rounding (running statistics included)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cdarts.spaces.fastpath.layout import keep_layout


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
