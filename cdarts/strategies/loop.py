"""The pieces every search strategy's training loop shares: one optimisation step, evaluation, meters."""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.optim import Optimizer


class NonFiniteLossError(FloatingPointError):
    """A loss term, its gradients or an alpha became NaN or inf; the message names it."""


@dataclass
class Runtime:
    """Where and how the networks run: device, autocast dtype, fp16 scaler, process group size, and what a
    non-finite loss or alpha does: ``"stop"`` raises, ``"skip"`` drops the step (at most ``max_skipped`` times).

    ``clip_scope`` says what ``grad_clip`` bounds: ``"global"`` one norm over every parameter a step updates (the
    public CDARTS code: step A's alpha and E together), ``"per_optimizer"`` each optimizer's parameters alone.
    """

    device: torch.device
    autocast_dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None
    world_size: int = 1
    grad_clip: float | None = 5.0
    nonfinite: Literal["stop", "skip"] = "stop"
    max_skipped: int = 10
    skipped: int = 0
    warn: Callable[[str], None] = print
    clip_scope: Literal["global", "per_optimizer"] = "global"

    def __post_init__(self) -> None:
        if self.clip_scope not in ("global", "per_optimizer"):
            raise ValueError(f"clip_scope must be 'global' or 'per_optimizer', got {self.clip_scope!r}")

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def step(self, loss: Tensor, optimizers: Sequence[Optimizer], terms: Mapping[str, Tensor] | None = None) -> None:
        """Check the loss ``terms`` (default: ``loss`` itself) are finite on every process, then backward, average
        gradients over processes, clip (see ``clip_scope``), and step every
        optimizer together.

        With several processes the gradients are all-reduced by hand instead of wrapping the networks in DDP:
        S and E run several differently-shaped passes per step and E leaves most of its op pool unused, which
        DDP handles badly; averaging the same gradients on every rank keeps parameters identical everywhere.
        """
        self.check_finite({"loss": loss} if terms is None else terms)
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
        norms = []
        if self.grad_clip:
            groups = [params] if self.clip_scope == "global" else [
                [p for g in opt.param_groups for p in g["params"]] for opt in optimizers]
            for group in groups:
                norms.append(nn.utils.clip_grad_norm_([p for p in group if p.grad is not None], self.grad_clip))
        elif self.scaler is None:
            norms.append(nn.utils.get_total_norm([p.grad for p in params if p.grad is not None]))
        # fp16's scaler skips steps with inf gradients itself; otherwise a finite loss can still give NaN gradients
        # (sqrt at 0, ...), identical on every process after the averaging
        if self.scaler is None and not bool(torch.isfinite(torch.stack(norms)).all()):
            raise NonFiniteLossError(f"the gradients of loss terms {', '.join(map(repr, terms or ['loss']))} are "
                                     "not finite")
        for opt in optimizers:
            if self.scaler is not None:
                self.scaler.step(opt)
            else:
                opt.step()
        if self.scaler is not None:
            self.scaler.update()

    def check_finite(self, terms: Mapping[str, Tensor]) -> None:
        """``check_finite`` agreed by every process: all of them raise together, none waits in a collective for
        a process that stopped."""
        try:
            check_finite(terms)
        except NonFiniteLossError as exc:
            local: NonFiniteLossError | None = exc
        else:
            local = None
        if self.world_size > 1:
            flag = torch.tensor([float(local is not None)], device=self.device)
            dist.all_reduce(flag)
            if local is None and flag.item() > 0:
                local = NonFiniteLossError("a loss term is not finite on another process")
        if local is not None:
            raise local

    @contextlib.contextmanager
    def guard(self, modules: Iterable[nn.Module], alphas: Callable[[], Mapping[str, Tensor]]) -> Iterator[None]:
        """Apply the non-finite policy to one optimisation step run inside this block.

        The step raises ``NonFiniteLossError`` for a non-finite loss term or gradient (``step``, before any
        optimizer moves); afterwards every alpha must be finite too. ``"stop"`` lets the error through. ``"skip"``
        puts back the alphas and the BN running statistics the step's forward passes moved, drops the gradients,
        warns naming the term, and carries on; after more than ``max_skipped`` skipped steps the run stops. (So skip
        mode copies the alphas and BN statistics before every step: a small cost that stop mode does not pay.)
        """
        modules = list(modules)
        saved = _snapshot(modules, alphas()) if self.nonfinite == "skip" else None
        try:
            yield
            check_finite(alphas(), what="alpha")
        except NonFiniteLossError as exc:
            if saved is None:
                raise NonFiniteLossError(f"{exc}; stopping (set `nonfinite: skip` to skip such batches, or lower "
                                         "the learning rates)") from None
            with torch.no_grad():
                for target, value in saved:
                    target.copy_(value)
            for module in modules:
                module.zero_grad(set_to_none=True)
            for alpha in alphas().values():
                alpha.grad = None
            self.skipped += 1
            if self.skipped > self.max_skipped:
                raise NonFiniteLossError(f"{exc}; stopping: {self.skipped} steps skipped, more than "
                                         f"max_skipped_batches {self.max_skipped}") from None
            self.warn(f"warning: {exc}; skipped this batch ({self.skipped} of at most {self.max_skipped})")


def _snapshot(modules: Sequence[nn.Module], alphas: Mapping[str, Tensor]) -> list[tuple[Tensor, Tensor]]:
    """(tensor, copy) of every alpha and BN buffer: what a skipped step must put back."""
    targets = list(alphas.values())
    for module in modules:
        targets += [b for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                    for b in m.buffers(recurse=False)]
    return [(t, t.detach().clone()) for t in targets]


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


def check_finite(terms: Mapping[str, Tensor], what: str = "loss term") -> None:
    """Raise naming the first non-finite one of ``terms`` (scalar loss terms, or tensors such as the alphas).

    One device sync however many terms: they are tested together first, and one by one only to name the culprit.
    """
    if not terms or bool(torch.stack([torch.isfinite(v.detach()).all() for v in terms.values()]).all()):
        return
    for name, value in terms.items():
        if not torch.isfinite(value.detach()).all():
            shown = value.item() if value.numel() == 1 else "has NaN or inf entries"
            raise NonFiniteLossError(f"{what} {name!r} is not finite ({shown})")


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
