"""Datasets for search and training, registered by name, plus the seeded splits and loaders the engine needs.

Every factory returns a :class:`DatasetSplits`; items are ``(float32 CxHxW normalised tensor, int label)``. All
random choices that decide *which* images go where use fixed seeds, so a config always means the same data.
"""
from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import datasets as tv_datasets
from torchvision import transforms as T

from cdarts.config import Fraction, NonNegativeInt, PositiveFloat, PositiveInt, Range, cross_check
from cdarts.errors import ConfigError, DataError
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


class BadImageError(DataError):
    """An image file that cannot be read; the message names the file."""


def load_image(path: str) -> Any:
    """The RGB PIL image at ``path``; a missing, truncated or non-image file is a :class:`BadImageError` naming it."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except Exception as exc:  # PIL raises many types (OSError, SyntaxError, DecompressionBombError...)
        raise BadImageError(f"{path}: cannot read image ({exc})") from None


def image_folder(path: Path, num_classes: int | None = None, skip_bad_images: bool = False) -> tv_datasets.ImageFolder:
    """torchvision's ImageFolder over ``path/<class>/<image>``, reading with :func:`load_image`.

    Problems are found here, before any training: fewer than two class folders, a class folder without images, a
    class count other than ``num_classes`` (when given). ``skip_bad_images`` opens every image now and drops the
    unreadable ones with a warning (one pass over the folder); otherwise a bad image stops the run when it is loaded.
    """
    try:
        folder = tv_datasets.ImageFolder(str(path), loader=load_image)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"dataset folder '{path}': {exc}") from None
    if len(folder.classes) < 2:  # one class: every prediction is right, and the run reports 100%
        raise DataError(f"dataset folder '{path}' has {len(folder.classes)} class folder ({folder.classes[0]}); a "
                        "classifier needs at least 2")
    if num_classes is not None and len(folder.classes) != num_classes:
        shown = ", ".join(folder.classes[:5]) + (" ..." if len(folder.classes) > 5 else "")
        raise DataError(f"num_classes is {num_classes} but '{path}' has {len(folder.classes)} class folders "
                        f"({shown})")
    if skip_bad_images:
        bad = set()
        for file, _ in folder.samples:
            try:
                load_image(file)
            except BadImageError:
                bad.add(file)
        if bad:
            shown = ", ".join(sorted(bad)[:3]) + (" ..." if len(bad) > 3 else "")
            warnings.warn(f"skipping {len(bad)} unreadable image(s) in '{path}': {shown}", stacklevel=3)
            folder.samples = folder.imgs = [sample for sample in folder.samples if sample[0] not in bad]
            folder.targets = [label for _, label in folder.samples]
            empty = [name for index, name in enumerate(folder.classes) if index not in set(folder.targets)]
            if empty:
                raise DataError(f"dataset folder '{path}': no readable images left in class folder(s) "
                                f"{', '.join(empty)}")
    return folder


@dataclass
class DatasetSplits:
    """What a dataset factory returns: the splits plus what a network and an exporter need to know about them.

    Attributes:
        train: training images with training augmentation; the search splits it into its two halves.
        test: held-out images with the evaluation transform; never trained on during search.
        search_val: when set (imagenet), the search uses it as its val half instead of splitting ``train``.
        search_val_eval: ``search_val``'s images with the evaluation transform, on which the search measures val
            accuracy and re-estimates BN statistics (unset: the engine builds the dataset again with
            ``augment: false``).
    """

    train: Dataset
    test: Dataset
    num_classes: int
    in_chans: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: list[str]
    search_val: Dataset | None = None
    search_val_eval: Dataset | None = None


class InMemoryImages(Dataset):
    """Normalised images kept as one tensor, padded by ``pad`` px so an item is a cheap slice.

    With ``augment`` an item is a random crop (a translation by up to ``pad`` px), else the central, unshifted image.
    Random offsets come from torch's global RNG, like torchvision's transforms.
    """

    def __init__(self, padded: Tensor, labels: Tensor, pad: int, augment: bool) -> None:
        self.padded = padded
        self.labels = labels.tolist()
        self.pad = pad
        self.augment = augment and pad > 0
        self.size = padded.shape[-1] - 2 * pad

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        if self.augment:
            dy, dx = torch.randint(0, 2 * self.pad + 1, (2,)).tolist()
        else:
            dy = dx = self.pad
        return self.padded[index, :, dy : dy + self.size, dx : dx + self.size], self.labels[index]


class TransformedSubset(Dataset):
    """The items ``indices`` of a dataset of PIL images, passed through ``transform``.

    Lets one scanned folder serve several splits with different transforms without scanning it twice.
    """

    def __init__(self, dataset: Dataset, indices: Sequence[int], transform: Callable[[Any], Tensor]) -> None:
        self.dataset = dataset
        self.indices = list(indices)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image, label = self.dataset[self.indices[index]]
        return self.transform(image), label


class Cutout:
    """Zero a random ``length`` x ``length`` square (clipped at the border) of a CxHxW tensor, as in DARTS."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __call__(self, image: Tensor) -> Tensor:
        height, width = image.shape[-2:]
        y, x = torch.randint(0, height, ()).item(), torch.randint(0, width, ()).item()
        half = self.length // 2
        image = image.clone()
        image[..., max(0, y - half) : y + half, max(0, x - half) : x + half] = 0
        return image


def per_class_subset(
    targets: Sequence[int] | Tensor, fraction: float, seed: int, exclude: Sequence[int] | None = None
) -> list[int]:
    """Seeded sample of ``fraction`` of each class (at least one image), avoiding the indices in ``exclude``.

    The count is a fraction of the whole class, so two calls with ``exclude`` chained give disjoint subsets of the
    requested sizes (e.g. imagenet's 10% train and another 10% val). Returns sorted indices into ``targets``.
    """
    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(torch.as_tensor(targets).tolist()):
        by_class.setdefault(label, []).append(index)
    excluded = set(exclude or ())
    generator = torch.Generator().manual_seed(seed)
    chosen: list[int] = []
    for label, members in sorted(by_class.items()):
        candidates = [i for i in members if i not in excluded]
        count = max(1, round(fraction * len(members)))
        if count > len(candidates):
            raise DataError(
                f"class {label} has {len(candidates)} images left after exclusion, fewer than the {count} "
                f"requested (fraction {fraction} of {len(members)})"
            )
        order = torch.randperm(len(candidates), generator=generator)[:count].tolist()
        chosen.extend(candidates[j] for j in order)
    return sorted(chosen)


def complement(indices: Sequence[int], length: int) -> list[int]:
    """The indices of ``range(length)`` not in ``indices``."""
    taken = set(indices)
    return [i for i in range(length) if i not in taken]


def search_split(dataset: Dataset, train_fraction: float = 0.5, seed: int = 0) -> tuple[Subset, Subset]:
    """Seeded split of a training set into the search's weight ("train") half and architecture ("val") half."""
    if not 0 < train_fraction < 1:
        raise ConfigError(f"train_fraction must be in (0, 1), got {train_fraction}")
    length = len(dataset)
    cut = int(length * train_fraction)
    if cut == 0 or cut == length:
        raise DataError(
            f"search split of {length} images with train_fraction {train_fraction} leaves "
            f"{cut} for train and {length - cut} for val; both must be non-empty"
        )
    order = torch.randperm(length, generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(dataset, order[:cut]), Subset(dataset, order[cut:])


def epoch_seed(seed: int, epoch: int) -> int:
    """The loader seed of ``epoch``: a resumed run rebuilds epoch k's loader with it and replays the same batches."""
    return seed * 1_000_000 + epoch


def rank_seed(seed: int, rank: int) -> int:
    """The augmentation seed of ``rank`` in a loader seeded with ``seed``: distinct per rank, fixed per loader."""
    return int(np.random.SeedSequence([seed % 2**64, rank]).generate_state(1, np.uint64)[0] >> 1)


class SeededLoader(DataLoader):
    """A DataLoader that gives the same order every time it is iterated: its generator restarts from ``seed``.

    A plain seeded DataLoader draws a new order at each ``iter()``, so the batches a loop sees would depend on how
    many times a wrapper (a progress bar that opens an iterator in its constructor, as ``tqdm.auto``'s does) called
    ``iter()`` before the loop did.
    """

    def __init__(self, *args: Any, seed: int, **kwargs: Any) -> None:
        super().__init__(*args, generator=torch.Generator().manual_seed(seed), **kwargs)
        self.seed = seed

    def __iter__(self) -> Iterator[Any]:
        self.generator.manual_seed(self.seed)
        return super().__iter__()


class RankLoader(SeededLoader):
    """A DataLoader of one rank's shard whose augmentation draws from random streams of its own.

    ``generator`` (seeded with the rank's seed) seeds the worker processes. Without workers, the dataset's transforms
    would draw from the process's global RNGs, which every rank seeds alike; this loader swaps in torch, numpy and
    Python ``random`` streams seeded from ``generator`` around every batch, so the ranks draw differently, the
    global streams are left as they were, and a loader rebuilt with the same seed replays the same draws.
    """

    def __iter__(self) -> Iterator[Any]:
        batches = super().__iter__()
        return batches if self.num_workers > 0 else self._own_streams(batches)

    def _own_streams(self, batches: Iterator[Any]) -> Iterator[Any]:
        seed = int(torch.randint(2**62, (), generator=self.generator))
        streams = (torch.Generator().manual_seed(seed).get_state(),
                   np.random.RandomState(np.random.SeedSequence(seed).generate_state(4)).get_state(),
                   random.Random(seed).getstate())
        while True:
            outer = torch.get_rng_state(), np.random.get_state(), random.getstate()
            torch.set_rng_state(streams[0])
            np.random.set_state(streams[1])
            random.setstate(streams[2])
            try:
                batch = next(batches)
            except StopIteration:
                return
            finally:
                streams = torch.get_rng_state(), np.random.get_state(), random.getstate()
                torch.set_rng_state(outer[0])
                np.random.set_state(outer[1])
                random.setstate(outer[2])
            yield batch


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    drop_last: bool = True,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """A loader whose order is fixed by ``seed``; build one per epoch with ``seed=epoch_seed(run_seed, epoch)``.

    In one process the seeded generator also seeds the worker processes, so augmentation in workers replays too;
    with ``num_workers=0`` augmentation draws from torch's global RNG, which the engine seeds or checkpoints.

    With several processes, every rank draws the same seeded order and keeps every ``world_size``-th item from
    ``rank`` on, so the ranks see disjoint shards of one shuffle. A training loader (``drop_last``) first repeats
    the order's first few items until it divides by ``world_size``, as ``DistributedSampler`` pads: every rank then
    runs the same number of steps, whose collectives would otherwise mismatch. An evaluation loader (``drop_last``
    false) is not padded, so every image is counted exactly once; its ranks may differ by one batch and must not
    meet in a collective per batch. Augmentation, in workers or not, draws from the rank's own seed
    (:func:`rank_seed`, :class:`RankLoader`): the ranks crop and flip differently, while the global RNG, which
    initialises the networks, stays equal on all of them.
    """
    if world_size > 1:
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(dataset), generator=generator) if shuffle else torch.arange(len(dataset))
        short = -len(order) % world_size
        if drop_last and short:
            order = torch.cat([order, order.repeat(short // len(order) + 1)[:short]])
        dataset = Subset(dataset, order[rank::world_size].tolist())
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    if drop_last and len(dataset) < batch_size:
        raise DataError(
            f"dataset of {len(dataset)} images is smaller than one batch of {batch_size}; "
            "lower batch_size or use more data"
        )
    if world_size > 1:
        return RankLoader(dataset, batch_size=batch_size, drop_last=drop_last, num_workers=num_workers,
                          seed=rank_seed(seed, rank))
    return SeededLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, num_workers=num_workers,
                        seed=seed)


def require_folder(path: Path, hint: str = "") -> Path:
    """``path`` if it is a folder, else a FileNotFoundError naming it."""
    if not path.is_dir():
        raise FileNotFoundError(f"dataset folder '{path}' does not exist{hint}")
    return path


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
