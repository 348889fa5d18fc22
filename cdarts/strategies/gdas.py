"""GDAS: Dong & Yang, "Searching for A Robust Neural Architecture in Four GPU Hours", CVPR 2019.

Every step samples one op per edge by the Gumbel-max trick and runs only that op (a hard one-hot forward, so a step
costs about one path, not the whole supernet); the straight-through weights ``one_hot - p.detach() + p`` carry the
gradient of the tempered softmax ``p`` back to alpha. The temperature falls linearly from ``tau_max`` to ``tau_min``
over the search. A weight step on a train batch and an alpha step on a val batch alternate, each with its own
sample, as in the NAS-Bench-201 authors' code; the genotype is the discretizer's (argmax of alpha on NAS-Bench-201).
"""
from __future__ import annotations

import torch
from torch import Tensor

from cdarts.config import Component, PositiveFloat, PositiveInt
from cdarts.registry import strategies
from cdarts.runtime import frozen, zero_grad
from cdarts.strategies.base import guarded_step
from cdarts.strategies.loop import Meter, correct
from cdarts.strategies.sampling import SamplingSearch, gumbel_hard

NB201_SGD = {"type": "sgd", "lr": 0.025, "momentum": 0.9, "weight_decay": 5e-4, "nesterov": True}
"""The weight optimizer of the NAS-Bench-201 authors' configs for GDAS, RSPS and SETN (cosine to 0.001)."""
ARCH_ADAM = {"type": "adam", "lr": 3e-4, "betas": [0.5, 0.999], "weight_decay": 1e-3}
"""Their alpha optimizer for GDAS and SETN."""


class GumbelSearch(SamplingSearch):
    """GDAS (see the module docstring)."""

    def __init__(self, *, tau_max: float, tau_min: float, **common) -> None:
        super().__init__(**common)
        if not 0 < tau_min <= tau_max:
            raise ValueError(f"need 0 < tau_min <= tau_max, got tau_min={tau_min} and tau_max={tau_max}")
        self.tau_max, self.tau_min = tau_max, tau_min

    def tau(self, search_epoch: int) -> float:
        """The temperature of this search epoch: ``tau_max`` at the first, ``tau_min`` at the last."""
        return self.tau_max - (self.tau_max - self.tau_min) * search_epoch / max(self.epochs - 1, 1)

    def search_epoch(self, epoch: int, search_epoch: int) -> dict[str, float]:
        meter, tau = Meter(), self.tau(search_epoch)
        generator = self.generator(epoch)
        pairs = zip(self.batches("train", epoch), self.batches("val", epoch), strict=False)
        steps = min(self.steps("train"), self.steps("val"))
        bar = self.ctx.progress(pairs, desc=self.epoch_label(epoch), total=steps)
        for (x_train, y_train), (x_val, y_val) in bar:
            with torch.no_grad():
                path, weights = gumbel_hard(self.search_net.alphas(), tau, generator)
            with self.search_net.one_path(path, weights):
                self.weight_step(x_train, y_train, meter)
            self.alpha_step(x_val, y_val, tau, generator, meter)
            bar.set_postfix(loss=f"{meter.mean('alpha_loss'):.3f}", acc=f"{meter.mean('train_acc'):.1f}")
        return {**meter.means(), "tau": tau}

    @guarded_step
    def alpha_step(self, x: Tensor, y: Tensor, tau: float, generator, meter: Meter) -> None:
        """A fresh sample's val loss through the hard one-hot weights, updating alpha only (plus ``resource``)."""
        runtime = self.ctx.runtime
        zero_grad([self.alpha_opt])
        with frozen(self.search_net.weight_parameters()), runtime.autocast():
            path, weights = gumbel_hard(self.search_net.alphas(), tau, generator)
            with self.search_net.one_path(path, weights):
                logits = self.search_net(x)
            terms = {"ce_s": self.criterion(logits, y), **self.arch_terms(0.0)}
            loss = sum(terms.values())
        runtime.step(loss, [self.alpha_opt], {f"alpha.{name}": value for name, value in terms.items()})
        meter.add("alpha_loss", loss.item(), len(y))
        meter.add("s_alpha_acc", 100.0 * correct(logits.detach(), y) / len(y), len(y))


@strategies.register("gdas")
def gdas(
    *,
    epochs: PositiveInt = 240,
    tau_max: PositiveFloat = 10.0,
    tau_min: PositiveFloat = 0.1,
    w_optimizer: Component("optimizers") = NB201_SGD,
    alpha_optimizer: Component("optimizers") = ARCH_ADAM,
    w_scheduler: Component("schedulers") = {"type": "cosine", "min_lr": 0.001},  # noqa: B006 - schema default
    loss: Component("losses") = {"type": "ce"},  # noqa: B006
    resource: Component("losses") | None = None,
) -> GumbelSearch:
    """GDAS (Dong & Yang, CVPR 2019) with the NAS-Bench-201 authors' settings: 240 epochs, tau 10 -> 0.1, SGD 0.025
    (Nesterov, wd 5e-4) cosine to 0.001, alpha Adam 3e-4, betas (0.5, 0.999), wd 1e-3. ``resource`` adds a cost
    penalty on the sampling distribution ``softmax(alpha)`` to the alpha step (see ``cdarts.losses.resource``)."""
    return GumbelSearch(
        epochs=epochs, pretrain_epochs=0, tau_max=tau_max, tau_min=tau_min, w_optimizer=w_optimizer,
        alpha_optimizer=alpha_optimizer, w_scheduler=w_scheduler, loss=loss, resource=resource,
    )
