"""One retraining epoch and one validation pass, in the shape of timm's ``train.py``; the network a config names."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from timm.utils import accuracy
from torch import Tensor, nn
from torch.optim import Optimizer

from cdarts.evaluate import evaluate
from cdarts.models.darts import CdartsNet
from cdarts.retrain.data import RetrainData
from cdarts.runtime import Runtime


def model_args(cfg: Mapping[str, Any], num_classes: int, in_chans: int) -> dict[str, Any]:
    """The ``timm.create_model`` arguments that rebuild the architecture (plain JSON; no training-only rates)."""
    m = cfg["model"]
    return {
        "genotype": m["genotype"], "channels": m["channels"], "layers": m["layers"],
        "stem_multiplier": m["stem_multiplier"], "num_classes": num_classes, "in_chans": in_chans,
    }


def create_network(cfg: Mapping[str, Any], data: RetrainData) -> CdartsNet:
    """The ``cdarts_*`` timm model a config describes, sized for the dataset."""
    import timm

    m = cfg["model"]
    return timm.create_model(
        m["architecture"], **model_args(cfg, data.splits.num_classes, data.splits.in_chans),
        auxiliary=m["auxiliary"], drop_path_rate=m["drop_path_rate"], drop_rate=m["drop_rate"],
    )


class TrainForward(nn.Module):
    """``(logits, aux_logits)`` of a network's ``forward_stages``, as a module Accelerate/DDP can wrap."""

    def __init__(self, net: CdartsNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        out = self.net.forward_stages(x)
        return out.logits, out.aux_logits


def make_criterion(mixup: bool, label_smoothing: float) -> nn.Module:
    """Soft-target CE under mixup (the targets carry the smoothing), label-smoothed CE, or plain CE."""
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if mixup:
        return SoftTargetCrossEntropy()
    if label_smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=label_smoothing)
    return nn.CrossEntropyLoss()


def train_one_epoch(
    epoch: int,
    model: nn.Module,
    loader: Iterable[tuple[Tensor, Tensor]],
    optimizer: Optimizer,
    criterion: nn.Module,
    runtime: Runtime,
    *,
    step: int,
    updates: int,
    scheduler: Any = None,
    ema: Any = None,
    mixup: Any = None,
    aux_weight: float = 0.0,
    before_step: Callable[[], None] | None = None,
) -> tuple[dict[str, float], list[dict[str, Any]], int]:
    """Train ``model`` (a :class:`TrainForward`, DDP-wrapped under several processes) for at most ``updates`` steps.

    Each update runs under the runtime's non-finite policy and clipping; the scheduler steps per update
    (``step_update``) and the EMA follows. Returns the epoch's train loss and top-1 summed over processes, the
    per-update rows of ``steps.csv``, and the update count after the epoch. A batch the ``skip`` policy drops is no
    update: it moves neither the step count nor the scheduler.
    """
    net = unwrap(model)
    model.train()
    totals = torch.zeros(3, dtype=torch.float64, device=runtime.device)
    rows: list[dict[str, Any]] = []
    for index, (x, y) in enumerate(loader):
        if index >= updates:
            break
        if before_step is not None:
            before_step()
        x, y = x.to(runtime.device, non_blocking=True), y.to(runtime.device, non_blocking=True)
        target = y
        if mixup is not None:
            x, target = mixup(x, y)
        lr, skipped = optimizer.param_groups[0]["lr"], runtime.skipped
        with runtime.guard([net], dict):
            with runtime.autocast():
                logits, aux_logits = model(x)
                loss = criterion(logits, target)
                if aux_logits is not None:
                    loss = loss + aux_weight * criterion(aux_logits, target)
            runtime.step(loss, [optimizer], {"train_loss": loss})
        optimizer.zero_grad(set_to_none=True)
        if runtime.skipped > skipped:
            continue
        step += 1
        if scheduler is not None:
            scheduler.step_update(step)
        if ema is not None:
            ema.update(net, step=step)
        n = len(y)
        hits = round(float(accuracy(logits.detach(), y, topk=(1,))[0]) * n / 100)
        totals += torch.tensor([loss.item() * n, hits, n], dtype=torch.float64, device=runtime.device)
        rows.append({"step": step, "epoch": epoch, "lr": lr, "loss": loss.item()})
        if hasattr(loader, "set_postfix"):
            loader.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.4g}")
    totals = runtime.reduce_sum(totals)
    return {"train_loss": float(totals[0] / totals[2]), "train_top1": float(100 * totals[1] / totals[2])}, rows, step


def validate(model: nn.Module, loader: Iterable, runtime: Runtime, prefix: str) -> dict[str, float]:
    """``{prefix}_loss``, ``{prefix}_top1`` and ``{prefix}_top5`` of ``model`` over ``loader``, counted once per
    image over all processes."""
    result = evaluate(model, loader, runtime.device, runtime.autocast,
                      reduce=runtime.reduce_sum if runtime.world_size > 1 else None)
    return {f"{prefix}_loss": result["loss"], f"{prefix}_top1": result["top1"], f"{prefix}_top5": result["top5"]}


def unwrap(model: nn.Module) -> CdartsNet:
    """The network inside a :class:`TrainForward`, DDP-wrapped or not."""
    return getattr(model, "module", model).net
