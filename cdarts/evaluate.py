"""Top-1/top-5 accuracy and throughput of a trained network on a dataset; ``cdarts-eval`` is a thin layer over it.

A model is named as timm does (``local-dir:FOLDER`` for an export, which timm itself rebuilds) or as a run folder /
checkpoint of ``cdarts-train``. Every weight file is read as safetensors or with ``weights_only=True``.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cdarts.config import build, load_yaml_text, read_yaml, validate_component
from cdarts.errors import ConfigError, DataError, FileError
from cdarts.models.load import load_model, recorded_threads
from cdarts.progress import progress_bar
from cdarts.registry import shown

WARMUP_PASSES = 2
"""Untimed forward passes before ``evaluate_model`` times any: enough for CPU thread pools and cuDNN's choice."""


def topk_correct(logits: Tensor, target: Tensor, ks: Iterable[int] = (1, 5)) -> list[int]:
    """How many rows have their target among the ``k`` largest logits, per ``k`` (capped at the class count)."""
    ks = list(ks)
    top = logits.topk(min(max(ks), logits.shape[-1]), dim=-1).indices
    hits = top == target.unsqueeze(-1)
    return [int(hits[:, : min(k, top.shape[-1])].any(-1).sum()) for k in ks]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    device: torch.device | str = "cpu",
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    reduce: Callable[[Tensor], Tensor] | None = None,
    max_batches: int | None = None,
    warmup: int = 0,
) -> dict[str, float]:
    """Mean cross-entropy, top-1 and top-5 (%) of ``model`` in eval mode, images per second of the forward passes.

    ``reduce`` sums the counts over processes (``accelerator.reduce(t, "sum")``) when the loader is sharded.
    ``warmup`` untimed forward passes on the first batch come first: the first calls pay for memory allocation,
    thread pools and kernel selection, which would otherwise count against the throughput.
    """
    was_training = model.training
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64)
    seconds = 0.0
    try:
        for index, (x, y) in enumerate(loader):
            if max_batches is not None and index >= max_batches:
                break
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            for _ in range(warmup if index == 0 else 0):
                with autocast():
                    model(x)
            if torch.cuda.is_available() and x.is_cuda:
                torch.cuda.synchronize()
            began = time.perf_counter()
            with autocast():
                logits = model(x)
            if torch.cuda.is_available() and logits.is_cuda:
                torch.cuda.synchronize()
            seconds += time.perf_counter() - began
            loss = F.cross_entropy(logits.float(), y, reduction="sum")
            top1, top5 = topk_correct(logits, y)
            totals += torch.tensor([float(loss), top1, top5, len(y)], dtype=torch.float64)
    finally:
        model.train(was_training)
    if reduce is not None:
        totals = reduce(totals.to(device)).cpu()
        seconds_t = reduce(torch.tensor([seconds], dtype=torch.float64, device=device)).cpu()
        seconds = float(seconds_t[0])
    loss, top1, top5, images = totals.tolist()
    images = int(images)
    if images == 0:
        raise DataError("evaluation saw no images: the dataset split is empty")
    return {
        "loss": loss / images,
        "top1": 100.0 * top1 / images,
        "top5": 100.0 * top5 / images,
        "images": images,
        "seconds": seconds,
        "images_per_s": images / seconds if seconds > 0 else float("nan"),
    }


def resolve_device(name: str | None) -> str:
    """The torch device to evaluate on: ``name`` if this machine has it, by default the GPU where there is one."""
    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"--device {shown(name)} is not a torch device; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"--device {shown(name)}: this machine has no CUDA device; use --device cpu")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"--device {shown(name)}: this machine has {count} CUDA device(s), cuda:0 to "
                              f"cuda:{count - 1}")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {shown(name)}: MPS is not available on this machine; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--device {shown(name)}: evaluation runs on cpu, cuda, cuda:N or mps")
    return name


def parse_data_spec(text: str) -> dict[str, Any]:
    """A dataset spec from a registered name (``digits``), inline YAML (``{type: digits, image_size: 16}``) or a
    YAML file (its ``data`` section if it has one), validated and filled."""
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        raw = read_yaml(path)
        spec = raw.get("data", raw)
    elif text.lstrip().startswith("{"):
        spec = load_yaml_text(text)
    else:
        spec = {"type": text}
    if not isinstance(spec, Mapping):
        raise ConfigError([f"--data: expected a dataset name, a mapping or a YAML file, got {text!r}"])
    return validate_component("datasets", dict(spec), "data")


def evaluate_model(
    ref: str,
    data: str | Mapping[str, Any] | None = None,
    split: str = "test",
    batch_size: int = 256,
    ema: bool = False,
    max_batches: int | None = None,
    device: str | None = None,
    threads: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Accuracy and throughput of a model on a dataset split; without ``data``, on the data it was trained on, read
    from disk (a ``download: true`` the model's files record is not followed: only ``data`` may ask for one).

    ``ref`` is anything ``load_model`` takes. ``device`` defaults to the GPU where there is one; ``threads`` (torch's
    CPU threads while measuring) to the run's own ``threads`` setting where the model's files record one, else
    torch's current count. The throughput comes after ``WARMUP_PASSES`` untimed passes; the result reports the
    ``batch_size``, ``threads`` and ``device`` it was measured with.
    """
    from cdarts.data import make_loader

    device = resolve_device(device)
    model, meta = load_model(ref, ema)
    if data is None:
        if "dataset" not in meta:
            raise FileError(f"{ref} does not record its training data; pass --data (e.g. --data digits)")
        recorded = meta["dataset"]
        if isinstance(recorded, Mapping) and recorded.get("download"):
            recorded = {**recorded, "download": False}  # a file never starts a download; --data may ask for one
        spec = validate_component("datasets", recorded, "data")
    else:
        spec = parse_data_spec(data) if isinstance(data, str) else validate_component("datasets", dict(data), "data")
    if split == "train" and "augment" in spec:
        spec = {**spec, "augment": False}
    splits = build("datasets", spec)
    if split not in ("train", "test"):
        raise ConfigError(f"unknown split {split!r}; available: test, train")
    dataset = splits.test if split == "test" else splits.train
    num_classes = getattr(model, "num_classes", None)
    if num_classes is not None and num_classes != splits.num_classes:
        raise DataError(f"the model predicts {num_classes} classes but {spec['type']} has {splits.num_classes}")
    sample = dataset[0][0]
    in_chans = getattr(model, "in_chans", sample.shape[0])
    if sample.shape[0] != in_chans:
        raise DataError(f"the model takes {in_chans}-channel images but {spec['type']} gives {sample.shape[0]}; "
                        f"set the dataset's channels (e.g. --data '{{type: {spec['type']}, channels: {in_chans}}}')")
    loader = make_loader(dataset, batch_size, shuffle=False, seed=0, drop_last=False)
    batches = progress_bar(loader, f"eval {split}", len(loader), enabled=progress)
    before = torch.get_num_threads()
    threads = threads or recorded_threads(ref) or before
    torch.set_num_threads(threads)
    try:
        result = evaluate(model.to(device), batches, device, max_batches=max_batches, warmup=WARMUP_PASSES)
    finally:
        torch.set_num_threads(before)
    return {"model": ref, "data": spec, "split": split, "batch_size": batch_size, "threads": threads,
            "device": device, **result}

