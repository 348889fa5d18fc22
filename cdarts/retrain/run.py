"""Retraining a discovered genotype from scratch: config schema, the Accelerate training loop, trained checkpoints.

``cdarts-train`` is a thin layer over :func:`train`. The run folder holds the filled ``config.yaml``,
``genotype.json``, ``metrics.csv`` (one row per epoch), ``steps.csv`` (LR and loss per update),
``checkpoints/epoch-NNNN`` (the latest few, for ``--resume``), ``best/epoch-NNNN`` (best val top-1; the test split
is reported, never used to choose) and ``summary.json``. Checkpoints are written by :mod:`cdarts.checkpoint`
(temporary folder, fsync, rename; safetensors and ``weights_only`` tensors, so loading never runs code).
"""
from __future__ import annotations

import copy
import csv
import hashlib
import inspect
import json
import math
import os
import pickle
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset

from cdarts.checkpoint import (
    PREFIX,
    CheckpointError,
    Shape,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    restore_modules,
    save_checkpoint,
    set_rng_state,
    shape_problem,
)
from cdarts.config import (
    Component,
    ConfigError,
    Fraction,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    Probability,
    Range,
    Section,
    Seed,
    Timeout,
    apply_overrides,
    build,
    config_parameters,
    dump_yaml,
    read_yaml,
    validate,
)
from cdarts.data import SPLIT_SEED, Cutout, DatasetSplits, epoch_seed, make_loader, search_split
from cdarts.errors import FileError, UserInputError
from cdarts.io import WriteError, atomic_write_json, atomic_write_text, csv_text, first_line, fsync_dir
from cdarts.models.darts import ARCHITECTURES, CdartsNet, resolve_genotype
from cdarts.registry import datasets, shown
from cdarts.runs import claim_run_dir, guarded_run, make_accelerator, shared_run_dir
from cdarts.signals import RunGuard, shell_command
from cdarts.spaces.darts import Depth
from cdarts.stats import inference_parameters

Architecture = Literal["cdarts_cifar", "cdarts_imagenet"]


def retrain_config(
    *,
    seed: Seed = 0,
    data: Component("datasets") = {"type": "digits"},  # noqa: B006 - schema default
    val_fraction: Fraction = 0.1,
    model: Section(model_section) = {},  # noqa: B006
    augment: Section(augment_section) = {},  # noqa: B006
    epochs: PositiveInt = 600,
    batch_size: PositiveInt = 96,
    eval_batch_size: PositiveInt | None = None,
    num_workers: NonNegativeInt = 0,
    optimizer: Component("optimizers") = {"type": "sgd", "lr": 0.025, "weight_decay": 3e-4},  # noqa: B006
    scheduler: Component("schedulers") = {"type": "cosine"},  # noqa: B006
    label_smoothing: Fraction = 0.0,
    grad_clip: Annotated[float, Range(gt=0)] | None = 5.0,
    ema: Section(ema_section) | None = None,
    mixed_precision: Literal["no", "fp16", "bf16"] = "no",
    cpu: bool = False,
    threads: PositiveInt | None = None,
    max_steps_per_epoch: PositiveInt | None = None,
    keep_checkpoints: PositiveInt = 2,
    dist_timeout_s: Timeout = 600.0,
    checkpoint_on_signal: bool = False,
) -> None:
    """The keys of a retrain config (the signature is the schema; it is never called).

    ``val_fraction`` of the training set (a fixed seeded draw) is held out to choose the best epoch; 0 trains on
    all of it and keeps the last epoch. ``model``, ``augment`` and ``ema`` (null: off) are sections with the
    keys of :func:`model_section`, :func:`augment_section` and :func:`ema_section`. ``max_steps_per_epoch`` caps
    the updates per epoch (quick trials). ``dist_timeout_s`` bounds how long a process waits for the others: if one
    dies or hangs, the rest exit with one line naming its rank. On SIGTERM, SIGHUP or SIGINT the run stops at the next
    step, dropping the partial epoch, or with ``checkpoint_on_signal`` finishes the epoch and its checkpoint first; it
    prints the command that resumes it and exits with 128 + the signal (see :mod:`cdarts.signals`).
    """


def model_section(
    *,
    architecture: Architecture = "cdarts_cifar",
    genotype: str | dict | None = None,
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
    auto_augment: str | None = None,
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
    try:
        model["genotype"] = resolve_genotype(model["genotype"] or defaults["genotype"]).to_json()
    except UserInputError as exc:
        raise ConfigError([f"model.genotype: {exc}"]) from None
    return cfg


def config_hash(cfg: Mapping[str, Any]) -> str:
    """Identity of a filled config: a checkpoint resumes only the run whose config hashes the same."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------- data


@dataclass
class RetrainData:
    """The splits a retrain run uses and what an exported model must know about its inputs."""

    train: Dataset
    val: Dataset | None
    test: Dataset
    splits: DatasetSplits
    spec: dict[str, Any]

    def input_meta(self) -> dict[str, Any]:
        """Input size, normalisation and crop of the evaluation transform (for ``pretrained_cfg``)."""
        s = self.splits
        return {
            "input_size": [s.in_chans, s.image_size, s.image_size],
            "mean": list(s.mean),
            "std": list(s.std),
            "crop_pct": 0.875 if self.spec["type"] == "imagenet" else 1.0,
            "interpolation": "bilinear",
            "num_classes": s.num_classes,
            "class_names": list(s.class_names),
            "dataset": self.spec,
        }


def plain_train(spec: Mapping[str, Any]) -> Dataset:
    """The training set with the evaluation transform (no augmentation), to measure accuracy on held-out train."""
    if "augment" not in config_parameters(datasets.get(spec["type"])):
        return build("datasets", spec).train
    return build("datasets", {**spec, "augment": False}).train


def build_data(cfg: Mapping[str, Any]) -> RetrainData:
    """The dataset, its seeded val carve-out (fixed seed: the same images for every run seed) and augmentation."""
    spec = dict(cfg["data"])
    splits = build("datasets", spec)
    augment = cfg["augment"]
    if augment["auto_augment"] or augment["re_prob"] > 0:
        replace_train_transform(splits, augment, spec.get("cutout", 0))
    train, val = splits.train, None
    if cfg["val_fraction"] > 0:
        train, val_subset = search_split(splits.train, 1 - cfg["val_fraction"], SPLIT_SEED)
        val = Subset(plain_train(spec), val_subset.indices)
    return RetrainData(train, val, splits.test, splits, spec)


def replace_train_transform(splits: DatasetSplits, augment: Mapping[str, Any], cutout: int) -> None:
    """Swap the dataset's training transform for timm's: ``create_transform`` for large images; for small ones
    (<= 64 px) padded crop, flip, timm's AutoAugment/RandAugment/AugMix, cutout and random erasing."""
    if not hasattr(splits.train, "transform"):
        raise ConfigError(
            "augment.auto_augment and augment.re_prob need a dataset of images with a transform (cifar10, cifar100, "
            f"imagefolder, imagenet); this dataset ({type(splits.train).__name__}) holds ready tensors"
        )
    from timm.data import create_transform
    from timm.data.auto_augment import augment_and_mix_transform, auto_augment_transform, rand_augment_transform
    from timm.data.random_erasing import RandomErasing
    from torchvision import transforms as T

    size, aa = splits.image_size, augment["auto_augment"]
    try:
        if size > 64:
            transform = create_transform(
                size, is_training=True, auto_augment=aa, color_jitter=augment["color_jitter"],
                re_prob=augment["re_prob"], interpolation=augment["interpolation"], mean=splits.mean, std=splits.std,
            )
            splits.train.transform = transform
            return
        steps = [T.RandomCrop(size, padding=size // 8), T.RandomHorizontalFlip()]
        if aa:
            hparams = {"translate_const": int(size * 0.45), "img_mean": tuple(round(255 * m) for m in splits.mean)}
            if aa.startswith("rand"):
                steps.append(rand_augment_transform(aa, hparams))
            elif aa.startswith("augmix"):
                steps.append(augment_and_mix_transform(aa, hparams))
            else:
                steps.append(auto_augment_transform(aa, hparams))
    except (AssertionError, KeyError, ValueError) as exc:
        raise ConfigError(f"augment.auto_augment: invalid timm augmentation {aa!r} ({exc})") from None
    steps += [T.ToTensor(), T.Normalize(splits.mean, splits.std)]
    if cutout:
        steps.append(Cutout(cutout))
    if augment["re_prob"] > 0:
        steps.append(RandomErasing(augment["re_prob"], mode="pixel", device="cpu"))
    splits.train.transform = T.Compose(steps)


# --------------------------------------------------------------------------------------------------------- model


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


# ------------------------------------------------------------------------------------------------ trained models


WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".tar")

RETRAIN_INFO: dict[str, Shape] = {"architecture": str, "model_args": dict, "data": dict, "metrics": dict}
"""What a retrain checkpoint's state.json says of its network (its ``retrain`` field): how to rebuild it."""

RETRAIN_STATE: dict[str, Shape] = {
    "step": int,
    "best": {"epoch": (int, type(None)), "val_top1": (int, float, type(None))},
    "config_hash": str,
    "retrain": RETRAIN_INFO,
    "history": [{"epoch": int}],
}
"""The state.json fields a resume reads: a checkpoint without them is unusable and the resume falls back."""


def check_model_spec(source: Path | str, architecture: Any, model_args: Any, where: str = "") -> None:
    """Refuse a network description read from a file unless it names a ``cdarts_*`` model and its own arguments.

    timm builds whatever a name says: any of its architectures, or, for ``hf-hub:`` names, one downloaded from the
    Hugging Face Hub. A file is data, so it may name only the models this package registers; the network is reached
    only for a name the user types.
    """
    if not isinstance(architecture, str) or architecture not in ARCHITECTURES:
        raise FileError(f"{source}: {where}architecture {shown(architecture)} is not a cdarts model; available: "
                        f"{', '.join(ARCHITECTURES)} (a file may name no other timm model and no remote source)")
    if not isinstance(model_args, Mapping):
        raise FileError(f"{source}: {where}model_args: expected a mapping, got {type(model_args).__name__}")
    valid = list(inspect.signature(CdartsNet.__init__).parameters)[1:]
    unknown = [shown(key) for key in model_args if key not in valid]
    if unknown:
        raise FileError(f"{source}: {where}model_args: unknown {', '.join(unknown)}; valid: {', '.join(valid)}")


def safe_torch_load(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True``: tensors and plain containers only, never arbitrary objects."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise FileError(
            f"{path}: refused to load: the file holds Python objects other than tensors and plain data, and "
            f"unpickling them could run code (torch.load weights_only=True: {first_line(exc)})"
        ) from None
    except Exception as exc:  # the weights-only unpickler raises KeyError, IndexError... on content that is not torch's
        raise FileError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {first_line(exc)})") from None


def load_weights(path: str | Path) -> dict[str, Tensor]:
    """A state dict from a ``.safetensors`` file or a ``weights_only`` torch file (``{"state_dict": ...}`` too)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file '{path}' does not exist")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise FileError(f"{path}: not a readable safetensors file ({exc})") from None
    data = safe_torch_load(path)
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(data, Mapping) and isinstance(data.get(key), Mapping):
            data = data[key]
            break
    if not isinstance(data, Mapping) or not all(isinstance(v, Tensor) for v in data.values()):
        raise FileError(f"{path}: expected a state dict (names -> tensors), got {type(data).__name__}")
    return dict(data)


@dataclass
class TrainedModel:
    """A trained network read from a checkpoint: how to rebuild it, its weights, and what it was trained on."""

    path: Path
    architecture: str
    model_args: dict[str, Any]
    weights: dict[str, Tensor]
    ema_weights: dict[str, Tensor] | None = None
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    epoch: int | None = None

    def state_dict(self, ema: bool = False) -> dict[str, Tensor]:
        """The inference weights (auxiliary tower dropped), of the EMA if ``ema``."""
        if ema and self.ema_weights is None:
            raise FileError(f"{self.path}: holds no EMA weights (the run had `ema: null`); drop --ema")
        weights = self.ema_weights if ema else self.weights
        return {k: v for k, v in weights.items() if not k.startswith("auxiliary_head.")}

    def build(self, ema: bool = False) -> CdartsNet:
        """The network in eval mode with these weights."""
        import timm

        check_model_spec(self.path, self.architecture, self.model_args)
        try:
            model = timm.create_model(self.architecture, **self.model_args)
        except (RuntimeError, TypeError, ValueError) as exc:  # arguments the file got wrong (a bad genotype...)
            raise FileError(f"{self.path}: cannot rebuild architecture {self.architecture!r}: {first_line(exc)}") \
                from None
        load_into(model, self.state_dict(ema), self.path)
        return model.eval()


def load_into(model: nn.Module, weights: Mapping[str, Tensor], source: Path | str, strict_aux: bool = True) -> None:
    """Load ``weights`` strictly, except that auxiliary-tower weights may be absent or extra when not ``strict_aux``."""
    own = model.state_dict()
    skip = () if strict_aux else ("auxiliary_head.",)
    missing = [k for k in own if k not in weights and not k.startswith(skip)]
    unexpected = [k for k in weights if k not in own and not k.startswith(skip)]
    wrong = [f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
             if k in weights and weights[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = [f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong))
                 if keys]
        raise FileError(f"{source}: weights do not fit the model: {'; '.join(parts)}")
    model.load_state_dict({k: v for k, v in weights.items() if k in own}, strict=False)


def find_checkpoint(ref: str | Path) -> Path:
    """The checkpoint folder (or file) ``ref`` means: a run folder's best (else latest), a ``checkpoints/`` or
    ``best/`` folder's newest, a checkpoint folder, or a weights file."""
    path = Path(ref)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint '{path}' does not exist (expected a run folder, checkpoint or file)")
    if path.is_file() or (path / "manifest.json").is_file():
        return path
    for folder in (path / "best", path / "checkpoints", path):
        found = list_checkpoints(folder)
        if found:
            return found[0]
    raise FileNotFoundError(f"'{path}' holds no checkpoint (no best/epoch-*, checkpoints/epoch-* or manifest.json)")


def read_trained(ref: str | Path) -> TrainedModel:
    """A :class:`TrainedModel` from a run folder, checkpoint folder or a ``weights_only`` torch file holding
    ``{"architecture", "model_args", "state_dict"}``. Nothing is unpickled beyond tensors and plain data."""
    path = find_checkpoint(ref)
    if path.is_file():
        if path.suffix == ".safetensors":
            raise FileError(f"{path}: a bare weights file does not say which network it holds; pass the run "
                            "folder or checkpoint folder it came from")
        data = safe_torch_load(path)
        if not isinstance(data, Mapping) or not {"architecture", "model_args", "state_dict"} <= set(data):
            raise FileError(f"{path}: expected a dict with architecture, model_args and state_dict "
                            "(or pass a run folder / checkpoint folder)")
        check_model_spec(path, data["architecture"], data["model_args"])
        for key in ("state_dict", "state_dict_ema", "data", "metrics"):
            if not isinstance(data.get(key, {}), Mapping | None):
                raise FileError(f"{path}: {key}: expected a dict, got {type(data[key]).__name__}")
        return TrainedModel(path, data["architecture"], dict(data["model_args"]), dict(data["state_dict"]),
                            data.get("state_dict_ema"), dict(data.get("data", {})), dict(data.get("metrics", {})))
    tensors, _, state = load_checkpoint(path)
    if "retrain" not in state:
        raise CheckpointError(f"{path}: not a retrain checkpoint (no 'retrain' entry in state.json)")
    info = state["retrain"]
    problem = shape_problem(info, RETRAIN_INFO, "retrain")
    if problem:
        raise CheckpointError(f"{path / 'state.json'}: {problem}")
    check_model_spec(path / "state.json", info["architecture"], info["model_args"], "retrain.")

    def part(prefix: str) -> dict[str, Tensor] | None:
        found = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        return found or None

    return TrainedModel(path, info["architecture"], info["model_args"], part("model.") or {}, part("ema."),
                        info["data"], info.get("metrics", {}), state.get("epoch"))


# ---------------------------------------------------------------------------------------------------- run folder


def publish_best(run_dir: Path, checkpoint: Path) -> Path:
    """Copy a checkpoint to ``best/`` (temporary folder, then rename) and drop the previous best."""
    folder = run_dir / "best"
    folder.mkdir(exist_ok=True)
    final = folder / checkpoint.name
    tmp = folder / f".tmp-{checkpoint.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(checkpoint, tmp)
    fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_dir(folder)
    for old in list_checkpoints(folder):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def reconcile_best(run_dir: Path, best_epoch: int | None, epoch: int) -> None:
    """After a crash, make ``best/`` hold the best checkpoint the resumed state knows (from ``checkpoints/``)."""
    folder = run_dir / "best"
    current = list_checkpoints(folder)
    if best_epoch is None or (current and current[0].name == f"{PREFIX}{best_epoch:04d}"):
        return
    source = run_dir / "checkpoints" / f"{PREFIX}{best_epoch:04d}"
    if best_epoch == epoch and source.is_dir():
        publish_best(run_dir, source)


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------------------------------------------------- loop


@dataclass
class TrainResult:
    run_dir: Path
    history: list[dict[str, Any]]
    summary: dict[str, Any]


def _fmt(value: Any) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


@guarded_run
def train(
    config: str | Path | Mapping[str, Any] | None,
    overrides: Sequence[str] = (),
    genotype: str | None = None,
    output: str | Path | None = None,
    resume: bool = False,
    init: str | Path | None = None,
    progress: bool = True,
) -> TrainResult:
    """Retrain a genotype from scratch (or from ``init`` weights) as the config says; return the run.

    With ``resume`` and ``config`` None the run folder's own ``config.yaml`` is used; a given config must fill
    to the same one. The latest complete checkpoint restores weights, optimizer, EMA, RNGs and logs, so the
    resumed run takes the same steps at the same LRs as an uninterrupted one.
    """
    from accelerate.utils import set_seed

    from cdarts.evaluate import evaluate

    if config is None:
        if not resume or output is None:
            raise ConfigError("a config is needed (only --resume with --output can reuse the run's own config.yaml)")
        config = Path(output) / "config.yaml"
    cfg = load_retrain_config(config, overrides, genotype)
    name = Path(config).stem if isinstance(config, (str, Path)) else "config"
    accelerator = make_accelerator(cfg["mixed_precision"], cfg["cpu"], cfg["dist_timeout_s"])
    main = accelerator.is_main_process
    log = accelerator.print
    run_dir = shared_run_dir(accelerator, output, f"retrain-{name}", resume)
    if resume and not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"nothing to resume in '{run_dir}': it holds no config.yaml of a retrain run")
    if resume:
        saved = load_retrain_config(run_dir / "config.yaml")
        if config_hash(saved) != config_hash(cfg):
            changed = sorted(k for k in set(saved) | set(cfg) if saved.get(k) != cfg.get(k))
            raise ConfigError(f"the config differs from the run's config.yaml in {', '.join(changed)}; resume with "
                              "the run's own config (omit --config) or start a new --output")
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    set_seed(cfg["seed"])

    data = build_data(cfg)
    net = create_network(cfg, data)
    if init is not None:
        source = find_checkpoint(init)
        weights = read_trained(source).weights if source.is_dir() else load_weights(source)
        load_into(net, weights, source, strict_aux=False)
    if main:  # only once every input has been read: a refused --init leaves no run folder behind
        claim_run_dir(run_dir, resume, warn=log)
    mcfg, acfg = cfg["model"], cfg["augment"]
    world, rank = accelerator.num_processes, accelerator.process_index
    eval_batch = cfg["eval_batch_size"] or 2 * cfg["batch_size"]

    def train_loader(epoch: int) -> Any:
        return make_loader(data.train, cfg["batch_size"], shuffle=True, seed=epoch_seed(cfg["seed"], epoch),
                           num_workers=cfg["num_workers"], rank=rank, world_size=world)

    def eval_loader(dataset: Dataset) -> Any:
        return make_loader(dataset, eval_batch, shuffle=False, seed=0, drop_last=False,
                           num_workers=cfg["num_workers"], rank=rank, world_size=world)

    updates_per_epoch = len(train_loader(0))
    if cfg["max_steps_per_epoch"]:
        updates_per_epoch = min(updates_per_epoch, cfg["max_steps_per_epoch"])
    optimizer = build("optimizers", cfg["optimizer"], net.parameters())
    scheduler = build("schedulers", cfg["scheduler"], optimizer, cfg["epochs"], updates_per_epoch)
    wrapped, optimizer = accelerator.prepare(TrainForward(net), optimizer)
    net = accelerator.unwrap_model(wrapped).net
    ema = None
    if cfg["ema"] is not None:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(net, decay=cfg["ema"]["decay"], use_warmup=cfg["ema"]["warmup"])
    mixup = None
    if acfg["mixup"] > 0 or acfg["cutmix"] > 0:
        from timm.data import Mixup

        mixup = Mixup(mixup_alpha=acfg["mixup"], cutmix_alpha=acfg["cutmix"], prob=acfg["mixup_prob"],
                      switch_prob=acfg["switch_prob"], label_smoothing=cfg["label_smoothing"],
                      num_classes=data.splits.num_classes)
    criterion = make_criterion(mixup is not None, cfg["label_smoothing"])
    modules = {"model": net, **({"ema": ema.module} if ema is not None else {})}
    scaler = getattr(accelerator, "scaler", None)

    history: list[dict[str, Any]] = []
    step, start, best = 0, 0, {"epoch": None, "val_top1": None}
    last_steps: list[dict[str, Any]] = []  # steps.csv's rows of the checkpoint's epoch, which it may lack
    checkpoints = run_dir / "checkpoints"
    if resume:
        found = latest_checkpoint(checkpoints, warn=log, move_aside=main, fields=RETRAIN_STATE)
        if found is not None:
            path, (tensors, optim, state) = found
            if state.get("config_hash") != config_hash(cfg):
                raise CheckpointError(f"{path}: written by a different config than the run's config.yaml")
            restore_modules(tensors, modules)
            optimizer.load_state_dict(optim["optimizers"]["model"])
            if scaler is not None and "scaler" in state:
                scaler.load_state_dict(state["scaler"])
            set_rng_state(optim["rng"], state["rng"])
            history, step, best, start = state["history"], state["step"], state["best"], state["epoch"] + 1
            last_steps = state.get("epoch_steps", [])
            if main:
                reconcile_best(run_dir, best["epoch"], state["epoch"])
            log(f"resuming from {path} (epoch {start + 1} of {cfg['epochs']}, step {step})")
        else:
            log(f"no complete checkpoint in {checkpoints}; starting from scratch")
    if main:
        atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
        atomic_write_json(run_dir / "genotype.json", mcfg["genotype"])
        atomic_write_text(run_dir / "metrics.csv", csv_text(history) if history else "")
        steps_log = read_csv(run_dir / "steps.csv")[: step - len(last_steps)] + last_steps if resume else []
        atomic_write_text(run_dir / "steps.csv", csv_text(steps_log) if steps_log else "step,epoch,lr,loss\n")
        params = inference_parameters(net)
        log(f"retraining {mcfg['architecture']} ({params / 1e6:.3f}M params, {mcfg['layers']} cells, "
            f"C={mcfg['channels']}) on {data.spec['type']}: {len(data.train)} train / "
            f"{len(data.val) if data.val is not None else 0} val / {len(data.test)} test images -> {run_dir}")
    if scheduler is not None:
        scheduler.step(start)
        scheduler.step_update(step)
    info = {
        "architecture": mcfg["architecture"], "model_args": model_args(cfg, data.splits.num_classes,
                                                                       data.splits.in_chans),
        "data": data.input_meta(),
    }
    began_run = time.perf_counter()

    def bar(batches: Iterable, desc: str, total: int | None = None) -> Iterable:
        from tqdm.auto import tqdm

        return tqdm(batches, desc=desc, total=total, disable=not (main and progress), leave=False, dynamic_ncols=True)

    def measure(model: nn.Module, dataset: Dataset | None, prefix: str) -> dict[str, float]:
        if dataset is None:
            return {}
        result = evaluate(model, bar(eval_loader(dataset), prefix), accelerator.device, accelerator.autocast,
                          reduce=(lambda t: accelerator.reduce(t, "sum")) if world > 1 else None)
        return {f"{prefix}_loss": result["loss"], f"{prefix}_top1": result["top1"], f"{prefix}_top5": result["top5"]}

    command = shell_command("cdarts-train", "--output", run_dir, "--resume", *(["--init", init] if init else []))
    guard = RunGuard(accelerator, finish_epoch=cfg["checkpoint_on_signal"], dist_timeout_s=cfg["dist_timeout_s"],
                     command=command, total_epochs=cfg["epochs"],
                     checkpoint=found[0] if resume and found is not None else None)
    with guard:
        for epoch in range(start, cfg["epochs"]):
            guard.epoch = epoch
            began = time.perf_counter()
            net.drop_path_prob = mcfg["drop_path_rate"] * epoch / cfg["epochs"]
            wrapped.train()
            totals = torch.zeros(3, dtype=torch.float64, device=accelerator.device)
            steps_rows = []
            batches = bar(train_loader(epoch), f"epoch {epoch + 1}/{cfg['epochs']}", updates_per_epoch)
            for index, (x, y) in enumerate(batches):
                if index >= updates_per_epoch:
                    break
                guard.at_step()
                x, y = x.to(accelerator.device, non_blocking=True), y.to(accelerator.device, non_blocking=True)
                target = y
                if mixup is not None:
                    x, target = mixup(x, y)
                lr = optimizer.param_groups[0]["lr"]
                logits, aux_logits = wrapped(x)
                loss = criterion(logits, target)
                if aux_logits is not None:
                    loss = loss + mcfg["auxiliary_weight"] * criterion(aux_logits, target)
                if not torch.isfinite(loss.detach()):
                    raise FloatingPointError(f"the training loss became {loss.item()} at step {step + 1} "
                                             f"(epoch {epoch + 1}); lower optimizer.lr or enable grad_clip")
                accelerator.backward(loss)
                if cfg["grad_clip"]:
                    accelerator.clip_grad_norm_(wrapped.parameters(), cfg["grad_clip"])
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                if scheduler is not None:
                    scheduler.step_update(step)
                if ema is not None:
                    ema.update(net, step=step)
                n = len(y)
                totals += torch.tensor([loss.item() * n, float((logits.argmax(-1) == y).sum()), n],
                                       dtype=torch.float64, device=accelerator.device)
                steps_rows.append({"step": step, "epoch": epoch, "lr": lr, "loss": loss.item()})
                if hasattr(batches, "set_postfix"):
                    batches.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.4g}")
            if scheduler is not None:
                scheduler.step(epoch + 1)
            if world > 1:
                totals = accelerator.reduce(totals, "sum")
            row = {"epoch": epoch, "step": step, "lr": steps_rows[-1]["lr"] if steps_rows else math.nan,
                   "drop_path": net.drop_path_prob, "train_loss": float(totals[0] / totals[2]),
                   "train_top1": float(100 * totals[1] / totals[2])}
            row.update(measure(net, data.val, "val"))
            row.update(measure(net, data.test, "test"))
            if ema is not None:
                row.update(measure(ema.module, data.val, "ema_val"))
                row.update(measure(ema.module, data.test, "ema_test"))
            row["time_s"] = time.perf_counter() - began
            history.append(row)
            improved = best["epoch"] is None or data.val is None or row["val_top1"] > best["val_top1"]
            if improved:
                best = {"epoch": epoch, "val_top1": row.get("val_top1"), "test_top1": row["test_top1"],
                        "test_top5": row["test_top5"]}
            if main:  # the checkpoint first: after a failed one the logs hold no epoch that does not exist
                logged = [{**r, "lr": f"{r['lr']:.8g}", "loss": f"{r['loss']:.6g}"} for r in steps_rows]
                state = {"step": step, "best": best, "history": history, "config_hash": config_hash(cfg),
                         "retrain": {**info, "metrics": row}, "epoch_steps": logged}
                if scaler is not None:
                    state["scaler"] = scaler.state_dict()
                saved = guard.checkpoint = save_checkpoint(checkpoints, epoch, modules, {"model": optimizer},
                                                           state, keep=cfg["keep_checkpoints"])
                atomic_write_text(run_dir / "metrics.csv", csv_text(history))
                try:
                    with open(run_dir / "steps.csv", "a", newline="") as handle:
                        csv.DictWriter(handle, fieldnames=["step", "epoch", "lr", "loss"]).writerows(logged)
                except OSError as exc:
                    raise WriteError(run_dir / "steps.csv", exc) from exc
                if improved:
                    publish_best(run_dir, saved)
                log(f"epoch {epoch + 1}/{cfg['epochs']} | lr {row['lr']:.4g} | train loss {row['train_loss']:.3f} "
                    f"top-1 {_fmt(row['train_top1'])} | val {_fmt(row.get('val_top1'))} | test "
                    f"{_fmt(row['test_top1'])}/{_fmt(row['test_top5'])}"
                    + (f" | ema test {_fmt(row['ema_test_top1'])}" if ema is not None else "")
                    + f" | {row['time_s']:.1f}s")
            accelerator.wait_for_everyone()
            guard.at_epoch_end()

    last = history[-1] if history else {}
    summary = {
        "run_dir": str(run_dir), "architecture": mcfg["architecture"], "params": inference_parameters(net),
        "epochs": cfg["epochs"], "steps": step, "best_epoch": best["epoch"], "best_val_top1": best["val_top1"],
        "test_top1_at_best": best.get("test_top1"), "test_top5_at_best": best.get("test_top5"),
        "final_test_top1": last.get("test_top1"), "final_test_top5": last.get("test_top5"),
        "time_s": time.perf_counter() - began_run,
    }
    if main:
        atomic_write_json(run_dir / "summary.json", summary)
        chosen = "best val top-1" if data.val is not None else "last epoch (no val split)"
        log(f"\ndone: {chosen} at epoch {(best['epoch'] or 0) + 1}: val {_fmt(best['val_top1'])}, test top-1 "
            f"{_fmt(best.get('test_top1'))} top-5 {_fmt(best.get('test_top5'))} (final epoch test top-1 "
            f"{_fmt(last.get('test_top1'))})\nrun folder: {run_dir}\n  config.yaml, genotype.json, metrics.csv, "
            f"steps.csv, summary.json, best/, checkpoints/\nexport: cdarts-export {run_dir} --out DIR")
    accelerator.wait_for_everyone()
    return TrainResult(run_dir, history, summary)


def make_criterion(mixup: bool, label_smoothing: float) -> nn.Module:
    """Soft-target CE under mixup (the targets carry the smoothing), label-smoothed CE, or plain CE."""
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if mixup:
        return SoftTargetCrossEntropy()
    if label_smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=label_smoothing)
    return nn.CrossEntropyLoss()
