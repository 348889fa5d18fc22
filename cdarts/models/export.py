"""Export a retrained network as a folder timm loads: ``timm.create_model("local-dir:FOLDER", pretrained=True)``.

The folder holds ``model.safetensors`` (inference weights, no auxiliary tower), ``config.json`` (``architecture``,
``num_classes``, ``num_features``, ``model_args`` with the genotype as plain JSON, ``pretrained_cfg``) and a README
model card. ``import cdarts`` registers the architecture, which is all a reader needs besides timm.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cdarts.genotypes import genotype_from_json
from cdarts.io import file_mode, fsync_dir
from cdarts.models.load import TrainedModel, read_trained, recorded_threads
from cdarts.runs import FolderLock
from cdarts.stats import count_macs, inference_parameters

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
README = "README.md"


@dataclass
class ExportResult:
    folder: Path
    params: int
    macs: int
    config: dict[str, Any]


def timm_config(trained: TrainedModel, model: nn.Module, pool_size: tuple[int, int], ema: bool) -> dict[str, Any]:
    """``config.json`` as timm's ``load_model_config_from_path`` reads it; cdarts' own notes under ``cdarts``."""
    data = trained.data
    input_size = list(data.get("input_size") or model.pretrained_cfg["input_size"])
    pretrained_cfg = {
        "tag": "cdarts",
        "custom_load": False,
        "input_size": input_size,
        "fixed_input_size": False,
        "interpolation": data.get("interpolation", model.pretrained_cfg["interpolation"]),
        "crop_pct": data.get("crop_pct", model.pretrained_cfg["crop_pct"]),
        "crop_mode": "center",
        "mean": list(data.get("mean") or model.pretrained_cfg["mean"]),
        "std": list(data.get("std") or model.pretrained_cfg["std"]),
        "num_classes": model.num_classes,
        "pool_size": list(pool_size),
        "first_conv": model.pretrained_cfg["first_conv"],
        "classifier": "classifier",
        "license": "mit",
        "paper_name": model.pretrained_cfg.get("paper_name"),
        "paper_ids": model.pretrained_cfg.get("paper_ids"),
    }
    config = {
        "architecture": trained.architecture,
        "num_classes": model.num_classes,
        "num_features": model.num_features,
        "global_pool": model.global_pool.pool_type,
        "model_args": {**trained.model_args, "auxiliary": False},
        "pretrained_cfg": pretrained_cfg,
    }
    if data.get("class_names"):
        config["label_names"] = list(data["class_names"])
    config["cdarts"] = {
        "source": str(trained.path),
        "epoch": trained.epoch,
        "ema": ema,
        "metrics": {k: v for k, v in trained.metrics.items() if isinstance(v, (int, float, str))},
        "data": {k: v for k, v in data.items() if k != "class_names"},
    }
    return config


def _pct(metrics: Mapping[str, Any], key: str) -> str:
    value = metrics.get(key)
    return f"{value:.2f}%" if isinstance(value, (int, float)) else "-"


def model_card(config: dict[str, Any], params: int, macs: int, folder_name: str, hub_repo: str | None = None) -> str:
    """A short README under the Hugging Face Hub's front matter: what the network is, how big, how accurate, and how
    to load it (from the Hub as well, for a folder made for ``hub_repo``)."""
    from cdarts.models.hub import front_matter

    genotype = genotype_from_json(config["model_args"]["genotype"])
    args = config["model_args"]
    note = config["cdarts"]
    metrics = note["metrics"]
    prefix = "ema_" if note["ema"] else ""
    data = note["data"].get("dataset", {})
    size = config["pretrained_cfg"]["input_size"]
    rows = [
        ("val (held out from train)", _pct(metrics, f"{prefix}val_top1"), _pct(metrics, f"{prefix}val_top5")),
        ("test", _pct(metrics, f"{prefix}test_top1"), _pct(metrics, f"{prefix}test_top5")),
    ]
    table = "\n".join(f"| {name} | {top1} | {top5} |" for name, top1, top5 in rows)
    epoch = "-" if note["epoch"] is None else note["epoch"]
    latency = _latency_line(note.get("cost", {}))
    hub = f'model = timm.create_model("hf-hub:{hub_repo}", pretrained=True).eval()  # the Hub\'s copy\n'
    return front_matter(config, Path(hub_repo or folder_name).name) + f"""# {config['architecture']} \
({data.get('type', 'unknown data')})

A DARTS-space network retrained from scratch with cdarts (Cyclic Differentiable Architecture Search).

- architecture: `{config['architecture']}`, {args['layers']} cells, C={args['channels']}, \
{config['num_classes']} classes, {args['in_chans']}-channel input
- genotype: `{genotype}`
- parameters: {params:,} ({params / 1e6:.3f} M)
- MACs: {macs:,} ({macs / 1e6:.2f} M) at {size[1]}x{size[2]}{latency}
- input: {tuple(size)}, mean {tuple(round(v, 4) for v in config['pretrained_cfg']['mean'])}, \
std {tuple(round(v, 4) for v in config['pretrained_cfg']['std'])}
- weights: {'EMA of the' if note['ema'] else 'the'} checkpoint of epoch {epoch} ({note['source']})

## Accuracy

| split | top-1 | top-5 |
|---|---|---|
{table}

The epoch was chosen on the val split; the test split was only reported.

## Loading

```python
import cdarts  # registers the cdarts_* architectures with timm
import timm

model = timm.create_model("local-dir:{folder_name}", pretrained=True).eval()
{hub if hub_repo else ""}config = timm.data.resolve_data_config({{}}, model=model)
```

or evaluate it: `cdarts-eval --model local-dir:{folder_name}`.
"""


def export(
    source: str | Path, out: str | Path, ema: bool = False, force: bool = False, latency: str | Path | None = None,
    hub_repo: str | None = None,
) -> ExportResult:
    """Write the network of a run folder / checkpoint to ``out``; refuses a non-empty ``out`` unless ``force``.
    ``hub_repo``: the Hub repository the folder is meant for, whose name the card carries and loads from.
    ``config.json`` (under ``cdarts.cost``) and the README carry its MACs and parameters and, with a ``latency``
    table made for this network by ``cdarts-profile``, its predicted latency and the table's device.

    The folder is assembled under a temporary name and renamed into place, so ``out`` is never half written. An
    ``out`` that is a symlink is written through: its target is replaced and the link kept.
    """
    from safetensors.torch import save_file

    out = Path(out)
    target = Path(os.path.realpath(out))
    _check_out(out, force)
    trained = read_trained(source)
    model = trained.build(ema)
    input_size = tuple(trained.data.get("input_size") or model.pretrained_cfg["input_size"])
    with torch.no_grad():
        pool_size = tuple(model.forward_features(torch.zeros(1, *input_size)).shape[-2:])
    params, macs = inference_parameters(model), count_macs(model, input_size)
    config = timm_config(trained, model, pool_size, ema)
    config["cdarts"]["cost"] = {"macs": macs, "params": params}
    if latency is not None:
        config["cdarts"]["cost"].update(predicted_latency(latency, trained, model, input_size))
    config["cdarts"]["threads"] = recorded_threads(str(source))  # cdarts-eval measures speed with the run's threads
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FolderLock(out).acquire()  # one writer: another export to ``out`` is refused until this one is done
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    try:
        _check_out(out, force)  # again under the lock: an export that just ended may have filled ``out``
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp / WEIGHTS))
        (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        (tmp / README).write_text(model_card(config, params, macs, str(out), hub_repo))
        mode = file_mode()
        for name in (WEIGHTS, CONFIG, README):
            os.chmod(tmp / name, mode)
            with open(tmp / name, "rb") as handle:
                os.fsync(handle.fileno())
        fsync_dir(tmp)
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        lock.release()
    return ExportResult(out, params, macs, config)


def predicted_latency(table: str | Path, trained: TrainedModel, model: nn.Module, input_size: tuple[int, ...]
                      ) -> dict[str, Any]:
    """``latency_ms``, ``latency_device`` and ``latency_table`` of the exported network, from a latency table."""
    from cdarts.costs.latency import genotype_latency
    from cdarts.models.darts import ARCHITECTURES

    args = {**ARCHITECTURES.get(trained.architecture, {}), **trained.model_args}
    options = {key: args[key] for key in ("stem", "stem_multiplier") if key in args}
    ms, device = genotype_latency(table, model.genotype, args["channels"], args["layers"], tuple(input_size),
                                  model.num_classes, **options)
    return {"latency_ms": ms, "latency_device": device, "latency_table": str(table)}


def _latency_line(cost: Mapping[str, Any]) -> str:
    if "latency_ms" not in cost:
        return ""
    from cdarts.costs.latency import device_text

    return f"\n- latency: {cost['latency_ms']:.3f} ms predicted for {device_text(cost['latency_device'])}"


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--output '{out}' exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise FileExistsError(f"--output folder '{out}' is not empty; pass --force to replace its contents")
