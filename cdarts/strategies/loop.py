"""The pieces every search strategy's training loop shares besides the runtime: evaluation, BN recalibration, meters."""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator

import torch
from timm.utils import AverageMeter
from torch import Tensor, nn

from cdarts.runtime import Runtime


def correct(logits: Tensor, target: Tensor) -> int:
    return int((logits.argmax(dim=-1) == target).sum())


class Meter:
    """Named running means weighted by batch size (timm's ``AverageMeter`` per name); ``means()`` for logging."""

    def __init__(self) -> None:
        self.meters: dict[str, AverageMeter] = {}

    def add(self, name: str, value: float, n: int = 1) -> None:
        self.meters.setdefault(name, AverageMeter()).update(float(value), n)

    def mean(self, name: str) -> float:
        meter = self.meters.get(name)
        return meter.avg if meter is not None and meter.count else math.nan

    def means(self) -> dict[str, float]:
        return {name: self.mean(name) for name in self.meters}


@contextlib.contextmanager
def recalibrated_bn(module: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], runtime: Runtime) -> Iterator[None]:
    """Evaluate with BN statistics re-estimated on ``batches``, then put the trained statistics back.

    Running averages lag far behind weights that move fast (high LR, few steps, and weight sharing swapping ops
    in and out), so eval-mode accuracy of a network mid-search can sit near chance while its train-mode accuracy
    is high. Re-estimating the statistics with exact averages fixes the measurement without touching training.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [(m.momentum, {k: v.clone() for k, v in m.named_buffers(recurse=False)}) for m in norms]
    was_training = module.training
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        module.train()
        with torch.no_grad(), runtime.autocast():
            for x, _ in batches:
                module(x.to(runtime.device, non_blocking=True))
        yield
    finally:
        for m, (momentum, buffers) in zip(norms, saved, strict=True):
            m.momentum = momentum
            for name, value in buffers.items():
                getattr(m, name).copy_(value)
        module.train(was_training)


@torch.no_grad()
def evaluate(
    forward: Callable[[Tensor], Tensor], loader: Iterable, runtime: Runtime, module: nn.Module
) -> float:
    """Top-1 accuracy (%) of ``forward`` over ``loader`` with ``module`` in eval mode, summed over processes."""
    was_training = module.training
    module.eval()
    hits, total = 0, 0
    try:
        for x, y in loader:
            x, y = x.to(runtime.device, non_blocking=True), y.to(runtime.device, non_blocking=True)
            with runtime.autocast():
                hits += correct(forward(x), y)
            total += len(y)
    finally:
        module.train(was_training)
    if runtime.world_size > 1:
        counts = runtime.reduce_sum(torch.tensor([hits, total], dtype=torch.float64, device=runtime.device))
        hits, total = int(counts[0]), int(counts[1])
    return 100.0 * hits / max(total, 1)
