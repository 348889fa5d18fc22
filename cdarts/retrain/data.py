"""The splits a retrain run trains, chooses its best epoch and reports on, with timm's augmentation."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset, Subset

from cdarts.config import (
    ConfigError,
    build,
    config_parameters,
)
from cdarts.data import SPLIT_SEED, Cutout, DatasetSplits, search_split
from cdarts.registry import datasets, shown


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


def auto_augment_op(aa: str, size: int = 32, mean: Sequence[float] = (0.5, 0.5, 0.5)) -> Any:
    """timm's AutoAugment, RandAugment or AugMix for ``aa`` (``original``, ``rand-m9-mstd0.5``, ``augmix-m5-w4-d2``:
    timm's own parsing, the one ``create_transform`` does) on ``size`` px images of this ``mean``.

    Raises:
        ValueError: naming a string timm cannot read (the config validator reports it at ``augment.auto_augment``).
    """
    from timm.data.auto_augment import augment_and_mix_transform, auto_augment_transform, rand_augment_transform

    if not isinstance(aa, str):
        raise ValueError(f"expected a timm augmentation string (original, rand-m9-mstd0.5, ...), got {shown(aa)}")
    hparams = {"translate_const": int(size * 0.45), "img_mean": tuple(round(255 * m) for m in mean)}
    make = (rand_augment_transform if aa.startswith("rand") else
            augment_and_mix_transform if aa.startswith("augmix") else auto_augment_transform)
    try:
        return make(aa, hparams)
    except (AssertionError, KeyError, ValueError) as exc:
        raise ValueError(f"invalid timm augmentation {aa!r} ({exc})") from None


def replace_train_transform(splits: DatasetSplits, augment: Mapping[str, Any], cutout: int) -> None:
    """Swap the dataset's training transform for timm's: ``create_transform`` for large images; for small ones
    (<= 64 px) padded crop, flip, timm's AutoAugment/RandAugment/AugMix, cutout and random erasing."""
    if not hasattr(splits.train, "transform"):
        raise ConfigError(
            "augment.auto_augment and augment.re_prob need a dataset of images with a transform (cifar10, cifar100, "
            f"imagefolder, imagenet); this dataset ({type(splits.train).__name__}) holds ready tensors"
        )
    from timm.data import create_transform
    from timm.data.random_erasing import RandomErasing
    from torchvision import transforms as T

    size, aa = splits.image_size, augment["auto_augment"]
    if size > 64:
        splits.train.transform = create_transform(
            size, is_training=True, auto_augment=aa, color_jitter=augment["color_jitter"],
            re_prob=augment["re_prob"], interpolation=augment["interpolation"], mean=splits.mean, std=splits.std,
        )
        return
    steps = [T.RandomCrop(size, padding=size // 8), T.RandomHorizontalFlip()]
    if aa:
        steps.append(auto_augment_op(aa, size, splits.mean))
    steps += [T.ToTensor(), T.Normalize(splits.mean, splits.std)]
    if cutout:
        steps.append(Cutout(cutout))
    if augment["re_prob"] > 0:
        steps.append(RandomErasing(augment["re_prob"], mode="pixel", device="cpu"))
    splits.train.transform = T.Compose(steps)
