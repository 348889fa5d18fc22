"""Datasets, seeded splits and loaders: shapes, disjointness, determinism and the errors a user meets."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from conftest import make_tree
from torch.utils.data import Subset, TensorDataset

from cdarts.config import ConfigError, validate_component
from cdarts.data import (
    Cutout,
    DatasetSplits,
    InMemoryImages,
    cifar10,
    digits,
    epoch_seed,
    imagefolder,
    imagenet,
    make_loader,
    per_class_subset,
    search_split,
)
from cdarts.registry import datasets

CIFAR_MINI = Path("/work/shared/data/cifar10-jpeg-mini")


@pytest.fixture(scope="module")
def digit_splits() -> DatasetSplits:
    return digits(image_size=12, channels=1, augment=False)


def test_factories_are_registered() -> None:
    for name in ("digits", "cifar10", "cifar100", "imagefolder", "imagenet"):
        assert name in datasets
    assert datasets.get("digits") is digits


def test_digits_shapes_classes_and_disjoint_splits(digit_splits: DatasetSplits) -> None:
    image, label = digit_splits.train[0]
    assert image.shape == (1, 12, 12) and image.dtype == torch.float32
    assert isinstance(label, int)
    assert (digit_splits.num_classes, digit_splits.in_chans, digit_splits.image_size) == (10, 1, 12)
    assert digit_splits.class_names == [str(d) for d in range(10)]
    assert digit_splits.search_val is None
    train_idx, test_idx = set(digit_splits.train.indices), set(digit_splits.test.indices)
    assert not train_idx & test_idx
    assert len(train_idx) + len(test_idx) == 1797
    test_labels = torch.tensor([digit_splits.test[i][1] for i in range(len(digit_splits.test))])
    assert torch.bincount(test_labels, minlength=10).min() >= 30  # stratified: every digit held out


def test_digits_three_channels_repeat_grey() -> None:
    splits = digits(image_size=8, channels=3, augment=False)
    image, _ = splits.test[5]
    assert image.shape == (3, 8, 8)
    assert torch.equal(image[0], image[2])
    assert len(splits.mean) == len(splits.std) == 3


def test_digits_normalised_over_train(digit_splits: DatasetSplits) -> None:
    images = torch.stack([digit_splits.train[i][0] for i in range(len(digit_splits.train))])
    assert images.mean().item() == pytest.approx(0.0, abs=1e-3)
    assert images.std().item() == pytest.approx(1.0, abs=1e-3)


def test_digits_without_augmentation_is_deterministic(digit_splits: DatasetSplits) -> None:
    assert torch.equal(digit_splits.train[3][0], digit_splits.train[3][0])


def test_digits_augmentation_is_a_translation_without_flip() -> None:
    plain = digits(image_size=16, channels=1, augment=False).train
    augmented = digits(image_size=16, channels=1, augment=True).train
    original = plain[7][0][0]
    pad = 16 // 8
    background = original.min()
    padded = torch.nn.functional.pad(original, (pad, pad, pad, pad), value=background.item())
    crops = {(dy, dx): padded[dy : dy + 16, dx : dx + 16] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)}
    torch.manual_seed(0)
    draws = [augmented[7][0][0] for _ in range(30)]
    offsets = {next(k for k, crop in crops.items() if torch.allclose(crop, d)) for d in draws}
    assert len(offsets) > 1
    assert len(plain) == len(augmented)


def test_dataset_ranges_are_config_errors_before_anything_is_read() -> None:
    with pytest.raises(ConfigError) as info:
        validate_component("datasets", {"type": "digits", "channels": 2, "image_size": 0, "test_fraction": 1})
    assert info.value.problems == ["image_size: expected at least 1, got 0",
                                   "channels: invalid value 2; valid choices: 1, 3",
                                   "test_fraction: expected in (0, 1), got 1"]
    with pytest.raises(ConfigError) as info:
        validate_component("datasets", {"type": "imagefolder", "root": "x", "mean": [0.5, 0.5], "std": [1, 0, 1]})
    assert info.value.problems == ["mean: expected 3 items (tuple[float, float, float]), got 2",
                                   "std[1]: expected greater than 0, got 0"]
    with pytest.raises(ConfigError) as info:
        validate_component("datasets", {"type": "cifar10", "cutout": -1})
    assert info.value.problems == ["cutout: expected at least 0, got -1"]
    with pytest.raises(ConfigError) as info:
        validate_component("datasets", {"type": "imagenet", "root": "x", "train_fraction_per_class": 0.75,
                                        "val_fraction_per_class": 0.5}, "data")
    assert info.value.problems == ["data.val_fraction_per_class: expected at most 1 - train_fraction_per_class "
                                   "(0.75), got 0.5"]


def test_search_split_sizes_and_seeding(digit_splits: DatasetSplits) -> None:
    train = digit_splits.train
    a, b = search_split(train, 0.5, seed=1)
    assert len(a) + len(b) == len(train) and len(a) == len(train) // 2
    assert not set(a.indices) & set(b.indices)
    assert search_split(train, 0.5, seed=1)[0].indices == a.indices
    assert search_split(train, 0.5, seed=2)[0].indices != a.indices


def test_search_split_refuses_an_empty_half() -> None:
    with pytest.raises(ValueError, match="both must be non-empty"):
        search_split(list(range(3)), 0.2)


def test_per_class_subset_counts_and_exclusion() -> None:
    targets = [0] * 50 + [1] * 30 + [2] * 20
    first = per_class_subset(targets, 0.2, seed=0)
    counts = [sum(targets[i] == c for i in first) for c in range(3)]
    assert counts == [10, 6, 4]
    second = per_class_subset(targets, 0.2, seed=0, exclude=first)
    assert not set(first) & set(second) and len(second) == 20
    assert per_class_subset(targets, 0.2, seed=0) == first
    assert per_class_subset(targets, 0.2, seed=1) != first
    with pytest.raises(ValueError, match="fewer than"):
        per_class_subset(targets, 0.9, seed=0, exclude=first)


def test_make_loader_replays_with_same_seed(digit_splits: DatasetSplits) -> None:
    def first_labels(seed: int) -> torch.Tensor:
        return next(iter(make_loader(digit_splits.train, 32, shuffle=True, seed=seed)))[1]

    assert torch.equal(first_labels(epoch_seed(0, 3)), first_labels(epoch_seed(0, 3)))
    assert not torch.equal(first_labels(epoch_seed(0, 3)), first_labels(epoch_seed(0, 4)))
    images, labels = next(iter(make_loader(digit_splits.train, 32, shuffle=False, seed=0)))
    assert images.shape == (32, 1, 12, 12) and labels.dtype == torch.int64


def test_make_loader_too_small_dataset(digit_splits: DatasetSplits) -> None:
    subset = torch.utils.data.Subset(digit_splits.train, range(10))
    with pytest.raises(ValueError, match="dataset of 10 images is smaller than one batch of 16"):
        make_loader(subset, 16, shuffle=True, seed=0)
    assert len(make_loader(subset, 16, shuffle=True, seed=0, drop_last=False)) == 1


def test_cutout_zeroes_at_most_a_square() -> None:
    torch.manual_seed(0)
    image = torch.ones(3, 32, 32)
    out = Cutout(8)(image)
    zeros = (out[0] == 0).sum().item()
    assert 0 < zeros <= 64
    assert torch.equal(out[0] == 0, out[2] == 0)
    assert image.min() == 1  # input untouched


def test_imagefolder_splits_a_train_only_tree(tmp_path: Path) -> None:
    make_tree(tmp_path, "train", {"cat": 5, "dog": 5})
    splits = imagefolder(root=str(tmp_path), image_size=16, test_fraction=0.2)
    assert splits.class_names == ["cat", "dog"] and splits.num_classes == 2
    assert len(splits.train) == 8 and len(splits.test) == 2
    assert not set(splits.train.indices) & set(splits.test.indices)
    assert sorted(splits.test[i][1] for i in range(2)) == [0, 1]
    image, label = splits.train[0]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32 and label in (0, 1)


def test_imagefolder_uses_a_test_folder(tmp_path: Path) -> None:
    make_tree(tmp_path, "train", {"cat": 5, "dog": 5})
    make_tree(tmp_path, "val", {"cat": 2, "dog": 2})
    splits = imagefolder(root=str(tmp_path), image_size=16, augment=False)
    assert len(splits.train) == 10 and len(splits.test) == 4
    assert torch.equal(splits.train[1][0], splits.train[1][0])


def test_imagefolder_missing_folder_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        imagefolder(root=str(missing))
    tmp_path.joinpath("empty").mkdir()
    with pytest.raises(FileNotFoundError, match="train"):
        imagefolder(root=str(tmp_path / "empty"))


def test_imagenet_per_class_fractions_are_disjoint(tmp_path: Path) -> None:
    make_tree(tmp_path, "train", {"n01": 20, "n02": 20}, size=40)
    make_tree(tmp_path, "val", {"n01": 4, "n02": 4}, size=40)
    splits = imagenet(root=str(tmp_path), image_size=32, train_fraction_per_class=0.2, val_fraction_per_class=0.1)
    assert splits.search_val is not None
    assert len(splits.train) == 8 and len(splits.search_val) == 4 and len(splits.test) == 8
    assert not set(splits.train.indices) & set(splits.search_val.indices)
    image, _ = splits.search_val[0]
    assert image.shape == (3, 32, 32)
    assert imagenet(root=str(tmp_path), image_size=32, val_fraction_per_class=0).search_val is None


def test_imagenet_color_jitter_has_the_public_codes_hue(tmp_path: Path) -> None:
    make_tree(tmp_path, "train", {"n01": 10, "n02": 10})
    make_tree(tmp_path, "val", {"n01": 2, "n02": 2})

    def jitter(**options: float) -> torchvision.transforms.ColorJitter:
        transforms = imagenet(root=str(tmp_path), image_size=16, **options).train.transform.transforms
        return next(t for t in transforms if isinstance(t, torchvision.transforms.ColorJitter))

    default = jitter()
    assert (default.brightness, default.contrast, default.saturation) == ((0.6, 1.4),) * 3
    assert default.hue == (-0.2, 0.2)
    assert jitter(hue=0.0).hue is None
    with pytest.raises(ConfigError) as info:
        validate_component("datasets", {"type": "imagenet", "root": str(tmp_path), "hue": 0.7})
    assert info.value.problems == ["hue: expected in [0, 0.5] (torchvision's hue range), got 0.7"]


def test_imagenet_search_val_eval_is_search_val_without_augmentation(tmp_path: Path) -> None:
    make_tree(tmp_path, "train", {"n01": 10, "n02": 10})
    make_tree(tmp_path, "val", {"n01": 2, "n02": 2})
    splits = imagenet(root=str(tmp_path), image_size=16, train_fraction_per_class=0.5, val_fraction_per_class=0.3)
    plain = imagenet(root=str(tmp_path), image_size=16, train_fraction_per_class=0.5, val_fraction_per_class=0.3,
                     augment=False)
    assert splits.search_val_eval.indices == splits.search_val.indices
    for i in range(len(splits.search_val)):
        assert torch.equal(splits.search_val_eval[i][0], plain.search_val[i][0])
    assert not all(torch.equal(splits.search_val[i][0], plain.search_val[i][0]) for i in range(6))
    assert imagenet(root=str(tmp_path), image_size=16, val_fraction_per_class=0).search_val_eval is None


def test_cifar10_missing_root_mentions_download(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="download: true") as info:
        cifar10(root=str(tmp_path / "data"))
    assert str(tmp_path / "data") in str(info.value)


def test_cifar10_missing_files_are_listed(tmp_path: Path) -> None:
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(FileNotFoundError, match="lacks data_batch_1.*download: true"):
        cifar10(root=str(tmp_path))


def test_cifar10_darts_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny CIFAR-10 in torchvision's pickle format (checksums bypassed) loads with crop, flip and cutout."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    generator = torch.Generator().manual_seed(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = torch.randint(0, 256, (4, 3072), dtype=torch.uint8, generator=generator).numpy()
        folder.joinpath(name).write_bytes(pickle.dumps({"data": data, "labels": [0, 1, 2, 9]}))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    folder.joinpath("batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    splits = cifar10(root=str(tmp_path), cutout=16)
    assert (len(splits.train), len(splits.test), splits.num_classes) == (20, 4, 10)
    assert splits.class_names == names
    image, label = splits.train[3]
    assert image.shape == (3, 32, 32) and label == 9
    test_image, _ = splits.test[0]
    assert torch.equal(test_image, splits.test[0][0])


def test_cifar10_jpeg_mini_through_imagefolder() -> None:
    if not (CIFAR_MINI / "train").is_dir():
        pytest.skip(f"{CIFAR_MINI} is absent")
    splits = imagefolder(root=str(CIFAR_MINI), image_size=32)
    assert (len(splits.train), len(splits.test), splits.num_classes) == (10000, 2000, 10)
    assert splits.class_names[0] == "airplane"
    images, labels = next(iter(make_loader(splits.test, 8, shuffle=True, seed=0)))
    assert images.shape == (8, 3, 32, 32) and labels.max() < 10


def one_image_copies(count: int, pad: int = 2) -> InMemoryImages:
    """``count`` copies of one 8 px image with random-crop augmentation: two batches differ only by their crops."""
    image = torch.linspace(-1, 1, 64).reshape(1, 1, 8, 8)
    padded = F.pad(image, (pad,) * 4).expand(count, 1, 8 + 2 * pad, 8 + 2 * pad).contiguous()
    return InMemoryImages(padded, torch.zeros(count, dtype=torch.long), pad, augment=True)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_ranks_draw_their_own_augmentation_and_a_rebuilt_loader_replays_it(num_workers: int) -> None:
    copies = one_image_copies(64)

    def first_batch(rank: int, world_size: int, global_seed: int = 0) -> torch.Tensor:
        torch.manual_seed(global_seed)  # every process seeds torch alike, so that the networks start equal
        loader = make_loader(copies, 16, shuffle=True, seed=epoch_seed(0, 2), num_workers=num_workers, rank=rank,
                             world_size=world_size)
        return next(iter(loader))[0]

    assert not torch.equal(first_batch(0, 2), first_batch(1, 2))
    assert torch.equal(first_batch(1, 2), first_batch(1, 2, global_seed=7)), "a rank's draws depend on its seeds only"
    torch.manual_seed(0)
    before = torch.get_rng_state()
    next(iter(make_loader(copies, 16, shuffle=True, seed=0, num_workers=num_workers, rank=1, world_size=2)))
    assert torch.equal(torch.get_rng_state(), before), "augmentation left the networks' RNG alone"
    if num_workers == 0:  # one process draws from torch's global RNG, as before ranks had seeds of their own
        assert torch.equal(first_batch(0, 1), first_batch(0, 1)) and not torch.equal(first_batch(0, 1, 1),
                                                                                     first_batch(0, 1))


def test_training_shards_pad_to_equal_batch_counts_and_eval_shards_count_each_image_once() -> None:
    indices = TensorDataset(torch.arange(255), torch.arange(255))
    train = [make_loader(indices, 64, shuffle=True, seed=3, rank=rank, world_size=2) for rank in (0, 1)]
    assert [len(loader) for loader in train] == [2, 2]
    seen = torch.cat([x for loader in train for x, _ in loader])
    assert len(seen) == 256 and seen.unique().numel() == 255, "one image repeated to fill rank 1's shard"
    assert len(make_loader(indices, 64, shuffle=True, seed=3)) == 3, "one process: batches as before"
    assert [len(make_loader(Subset(indices, range(127)), 64, shuffle=True, seed=0, rank=rank, world_size=2))
            for rank in (0, 1)] == [1, 1], "127 images on 2 ranks: one batch each, not an error on rank 1"
    evaluation = [make_loader(indices, 100, shuffle=False, seed=0, drop_last=False, rank=rank, world_size=2)
                  for rank in (0, 1)]
    assert sorted(torch.cat([x for loader in evaluation for x, _ in loader]).tolist()) == list(range(255))


@pytest.mark.parametrize("world_size", [1, 2])
def test_a_loader_gives_the_same_order_however_often_it_is_iterated(world_size):
    """A wrapper that opens an iterator before the loop does (tqdm.auto's progress bar) must not change the batches:
    with a plain seeded DataLoader the loop saw the second shuffle when a disabled bar wrapped it, the first when a
    plain-line progress did."""
    from tqdm.auto import tqdm

    dataset = torch.utils.data.TensorDataset(torch.arange(40.0), torch.arange(40))
    loader = make_loader(dataset, 4, shuffle=True, seed=3, rank=0, world_size=world_size)
    first = [y.tolist() for _, y in loader]
    wrapped = [y.tolist() for _, y in tqdm(loader, disable=True)]
    assert first == wrapped == [y.tolist() for _, y in loader]
    flat = [v for batch in first for v in batch]
    assert flat != sorted(flat)  # shuffled
