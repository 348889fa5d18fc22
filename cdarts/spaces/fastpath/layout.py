"""Memory layout helpers of the fast path: channels-last kept in the backward pass, pixel grids as dense tensors.

Channels-last tensors stay channels-last in the backward pass too (``keep_layout``): a gradient in the default
layout, as broadcasting, slicing and pooling produce, sends every elementwise kernel after it down a strided path
that is ~20x slower on CPU.
"""
from __future__ import annotations

import torch
from torch import Tensor


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
