"""SETN: Dong & Yang, "One-Shot Neural Architecture Search via Self-Evaluated Template Network", ICCV 2019.

The shared weights train on uniformly sampled paths (one per train batch, only its ops run); the template, a
distribution over architectures (``softmax(alpha)`` per edge), learns on val batches through the supernet's weighted
sum, as a first-order DARTS alpha step. After each epoch ``candidates`` architectures drawn from the template are
scored on val batches with the shared weights (the evaluator), and the best is the genotype.
"""
from __future__ import annotations

import torch
from torch import Tensor

from cdarts.config import Component, PositiveInt
from cdarts.registry import strategies
from cdarts.strategies.darts import FirstOrderDarts
from cdarts.strategies.gdas import ARCH_ADAM, NB201_SGD
from cdarts.strategies.loop import Meter
from cdarts.strategies.sampling import CandidateSearch, sample_path


class TemplateSearch(CandidateSearch):
    """SETN (see the module docstring); ``alphas()`` is the template."""

    alpha_step = FirstOrderDarts.alpha_step  # the template's step: S's weighted-sum val loss, alpha only

    def alphas(self) -> dict[str, Tensor]:
        return self.search_net.alphas()

    def search_epoch(self, epoch: int, search_epoch: int) -> dict[str, float]:
        meter, generator = Meter(), self.generator(epoch)
        pairs = zip(self.batches("train", epoch), self.batches("val", epoch), strict=False)
        steps = min(self.steps("train"), self.steps("val"))
        bar = self.ctx.progress(pairs, desc=self.epoch_label(epoch), total=steps)
        for (x_train, y_train), (x_val, y_val) in bar:
            with self.search_net.one_path(sample_path(self.choices, generator)):
                self.weight_step(x_train, y_train, meter)
            self.alpha_step(x_val, y_val, 0.0, meter)
            bar.set_postfix(loss=f"{meter.mean('alpha_loss'):.3f}", acc=f"{meter.mean('train_acc'):.1f}")
        return {**meter.means(), **self.select(self.template_samples(self.generator(epoch, stream=1)), epoch)}

    def template_samples(self, generator: torch.Generator) -> list:
        """``candidates`` architectures drawn from the template."""
        probs = {cell: torch.softmax(alpha.detach().float(), dim=-1) for cell, alpha in self.alphas().items()}
        return [sample_path(self.choices, generator, probs) for _ in range(self.candidates)]


@strategies.register("setn")
def setn(
    *,
    epochs: PositiveInt = 250,
    candidates: PositiveInt = 100,
    score_batches: PositiveInt = 1,
    w_optimizer: Component("optimizers") = NB201_SGD,
    alpha_optimizer: Component("optimizers") = ARCH_ADAM,
    w_scheduler: Component("schedulers") = {"type": "cosine", "min_lr": 0.001},  # noqa: B006 - schema default
    loss: Component("losses") = {"type": "ce"},  # noqa: B006
    resource: Component("losses") | None = None,
) -> TemplateSearch:
    """SETN (Dong & Yang, ICCV 2019) with the NAS-Bench-201 authors' settings: 250 epochs, SGD 0.025 (Nesterov, wd
    5e-4) cosine to 0.001, template Adam 3e-4, betas (0.5, 0.999), wd 1e-3, 100 candidates drawn from the template
    and scored each epoch on ``score_batches`` un-augmented val batches. (Their NAS-Bench-201 code scores the 100
    most probable cells instead of samples; the paper samples.) ``resource`` adds a cost penalty on the template to
    its step (see ``cdarts.losses.resource``)."""
    return TemplateSearch(
        epochs=epochs, pretrain_epochs=0, candidates=candidates, score_batches=score_batches, w_optimizer=w_optimizer,
        alpha_optimizer=alpha_optimizer, w_scheduler=w_scheduler, loss=loss, resource=resource,
    )
