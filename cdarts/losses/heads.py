"""Distillation heads ("embedding modules"): a stage feature map -> logits-like vectors.

One head per distilled stage is shared by the search and the evaluation network (the same module is applied to
both networks' stage outputs), so the two sides of each KD term live in the same embedding space.
"""
from __future__ import annotations

from torch import Tensor, nn

from cdarts.config import Fraction, PositiveInt
from cdarts.ops.layers import AuxClassifierHead
from cdarts.registry import heads


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
    in_channels: int,
    num_classes: int,
    *,
    hidden: PositiveInt = 128,
    features: PositiveInt = 768,
    pool_kernel: PositiveInt = 6,
    pool_stride: PositiveInt = 2,
) -> nn.Module:
    """The public code's distillation head: the DARTS auxiliary tower on a stage output.

    The public CIFAR heads pool with kernel 6, stride 2 (the default here); the ImageNet ones with kernel 6 on the
    first stage and 5 on the second, stride 2 (``CDARTS/lib/models/aux_head.py``, ``DistillHead*``).
    """
    return AuxClassifierHead(
        in_channels, num_classes, hidden=hidden, features=features, pool_kernel=pool_kernel, pool_stride=pool_stride
    )


@heads.register("pooled_linear")
def pooled_linear(in_channels: int, num_classes: int, *, dropout: Fraction = 0.0) -> nn.Module:
    """Pooled features with a linear projection."""
    return PooledLinearHead(in_channels, num_classes, dropout=dropout)
