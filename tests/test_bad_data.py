"""Bad data: an unreadable image is an error naming the file (or is skipped with a warning when asked); an empty
class folder, a split smaller than one batch and a class count other than the config's are clear errors before
the run folder exists."""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import yaml
from PIL import Image

from cdarts.cli.search import main as search_main
from cdarts.data import BadImageError, imagefolder, imagenet, make_loader


def make_tree(root: Path, split: str, classes: dict[str, int]) -> None:
    """``root/split/<class>/<i>.png``: 8 px PNGs."""
    for label, (name, count) in enumerate(classes.items()):
        folder = root / split / name
        folder.mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (8, 8), (100 * label, 20 * i, 50)).save(folder / f"{i}.png")


def spoil(folder: Path) -> tuple[Path, Path]:
    """A file that is no image and a PNG cut short, both among the images of ``folder``."""
    garbage, truncated = folder / "garbage.png", folder / "truncated.png"
    garbage.write_bytes(b"definitely not a PNG")
    Image.new("RGB", (64, 64), (1, 2, 3)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:60])
    return garbage, truncated


def run_search(tmp_path: Path, data: dict, capsys, **changes) -> tuple[int, str, Path]:
    """``cdarts-search`` in this process on a tiny config over ``data``: (exit code, stderr, run folder)."""
    config = {"data": data, "batch_size": 4, "threads": 1, "plots": False, "max_steps_per_epoch": 1,
              "eval_bn_batches": 0, "space": {"type": "darts", "channels": 2, "layers": 3, "eval_layers": 3},
              "strategy": {"type": "cdarts", "epochs": 1, "pretrain_epochs": 0}, **changes}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    try:
        code = search_main(["--config", str(path), "--output", str(run)])
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err, run


def error_line(err: str) -> str:
    message = err[err.index("cdarts-search: error: "):]
    assert message.count("\n") == 1, message
    return message.strip()


def test_unreadable_images_are_errors_naming_the_file(tmp_path):
    make_tree(tmp_path, "train", {"cat": 4, "dog": 4})
    make_tree(tmp_path, "test", {"cat": 1, "dog": 1})
    garbage, truncated = spoil(tmp_path / "train" / "cat")
    splits = imagefolder(root=str(tmp_path), image_size=8)
    index = {Path(p).name: i for i, (p, _) in enumerate(splits.train.dataset.samples)}
    with pytest.raises(BadImageError, match=rf"^{garbage}: cannot read image \(cannot identify image file"):
        splits.train[index["garbage.png"]]
    with pytest.raises(BadImageError, match=rf"^{truncated}: cannot read image \(.*truncated"):
        splits.train[index["truncated.png"]]
    with pytest.raises(BadImageError) as info:  # from a loader worker: still the one line, not the worker's traceback
        list(make_loader(splits.train, 16, shuffle=False, seed=0, drop_last=False, num_workers=1))
    assert str(info.value) == f"{garbage}: cannot read image (cannot identify image file '{garbage}')"


def test_a_search_over_a_bad_image_stops_with_one_line_naming_it(tmp_path, capsys):
    make_tree(tmp_path / "data", "train", {"cat": 6, "dog": 6})
    make_tree(tmp_path / "data", "test", {"cat": 2, "dog": 2})
    garbage = tmp_path / "data" / "train" / "cat" / "garbage.png"
    garbage.write_bytes(b"GIF89a and then nothing")
    code, err, _ = run_search(tmp_path, {"type": "imagefolder", "root": str(tmp_path / "data"), "image_size": 8,
                                         "augment": False}, capsys, batch_size=6)
    assert code == 2
    assert error_line(err).startswith(f"cdarts-search: error: {garbage}: cannot read image (")


def test_skip_bad_images_drops_them_with_a_warning(tmp_path):
    make_tree(tmp_path, "train", {"cat": 4, "dog": 4})
    make_tree(tmp_path, "val", {"cat": 2, "dog": 2})
    garbage, truncated = spoil(tmp_path / "train" / "cat")
    bad_val = tmp_path / "val" / "dog" / "bad.jpg"
    bad_val.write_bytes(b"\xff\xd8\xff not really")
    with pytest.warns(UserWarning) as record:
        splits = imagefolder(root=str(tmp_path), image_size=8, skip_bad_images=True)
    messages = [str(w.message) for w in record]
    assert messages == [f"skipping 2 unreadable image(s) in '{tmp_path / 'train'}': {garbage}, {truncated}",
                        f"skipping 1 unreadable image(s) in '{tmp_path / 'val'}': {bad_val}"]
    assert (len(splits.train), len(splits.test)) == (8, 4)
    assert [splits.train[i][1] for i in range(8)] == [0, 0, 0, 0, 1, 1, 1, 1]
    images = next(iter(make_loader(splits.train, 8, shuffle=True, seed=0)))[0]
    assert images.shape == (8, 3, 8, 8)


def test_skipping_every_image_of_a_class_is_an_error(tmp_path):
    make_tree(tmp_path, "train", {"cat": 3})
    (tmp_path / "train" / "dog").mkdir()
    spoil(tmp_path / "train" / "dog")
    with warnings.catch_warnings(), pytest.raises(ValueError, match="no readable images left in class folder"):
        warnings.simplefilter("ignore")
        imagefolder(root=str(tmp_path), skip_bad_images=True)


def test_clean_folders_are_not_warned_about(tmp_path):
    make_tree(tmp_path, "train", {"cat": 3, "dog": 3})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(imagefolder(root=str(tmp_path), image_size=8, skip_bad_images=True).train) == 4


@pytest.mark.parametrize(
    ("case", "fragments"),
    [
        ("empty_class", ["dataset folder '{root}/train'", "Found no valid file for the classes dog"]),
        ("class_count", ["num_classes is 3 but '{root}/train' has 2 class folders (cat, dog)"]),
        ("small_split", ["search train split: dataset of 8 images is smaller than one batch of 9"]),
    ],
)
def test_data_problems_are_one_line_before_the_run_folder_exists(case, fragments, tmp_path, capsys):
    root = tmp_path / "data"
    make_tree(root, "train", {"cat": 8, "dog": 8 if case != "empty_class" else 0})
    make_tree(root, "test", {"cat": 1, "dog": 1})
    data = {"type": "imagefolder", "root": str(root), "image_size": 8, **({"num_classes": 3} if case == "class_count"
                                                                         else {})}
    code, err, run = run_search(tmp_path, data, capsys, batch_size=9 if case == "small_split" else 4)
    assert code == 2, err
    line = error_line(err)
    for fragment in fragments:
        assert fragment.format(root=root) in line, line
    assert not run.exists(), "nothing is written before the data is known to be usable"


def test_imagenet_class_count_and_empty_class(tmp_path):
    make_tree(tmp_path, "train", {"n01": 2, "n02": 2})
    make_tree(tmp_path, "val", {"n01": 1, "n02": 1})
    with pytest.raises(ValueError, match=f"num_classes is 1000 but '{tmp_path / 'train'}' has 2 class folders"):
        imagenet(root=str(tmp_path), num_classes=1000)
    assert imagenet(root=str(tmp_path), image_size=8, num_classes=2, train_fraction_per_class=0.5,
                    val_fraction_per_class=0.5).num_classes == 2
    (tmp_path / "val" / "n03").mkdir()
    with pytest.raises(FileNotFoundError, match=f"dataset folder '{tmp_path / 'val'}': Found no valid file .* n03"):
        imagenet(root=str(tmp_path))


@pytest.mark.parametrize("test_split", [True, False], ids=["test_folder", "train_only"])
def test_a_single_class_folder_is_refused_before_the_run_folder_exists(test_split, tmp_path, capsys):
    root = tmp_path / "data"
    make_tree(root, "train", {"cat": 8})
    if test_split:
        make_tree(root, "test", {"cat": 2})
    code, err, run = run_search(tmp_path, {"type": "imagefolder", "root": str(root), "image_size": 8}, capsys)
    assert code == 2, err
    assert error_line(err) == (f"cdarts-search: error: dataset folder '{root / 'train'}' has 1 class folder (cat); "
                               "a classifier needs at least 2")
    assert not run.exists()
