"""DARTS (Liu, Simonyan, Yang, "DARTS: Differentiable Architecture Search", ICLR 2019): alternate an alpha step on
a val batch and a weight step on a train batch. ``order: 1`` (DARTS-V1) takes alpha's gradient at the current
weights; ``order: 2`` (DARTS-V2, also registered as ``darts-v2``) takes it through one virtual step of the weights
(the paper's Eq. 6-8). With ``reg_weight > 0`` it is paper Table 5's "DARTS + L_Reg": the alpha L1 on CDARTS's
lambda' schedule.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import torch
from torch import Tensor, nn

from cdarts.config import Component, NonNegativeFloat, NonNegativeInt, PositiveInt, Range, cross_check
from cdarts.registry import strategies
from cdarts.runtime import average_gradients, frozen, zero_grad
from cdarts.strategies.base import SearchStrategy, guarded_step
from cdarts.strategies.cdarts import ADAM, SGD
from cdarts.strategies.loop import Meter, correct

Batch = tuple[Tensor, Tensor]

FD_RADIUS = 0.01
"""The finite difference's step, epsilon * ||direction||: the DARTS paper's (Sec. 2.3) and code's 0.01."""


class FirstOrderDarts(SearchStrategy):
    """DARTS-V1: no evaluation network; S's own val loss drives alpha."""

    def search_epoch(self, epoch: int, search_epoch: int) -> dict[str, float]:
        meter = Meter()
        reg_lambda = self.reg_lambda(search_epoch)
        pairs = zip(self.batches("train", epoch), self.batches("val", epoch), strict=False)
        steps = min(self.steps("train"), self.steps("val"))
        bar = self.ctx.progress(pairs, desc=self.epoch_label(epoch), total=steps)
        for train, val in bar:
            self.architecture_step(train, val, reg_lambda, meter)
            self.weight_step(*train, meter)
            bar.set_postfix(loss=f"{meter.mean('alpha_loss'):.3f}", acc=f"{meter.mean('train_acc'):.1f}")
        return {**meter.means(), "lambda_reg": reg_lambda}

    def architecture_step(self, train: Batch, val: Batch, reg_lambda: float, meter: Meter) -> None:
        """The alpha step of one search iteration, given both batches (first order reads only ``val``)."""
        self.alpha_step(*val, reg_lambda, meter)

    @guarded_step
    def alpha_step(self, x, y, reg_lambda: float, meter: Meter) -> None:
        """S's val loss plus ``reg_lambda`` times the alpha regulariser, updating alpha only."""
        runtime = self.ctx.runtime
        zero_grad([self.alpha_opt])
        with frozen(self.search_net.weight_parameters()), runtime.autocast():
            logits = self.search_net(x)
            terms = {"ce_s": self.criterion(logits, y)}
            terms.update(self.arch_terms(reg_lambda))
            loss = sum(terms.values())
        runtime.step(loss, [self.alpha_opt], {f"alpha.{name}": value for name, value in terms.items()})
        meter.add("alpha_loss", loss.item(), len(y))
        meter.add("s_alpha_acc", 100.0 * correct(logits.detach(), y) / len(y), len(y))


class SecondOrderDarts(FirstOrderDarts):
    """DARTS-V2: alpha descends the val loss after one virtual step of the weights (Liu et al. 2019, Eq. 6-8).

    The virtual step is the weight optimizer's own SGD step on the train batch, as in the DARTS code:
    ``w' = w - xi * (momentum * buf + grad_w L_train(w, alpha) + wd * w)`` with ``xi`` the current weight learning
    rate (no clipping; with Nesterov, SGD's ``(1 + momentum) * (grad + wd * w) + momentum^2 * buf``, and ``xi``
    carries the ``1 + momentum``). Alpha's gradient is Eq. 7, ``grad_alpha L_val(w', alpha) - xi *
    grad2_{alpha,w} L_train(w, alpha) . grad_w' L_val(w', alpha)``, the Hessian-vector product by central
    differences (Eq. 8) at ``w +- epsilon * xi * grad_w' L_val`` with ``epsilon * ||xi * grad_w' L_val|| = 0.01``
    (one ``xi``: the paper's ``epsilon = 0.01 / ||grad_w' L_val||``). Four forward-backward passes per alpha step
    against first order's one.

    Every pass's gradients are averaged over processes as they are taken, so every rank builds the same ``w'``, the
    same epsilon and the same alpha gradient. Forward passes run under the runtime's autocast; the weights, their
    perturbation and the alpha gradient stay fp32. Under fp16 each pass's gradient is taken through the loss scale;
    an overflow leaves alpha's gradient non-finite, which the scaler skips like any other overflow (lowering its
    scale), while in fp32 and bf16 a non-finite gradient stops the step as in ``Runtime.step``.
    """

    def architecture_step(self, train: Batch, val: Batch, reg_lambda: float, meter: Meter) -> None:
        self.unrolled_alpha_step(train, val, reg_lambda, meter)

    @guarded_step
    def unrolled_alpha_step(self, train: Batch, val: Batch, reg_lambda: float, meter: Meter) -> None:
        """Alpha's Eq. 7 gradient plus the architecture regularisers', then one alpha optimizer step. The val loss
        and accuracy logged are S's at ``w'``."""
        runtime = self.ctx.runtime
        zero_grad([self.alpha_opt])
        alphas = self.search_net.arch_parameters()
        grads, ce, logits = self.hypergradient(train, val)
        arch = self.arch_terms(reg_lambda)
        # alpha * grad (grad held constant) back-propagates grad itself: runtime.step then averages, clips and
        # steps alpha (through fp16's loss scale) as for any other loss
        surrogate = sum((alpha * grad).sum() for alpha, grad in zip(alphas, grads, strict=True)) + sum(arch.values())
        terms = {"ce_s": ce, **arch}
        runtime.step(surrogate, [self.alpha_opt], {f"alpha.{name}": value for name, value in terms.items()})
        y = val[1]
        meter.add("alpha_loss", sum(float(v) for v in terms.values()), len(y))
        meter.add("s_alpha_acc", 100.0 * correct(logits, y) / len(y), len(y))

    def hypergradient(self, train: Batch, val: Batch) -> tuple[list[Tensor], Tensor, Tensor]:
        """(Eq. 7's gradient per alpha, S's val loss at ``w'``, its val logits), averaged over processes; the weights
        are put back exactly afterwards. NaN where a pass's weight gradients were not finite (see the class)."""
        weights = [p for group in self.w_opt.param_groups for p in group["params"]]
        alphas = self.search_net.arch_parameters()
        saved = [w.detach().clone() for w in weights]
        try:
            _, grads = self.pass_gradients(train, weights, alphas)
            finite = all_finite(grads)
            if finite:
                self.virtual_step(grads)
            (ce, logits), grads = self.pass_gradients(val, [*weights, *alphas], [])
            v, d_alpha = grads[: len(weights)], grads[len(weights) :]
            direction = [None if g is None else xi * g for g, xi in zip(v, self.step_sizes(), strict=True)]
            norm = float(torch.linalg.vector_norm(torch.stack([d.norm() for d in direction if d is not None])))
            if not (finite and math.isfinite(norm)):
                return [torch.full_like(d, math.nan) for d in d_alpha], ce.detach(), logits.detach()
            if norm > 0:  # else xi = 0 or a zero val gradient: no second-order term
                epsilon = FD_RADIUS / norm
                plus = self.perturbed_alpha_gradients(train, saved, direction, epsilon)
                minus = self.perturbed_alpha_gradients(train, saved, direction, -epsilon)
                d_alpha = [d - (p - m) / (2 * epsilon) for d, p, m in zip(d_alpha, plus, minus, strict=True)]
            return d_alpha, ce.detach(), logits.detach()
        finally:
            with torch.no_grad():
                for w, s in zip(weights, saved, strict=True):
                    w.copy_(s)

    def pass_gradients(self, batch: Batch, params: list[nn.Parameter], still: list[nn.Parameter]
                       ) -> tuple[tuple[Tensor, Tensor], list[Tensor | None]]:
        """((loss, logits), d loss / d ``params``) of S on ``batch``, ``still`` frozen; the gradients averaged over
        processes, None where a parameter is unused, fp32, through fp16's loss scale when there is one."""
        runtime = self.ctx.runtime
        x, y = batch
        with frozen(still), runtime.autocast():
            logits = self.search_net(x)
            loss = self.criterion(logits, y)
        scale = runtime.scaler.get_scale() if runtime.scaler is not None else 1.0
        for p in params:
            p.grad = None
        torch.autograd.backward(loss * scale, inputs=params)
        if runtime.world_size > 1:
            average_gradients(params, runtime.world_size)
        grads = [None if p.grad is None else p.grad / scale for p in params]
        for p in params:
            p.grad = None
        return (loss, logits), grads

    def step_sizes(self) -> list[float]:
        """xi per weight tensor, d w' / d grad: its group's current learning rate, times ``1 + momentum`` with
        Nesterov."""
        return [group["lr"] * (1 + group["momentum"] if group["nesterov"] else 1)
                for group in self.w_opt.param_groups for _ in group["params"]]

    @torch.no_grad()
    def virtual_step(self, grads: list[Tensor | None]) -> None:
        """w <- w - lr * (momentum * buf + grad + wd * w), or Nesterov's step: what SGD (without dampening) would
        do with ``grads``; a tensor without a gradient stays, as SGD leaves it."""
        grads = iter(grads)
        for group in self.w_opt.param_groups:
            m = group["momentum"]
            # Nesterov looks ahead: buf' = m * buf + d, step d + m * buf' = (1 + m) * d + m^2 * buf
            scale, carry = (1 + m, m * m) if group["nesterov"] else (1, m)
            for p in group["params"]:
                grad = next(grads)
                if grad is None:
                    continue
                update = scale * (grad + group["weight_decay"] * p)
                buf = self.w_opt.state.get(p, {}).get("momentum_buffer")
                if buf is not None and carry:
                    update += carry * buf
                p.sub_(group["lr"] * update)

    def perturbed_alpha_gradients(self, train: Batch, saved: list[Tensor], direction: list[Tensor | None],
                                  epsilon: float) -> list[Tensor]:
        """grad_alpha L_train(w + epsilon * direction, alpha), averaged over processes."""
        weights = [p for group in self.w_opt.param_groups for p in group["params"]]
        with torch.no_grad():
            for w, s, d in zip(weights, saved, direction, strict=False):
                w.copy_(s if d is None else s + epsilon * d)
        alphas = self.search_net.arch_parameters()
        _, grads = self.pass_gradients(train, alphas, weights)
        return [torch.zeros_like(a) if g is None else g for a, g in zip(alphas, grads, strict=True)]


def all_finite(tensors: list[Tensor | None]) -> bool:
    """Every entry of every tensor (None: no entries) finite, in one device sync."""
    present = [t for t in tensors if t is not None]
    return not present or bool(torch.stack([torch.isfinite(t).all() for t in present]).all())


def _virtual_step_is_sgd(keys: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """DARTS-V2's virtual weight step is an SGD step (``darts-v2`` has no ``order`` key: it is always 2)."""
    if keys.get("order", 2) == 2 and keys["w_optimizer"]["type"] != "sgd":
        yield "w_optimizer.type", (f"DARTS order 2 takes its virtual weight step as SGD does, got "
                                   f"{keys['w_optimizer']['type']!r}; use sgd, or order: 1")


@strategies.register("darts")
@cross_check(_virtual_step_is_sgd)
def darts(
    *,
    epochs: PositiveInt = 50,
    pretrain_epochs: NonNegativeInt = 0,
    order: Literal[1, 2] = 1,
    w_optimizer: Component("optimizers") = {**SGD, "lr": 0.025},  # noqa: B006 - schema default
    alpha_optimizer: Component("optimizers") = {**ADAM, "betas": [0.5, 0.999], "weight_decay": 1e-3},  # noqa: B006
    w_scheduler: Component("schedulers") = {"type": "cosine", "min_lr": 0.001},  # noqa: B006
    loss: Component("losses") = {"type": "ce"},  # noqa: B006
    regularizer: Component("losses") | None = {"type": "alpha_l1"},  # noqa: B006
    reg_weight: NonNegativeFloat = 0.0,
    reg_stop_epoch: Annotated[int, Range()] = 20,
    resource: Component("losses") | None = None,
) -> FirstOrderDarts:
    """DARTS with the DARTS paper's settings (SGD 0.025 cosine to 0.001; Adam 3e-4, betas (0.5, 0.999), wd 1e-3).

    ``order: 1`` is DARTS-V1, ``order: 2`` DARTS-V2 (the unrolled gradient of Eq. 7-8, see ``SecondOrderDarts``; its
    virtual step needs an SGD ``w_optimizer``). ``reg_weight > 0`` adds the alpha L1 with lambda'
    decaying as in ``cdarts`` (paper Table 5's "DARTS + L_Reg": ``reg_weight: 5``, 0 at search epoch
    ``reg_stop_epoch``; ``<= 0``: constant). ``resource`` adds a cost penalty to the alpha step (see
    ``cdarts.losses.resource``)."""
    kind = SecondOrderDarts if order == 2 else FirstOrderDarts
    return kind(
        epochs=epochs, pretrain_epochs=pretrain_epochs, w_optimizer=w_optimizer, alpha_optimizer=alpha_optimizer,
        w_scheduler=w_scheduler, loss=loss, regularizer=regularizer, reg_weight=reg_weight,
        reg_stop_epoch=reg_stop_epoch, resource=resource,
    )


def darts_v2(**settings: Any) -> FirstOrderDarts:
    """DARTS-V2: ``darts`` with ``order: 2``, the unrolled architecture gradient (the DARTS paper's equations 7 and 8).

    The same keys as ``darts`` but ``order``; the name Table 1's runs use."""
    return darts(**settings, order=2)


_SIGNATURE = inspect.signature(darts)
darts_v2.__signature__ = _SIGNATURE.replace(parameters=[p for p in _SIGNATURE.parameters.values() if p.name != "order"])
darts_v2.__annotations__ = {name: hint for name, hint in darts.__annotations__.items() if name != "order"}
cross_check(_virtual_step_is_sgd)(darts_v2)
strategies.register("darts-v2", darts_v2)
