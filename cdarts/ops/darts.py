"""The DARTS primitives, registered under their standard names.

Every op factory takes ``(channels, stride, affine)``: search networks build them with ``affine=False`` (BN
without learned scale, as DARTS does), discrete networks with ``affine=True``.
"""
from __future__ import annotations

from torch import nn

from cdarts.ops.layers import DilConv, FactorizedReduce, SepConv, Zero
from cdarts.registry import ops

DARTS_PRIMITIVES = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)


@ops.register("none")
def none(channels: int, stride: int, affine: bool) -> nn.Module:
    return Zero(stride)


@ops.register("max_pool_3x3")
def max_pool_3x3(channels: int, stride: int, affine: bool) -> nn.Module:
    return nn.MaxPool2d(3, stride=stride, padding=1)


@ops.register("avg_pool_3x3")
def avg_pool_3x3(channels: int, stride: int, affine: bool) -> nn.Module:
    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)


@ops.register("skip_connect")
def skip_connect(channels: int, stride: int, affine: bool) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels, affine)


@ops.register("sep_conv_3x3")
def sep_conv_3x3(channels: int, stride: int, affine: bool) -> nn.Module:
    return SepConv(channels, channels, 3, stride, 1, affine)


@ops.register("sep_conv_5x5")
def sep_conv_5x5(channels: int, stride: int, affine: bool) -> nn.Module:
    return SepConv(channels, channels, 5, stride, 2, affine)


@ops.register("dil_conv_3x3")
def dil_conv_3x3(channels: int, stride: int, affine: bool) -> nn.Module:
    return DilConv(channels, channels, 3, stride, 2, 2, affine)


@ops.register("dil_conv_5x5")
def dil_conv_5x5(channels: int, stride: int, affine: bool) -> nn.Module:
    return DilConv(channels, channels, 5, stride, 4, 2, affine)
