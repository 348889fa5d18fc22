"""What every network of every search space returns, so strategies and losses are space-agnostic."""
from __future__ import annotations

from typing import Literal, NamedTuple

from torch import Tensor

StageTaps = Literal["after_reduction", "before_reduction"]
"""Where a stage's output is read for distillation: after the block that reduces the resolution, or before it."""


def check_stage_taps(taps: str) -> None:
    if taps not in ("after_reduction", "before_reduction"):
        raise ValueError(f"stage_taps must be 'after_reduction' or 'before_reduction', got {taps!r}")


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
