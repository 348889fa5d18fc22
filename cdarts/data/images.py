"""Reading images from folders: corrupt files named (or skipped), missing folders explained."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from torchvision import datasets as tv_datasets

from cdarts.errors import DataError


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


def require_folder(path: Path, hint: str = "") -> Path:
    """``path`` if it is a folder, else a FileNotFoundError naming it."""
    if not path.is_dir():
        raise FileNotFoundError(f"dataset folder '{path}' does not exist{hint}")
    return path
