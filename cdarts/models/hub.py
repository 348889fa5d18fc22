"""An export on the Hugging Face Hub: the model card's front matter, and pushing the export folder as it is.

The folder is uploaded unchanged (``huggingface_hub``'s ``create_repo`` + ``upload_folder``), so ``hf-hub:REPO`` loads
exactly what ``local-dir:FOLDER`` loads. timm's ``push_to_hf_hub`` is not used: it re-saves the model with its own
``config.json`` (without cdarts' notes: source run, metrics, costs) and writes its own README only when the repository
has none.
"""
from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cdarts.errors import ConfigError
from cdarts.io import first_line

HUB_DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet": "imagenet-1k"}
"""Our dataset types that are Hub datasets, with their Hub ids: the card's ``datasets``. Others (``digits``,
``imagefolder``) are named in the card's results only."""
DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet": "ImageNet-1k",
                 "digits": "scikit-learn digits", "imagefolder": "an image folder"}
TAGS = ["image-classification", "timm", "cdarts", "darts", "neural-architecture-search"]
SPLITS = {"test": "test", "val": "validation"}
"""Our split names and the model-index's; "validation" is the split carved from train that chose the epoch."""


class HubError(OSError):
    """The Hub could not be reached or refused the push; the local export is complete."""


def card_data(config: Mapping[str, Any], model_name: str) -> Any:
    """The card's front matter as ``huggingface_hub.ModelCardData``: ``library_name: timm``, tags, license, datasets,
    ``metrics: [accuracy]`` and a ``model-index`` with the measured top-1/top-5 per split (in %)."""
    from huggingface_hub import EvalResult, ModelCardData

    note = config["cdarts"]
    dataset = note["data"].get("dataset", {}).get("type", "unknown")
    prefix = "ema_" if note["ema"] else ""
    results = []
    for split, split_name in SPLITS.items():
        for k in (1, 5):
            value = note["metrics"].get(f"{prefix}{split}_top{k}")
            if isinstance(value, (int, float)) and math.isfinite(value):
                results.append(EvalResult(
                    task_type="image-classification", task_name="Image Classification",
                    dataset_type=HUB_DATASETS.get(dataset, dataset), dataset_name=DATASET_NAMES.get(dataset, dataset),
                    dataset_split=split_name, metric_type="accuracy", metric_name=f"top-{k} accuracy (%)",
                    metric_value=round(float(value), 2)))
    return ModelCardData(
        library_name="timm", pipeline_tag="image-classification", license=config["pretrained_cfg"]["license"],
        tags=TAGS, datasets=[HUB_DATASETS[dataset]] if dataset in HUB_DATASETS else None,
        metrics=["accuracy"] if results else None, model_name=model_name if results else None,
        eval_results=results or None,
    )


def front_matter(config: Mapping[str, Any], model_name: str) -> str:
    """The YAML block that opens a model card (``---`` lines around ``card_data``)."""
    return f"---\n{card_data(config, model_name).to_yaml()}\n---\n\n"


def check_repo_id(repo_id: str) -> None:
    """Refuse a malformed repository id (``ConfigError``) before anything is exported. The owner is required: the
    card names the repository to load from, so it must be the full id."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
        valid = repo_id.count("/") == 1
    except HFValidationError:
        valid = False
    if not valid:
        raise ConfigError(f"--push-to-hub: expected a Hub model repository id OWNER/NAME (letters, digits, '-', '_', "
                          f"'.'; a name of at most 96 characters), got {repo_id!r}")


def push_folder(folder: str | Path, repo_id: str, private: bool = False) -> str:
    """Create ``repo_id`` if needed and upload ``folder`` to its root; returns the repository's URL. Any failure to
    reach the Hub or have it accept the push is one ``HubError`` line that names the folder and how to push it later
    (the folder is only read).
    """
    from huggingface_hub import HfApi

    from cdarts import __version__

    errors = _hub_errors()
    try:
        api = HfApi(library_name="cdarts", library_version=__version__)
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(repo_id=url.repo_id, folder_path=str(folder), commit_message="Upload cdarts export")
    except errors as exc:
        raise HubError(f"could not push {folder} to the Hugging Face Hub as {repo_id}: {first_line(exc)}; the export "
                       f"in {folder} is complete: push it later with: hf upload {repo_id} {folder} .") from None
    return str(url)


def _hub_errors() -> tuple[type[BaseException], ...]:
    """What the Hub client raises when the Hub cannot be reached or refuses: ``OSError`` (its HTTP status errors, a
    missing token, offline mode) and its HTTP library's transport errors (``httpx``; ``httpx2`` in
    huggingface_hub 2), whichever the client imported."""
    return (OSError, *(sys.modules[name].HTTPError for name in ("httpx2", "httpx") if name in sys.modules))
