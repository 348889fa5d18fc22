"""Architecture regularisers: the L1 penalty on alpha that curbs skip-connect collapse (paper Eq. 9), and its
lambda' schedule."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from cdarts.config import Registered
from cdarts.errors import ConfigError
from cdarts.registry import losses, unknown_name_message


class AlphaL1(nn.Module):
    """Sum of the absolute values of the alpha columns of the given ops, over all cell types.

    Called with a sequence of alphas, each ``(edges, len(primitives))`` (e.g. normal and reduce).
    """

    def __init__(
        self,
        primitives: Sequence[str],
        ops: Sequence[str] = ("skip_connect",),
        on: Literal["logits", "softmax"] = "logits",
    ):
        super().__init__()
        for op in ops:
            if op not in primitives:
                raise ConfigError(f"alpha_l1: {unknown_name_message('op', op, list(primitives))}")
        self.primitives = list(primitives)
        self.ops = list(ops)
        self.on = on
        self.columns = [self.primitives.index(op) for op in self.ops]

    def forward(self, alphas: Sequence[Tensor]) -> Tensor:
        terms = []
        for alpha in alphas:
            values = alpha.softmax(-1) if self.on == "softmax" else alpha
            terms.append(values[..., self.columns].abs().sum())
        return torch.stack(terms).sum()

    def extra_repr(self) -> str:
        return f"ops={self.ops}, on={self.on!r}"


@losses.register("alpha_l1")
def alpha_l1(
    primitives: list[str],
    *,
    ops: list[Registered("ops")] = ["skip_connect"],  # noqa: B006 - the signature is the config schema; never mutated
    on: Literal["logits", "softmax"] = "logits",
) -> nn.Module:
    """L1 of alpha entries of ``ops``. Paper: skip_connect only, raw logits ("logits"); the public code also
    penalises max_pool_3x3 and avg_pool_3x3. "softmax" penalises the mixing weights instead."""
    return AlphaL1(primitives, ops=ops, on=on)


def linear_decay(epoch: int, *, start: float = 5.0, stop_epoch: int = 20) -> float:
    """lambda' at ``epoch`` (0-based): ``start`` at epoch 0, linearly down to 0 at ``stop_epoch``, 0 after.

    The paper's CIFAR schedule is 5 -> 0 over the first 20 of 30 search epochs. ``stop_epoch <= 0`` means no decay:
    constant ``start`` (use ``start=0`` to switch the regulariser off, as for NAS-Bench-201).
    """
    if stop_epoch <= 0:
        return float(start)
    return float(start) * max(0.0, 1.0 - epoch / stop_epoch)
