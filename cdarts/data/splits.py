"""What a dataset factory returns and the seeded ways to cut it: splits, per-class subsets, the search split."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from cdarts.errors import ConfigError, DataError


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
