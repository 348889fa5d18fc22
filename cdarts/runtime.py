"""The one training runtime of search and retraining: accelerate's autocast, backward, clipping and reductions,
the gradient averaging of the search's un-wrapped networks, and the non-finite policy both apply."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.optim import Optimizer


class NonFiniteLossError(FloatingPointError):
    """A loss term, its gradients or an alpha became NaN or inf; the message names it."""


@dataclass
class Runtime:
    """How search and retraining run their networks, on accelerate's pieces: ``accelerator.autocast()``,
    ``accelerator.backward`` (the fp16 loss scale), ``accelerator.clip_grad_norm_`` and ``accelerator.reduce``; and
    what a non-finite loss or alpha does: ``"stop"`` raises, ``"skip"`` drops the step (at most ``max_skipped``
    times).

    ``clip_scope`` says what ``grad_clip`` bounds: ``"global"`` one norm over every parameter a step updates (the
    public CDARTS code: step A's alpha and E together), ``"per_optimizer"`` each optimizer's parameters alone.
    ``ddp`` says the networks are wrapped in DDP (retraining), which averages the gradients itself; otherwise
    ``step`` averages them by hand (search, see ``step``). ``steps`` counts the steps taken (a resumed search
    restores it); ``on_step(steps, terms)`` is called after each one, with its loss terms (trackers log them).
    """

    accelerator: Any
    grad_clip: float | None = 5.0
    nonfinite: Literal["stop", "skip"] = "stop"
    max_skipped: int = 10
    skipped: int = 0
    warn: Callable[[str], None] | None = None
    clip_scope: Literal["global", "per_optimizer"] = "global"
    ddp: bool = False
    steps: int = 0
    on_step: Callable[[int, Mapping[str, Tensor]], None] | None = None

    def __post_init__(self) -> None:
        if self.warn is None:
            self.warn = self.accelerator.print

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def world_size(self) -> int:
        return self.accelerator.num_processes

    @property
    def scaler(self) -> torch.amp.GradScaler | None:
        """accelerate's fp16 loss scaler (None in fp32 and bf16)."""
        return self.accelerator.scaler

    def autocast(self) -> contextlib.AbstractContextManager:
        return self.accelerator.autocast()

    def reduce_sum(self, tensor: Tensor) -> Tensor:
        """``tensor`` summed over processes (itself with one process)."""
        return self.accelerator.reduce(tensor, "sum") if self.world_size > 1 else tensor

    def step(self, loss: Tensor, optimizers: Sequence[Optimizer], terms: Mapping[str, Tensor] | None = None) -> None:
        """Check the loss ``terms`` (default: ``loss`` itself) are finite on every process, then backward, average
        gradients over processes, clip (see ``clip_scope``), and step every optimizer together.

        Without DDP the gradients are all-reduced by hand: S and E run several passes per step through shared
        modules (the stem), and E leaves most of its op pool unused, which DDP refuses (a module's parameter marked
        ready twice in one backward; ``test_runtime.py`` shows it). Averaging the same gradients on every rank keeps
        parameters identical everywhere. accelerate steps one prepared optimizer with one ``scaler.update()`` each,
        which would unscale the second of a step's two optimizers twice; so the scaler steps them here, updating once.
        """
        self.check_finite({"loss": loss} if terms is None else terms)
        params = [p for opt in optimizers for group in opt.param_groups for p in group["params"]]
        self.accelerator.backward(loss)
        if self.world_size > 1 and not self.ddp:
            average_gradients(params, self.world_size)
        scaler = self.scaler
        if scaler is not None:
            for opt in optimizers:
                scaler.unscale_(opt)
        norms = []
        if self.grad_clip:
            groups = [params] if self.clip_scope == "global" else [
                [p for g in opt.param_groups for p in g["params"]] for opt in optimizers]
            for group in groups:
                norms.append(self.accelerator.clip_grad_norm_([p for p in group if p.grad is not None],
                                                              self.grad_clip))
        elif scaler is None:
            norms.append(nn.utils.get_total_norm([p.grad for p in params if p.grad is not None]))
        # fp16's scaler skips steps with inf gradients itself; otherwise a finite loss can still give NaN gradients
        # (sqrt at 0, ...), identical on every process after the averaging
        if scaler is None and norms and not bool(torch.isfinite(torch.stack(norms)).all()):
            raise NonFiniteLossError(f"the gradients of loss terms {', '.join(map(repr, terms or ['loss']))} are "
                                     "not finite")
        for opt in optimizers:
            if scaler is not None:
                scaler.step(opt)
            else:
                opt.step()
        if scaler is not None:
            scaler.update()
        self.steps += 1
        if self.on_step is not None:
            self.on_step(self.steps, {"loss": loss} if terms is None else terms)

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
