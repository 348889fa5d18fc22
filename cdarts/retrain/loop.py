"""One retraining epoch and one validation pass, in the shape of timm's ``train.py``; the network a config names."""

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from cdarts.models.darts import CdartsNet
from cdarts.retrain.data import RetrainData


def model_args(cfg: Mapping[str, Any], num_classes: int, in_chans: int) -> dict[str, Any]:
    """The ``timm.create_model`` arguments that rebuild the architecture (plain JSON; no training-only rates)."""
    m = cfg["model"]
    return {
        "genotype": m["genotype"], "channels": m["channels"], "layers": m["layers"],
        "stem_multiplier": m["stem_multiplier"], "num_classes": num_classes, "in_chans": in_chans,
    }


def create_network(cfg: Mapping[str, Any], data: RetrainData) -> CdartsNet:
    """The ``cdarts_*`` timm model a config describes, sized for the dataset."""
    import timm

    m = cfg["model"]
    return timm.create_model(
        m["architecture"], **model_args(cfg, data.splits.num_classes, data.splits.in_chans),
        auxiliary=m["auxiliary"], drop_path_rate=m["drop_path_rate"], drop_rate=m["drop_rate"],
    )


class TrainForward(nn.Module):
    """``(logits, aux_logits)`` of a network's ``forward_stages``, as a module Accelerate/DDP can wrap."""

    def __init__(self, net: CdartsNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        out = self.net.forward_stages(x)
        return out.logits, out.aux_logits


def make_criterion(mixup: bool, label_smoothing: float) -> nn.Module:
    """Soft-target CE under mixup (the targets carry the smoothing), label-smoothed CE, or plain CE."""
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if mixup:
        return SoftTargetCrossEntropy()
    if label_smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=label_smoothing)
    return nn.CrossEntropyLoss()
