"""The NAS-Bench-201 primitives. ``none``, ``skip_connect`` and ``avg_pool_3x3`` are the DARTS ones (NB201
cells never stride, and its pool has no BN), registered once in ``cdarts.ops.darts``."""
from __future__ import annotations

from torch import nn

from cdarts.ops.layers import ReLUConvBN
from cdarts.registry import ops

NB201_PRIMITIVES = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


@ops.register("nor_conv_1x1")
def nor_conv_1x1(channels: int, stride: int, affine: bool) -> nn.Module:
    return ReLUConvBN(channels, channels, 1, stride, 0, affine)


@ops.register("nor_conv_3x3")
def nor_conv_3x3(channels: int, stride: int, affine: bool) -> nn.Module:
    return ReLUConvBN(channels, channels, 3, stride, 1, affine)
