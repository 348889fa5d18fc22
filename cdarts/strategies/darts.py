"""DARTS, first order: alternate an alpha step on a val batch and a weight step on a train batch. With
``reg_weight > 0`` it is paper Table 5's "DARTS + L_Reg": the alpha L1 on CDARTS's lambda' schedule.

The second-order (unrolled) variant is not offered: its virtual step needs a functional copy of S's weights
and a finite-difference Hessian-vector product, which we have not yet made exact under several processes.
"""
from __future__ import annotations

from typing import Annotated

from cdarts.config import Component, NonNegativeFloat, NonNegativeInt, PositiveInt, Range
from cdarts.registry import strategies
from cdarts.runtime import frozen, zero_grad
from cdarts.strategies.base import SearchStrategy, guarded_step
from cdarts.strategies.cdarts import ADAM, SGD
from cdarts.strategies.loop import Meter, correct


class FirstOrderDarts(SearchStrategy):
    """DARTS-V1: no evaluation network; S's own val loss drives alpha."""

    def search_epoch(self, epoch: int, search_epoch: int) -> dict[str, float]:
        meter = Meter()
        reg_lambda = self.reg_lambda(search_epoch)
        pairs = zip(self.batches("train", epoch), self.batches("val", epoch), strict=False)
        steps = min(self.steps("train"), self.steps("val"))
        bar = self.ctx.progress(pairs, desc=f"search {search_epoch}", total=steps)
        for (x_train, y_train), (x_val, y_val) in bar:
            self.alpha_step(x_val, y_val, reg_lambda, meter)
            self.weight_step(x_train, y_train, meter)
            bar.set_postfix(loss=f"{meter.mean('alpha_loss'):.3f}", acc=f"{meter.mean('train_acc'):.1f}")
        return {**meter.means(), "lambda_reg": reg_lambda}

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


@strategies.register("darts")
def darts(
    *,
    epochs: PositiveInt = 50,
    pretrain_epochs: NonNegativeInt = 0,
    w_optimizer: Component("optimizers") = {**SGD, "lr": 0.025},  # noqa: B006 - schema default
    alpha_optimizer: Component("optimizers") = {**ADAM, "betas": [0.5, 0.999], "weight_decay": 1e-3},  # noqa: B006
    w_scheduler: Component("schedulers") = {"type": "cosine", "min_lr": 0.001},  # noqa: B006
    loss: Component("losses") = {"type": "ce"},  # noqa: B006
    regularizer: Component("losses") | None = {"type": "alpha_l1"},  # noqa: B006
    reg_weight: NonNegativeFloat = 0.0,
    reg_stop_epoch: Annotated[int, Range()] = 20,
    resource: Component("losses") | None = None,
) -> FirstOrderDarts:
    """First-order DARTS with the DARTS paper's settings (SGD 0.025 cosine to 0.001; Adam 3e-4, betas (0.5, 0.999),
    wd 1e-3). ``reg_weight > 0`` adds the alpha L1 with lambda' decaying as in ``cdarts`` (paper Table 5's
    "DARTS + L_Reg": ``reg_weight: 5``, 0 at search epoch ``reg_stop_epoch``; ``<= 0``: constant). ``resource`` adds
    a cost penalty to the alpha step (see ``cdarts.losses.resource``)."""
    return FirstOrderDarts(
        epochs=epochs, pretrain_epochs=pretrain_epochs, w_optimizer=w_optimizer, alpha_optimizer=alpha_optimizer,
        w_scheduler=w_scheduler, loss=loss, regularizer=regularizer, reg_weight=reg_weight,
        reg_stop_epoch=reg_stop_epoch, resource=resource,
    )
