"""Datasets for search and training, registered by name, plus the seeded splits and loaders the engine needs.

Every factory returns a :class:`DatasetSplits`; items are ``(float32 CxHxW normalised tensor, int label)``. All
random choices that decide *which* images go where use fixed seeds, so a config always means the same data.
``images`` reads folders, ``splits`` cuts datasets, ``loaders`` makes seeded loaders, ``datasets`` registers the
datasets; every public name is importable from ``cdarts.data``.
"""
from cdarts.data.datasets import (  # noqa: F401
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    SPLIT_SEED,
    cifar,
    cifar10,
    cifar100,
    digits,
    imagefolder,
    imagenet,
)
from cdarts.data.images import (  # noqa: F401
    BadImageError,
    image_folder,
    load_image,
    require_folder,
)
from cdarts.data.loaders import (  # noqa: F401
    RankLoader,
    SeededLoader,
    epoch_seed,
    make_loader,
    rank_seed,
)
from cdarts.data.splits import (  # noqa: F401
    Cutout,
    DatasetSplits,
    InMemoryImages,
    TransformedSubset,
    complement,
    per_class_subset,
    search_split,
)
