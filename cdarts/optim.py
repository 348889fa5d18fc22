"""Optimizers and LR schedules as registered components, built with timm's factories.

A config names them like any other component (``w_optimizer: {type: sgd, lr: 0.1, momentum: 0.9}``), so their
keys are validated; timm's ``create_optimizer_v2`` and ``create_scheduler_v2`` do the building. SGD and Adam update
all their tensors at once (``foreach``) on the CPU too, where PyTorch's default loops over them in Python: a
supernet has hundreds of small weight tensors, and the loop costs ~2x the foreach update.
"""
from __future__ import annotations

from collections.abc import Iterable

from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.scheduler.scheduler import Scheduler
from torch import nn
from torch.optim import Optimizer

from cdarts.registry import optimizers, schedulers

Params = Iterable[nn.Parameter] | Iterable[dict]


@optimizers.register("sgd")
def sgd(
    params: Params, *, lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 3e-4, nesterov: bool = False
) -> Optimizer:
    return create_optimizer_v2(params, opt="nesterov" if nesterov else "momentum", lr=lr, momentum=momentum,
                               weight_decay=weight_decay, foreach=True)


@optimizers.register("adam")
def adam(
    params: Params, *, lr: float = 3e-4, betas: tuple[float, float] = (0.5, 0.99), weight_decay: float = 0.0,
    eps: float = 1e-8,
) -> Optimizer:
    """Adam; the default betas are the CDARTS paper's for alpha (Appendix A), the public code's are (0.5, 0.999)."""
    return create_optimizer_v2(params, opt="adam", lr=lr, betas=tuple(betas), weight_decay=weight_decay, eps=eps,
                               foreach=True)


@optimizers.register("adamw")
def adamw(
    params: Params, *, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.05,
    eps: float = 1e-8,
) -> Optimizer:
    return create_optimizer_v2(params, opt="adamw", lr=lr, betas=tuple(betas), weight_decay=weight_decay, eps=eps,
                               foreach=True)


@optimizers.register("lamb")
def lamb(params: Params, *, lr: float = 5e-3, weight_decay: float = 0.02) -> Optimizer:
    return create_optimizer_v2(params, opt="lamb", lr=lr, weight_decay=weight_decay)


@schedulers.register("constant")
def constant(optimizer: Optimizer, epochs: int, updates_per_epoch: int) -> Scheduler | None:
    """No schedule: the optimizer's LR throughout (what the CDARTS public code uses during search)."""
    return None


@schedulers.register("cosine")
def cosine(
    optimizer: Optimizer, epochs: int, updates_per_epoch: int, *, min_lr: float = 0.0, warmup_epochs: int = 0,
    warmup_lr: float = 1e-5, per_update: bool = False,
) -> Scheduler:
    """Cosine decay to ``min_lr`` over all epochs, after a linear warm-up; stepped per epoch unless ``per_update``."""
    scheduler, _ = create_scheduler_v2(
        optimizer, sched="cosine", num_epochs=epochs, min_lr=min_lr, warmup_epochs=warmup_epochs, warmup_lr=warmup_lr,
        step_on_epochs=not per_update, updates_per_epoch=updates_per_epoch,
    )
    return scheduler


@schedulers.register("step")
def step(
    optimizer: Optimizer, epochs: int, updates_per_epoch: int, *, decay_epochs: float = 30, decay_rate: float = 0.1,
    warmup_epochs: int = 0, warmup_lr: float = 1e-5,
) -> Scheduler:
    """Multiply the LR by ``decay_rate`` every ``decay_epochs``."""
    scheduler, _ = create_scheduler_v2(
        optimizer, sched="step", num_epochs=epochs, decay_epochs=decay_epochs, decay_rate=decay_rate,
        warmup_epochs=warmup_epochs, warmup_lr=warmup_lr, updates_per_epoch=updates_per_epoch,
    )
    return scheduler
