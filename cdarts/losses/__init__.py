"""Losses of the search: classification, distillation (with its heads) and architecture regularisers (the
alpha L1 and the resource cost).

Importing this package registers every component in the ``losses`` and ``heads`` registries.
"""
from cdarts.losses.classification import ce
from cdarts.losses.distillation import (
    KLDistillation,
    MultiLevelDistillation,
    SmoothL1Distillation,
    kd_kl,
    kd_smooth_l1,
    multi_level,
)
from cdarts.losses.heads import AuxClassifierHead, PooledLinearHead, aux_classifier, pooled_linear
from cdarts.losses.regularizers import AlphaL1, alpha_l1, linear_decay
from cdarts.losses.resource import ResourceLoss, resource

__all__ = [
    "AlphaL1",
    "AuxClassifierHead",
    "KLDistillation",
    "MultiLevelDistillation",
    "PooledLinearHead",
    "ResourceLoss",
    "SmoothL1Distillation",
    "alpha_l1",
    "aux_classifier",
    "ce",
    "kd_kl",
    "kd_smooth_l1",
    "linear_decay",
    "multi_level",
    "pooled_linear",
    "resource",
]
