"""CDARTS: Algorithm 1 of the paper — the search network S and the deeper, weight-shared evaluation network E
trained in a cycle.

Every ``update_every`` search epochs the genotype derived from alpha is selected in E, and E trains alone for
``eval_epochs`` epochs on the val split. Then a joint epoch alternates step A on a val batch (alpha, E's weights
and the distillation heads minimise ``CE(S) + CE(E) + lambda * KD(S, E) + lambda'(epoch) * L1(alpha)``) and
step B on a train batch (S's weights minimise ``CE(S)``). The ablations of paper Table 5 are switches.
"""
from __future__ import annotations

import contextlib
import math
from typing import Annotated, Any

import torch
from torch import nn
from torch.optim import Optimizer

from cdarts.config import Component, NonNegativeFloat, NonNegativeInt, PositiveInt, Range, build
from cdarts.genotypes import genotype_from_json
from cdarts.registry import strategies
from cdarts.runtime import frozen, zero_grad
from cdarts.strategies.base import EVAL_SPLITS, SearchContext, SearchStrategy, guarded_step
from cdarts.strategies.loop import Meter, correct

SGD = {"type": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 3e-4}
ADAM = {"type": "adam", "lr": 3e-4, "betas": [0.5, 0.99], "weight_decay": 3e-4}
"""The alpha optimizer of paper Appendix A.1; the public code's betas are (0.5, 0.999)."""


class CyclicSearch(SearchStrategy):
    """The CDARTS cycle (see the module docstring)."""

    def __init__(
        self,
        *,
        eval_epochs: int,
        update_every: int,
        e_optimizer: dict,
        distill: dict | None,
        distill_weight: float,
        distill_warmup_epochs: int,
        update_eval_in_joint_step: bool,
        share_stem: bool,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.eval_epochs, self.update_every = eval_epochs, update_every
        self.e_optimizer_spec, self.distill_spec, self.distill_weight = e_optimizer, distill, distill_weight
        self.distill_warmup_epochs = distill_warmup_epochs
        self.update_eval_in_joint_step = update_eval_in_joint_step
        self.share_stem = share_stem

    def setup(self, ctx: SearchContext) -> None:
        super().setup(ctx)
        device = ctx.runtime.device
        self.eval_net = ctx.space.eval_network(self.genotype()).to(device)
        if self.share_stem:
            self.eval_net.stem = self.search_net.stem
        shared = {id(p) for p in self.eval_net.parameters()}
        self.search_only = [p for p in self.search_net.weight_parameters() if id(p) not in shared]
        self.distill = None
        if self.distill_spec is not None and self.distill_weight > 0:
            self.search_net.eval()
            with torch.no_grad():
                stages = self.search_net.forward_stages(ctx.sample.to(device)).stages
            self.search_net.train()
            self.distill = build("losses", self.distill_spec, [s.shape[1] for s in stages], ctx.num_classes).to(device)
        heads = [p for p in self.distill.parameters() if p.requires_grad] if self.distill else []
        params = list(self.eval_net.parameters()) + heads
        self.e_opt = build("optimizers", self.e_optimizer_spec, params)

    def modules(self) -> dict[str, nn.Module]:
        modules = {**super().modules(), "eval": self.eval_net}
        if self.distill is not None:
            modules["distill"] = self.distill
        return modules

    def optimizers(self) -> dict[str, Optimizer]:
        return {**super().optimizers(), "e": self.e_opt}

    def state(self) -> dict[str, Any]:
        return {"eval_genotype": self.eval_net.genotype.to_json()}

    def restore(self, state: dict[str, Any]) -> None:
        self.eval_net.select(genotype_from_json(state["eval_genotype"]))

    def kd_lambda(self, search_epoch: int) -> float:
        """lambda at this search epoch: ``distill_weight``, ramped up linearly from 0 over the first
        ``distill_warmup_epochs`` search epochs when that is set."""
        if self.distill is None:
            return 0.0
        if self.distill_warmup_epochs == 0:
            return self.distill_weight
        return self.distill_weight * min(1.0, search_epoch / self.distill_warmup_epochs)

    def search_epoch(self, epoch: int, search_epoch: int) -> dict[str, float]:
        meter = Meter()
        if search_epoch % self.update_every == 0:
            self.eval_net.select(self.genotype())
            for repeat in range(self.eval_epochs):
                self.eval_epoch(epoch, repeat, meter)
        reg_lambda, kd_lambda = self.reg_lambda(search_epoch), self.kd_lambda(search_epoch)
        pairs = zip(self.batches("train", epoch), self.batches("val", epoch), strict=False)
        steps = min(self.steps("train"), self.steps("val"))
        bar = self.ctx.progress(pairs, desc=self.epoch_label(epoch), total=steps)
        for (x_train, y_train), (x_val, y_val) in bar:
            self.joint_step(x_val, y_val, kd_lambda, reg_lambda, meter)
            self.weight_step(x_train, y_train, meter)
            bar.set_postfix(loss=f"{meter.mean('joint_loss'):.3f}", s=f"{meter.mean('train_acc'):.1f}",
                            e=f"{meter.mean('e_joint_acc'):.1f}")
        return {**meter.means(), "lambda_kd": kd_lambda, "lambda_reg": reg_lambda}

    def eval_epoch(self, epoch: int, repeat: int, meter: Meter) -> None:
        """E alone on the val split (Algorithm 1, lines 7-10)."""
        bar = self.ctx.progress(self.batches("val", epoch, repeat + 1), total=self.steps("val"),
                                desc=f"{self.epoch_label(epoch)}: train E {repeat + 1}/{self.eval_epochs}")
        for x, y in bar:
            self.eval_step(x, y, meter)
            bar.set_postfix(loss=f"{meter.mean('e_train_loss'):.3f}", acc=f"{meter.mean('e_train_acc'):.1f}")

    @guarded_step
    def eval_step(self, x, y, meter: Meter) -> None:
        """One step of E alone: cross-entropy on a val batch, updating E's weights (and nothing else)."""
        runtime = self.ctx.runtime
        zero_grad([self.e_opt])
        with runtime.autocast():
            logits = self.eval_net(x)
            loss = self.criterion(logits, y)
        runtime.step(loss, [self.e_opt], {"eval.ce_e": loss})
        meter.add("e_train_loss", loss.item(), len(y))
        meter.add("e_train_acc", 100.0 * correct(logits.detach(), y) / len(y), len(y))

    @guarded_step
    def joint_step(self, x, y, kd_lambda: float, reg_lambda: float, meter: Meter) -> None:
        """Step A: alpha, E's weights and the distillation heads on one val batch, one loss."""
        runtime = self.ctx.runtime
        zero_grad([self.alpha_opt, self.e_opt])
        hold_eval = contextlib.nullcontext() if self.update_eval_in_joint_step else frozen(self.eval_net.parameters())
        with frozen(self.search_only), hold_eval, runtime.autocast():
            student = self.search_net.forward_stages(x)
            teacher = self.eval_net.forward_stages(x)
            terms = {"ce_s": self.criterion(student.logits, y), "ce_e": self.criterion(teacher.logits, y)}
            if kd_lambda > 0:
                terms["kd"] = kd_lambda * self.distill(student, teacher)
            terms.update(self.arch_terms(reg_lambda))
            loss = sum(terms.values())
        runtime.step(loss, [self.alpha_opt, self.e_opt], {f"joint.{name}": value for name, value in terms.items()})
        n = len(y)
        meter.add("joint_loss", loss.item(), n)
        for name, value in terms.items():
            meter.add(f"joint_{name}", value.item(), n)
        meter.add("s_joint_acc", 100.0 * correct(student.logits.detach(), y) / n, n)
        meter.add("e_joint_acc", 100.0 * correct(teacher.logits.detach(), y) / n, n)

    def evaluate(self, epoch: int) -> dict[str, float]:
        metrics = super().evaluate(epoch)
        if epoch < self.pretrain_epochs:
            return {**metrics, **{f"e_{name}_acc": math.nan for name in EVAL_SPLITS}}
        return {**metrics, **self.accuracy("e", self.eval_net, epoch)}


@strategies.register("cdarts")
def cdarts(
    *,
    epochs: PositiveInt = 30,
    pretrain_epochs: NonNegativeInt = 2,
    eval_epochs: NonNegativeInt = 1,
    update_every: PositiveInt = 1,
    w_optimizer: Component("optimizers") = SGD,
    e_optimizer: Component("optimizers") = SGD,
    alpha_optimizer: Component("optimizers") = ADAM,
    w_scheduler: Component("schedulers") = {"type": "constant"},  # noqa: B006 - schema default
    loss: Component("losses") = {"type": "ce"},  # noqa: B006
    distill: Component("losses") | None = {"type": "multi_level"},  # noqa: B006
    distill_weight: NonNegativeFloat = 4.0,
    distill_warmup_epochs: NonNegativeInt = 0,
    regularizer: Component("losses") | None = {"type": "alpha_l1"},  # noqa: B006
    reg_weight: NonNegativeFloat = 5.0,
    reg_stop_epoch: Annotated[int, Range()] = 20,
    resource: Component("losses") | None = None,
    update_eval_in_joint_step: bool = True,
    share_stem: bool = True,
) -> CyclicSearch:
    """CDARTS (paper Algorithm 1). ``eval_epochs`` is S_E, ``update_every`` S_U, ``distill_weight`` lambda,
    ``reg_weight`` the starting lambda' (decaying linearly to 0 at search epoch ``reg_stop_epoch``; ``<= 0``: no
    decay). Ablations (paper Table 5): ``distill: null`` or ``distill_weight: 0`` (no KD), ``regularizer: null``
    (no L1), ``update_eval_in_joint_step: false`` (E is not updated in step A). ``share_stem``: S and E run one stem,
    trained by both (the public code's shared ``feature_extractor``; the paper is silent); false gives E its own.
    ``distill_warmup_epochs`` ramps lambda linearly from 0 over that many search epochs (0: the paper's constant).
    ``resource`` adds a cost penalty to step A, e.g. ``{type: resource, cost: {type: macs}, target: 600M}``."""
    return CyclicSearch(
        epochs=epochs, pretrain_epochs=pretrain_epochs, w_optimizer=w_optimizer, alpha_optimizer=alpha_optimizer,
        w_scheduler=w_scheduler, loss=loss, eval_epochs=eval_epochs, update_every=update_every,
        e_optimizer=e_optimizer, distill=distill, distill_weight=distill_weight,
        distill_warmup_epochs=distill_warmup_epochs, regularizer=regularizer,
        reg_weight=reg_weight, reg_stop_epoch=reg_stop_epoch, resource=resource,
        update_eval_in_joint_step=update_eval_in_joint_step,
        share_stem=share_stem,
    )
