"""What every network of every search space returns, so strategies and losses are space-agnostic."""
from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class StageOutputs(NamedTuple):
    """Logits plus the feature map at the end of each stage (the multi-level features CDARTS distils).

    Attributes:
        logits: classifier output, ``(batch, num_classes)``.
        stages: one feature map per stage, shallow to deep; stage ``i`` has the same shape in the search network
            and in the evaluation network of the same space, so distillation heads can be shared.
        aux_logits: the auxiliary tower's logits where the network has one and is training, else ``None``.
    """

    logits: Tensor
    stages: list[Tensor]
    aux_logits: Tensor | None = None
