"""The registered datasets (digits, cifar10, cifar100, imagefolder, imagenet), each returning DatasetSplits."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from torch.utils.data import Subset
from torchvision import datasets as tv_datasets
from torchvision import transforms as T

from cdarts.config import Fraction, NonNegativeInt, PositiveFloat, PositiveInt, Range, cross_check
from cdarts.data.images import image_folder, require_folder
from cdarts.data.splits import Cutout, DatasetSplits, InMemoryImages, TransformedSubset, complement, per_class_subset
from cdarts.errors import DataError
from cdarts.registry import datasets

SPLIT_SEED = 0
"""Seed of every fixed held-out split (digits test, imagefolder test, imagenet subsets): not a run option."""

CIFAR10_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR10_STD = (0.24703233, 0.24348505, 0.26158768)
CIFAR100_MEAN = (0.5070751, 0.48654887, 0.44091785)
CIFAR100_STD = (0.26733429, 0.25643846, 0.27615047)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Classes = Annotated[int, Range(ge=2, why="a classifier needs two classes")]
Finite = Annotated[float, Range()]


@datasets.register("digits")
def digits(
    *, image_size: PositiveInt = 16, channels: Literal[1, 3] = 3,
    test_fraction: Annotated[float, Range(gt=0, lt=1)] = 0.2, augment: bool = True,
) -> DatasetSplits:
    """scikit-learn's bundled 8x8 handwritten digits (1797 real images, no download), resized once and kept in memory.

    Training augmentation is a random translation by up to ``image_size // 8`` px; no flip, digits are not
    flip-symmetric. Mean and std are measured on the training split.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().unsqueeze(1) / 16.0
    if image_size != images.shape[-1]:
        images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
    labels = torch.from_numpy(bunch.target).long()
    test_idx = per_class_subset(labels, test_fraction, SPLIT_SEED)
    train_idx = complement(test_idx, len(labels))
    mean, std = images[train_idx].mean().item(), images[train_idx].std().item()
    pad = image_size // 8
    padded = (F.pad(images, (pad, pad, pad, pad)) - mean) / std
    padded = padded.repeat(1, channels, 1, 1).contiguous()
    return DatasetSplits(
        train=Subset(InMemoryImages(padded, labels, pad, augment), train_idx),
        test=Subset(InMemoryImages(padded, labels, pad, augment=False), test_idx),
        num_classes=10,
        in_chans=channels,
        image_size=image_size,
        mean=(mean,) * channels,
        std=(std,) * channels,
        class_names=[str(name) for name in bunch.target_names],
    )


def cifar(
    dataset_class: type[tv_datasets.CIFAR10],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    root: str,
    download: bool,
    augment: bool,
    cutout: int,
) -> DatasetSplits:
    """CIFAR-10/100 with DARTS's augmentation; the folder must hold the extracted python batches unless downloading."""
    folder = Path(root) / dataset_class.base_folder
    if not download:
        hint = f"; pass `download: true` or point `root` at a folder holding the extracted '{folder.name}'"
        require_folder(folder, hint)
        names = [name for name, _ in dataset_class.train_list + dataset_class.test_list]
        missing = [name for name in [*names, dataset_class.meta["filename"]] if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"dataset folder '{folder}' lacks {', '.join(missing)}{hint}")
    evaluate = [T.ToTensor(), T.Normalize(mean, std)]
    augmentation = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if augment else []
    train_transform = T.Compose(augmentation + evaluate + ([Cutout(cutout)] if augment and cutout else []))
    train = dataset_class(root, train=True, transform=train_transform, download=download)
    test = dataset_class(root, train=False, transform=T.Compose(evaluate), download=download)
    return DatasetSplits(
        train=train,
        test=test,
        num_classes=len(train.classes),
        in_chans=3,
        image_size=32,
        mean=mean,
        std=std,
        class_names=list(train.classes),
    )


@datasets.register("cifar10")
def cifar10(
    *, root: str = "data", download: bool = False, augment: bool = True, cutout: NonNegativeInt = 0
) -> DatasetSplits:
    """CIFAR-10 from ``root/cifar-10-batches-py`` (torchvision's format)."""
    return cifar(tv_datasets.CIFAR10, CIFAR10_MEAN, CIFAR10_STD, root, download, augment, cutout)


@datasets.register("cifar100")
def cifar100(
    *, root: str = "data", download: bool = False, augment: bool = True, cutout: NonNegativeInt = 0
) -> DatasetSplits:
    """CIFAR-100 from ``root/cifar-100-python`` (torchvision's format)."""
    return cifar(tv_datasets.CIFAR100, CIFAR100_MEAN, CIFAR100_STD, root, download, augment, cutout)


@datasets.register("imagefolder")
def imagefolder(
    *,
    root: str,
    image_size: PositiveInt = 32,
    test_fraction: Annotated[float, Range(gt=0, le=1)] = 0.1,
    augment: bool = True,
    mean: tuple[Finite, Finite, Finite] | None = None,
    std: tuple[PositiveFloat, PositiveFloat, PositiveFloat] | None = None,
    num_classes: Classes | None = None,
    skip_bad_images: bool = False,
) -> DatasetSplits:
    """Any ``root/train/<class>/*`` tree; the test split is ``root/test`` or ``root/val``, else a per-class slice.

    ``test_fraction`` is used only without a test/val folder. Small images (<= 64 px) are augmented by padded
    random crops, larger ones by random resized crops; both with horizontal flips. ``mean``/``std`` default to
    ImageNet's. ``num_classes``, when set, must match the class folders. An unreadable image is an error naming
    the file when it is loaded, or with ``skip_bad_images`` is found by opening every image up front and skipped
    with a warning.
    """
    mean_t = IMAGENET_MEAN if mean is None else tuple(mean)
    std_t = IMAGENET_STD if std is None else tuple(std)
    base = require_folder(Path(root))
    train_dir = require_folder(base / "train", "; expected root/train/<class>/<image>")
    train_folder = image_folder(train_dir, num_classes, skip_bad_images)
    evaluate = T.Compose([T.Resize(image_size), T.CenterCrop(image_size), T.ToTensor(), T.Normalize(mean_t, std_t)])
    if not augment:
        train_transform = evaluate
    elif image_size <= 64:
        crop = [T.Resize(image_size), T.CenterCrop(image_size), T.RandomCrop(image_size, padding=image_size // 8)]
        train_transform = T.Compose([*crop, T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean_t, std_t)])
    else:
        crop = [T.RandomResizedCrop(image_size)]
        train_transform = T.Compose([*crop, T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean_t, std_t)])
    test_dirs = [base / name for name in ("test", "val") if (base / name).is_dir()]
    if test_dirs:
        test_folder = image_folder(test_dirs[0], skip_bad_images=skip_bad_images)
        if test_folder.classes != train_folder.classes:
            raise DataError(
                f"class folders of '{test_dirs[0]}' {test_folder.classes} differ from those of "
                f"'{base / 'train'}' {train_folder.classes}"
            )
        train = TransformedSubset(train_folder, range(len(train_folder)), train_transform)
        test = TransformedSubset(test_folder, range(len(test_folder)), evaluate)
    else:
        test_idx = per_class_subset(train_folder.targets, test_fraction, SPLIT_SEED)
        train = TransformedSubset(train_folder, complement(test_idx, len(train_folder)), train_transform)
        test = TransformedSubset(train_folder, test_idx, evaluate)
    if len(train) == 0:
        raise DataError(
            f"no training images left in '{base / 'train'}' after holding out test_fraction {test_fraction}"
        )
    return DatasetSplits(
        train=train,
        test=test,
        num_classes=len(train_folder.classes),
        in_chans=3,
        image_size=image_size,
        mean=mean_t,
        std=std_t,
        class_names=list(train_folder.classes),
    )


def _disjoint_fractions(keys: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """ImageNet's search val images come from the train classes' remainder after the train subset."""
    if keys["train_fraction_per_class"] + keys["val_fraction_per_class"] > 1:
        yield "val_fraction_per_class", (f"expected at most 1 - train_fraction_per_class "
                                         f"({keys['train_fraction_per_class']}), got {keys['val_fraction_per_class']}")


@datasets.register("imagenet")
@cross_check(_disjoint_fractions)
def imagenet(
    *,
    root: str,
    image_size: PositiveInt = 224,
    train_fraction_per_class: Annotated[float, Range(gt=0, le=1)] = 0.1,
    val_fraction_per_class: Fraction = 0.1,
    test_fraction: Annotated[float, Range(gt=0, le=1)] = 1.0,
    augment: bool = True,
    color_jitter: bool = True,
    hue: Annotated[float, Range(ge=0, le=0.5, why="torchvision's hue range")] = 0.2,
    num_classes: Classes | None = None,
) -> DatasetSplits:
    """ImageNet in ``root/train/<class>`` and ``root/val/<class>``, with the per-class subsets the search uses.

    ``train`` is a seeded ``train_fraction_per_class`` of each class and ``search_val`` another, disjoint
    ``val_fraction_per_class`` (0 leaves ``search_val`` unset, so the search splits ``train``); both carry training
    augmentation: random resized crop, horizontal flip and, with ``color_jitter``, ColorJitter of brightness,
    contrast and saturation 0.4 and ``hue`` (in [0, 0.5]; 0.2 as in the public CDARTS and DARTS ImageNet code, 0
    leaves hue alone). ``search_val_eval`` holds the ``search_val`` images without augmentation. For full training
    pass ``train_fraction_per_class: 1.0, val_fraction_per_class: 0``.
    ``test`` is ``root/val``, per-class subsampled to ``test_fraction``. ``num_classes``, when set, must match the
    class folders. An unreadable image is an error naming the file when it is loaded.
    """
    base = require_folder(Path(root))
    train_folder = image_folder(require_folder(base / "train"), num_classes)
    val_folder = image_folder(require_folder(base / "val"))
    if val_folder.classes != train_folder.classes:
        raise DataError(f"class folders of '{base / 'val'}' differ from those of '{base / 'train'}'")
    normalize = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    evaluate = T.Compose([T.Resize(round(image_size / 0.875)), T.CenterCrop(image_size), *normalize])
    if augment:
        jitter = [T.ColorJitter(0.4, 0.4, 0.4, hue)] if color_jitter else []
        train_transform = T.Compose([T.RandomResizedCrop(image_size), T.RandomHorizontalFlip(), *jitter, *normalize])
    else:
        train_transform = evaluate
    train_idx = per_class_subset(train_folder.targets, train_fraction_per_class, SPLIT_SEED)
    search_val = search_val_eval = None
    if val_fraction_per_class > 0:
        val_idx = per_class_subset(train_folder.targets, val_fraction_per_class, SPLIT_SEED, exclude=train_idx)
        search_val = TransformedSubset(train_folder, val_idx, train_transform)
        search_val_eval = TransformedSubset(train_folder, val_idx, evaluate)
    test_idx = per_class_subset(val_folder.targets, test_fraction, SPLIT_SEED)
    return DatasetSplits(
        train=TransformedSubset(train_folder, train_idx, train_transform),
        test=TransformedSubset(val_folder, test_idx, evaluate),
        num_classes=len(train_folder.classes),
        in_chans=3,
        image_size=image_size,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        class_names=list(train_folder.classes),
        search_val=search_val,
        search_val_eval=search_val_eval,
    )
