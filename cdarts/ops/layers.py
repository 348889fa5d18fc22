"""Building blocks that several primitives and cells share."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ReLUConvBN(nn.Sequential):
    """ReLU, convolution, BatchNorm: DARTS cell preprocessing and the NAS-Bench-201 ``nor_conv`` ops."""

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU, depthwise (dilated) conv, pointwise conv, BatchNorm."""

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, dilation: int, affine: bool = True
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, stride, padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked DilConvs with dilation 1; the stride applies to the first only."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True) -> None:
        super().__init__(
            DilConv(c_in, c_in, kernel_size, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel_size, 1, padding, 1, affine),
        )


class Zero(nn.Module):
    """The ``none`` op: an all-zero output of the strided shape (it still carries its alpha's gradient)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset stride-2 1x1 convs, so no pixel is dropped entirely."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(x)
        shifted = x[:, :, 1:, 1:]
        if shifted.shape[-1] == 0 or shifted.shape[-2] == 0:
            shifted = x
        out_1 = self.conv_1(x)
        out_2 = self.conv_2(shifted)
        if out_2.shape[-2:] != out_1.shape[-2:]:
            pad_w, pad_h = out_1.shape[-1] - out_2.shape[-1], out_1.shape[-2] - out_2.shape[-2]
            out_2 = nn.functional.pad(out_2, (0, pad_w, 0, pad_h))
        return self.bn(torch.cat([out_1, out_2], dim=1))


class AuxClassifierHead(nn.Module):
    """The DARTS auxiliary-tower layout: the retrain networks' auxiliary head, and CDARTS's distillation head.

    ReLU, AvgPool(k, stride), 1x1 conv, BN, ReLU, 2x2 conv, BN (DARTS omits it on ImageNet), ReLU, global pool,
    Linear. Works for any spatial size >= 1, so one head fits every dataset resolution and search space.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        hidden: int = 128,
        features: int = 768,
        pool_kernel: int = 5,
        pool_stride: int = 2,
        final_bn: bool = True,
    ):
        super().__init__()
        self.pool_kernel, self.pool_stride = pool_kernel, pool_stride
        self.conv1 = nn.Conv2d(in_channels, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Conv2d(hidden, features, 2, bias=False)
        self.bn2 = nn.BatchNorm2d(features) if final_bn else nn.Identity()
        self.classifier = nn.Linear(features, num_classes)
        self.num_features = features

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(x)  # not in place: the stage output also feeds the network's next stage
        height, width = x.shape[-2:]
        # The kernel is clamped to the map so that maps smaller than pool_kernel still pool to >= 1 pixel.
        kernel = (min(self.pool_kernel, height), min(self.pool_kernel, width))
        x = F.avg_pool2d(x, kernel, stride=self.pool_stride, padding=0, count_include_pad=False)
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        if x.shape[-2] < 2 or x.shape[-1] < 2:  # a 2x2 conv needs a 2x2 input: zero-pad 1-pixel maps
            x = F.pad(x, (0, max(0, 2 - x.shape[-1]), 0, max(0, 2 - x.shape[-2])))
        x = F.relu(self.bn2(self.conv2(x)), inplace=True)
        return self.classifier(x.mean((2, 3)))
