"""Optimizers and LR schedules as registered components, built with timm's factories.

A config names them like any other component (``w_optimizer: {type: sgd, lr: 0.1, momentum: 0.9}``), so their
keys are validated; timm's ``create_optimizer_v2`` and ``create_scheduler_v2`` do the building. SGD and Adam update
all their tensors at once (``foreach``) on the CPU too, where PyTorch's default loops over them in Python: a
supernet has hundreds of small weight tensors, and the loop costs ~2x the foreach update.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.scheduler.scheduler import Scheduler
from torch import nn
from torch.optim import Optimizer

from cdarts.config import NonNegativeFloat, NonNegativeInt, PositiveFloat, Range
from cdarts.registry import optimizers, schedulers

Params = Iterable[nn.Parameter] | Iterable[dict]
Beta = Annotated[float, Range(ge=0, lt=1)]
"""A moving-average coefficient (momentum, Adam's betas): 1 or more never forgets and diverges."""


@optimizers.register("sgd")
def sgd(
    params: Params, *, lr: NonNegativeFloat = 0.1, momentum: Beta = 0.9, weight_decay: NonNegativeFloat = 3e-4,
    nesterov: bool = False,
) -> Optimizer:
    return create_optimizer_v2(params, opt="nesterov" if nesterov else "momentum", lr=lr, momentum=momentum,
                               weight_decay=weight_decay, foreach=True)


@optimizers.register("adam")
def adam(
    params: Params, *, lr: NonNegativeFloat = 3e-4, betas: tuple[Beta, Beta] = (0.5, 0.99),
    weight_decay: NonNegativeFloat = 0.0, eps: PositiveFloat = 1e-8,
) -> Optimizer:
    """Adam; the default betas are the CDARTS paper's for alpha (Appendix A), the public code's are (0.5, 0.999)."""
    return create_optimizer_v2(params, opt="adam", lr=lr, betas=tuple(betas), weight_decay=weight_decay, eps=eps,
                               foreach=True)


@optimizers.register("adamw")
def adamw(
    params: Params, *, lr: NonNegativeFloat = 1e-3, betas: tuple[Beta, Beta] = (0.9, 0.999),
    weight_decay: NonNegativeFloat = 0.05, eps: PositiveFloat = 1e-8,
) -> Optimizer:
    return create_optimizer_v2(params, opt="adamw", lr=lr, betas=tuple(betas), weight_decay=weight_decay, eps=eps,
                               foreach=True)


@optimizers.register("lamb")
def lamb(params: Params, *, lr: NonNegativeFloat = 5e-3, weight_decay: NonNegativeFloat = 0.02) -> Optimizer:
    return create_optimizer_v2(params, opt="lamb", lr=lr, weight_decay=weight_decay)


@schedulers.register("constant")
def constant(optimizer: Optimizer, epochs: int, updates_per_epoch: int) -> Scheduler | None:
    """No schedule: the optimizer's LR throughout (what the CDARTS public code uses during search)."""
    return None


@schedulers.register("cosine")
def cosine(
    optimizer: Optimizer, epochs: int, updates_per_epoch: int, *, min_lr: NonNegativeFloat = 0.0,
    warmup_epochs: NonNegativeInt = 0, warmup_lr: NonNegativeFloat = 1e-5, per_update: bool = False,
) -> Scheduler:
    """Cosine decay to ``min_lr`` over all epochs, after a linear warm-up; stepped per epoch unless ``per_update``."""
    scheduler, _ = create_scheduler_v2(
        optimizer, sched="cosine", num_epochs=epochs, min_lr=min_lr, warmup_epochs=warmup_epochs, warmup_lr=warmup_lr,
        step_on_epochs=not per_update, updates_per_epoch=updates_per_epoch,
    )
    return scheduler


@schedulers.register("step")
def step(
    optimizer: Optimizer, epochs: int, updates_per_epoch: int, *, decay_epochs: PositiveFloat = 30,
    decay_rate: Annotated[float, Range(gt=0, le=1)] = 0.1, warmup_epochs: NonNegativeInt = 0,
    warmup_lr: NonNegativeFloat = 1e-5,
) -> Scheduler:
    """Multiply the LR by ``decay_rate`` every ``decay_epochs``."""
    scheduler, _ = create_scheduler_v2(
        optimizer, sched="step", num_epochs=epochs, decay_epochs=decay_epochs, decay_rate=decay_rate,
        warmup_epochs=warmup_epochs, warmup_lr=warmup_lr, updates_per_epoch=updates_per_epoch,
    )
    return scheduler
