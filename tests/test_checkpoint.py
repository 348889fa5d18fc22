"""Checkpoints: exact round trip, refusal of corrupt or code-carrying files, fallback, temp folders, pruning."""
from __future__ import annotations

import copy
import json
import random

import numpy as np
import pytest
import torch
from torch import nn

from cdarts.checkpoint import (
    CheckpointError,
    _sha256,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    restore_modules,
    save_checkpoint,
    set_rng_state,
)


class PlantedCode:
    """Unpickling this opens (creates) ``marker``: what a malicious optim.pt would do instead."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def make_net() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    train(net, opt)
    return net, opt


def train(net: nn.Module, opt: torch.optim.Optimizer) -> None:
    opt.zero_grad()
    net(torch.randn(5, 4)).square().sum().backward()
    opt.step()


def save(folder, epoch: int, keep: int = 2, **state):
    net, opt = make_net()
    return save_checkpoint(folder, epoch, {"net": net}, {"opt": opt}, {"history": [epoch], **state}, keep=keep)


def rewrite_manifest(path, name: str) -> None:
    """Make the manifest agree with a replaced file, as an attacker who can write the folder would."""
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"][name] = {"size": (path / name).stat().st_size, "sha256": _sha256(path / name)}
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_round_trip_restores_modules_optimizers_and_every_rng(tmp_path):
    net, opt = make_net()
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    path = save_checkpoint(tmp_path, 3, {"net": net}, {"opt": opt}, {"history": [{"epoch": 3}]})
    expected_state = {k: v.clone() for k, v in net.state_dict().items()}
    expected_opt = copy.deepcopy(opt.state_dict())
    draws = (torch.rand(3), np.random.rand(3), random.random())

    train(net, opt)  # move everything on, then restore into fresh objects
    fresh = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=0.1)
    found, (tensors, optim, state) = latest_checkpoint(tmp_path)
    assert found == path and path.name == "epoch-0003"
    restore_modules(tensors, {"net": fresh})
    fresh_opt.load_state_dict(optim["optimizers"]["opt"])
    set_rng_state(optim["rng"], state["rng"])

    for key, value in fresh.state_dict().items():
        assert torch.equal(value, expected_state[key]), key
    for key, value in fresh_opt.state_dict()["state"][0].items():
        assert torch.equal(torch.as_tensor(value), torch.as_tensor(expected_opt["state"][0][key])), key
    assert state["epoch"] == 3 and state["history"] == [{"epoch": 3}]
    assert torch.equal(torch.rand(3), draws[0])
    assert np.array_equal(np.random.rand(3), draws[1])
    assert random.random() == draws[2]
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "optim.pt", "state.json",
                                                      "tensors.safetensors"]


def test_restore_modules_refuses_a_checkpoint_of_another_network(tmp_path):
    path = save(tmp_path, 0)
    tensors, _, _ = load_checkpoint(path)
    with pytest.raises(CheckpointError, match="module 'net'"):
        restore_modules(tensors, {"net": nn.Sequential(nn.Linear(4, 3))})


def test_truncated_tensors_file_is_an_error_naming_it(tmp_path):
    path = save(tmp_path, 0)
    tensors = path / "tensors.safetensors"
    tensors.write_bytes(tensors.read_bytes()[: tensors.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated") as info:
        load_checkpoint(path)
    assert str(tensors) in str(info.value)

    rewrite_manifest(path, "tensors.safetensors")  # the hash check passes; safetensors itself must refuse
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(tensors) in str(info.value)


def test_missing_manifest_is_an_error_naming_it(tmp_path):
    path = save(tmp_path, 0)
    (path / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="manifest.json: missing"):
        load_checkpoint(path)


def test_latest_checkpoint_falls_back_to_the_previous_one_and_says_so(tmp_path):
    save(tmp_path, 0)
    newest = save(tmp_path, 1)
    (newest / "optim.pt").write_bytes(b"garbage")
    warnings: list[str] = []
    path, (_, _, state) = latest_checkpoint(tmp_path, warn=warnings.append)
    assert path.name == "epoch-0000" and state["epoch"] == 0
    assert len(warnings) == 1
    assert "epoch-0001" in warnings[0] and "falling back to the previous one" in warnings[0]
    assert "optim.pt" in warnings[0]


def test_latest_checkpoint_is_none_when_nothing_is_usable(tmp_path):
    assert latest_checkpoint(tmp_path / "absent", warn=pytest.fail) is None
    path = save(tmp_path, 0)
    (path / "state.json").write_text("{}")
    warnings: list[str] = []
    assert latest_checkpoint(tmp_path, warn=warnings.append) is None
    assert len(warnings) == 1 and "state.json" in warnings[0]


def test_planted_pickle_with_matching_manifest_is_refused_without_running_it(tmp_path):
    path = save(tmp_path, 0)
    marker = tmp_path / "pwned"
    torch.save({"optimizers": {}, "rng": PlantedCode(str(marker))}, path / "optim.pt")
    rewrite_manifest(path, "optim.pt")

    with pytest.raises(CheckpointError, match="optim.pt") as info:
        load_checkpoint(path)
    assert str(path / "optim.pt") in str(info.value)
    assert not marker.exists()
    warnings: list[str] = []
    assert latest_checkpoint(tmp_path, warn=warnings.append) is None and not marker.exists()

    torch.load(path / "optim.pt", weights_only=False)  # the payload is live: unsafe loading would run it
    assert marker.exists()


def test_temporary_folders_are_ignored(tmp_path):
    save(tmp_path, 1)
    stale = tmp_path / ".tmp-epoch-0005-4242"
    stale.mkdir()
    (stale / "tensors.safetensors").write_bytes(b"half written")
    (tmp_path / "epoch-0007.partial").mkdir()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["epoch-0001"]
    path, _ = latest_checkpoint(tmp_path, warn=pytest.fail)
    assert path.name == "epoch-0001"


def test_keep_prunes_all_but_the_newest(tmp_path):
    for epoch in range(4):
        save(tmp_path, epoch, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0002", "epoch-0003"]
    save(tmp_path, 12, keep=1)
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-0012"]


def test_failed_save_leaves_no_partial_folder_and_keeps_the_previous_one(tmp_path):
    save(tmp_path, 0)
    with pytest.raises(TypeError):
        save(tmp_path, 1, unserialisable=object())
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-0000"]
    path, _ = latest_checkpoint(tmp_path, warn=pytest.fail)
    assert path.name == "epoch-0000"
