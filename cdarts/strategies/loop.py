"""The pieces every search strategy's training loop shares: one optimisation step, evaluation, meters."""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.optim import Optimizer


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or inf; the message names the term."""


@dataclass
class Runtime:
    """Where and how the networks run: device, autocast dtype, fp16 scaler, process group size."""

    device: torch.device
    autocast_dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None
    world_size: int = 1
    grad_clip: float | None = 5.0

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def step(self, loss: Tensor, optimizers: Sequence[Optimizer]) -> None:
        """Backward, average gradients over processes, clip, and step every optimizer together.

        With several processes the gradients are all-reduced by hand instead of wrapping the networks in DDP:
        S and E run several differently-shaped passes per step and E leaves most of its op pool unused, which
        DDP handles badly; averaging the same gradients on every rank keeps parameters identical everywhere.
        """
        params = [p for opt in optimizers for group in opt.param_groups for p in group["params"]]
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()
        if self.world_size > 1:
            average_gradients(params, self.world_size)
        if self.scaler is not None:
            for opt in optimizers:
                self.scaler.unscale_(opt)
        if self.grad_clip:
            for opt in optimizers:
                nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"] if p.grad is not None],
                                         self.grad_clip)
        for opt in optimizers:
            if self.scaler is not None:
                self.scaler.step(opt)
            else:
                opt.step()
        if self.scaler is not None:
            self.scaler.update()


def average_gradients(params: Iterable[nn.Parameter], world_size: int) -> None:
    """All-reduce (mean) the gradients that exist, as one flat buffer."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def zero_grad(optimizers: Iterable[Optimizer]) -> None:
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)


@contextlib.contextmanager
def frozen(params: Iterable[nn.Parameter]) -> Iterator[None]:
    """Skip computing gradients for ``params`` (exact: they are not stepped anyway, and it saves backward work)."""
    params = [p for p in params if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def check_finite(terms: dict[str, Tensor]) -> None:
    """Raise naming the first non-finite loss term."""
    for name, value in terms.items():
        if not torch.isfinite(value.detach()).all():
            raise NonFiniteLossError(f"loss term {name!r} is not finite ({value.item()})")


def correct(logits: Tensor, target: Tensor) -> int:
    return int((logits.argmax(dim=-1) == target).sum())


@dataclass
class Meter:
    """Sums of named values weighted by batch size; ``means()`` for logging."""

    totals: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, value: float, n: int = 1) -> None:
        self.totals[name] = self.totals.get(name, 0.0) + float(value) * n
        self.counts[name] = self.counts.get(name, 0) + n

    def mean(self, name: str) -> float:
        return self.totals[name] / self.counts[name] if self.counts.get(name) else math.nan

    def means(self) -> dict[str, float]:
        return {name: self.mean(name) for name in self.totals}


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
        counts = torch.tensor([hits, total], dtype=torch.float64, device=runtime.device)
        dist.all_reduce(counts)
        hits, total = int(counts[0]), int(counts[1])
    return 100.0 * hits / max(total, 1)
