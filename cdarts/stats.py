"""Model statistics for a genotype: parameters and multiply-accumulates at the published evaluation sizes.

Papers report a discrete architecture by its parameter count without the auxiliary tower and its
multiply-adds for one image; ``genotype_stats`` gives both so a found genotype can be set beside the published
ones. Parameters match the papers (DARTS_V2: 3.35M on CIFAR-10, 4.72M on ImageNet); MACs count convolutions
and matrix products only, which gives DARTS_V2 530M on ImageNet where the paper reports 574M, and
NAS-Bench-201's FLOPs exactly.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from cdarts.errors import ConfigError
from cdarts.genotypes import DartsGenotype, Genotype, NB201Genotype
from cdarts.registry import unknown_name_message
from cdarts.spaces.darts import DartsNetwork
from cdarts.spaces.nb201 import NB201Network

AUX_PREFIX = "auxiliary_head"
SPACES = ("darts", "nas-bench-201")


@dataclass(frozen=True)
class NetworkSettings:
    """How a genotype is built for evaluation; ``layers`` counts cells (NAS-Bench-201: cells per stage)."""

    space: str
    preset: str
    channels: int
    layers: int
    input_size: int
    num_classes: int
    stem: str


PRESETS: dict[str, dict[str, NetworkSettings]] = {
    "darts": {
        "cifar10": NetworkSettings("darts", "cifar10", 36, 20, 32, 10, "cifar"),
        "cifar100": NetworkSettings("darts", "cifar100", 36, 20, 32, 100, "cifar"),
        "imagenet": NetworkSettings("darts", "imagenet", 48, 14, 224, 1000, "imagenet"),
    },
    "nas-bench-201": {
        "cifar10": NetworkSettings("nas-bench-201", "cifar10", 16, 5, 32, 10, "nb201"),
        "cifar100": NetworkSettings("nas-bench-201", "cifar100", 16, 5, 32, 100, "nb201"),
        "imagenet": NetworkSettings("nas-bench-201", "imagenet", 16, 5, 16, 120, "nb201"),
    },
}
"""The papers' evaluation settings per space. NAS-Bench-201's "imagenet" is its ImageNet16-120 (16 px, 120 classes)."""


def resolve_settings(space: str, preset: str = "cifar10", **overrides: int | None) -> NetworkSettings:
    """A preset with the given overrides (``channels``, ``layers``, ``input_size``, ``num_classes``; None keeps)."""
    if space not in PRESETS:
        raise ConfigError(unknown_name_message("space", space, list(PRESETS)))
    if preset not in PRESETS[space]:
        raise ConfigError(unknown_name_message("preset", preset, list(PRESETS[space])))
    allowed = ("channels", "layers", "input_size", "num_classes")
    unknown = [k for k in overrides if k not in allowed]
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}; valid: {', '.join(allowed)}")
    values = {k: v for k, v in overrides.items() if v is not None}
    for key, value in values.items():
        if value < 1:
            raise ConfigError(f"{key} must be a positive integer, got {value}")
    return replace(PRESETS[space][preset], **values)


def genotype_space(genotype: Genotype) -> str:
    return "nas-bench-201" if isinstance(genotype, NB201Genotype) else "darts"


def build_network(genotype: Genotype, settings: NetworkSettings) -> nn.Module:
    """The discrete network for ``genotype`` at ``settings``, with the auxiliary tower where the space has one."""
    space = genotype_space(genotype)
    if space != settings.space:
        raise ValueError(f"genotype {genotype} belongs to the {space!r} space, not {settings.space!r}")
    if isinstance(genotype, DartsGenotype):
        return DartsNetwork(
            genotype, settings.num_classes, 3, settings.channels, settings.layers, stem=settings.stem, auxiliary=True
        )
    return NB201Network(genotype, settings.num_classes, 3, channels=settings.channels, cells_per_stage=settings.layers)


def count_parameters(model: nn.Module, aux_prefix: str = AUX_PREFIX) -> tuple[int, int]:
    """``(main, auxiliary)`` parameter counts; a parameter is auxiliary when its name contains ``aux_prefix``."""
    main = aux = 0
    for name, param in model.named_parameters():
        if aux_prefix in name:
            aux += param.numel()
        else:
            main += param.numel()
    return main, aux


def inference_parameters(model: nn.Module) -> int:
    """Parameters of the inference network, the figure papers report (the auxiliary tower trains only)."""
    return count_parameters(model)[0]


def count_macs(model: nn.Module, input_shape: Sequence[int], skip: Sequence[str] = (AUX_PREFIX,)) -> int:
    """Multiply-accumulates (half of torch's counted FLOPs) of one eval-mode forward on one ``input_shape`` input.

    Counted by torch's FlopCounterMode on the operators that run, with every op module run as defined: the discrete
    cells' grouped fast path (``batch_edges``) drops kernel taps that read only padding at tiny resolutions, but only
    for edges that share a grouped conv, so what it computes is not the architecture's count (at the published sizes
    both agree). The auxiliary tower runs only in training, and modules whose name contains one of ``skip`` are
    never counted even when they run.
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    was_training = model.training
    batched = [m for m in model.modules() if getattr(m, "batch_edges", None) is True]
    model.eval()
    try:
        for module in batched:
            module.batch_edges = False
        with torch.no_grad(), counter:
            model(torch.zeros(1, *input_shape))
    finally:
        for module in batched:
            module.batch_edges = True
        model.train(was_training)
    per_module = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items() if "." in name}
    skipped = [name for name in per_module if any(s in name.split(".", 1)[1] for s in skip)]
    outermost = [n for n in skipped if not any(n.startswith(other + ".") for other in skipped)]
    return (counter.get_total_flops() - sum(per_module[n] for n in outermost)) // 2


def genotype_stats(genotype: Genotype, settings: NetworkSettings, macs: bool = True) -> dict[str, Any]:
    """Parameters (auxiliary tower apart), MACs for one image, and the settings, as one JSON-ready dict."""
    model = build_network(genotype, settings)
    params, params_aux = count_parameters(model)
    stats: dict[str, Any] = {**asdict(settings), "params": params, "params_aux": params_aux}
    stats["macs"] = count_macs(model, (3, settings.input_size, settings.input_size)) if macs else None
    return stats
