"""Distillation heads ("embedding modules"): a stage feature map -> logits-like vectors.

One head per distilled stage is shared by the search and the evaluation network (the same module is applied to
both networks' stage outputs), so the two sides of each KD term live in the same embedding space.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from cdarts.registry import heads


class AuxClassifierHead(nn.Module):
    """The DARTS auxiliary-tower layout, as CDARTS's public code uses it on the first stages.

    ReLU, AvgPool(k, stride 2), 1x1 conv, BN, ReLU, 2x2 conv, BN, ReLU, global pool, Linear. Works for any
    spatial size >= 1, so one head fits every dataset resolution and search space.
    """

    def __init__(
        self, in_channels: int, num_classes: int, hidden: int = 128, features: int = 768, pool_kernel: int = 5
    ):
        super().__init__()
        self.pool_kernel = pool_kernel
        self.conv1 = nn.Conv2d(in_channels, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Conv2d(hidden, features, 2, bias=False)
        self.bn2 = nn.BatchNorm2d(features)
        self.fc = nn.Linear(features, num_classes)
        self.num_features = features

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(x)  # not in place: the stage output also feeds the network's next stage
        height, width = x.shape[-2:]
        # The kernel is clamped to the map so that maps smaller than pool_kernel still pool to >= 1 pixel.
        kernel = (min(self.pool_kernel, height), min(self.pool_kernel, width))
        x = F.avg_pool2d(x, kernel, stride=2, padding=0, count_include_pad=False)
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        if x.shape[-2] < 2 or x.shape[-1] < 2:  # a 2x2 conv needs a 2x2 input: zero-pad 1-pixel maps
            x = F.pad(x, (0, max(0, 2 - x.shape[-1]), 0, max(0, 2 - x.shape[-2])))
        x = F.relu(self.bn2(self.conv2(x)), inplace=True)
        return self.fc(x.mean((2, 3)))


class PooledLinearHead(nn.Module):
    """Global average pool, dropout, Linear: the lightest embedding of a stage."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, num_classes)
        self.num_features = in_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.drop(x.mean((2, 3))))


@heads.register("aux_classifier")
def aux_classifier(
    in_channels: int, num_classes: int, *, hidden: int = 128, features: int = 768, pool_kernel: int = 5
) -> nn.Module:
    """The public code's head (pool_kernel 5 on CIFAR, 6 on ImageNet)."""
    return AuxClassifierHead(in_channels, num_classes, hidden=hidden, features=features, pool_kernel=pool_kernel)


@heads.register("pooled_linear")
def pooled_linear(in_channels: int, num_classes: int, *, dropout: float = 0.0) -> nn.Module:
    """Pooled features with a linear projection."""
    return PooledLinearHead(in_channels, num_classes, dropout=dropout)
