"""What every search strategy has: the search network S, its weight and architecture optimizers, pretraining,
evaluation and deriving the genotype. Strategies add their own epoch of search on top."""
from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from cdarts.config import build
from cdarts.epochs import epoch_label
from cdarts.genotypes import Genotype
from cdarts.losses.regularizers import linear_decay
from cdarts.runtime import Runtime, frozen, zero_grad
from cdarts.strategies.loop import (
    Meter,
    correct,
    evaluate,
    recalibrated_bn,
)

EVAL_SPLITS = {"val": "val_eval", "test": "test"}
"""Metric name -> loader split for per-epoch evaluation (val is read without augmentation)."""


@dataclass
class SearchContext:
    """What the engine hands a strategy: the space, the discretizer, the runtime and the data.

    ``loader(split, epoch, repeat)`` returns a freshly seeded loader over ``"train"``, ``"val"`` (both augmented,
    for training), ``"val_eval"`` (val without augmentation) or ``"test"``; ``repeat`` distinguishes several
    passes in one epoch. Loaders are seeded per epoch, so a resumed run replays the same batches.
    ``progress(batches, desc, total)`` wraps an iterable in a progress bar on the main process.
    """

    space: Any
    discretizer: Callable
    runtime: Runtime
    num_classes: int
    sample: Tensor
    loader: Callable[[str, int, int], Iterable]
    progress: Callable[..., Any]
    max_steps: int | None = None
    bn_batches: int = 0


def guarded_step(step: Callable[..., None]) -> Callable[..., None]:
    """Run a strategy's optimisation step under the run's non-finite policy (:meth:`Runtime.guard`).

    Every method that updates parameters carries this decorator, so a NaN or inf is handled the same way (stop, or
    skip up to a limit) whichever step and loss term it appears in.
    """

    @functools.wraps(step)
    def wrapper(self: SearchStrategy, *args: Any, **kwargs: Any) -> None:
        with self.ctx.runtime.guard(self.modules().values(), self.alphas):
            step(self, *args, **kwargs)

    return wrapper


class SearchStrategy:
    """Base of the registered strategies. Subclasses implement ``search_epoch``; their optimisation steps pass
    their named loss terms to ``runtime.step`` and carry :func:`guarded_step`.

    The alpha regulariser (paper Eq. 9) and its lambda' schedule live here, so that every strategy (CDARTS and the
    DARTS + L_Reg baseline of Table 5) weighs it the same way: ``reg_weight`` at search epoch 0, linearly down to 0
    at ``reg_stop_epoch`` (``<= 0``: constant). So does the resource regulariser (``resource``: a penalty on the
    expected MACs, parameters or latency under ``arch_distribution()``): a strategy adds ``arch_terms(reg_lambda)``
    to the loss of its alpha step.
    """

    def __init__(
        self,
        *,
        epochs: int,
        pretrain_epochs: int,
        w_optimizer: dict,
        alpha_optimizer: dict | None,
        w_scheduler: dict,
        loss: dict,
        regularizer: dict | None = None,
        reg_weight: float = 0.0,
        reg_stop_epoch: int = 0,
        resource: dict | None = None,
    ) -> None:
        self.epochs, self.pretrain_epochs = epochs, pretrain_epochs
        self.specs = {"w_optimizer": w_optimizer, "alpha_optimizer": alpha_optimizer, "w_scheduler": w_scheduler}
        self.loss_spec = loss
        self.regularizer_spec, self.reg_weight, self.reg_stop_epoch = regularizer, reg_weight, reg_stop_epoch
        self.resource_spec = resource

    @property
    def total_epochs(self) -> int:
        return self.pretrain_epochs + self.epochs

    def epoch_label(self, epoch: int) -> str:
        """The 0-based loop index ``epoch`` as logs and progress bars name it: ``pretrain 1/2``, ``search 1/30``."""
        return epoch_label(epoch, self.pretrain_epochs, self.epochs)

    def setup(self, ctx: SearchContext) -> None:
        """Build S (on the runtime's device) and its two optimizers; subclasses extend this."""
        self.ctx = ctx
        self.search_net = ctx.space.supernet().to(ctx.runtime.device)
        weights, arch = self.search_net.weight_parameters(), self.search_net.arch_parameters()
        if {id(p) for p in weights} & {id(p) for p in arch}:
            raise RuntimeError("architecture parameters leaked into the weight parameters")
        self.criterion = build("losses", self.loss_spec)
        self.w_opt = build("optimizers", self.specs["w_optimizer"], weights)
        alpha_spec = self.specs["alpha_optimizer"]  # None: the strategy does not learn alpha (rsps, enas)
        self.alpha_opt = build("optimizers", alpha_spec, arch) if alpha_spec is not None else None
        self.w_sched = build("schedulers", self.specs["w_scheduler"], self.w_opt, self.total_epochs, 1)
        self.regularizer = None
        if self.regularizer_spec is not None and self.reg_weight > 0:
            self.regularizer = build("losses", self.regularizer_spec, ctx.space.primitives)
        self.resource = None
        if self.resource_spec is not None:
            keep = getattr(ctx.discretizer, "k", None)  # the edges per node the genotype keeps (top-k)
            self.resource = build("losses", self.resource_spec, ctx.space, tuple(ctx.sample.shape[1:]), keep)

    def modules(self) -> dict[str, nn.Module]:
        """Everything with state to checkpoint, by name."""
        return {"search": self.search_net}

    def optimizers(self) -> dict[str, Optimizer]:
        return {"w": self.w_opt} if self.alpha_opt is None else {"w": self.w_opt, "alpha": self.alpha_opt}

    def state(self) -> dict[str, Any]:
        """JSON-able state beyond tensors (e.g. E's current genotype); restored before loading tensors."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Rebuild structure from ``state()`` output before the tensors are loaded."""

    def alphas(self) -> dict[str, Tensor]:
        return self.search_net.alphas()

    def genotype(self) -> Genotype:
        space = self.ctx.space
        return space.genotype(self.ctx.discretizer(self.alphas(), space.edges, space.primitives))

    def free_genotype(self) -> Genotype:
        """The genotype before a budget changes it (the discretizer's own choice; without a budget, ``genotype()``):
        what the resource regulariser steers."""
        space, discretizer = self.ctx.space, self.ctx.discretizer
        explain = getattr(discretizer, "explain", None)
        if explain is None:
            return self.genotype()
        return space.genotype(explain(self.alphas(), space.edges, space.primitives).free)

    def reg_lambda(self, search_epoch: int) -> float:
        """lambda' at this search epoch: linear decay from ``reg_weight`` to 0 at ``reg_stop_epoch``."""
        if self.regularizer is None:
            return 0.0
        return linear_decay(search_epoch, start=self.reg_weight, stop_epoch=self.reg_stop_epoch)

    def arch_distribution(self) -> dict[str, Tensor]:
        """Per cell type, the distribution each edge draws its op from: softmax of alpha (a sampling strategy
        overrides this with its sampling distribution)."""
        return {cell: torch.softmax(alpha, dim=-1) for cell, alpha in self.alphas().items()}

    def arch_terms(self, reg_lambda: float) -> dict[str, Tensor]:
        """The architecture regularisers' loss terms: ``reg`` (lambda' times the alpha L1) and ``resource`` (the
        expected-cost penalty), each present when it is on."""
        terms = {}
        if reg_lambda > 0:
            terms["reg"] = reg_lambda * self.regularizer(self.search_net.arch_parameters())
        if self.resource is not None:
            weights = self.arch_distribution()
            if self.resource.straight_through:
                weights = self.resource.hardened(weights, self.free_genotype())
            terms["resource"] = self.resource(weights)
        return terms

    def cost_metrics(self, genotype: Genotype) -> dict[str, float]:
        """With a resource regulariser: the expected cost under the current distribution, the exact cost of
        ``genotype`` and the target (``<cost>_expected``, ``<cost>_genotype``, ``<cost>_target`` columns). With a
        discretizer under a budget: the genotype's cost, the budget and the changes it took (``budget_changes``)."""
        metrics = {}
        if self.resource is not None:
            name = self.resource.table.name
            with torch.no_grad():
                metrics[f"{name}_expected"] = float(self.resource.expected(self.arch_distribution()))
            metrics[f"{name}_genotype"] = self.resource.table.genotype_cost(genotype)
            metrics[f"{name}_target"] = self.resource.target
        budget = getattr(self.ctx.discretizer, "table", None)
        if budget is not None:
            space = self.ctx.space
            fit = self.ctx.discretizer.explain(self.alphas(), space.edges, space.primitives)
            metrics[f"{budget.name}_genotype"] = fit.cost
            metrics[f"{budget.name}_budget"] = self.ctx.discretizer.limit
            metrics["budget_changes"] = float(len(fit.changes))
        return metrics

    def start_epoch(self, epoch: int) -> None:
        """Set the epoch's learning rates (timm schedulers are functions of the epoch)."""
        if self.w_sched is not None:
            self.w_sched.step(epoch)

    def run_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch: S pretraining for the first ``pretrain_epochs``, then the strategy's search epoch."""
        self.start_epoch(epoch)
        if epoch < self.pretrain_epochs:
            return self.pretrain_epoch(epoch)
        return self.search_epoch(epoch, epoch - self.pretrain_epochs)

    def search_epoch(self, epoch: int, search_epoch: int) -> dict[str, float]:
        raise NotImplementedError

    def batches(self, split: str, epoch: int, repeat: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """The split's batches for this epoch, moved to the device, capped at ``max_steps``."""
        device = self.ctx.runtime.device
        loader = self.ctx.loader(split, epoch, repeat)
        for x, y in itertools.islice(loader, self.ctx.max_steps):
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def steps(self, split: str) -> int:
        """Batches per epoch of a split (for progress bars)."""
        count = len(self.ctx.loader(split, 0, 0))
        return min(count, self.ctx.max_steps) if self.ctx.max_steps else count

    @guarded_step
    def weight_step(self, x: Tensor, y: Tensor, meter: Meter, prefix: str = "train") -> None:
        """Step B: cross-entropy of S on a train batch, updating S's weights only."""
        runtime = self.ctx.runtime
        zero_grad([self.w_opt])
        with frozen(self.search_net.arch_parameters()), runtime.autocast():
            logits = self.search_net(x)
            loss = self.criterion(logits, y)
        runtime.step(loss, [self.w_opt], {f"{prefix}.ce_s": loss})
        meter.add(f"{prefix}_loss", loss.item(), len(y))
        meter.add(f"{prefix}_acc", 100.0 * correct(logits.detach(), y) / len(y), len(y))

    def pretrain_epoch(self, epoch: int) -> dict[str, float]:
        meter = Meter()
        bar = self.ctx.progress(self.batches("train", epoch), desc=self.epoch_label(epoch), total=self.steps("train"))
        for x, y in bar:
            self.weight_step(x, y, meter)
            bar.set_postfix(loss=f"{meter.mean('train_loss'):.3f}", acc=f"{meter.mean('train_acc'):.1f}")
        return meter.means()

    def evaluate(self, epoch: int) -> dict[str, float]:
        """Accuracy of S on the val and test splits (subclasses add E)."""
        return self.accuracy("s", self.search_net, epoch)

    def accuracy(self, prefix: str, network: nn.Module, epoch: int) -> dict[str, float]:
        """Eval-mode top-1 of ``network`` on val and test, with BN statistics re-estimated on ``bn_batches``
        val batches first (see ``recalibrated_bn``) when that is on."""
        runtime = self.ctx.runtime
        calibration = itertools.islice(self.ctx.loader("val_eval", epoch, 0), self.ctx.bn_batches)
        context = recalibrated_bn(network, calibration, runtime) if self.ctx.bn_batches else contextlib.nullcontext()
        with context:
            return {f"{prefix}_{name}_acc": evaluate(network, self.batches(split, epoch), runtime, network)
                    for name, split in EVAL_SPLITS.items()}


def alpha_weights(alphas: dict[str, Tensor]) -> dict[str, list[list[float]]]:
    """Softmax of every alpha row, as nested lists for JSON logs."""
    return {cell: torch.softmax(a.detach().float(), dim=-1).cpu().tolist() for cell, a in alphas.items()}
