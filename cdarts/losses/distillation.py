"""Knowledge distillation from the evaluation network E (teacher) to the search network S (student).

``L_KD`` of the paper (Eq. 7-8) is ``T^2 * KL(p_E || q_S)`` summed over several levels: the final logits plus
embeddings of stage outputs (see ``heads``). The public code weights the levels by a learnable softmax instead.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cdarts.config import Component, NonNegativeInt, PositiveFloat, build
from cdarts.errors import ConfigError
from cdarts.registry import losses
from cdarts.spaces.base import StageOutputs


class KLDistillation(nn.Module):
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))``; T^2 keeps gradients T-independent (Hinton)."""

    def __init__(
        self,
        temperature: float = 2.0,
        reduction: Literal["batchmean", "mean"] = "batchmean",
        detach_teacher: bool = False,
    ):
        super().__init__()
        self.temperature = temperature
        self.reduction = reduction
        self.detach_teacher = detach_teacher

    def forward(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        if self.detach_teacher:
            teacher_logits = teacher_logits.detach()
        t = self.temperature
        log_q = F.log_softmax(student_logits / t, dim=-1)
        log_p = F.log_softmax(teacher_logits / t, dim=-1)
        # Reduced by hand: torch's own "mean" for kl_div is deprecated and slated to mean "batchmean".
        divisor = log_q.numel() if self.reduction == "mean" else log_q.shape[0]
        return F.kl_div(log_q, log_p, reduction="sum", log_target=True) * (t * t / divisor)


class SmoothL1Distillation(nn.Module):
    """``T^2 * SmoothL1(student_logits, teacher_logits)``, the public code's CIFAR variant (mean over elements)."""

    def __init__(self, temperature: float = 2.0, detach_teacher: bool = False):
        super().__init__()
        self.temperature = temperature
        self.detach_teacher = detach_teacher

    def forward(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        if self.detach_teacher:
            teacher_logits = teacher_logits.detach()
        return F.smooth_l1_loss(student_logits, teacher_logits) * (self.temperature * self.temperature)


class MultiLevelDistillation(nn.Module):
    """KD between S and E at several levels: one shared head per listed stage, then the final logits.

    Levels are weighted by ``softmax(ensemble_weights)``: a constant zero buffer, i.e. uniform weights (Eq. 7 has
    none), or a learnable vector (the public code's ``ensemble_param``, trained with E in the joint step). Trained by
    the KD loss alone, learned weights drain onto the level with the smallest KD and so switch distillation off.

    Args:
        heads: one embedding module per entry of ``levels``, applied to both networks.
        levels: indices into ``StageOutputs.stages``.
        kd: the pairwise loss, called ``(student_logits, teacher_logits)``.
        weighting: "uniform" or "learned".
        combine: "sum" adds the weighted per-level losses (paper); "concat" concatenates the weighted level logits
            along the batch and calls ``kd`` once (public code).
    """

    def __init__(
        self,
        heads: Sequence[nn.Module],
        levels: Sequence[int],
        kd: nn.Module,
        weighting: Literal["uniform", "learned"] = "uniform",
        combine: Literal["sum", "concat"] = "sum",
    ):
        super().__init__()
        if len(heads) != len(levels):
            raise ValueError(f"need one head per level, got {len(heads)} heads for levels {list(levels)}")
        self.levels = list(levels)
        self.heads = nn.ModuleList(heads)
        self.kd = kd
        self.weighting = weighting
        self.combine = combine
        zeros = torch.zeros(len(self.levels) + 1)
        if weighting == "learned":
            self.ensemble_weights = nn.Parameter(zeros)
        else:
            self.register_buffer("ensemble_weights", zeros, persistent=False)

    def weights(self) -> Tensor:
        """The level weights, ``softmax(ensemble_weights)``."""
        return self.ensemble_weights.softmax(0)

    def level_logits(self, outputs: StageOutputs) -> list[Tensor]:
        """The network's logits at every level: each listed stage through its head, then the final logits."""
        return [head(outputs.stages[i]) for i, head in zip(self.levels, self.heads, strict=True)] + [outputs.logits]

    def ensemble_logits(self, outputs: StageOutputs) -> Tensor:
        """``sum_i w_i * level_i``: a network's weighted ensemble of levels (the public code trains it with CE)."""
        return torch.einsum("l,lbc->bc", self.weights(), torch.stack(self.level_logits(outputs)))

    def level_losses(self, student: StageOutputs, teacher: StageOutputs) -> Tensor:
        """The unweighted KD of every level, shallow to deep, the final logits last."""
        pairs = zip(self.level_logits(student), self.level_logits(teacher), strict=True)
        return torch.stack([self.kd(s, t) for s, t in pairs])

    def forward(self, student: StageOutputs, teacher: StageOutputs) -> Tensor:
        weights = self.weights()
        if self.combine == "sum":
            return self.level_losses(student, teacher) @ weights
        return self.kd(
            torch.cat([w * s for w, s in zip(weights, self.level_logits(student), strict=True)]),
            torch.cat([w * t for w, t in zip(weights, self.level_logits(teacher), strict=True)]),
        )

    def extra_repr(self) -> str:
        return f"levels={self.levels}, weighting={self.weighting!r}, combine={self.combine!r}"


@losses.register("kd_kl")
def kd_kl(
    *, temperature: PositiveFloat = 2.0, reduction: Literal["batchmean", "mean"] = "batchmean",
    detach_teacher: bool = False,
) -> nn.Module:
    """Soft-target KL. "batchmean": sum over classes, mean over the batch (paper Eq. 7); "mean": mean over all
    elements (public ImageNet code, i.e. "batchmean" / num_classes). ``detach_teacher`` stops the KD gradient into
    E; off by default, as in the public code."""
    return KLDistillation(temperature=temperature, reduction=reduction, detach_teacher=detach_teacher)


@losses.register("kd_smooth_l1")
def kd_smooth_l1(*, temperature: PositiveFloat = 2.0, detach_teacher: bool = False) -> nn.Module:
    """SmoothL1 on raw logits times T^2 (public CIFAR code)."""
    return SmoothL1Distillation(temperature=temperature, detach_teacher=detach_teacher)


@losses.register("multi_level")
def multi_level(
    stage_channels: list[int],
    num_classes: int,
    *,
    levels: list[NonNegativeInt] = [0, 1],  # noqa: B006 - the signature is the config schema; never mutated
    head: Component("heads") = {"type": "aux_classifier"},  # noqa: B006
    kd: Component("losses") = {"type": "kd_kl"},  # noqa: B006
    weighting: Literal["uniform", "learned"] = "uniform",
    combine: Literal["sum", "concat"] = "sum",
    fix_heads: bool = False,
) -> nn.Module:
    """Multi-level distillation (paper Sec. 3.3): ``head`` on each stage in ``levels`` plus the final logits.

    ``weighting``: uniform level weights (Eq. 7) or the public code's learned softmax. ``fix_heads`` keeps the heads
    at their random initialisation, never trained (the public CIFAR and NAS-Bench-201 scripts' ``--fix_head``), so
    the KD term can only shrink by moving S towards E, not by moving the heads. ``stage_channels`` (channels of each
    stage output, shallow to deep) and ``num_classes`` come from the engine.
    """
    bad = [i for i in levels if not 0 <= i < len(stage_channels)]
    if bad:
        raise ConfigError(f"multi_level: levels {bad} out of range for {len(stage_channels)} stages {stage_channels}")
    heads = [build("heads", head, stage_channels[i], num_classes) for i in levels]
    if fix_heads:  # a frozen BN keeps scale 1 and shift 0: the public code's BN without affine
        for module in heads:
            module.requires_grad_(False)
    return MultiLevelDistillation(heads, levels, build("losses", kd), weighting=weighting, combine=combine)
