"""Results pinned across refactors: a seeded demo search's alphas and genotype, a seeded retrain's weights.

The numbers in ``tests/pins/`` were written by this module (``CDARTS_WRITE_PINS=1 pytest tests/test_pinned_results.py``)
before the move to one training runtime; a restructure that changes what a seed computes fails here. Weights are
compared as per-tensor sums and norms (a changed value moves them; summation order noise does not exceed the
tolerance).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from cdarts.engine import search
from cdarts.retrain import train

ROOT = Path(__file__).resolve().parents[1]
PINS = Path(__file__).parent / "pins"
WRITE = os.environ.get("CDARTS_WRITE_PINS") == "1"
SEARCH_SETTINGS = ["strategy.epochs=2", "max_steps_per_epoch=3", "strategy.eval_epochs=1", "plots=false"]
RETRAIN_SETTINGS = ["epochs=2", "max_steps_per_epoch=4", "model.channels=4", "model.layers=3"]


def check_pin(name: str, found: dict) -> None:
    path = PINS / f"{name}.json"
    if WRITE:
        PINS.mkdir(exist_ok=True)
        path.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    pinned = json.loads(path.read_text())
    assert sorted(found) == sorted(pinned)
    for key, value in pinned.items():
        if isinstance(value, float | list) and not isinstance(value, str):
            assert found[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
        else:
            assert found[key] == value, key


def tensor_stats(tensors: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    """Sum, L2 norm and L1 norm of the floating tensors, grouped by the first two parts of their names."""
    groups: dict[str, list[torch.Tensor]] = {}
    for name, t in sorted(tensors.items()):
        if t.is_floating_point():
            groups.setdefault(".".join(name.split(".")[:2]), []).append(t.double().reshape(-1))
    stats = {}
    for group, parts in groups.items():
        flat = torch.cat(parts)
        stats[group] = [round(float(v), 7) for v in (flat.sum(), flat.norm(), flat.abs().sum())]
    return stats


def last_checkpoint_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    checkpoint = sorted((run_dir / "checkpoints").iterdir())[-1]
    return load_file(checkpoint / "tensors.safetensors")


def test_seeded_demo_search_gives_pinned_alphas_and_genotype(tmp_path, one_thread):
    result = search(ROOT / "configs" / "demo.yaml", SEARCH_SETTINGS, output=tmp_path / "run")
    tensors = last_checkpoint_tensors(result.run_dir)
    found = {"genotype": str(result.genotype), **tensor_stats(tensors)}
    found.update({name: [round(float(v), 7) for v in t.reshape(-1)] for name, t in tensors.items() if "alpha" in name})
    check_pin("search_demo", found)


def test_seeded_retrain_demo_gives_pinned_weights_after_two_epochs(tmp_path, one_thread):
    result = train(ROOT / "configs" / "retrain-demo.yaml", RETRAIN_SETTINGS, output=tmp_path / "run", progress=False)
    found: dict = tensor_stats(last_checkpoint_tensors(result.run_dir))
    found["test_top1"] = round(result.history[-1]["test_top1"], 4)
    check_pin("retrain_demo", found)
