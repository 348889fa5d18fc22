"""The retrain config schema: the keys of a ``cdarts-train`` YAML, their ranges and defaults, and reading one."""
from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from cdarts.config import (
    Component,
    ConfigError,
    Fraction,
    NonNegativeFloat,
    NonNegativeInt,
    Parsed,
    PositiveInt,
    Probability,
    Range,
    Section,
    Seed,
    Timeout,
    TrainBatch,
    apply_overrides,
    read_yaml,
    validate,
)
from cdarts.models.darts import ARCHITECTURES, resolve_genotype
from cdarts.retrain.data import auto_augment_op
from cdarts.spaces.darts import Depth
from cdarts.tracking import Trackers

Architecture = Literal["cdarts_cifar", "cdarts_imagenet"]


def model_section(
    *,
    architecture: Architecture = "cdarts_cifar",
    genotype: Annotated[str | dict, Parsed(resolve_genotype)] | None = None,
    channels: PositiveInt | None = None,
    layers: Depth | None = None,
    auxiliary: bool = False,
    auxiliary_weight: NonNegativeFloat = 0.4,
    drop_path_rate: Fraction = 0.0,
    drop_rate: Fraction = 0.0,
    stem_multiplier: PositiveInt = 3,
) -> None:
    """The network: a ``cdarts_*`` timm model. ``genotype``, ``channels``, ``layers`` default to the
    architecture's (CDARTS_CIFAR, 36, 20 / CDARTS_IMAGENET, 48, 14); ``drop_path_rate`` is reached linearly by
    the last epoch; the auxiliary tower's loss is weighted by ``auxiliary_weight``."""


def augment_section(
    *,
    auto_augment: Annotated[str, Parsed(auto_augment_op)] | None = None,
    re_prob: Probability = 0.0,
    color_jitter: NonNegativeFloat = 0.4,
    interpolation: Literal["bilinear", "bicubic"] = "bilinear",
    mixup: NonNegativeFloat = 0.0,
    cutmix: NonNegativeFloat = 0.0,
    mixup_prob: Probability = 1.0,
    switch_prob: Probability = 0.5,
) -> None:
    """Augmentation beyond the dataset's own. ``auto_augment`` (timm's strings: ``rand-m9-mstd0.5``,
    ``original``, ``augmix-m5-w4-d2``...) or ``re_prob`` (random erasing) replace the dataset's training
    transform with one built from timm's pieces; ``mixup``/``cutmix`` are the Beta alphas of timm's Mixup."""


def ema_section(*, decay: Annotated[float, Range(gt=0, lt=1)] = 0.9998, warmup: bool = False) -> None:
    """An exponential moving average of the weights (timm's ModelEmaV3), evaluated and saved beside them."""


def retrain_config(
    *,
    seed: Seed = 0,
    data: Component("datasets") = {"type": "digits"},  # noqa: B006 - schema default
    val_fraction: Fraction = 0.1,
    model: Section(model_section) = {},  # noqa: B006
    augment: Section(augment_section) = {},  # noqa: B006
    epochs: PositiveInt = 600,
    batch_size: TrainBatch = 96,
    eval_batch_size: PositiveInt | None = None,
    num_workers: NonNegativeInt = 0,
    optimizer: Component("optimizers") = {"type": "sgd", "lr": 0.025, "weight_decay": 3e-4},  # noqa: B006
    scheduler: Component("schedulers") = {"type": "cosine"},  # noqa: B006
    label_smoothing: Fraction = 0.0,
    grad_clip: Annotated[float, Range(gt=0)] | None = 5.0,
    nonfinite: Literal["stop", "skip"] = "stop",
    max_skipped_batches: NonNegativeInt = 10,
    ema: Section(ema_section) | None = None,
    mixed_precision: Literal["no", "fp16", "bf16"] | None = None,
    cpu: bool = False,
    threads: PositiveInt | None = None,
    max_steps_per_epoch: PositiveInt | None = None,
    keep_checkpoints: PositiveInt = 2,
    dist_timeout_s: Timeout = 600.0,
    checkpoint_on_signal: bool = False,
    plots: bool = True,
    log_with: Trackers | None = None,
) -> None:
    """The keys of a retrain config (the signature is the schema; it is never called).

    ``val_fraction`` of the training set (a fixed seeded draw) is held out to choose the best epoch; 0 trains on
    all of it and keeps the last epoch. ``model``, ``augment`` and ``ema`` (null: off) are sections with the
    keys of :func:`model_section`, :func:`augment_section` and :func:`ema_section`. ``max_steps_per_epoch`` caps
    the updates per epoch (quick trials). ``dist_timeout_s`` bounds how long a process waits for the others: if one
    dies or hangs, the rest exit with one line naming its rank. On SIGTERM, SIGHUP or SIGINT the run stops at the next
    step, dropping the partial epoch, or with ``checkpoint_on_signal`` finishes the epoch and its checkpoint first; it
    prints the command that resumes it and exits with 128 + the signal (see :mod:`cdarts.signals`). ``nonfinite`` is
    the search's policy for a NaN/inf loss or gradient (:class:`cdarts.runtime.Runtime`): ``stop``, or ``skip`` the
    batch at most ``max_skipped_batches`` times. ``mixed_precision: null`` takes the launcher's (``accelerate launch
    --mixed_precision``, or the ``accelerate config`` default), else ``no``; config.yaml records the one that ran.
    ``plots`` redraws curves.png after every epoch; ``log_with`` names accelerate trackers (:mod:`cdarts.tracking`).
    """


def load_retrain_config(
    source: str | Path | Mapping[str, Any], overrides: Iterable[str] = (), genotype: str | None = None
) -> dict[str, Any]:
    """Read, override and validate a retrain config; return it filled, the genotype resolved to JSON.

    Raises:
        ConfigError: listing every problem, of the top level and of each section.
    """
    raw = read_yaml(source) if isinstance(source, (str, Path)) else copy.deepcopy(dict(source))
    raw = apply_overrides(raw, overrides)
    if genotype is not None:
        if not isinstance(raw.get("model", {}), dict):
            raise ConfigError([f"model: expected a mapping, got {type(raw['model']).__name__}"])
        raw["model"] = {**raw.get("model", {}), "genotype": genotype}
    cfg = validate(retrain_config, raw)
    model = cfg["model"]
    defaults = ARCHITECTURES[model["architecture"]]
    for key in ("channels", "layers"):
        model[key] = defaults[key] if model[key] is None else model[key]
    model["genotype"] = resolve_genotype(model["genotype"] or defaults["genotype"]).to_json()
    return cfg


def config_hash(cfg: Mapping[str, Any]) -> str:
    """Identity of a filled config: a checkpoint resumes only the run whose config hashes the same."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]
