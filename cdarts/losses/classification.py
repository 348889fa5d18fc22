"""Classification losses."""
from __future__ import annotations

from torch import nn

from cdarts.config import Fraction
from cdarts.registry import losses


@losses.register("ce")
def ce(*, label_smoothing: Fraction = 0.0) -> nn.Module:
    """Cross-entropy, called ``(logits, target)``; the CE terms of S and E in every step of the cycle."""
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)
