"""Checkpoints: exact round trip, refusal of corrupt or code-carrying files, fallback, temp folders, pruning."""
from __future__ import annotations

import copy
import csv
import json
import os
import random
import re
import shutil
import stat

import numpy as np
import pytest
import torch
from conftest import make_tiny_retrain_config
from torch import nn

from cdarts.checkpoint import (
    FILES,
    NUMBERING,
    CheckpointError,
    _sha256,
    latest_checkpoint,
    legacy_numbering,
    list_checkpoints,
    load_checkpoint,
    restore_modules,
    save_checkpoint,
    set_rng_state,
)
from cdarts.engine import search
from cdarts.io import atomic_write_text, csv_text
from cdarts.retrain import train as retrain


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
    path = save(tmp_path, 1)
    tensors, _, _ = load_checkpoint(path)
    with pytest.raises(CheckpointError, match="module 'net'"):
        restore_modules(tensors, {"net": nn.Sequential(nn.Linear(4, 3))})


def test_truncated_tensors_file_is_an_error_naming_it(tmp_path):
    path = save(tmp_path, 1)
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
    path = save(tmp_path, 1)
    (path / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="manifest.json: missing"):
        load_checkpoint(path)


def test_latest_checkpoint_falls_back_to_the_previous_one_and_says_so(tmp_path):
    save(tmp_path, 1)
    newest = save(tmp_path, 2)
    (newest / "optim.pt").write_bytes(b"garbage")
    warnings: list[str] = []
    path, (_, _, state) = latest_checkpoint(tmp_path, warn=warnings.append)
    assert path.name == "epoch-0001" and state["epoch"] == 1
    assert len(warnings) == 1
    assert "epoch-0002" in warnings[0] and "falling back to the previous one" in warnings[0]
    assert "optim.pt" in warnings[0]


def test_latest_checkpoint_is_none_when_nothing_is_usable(tmp_path):
    assert latest_checkpoint(tmp_path / "absent", warn=pytest.fail) is None
    path = save(tmp_path, 1)
    (path / "state.json").write_text("{}")
    warnings: list[str] = []
    assert latest_checkpoint(tmp_path, warn=warnings.append) is None
    assert len(warnings) == 1 and "state.json" in warnings[0]


def test_planted_pickle_with_matching_manifest_is_refused_without_running_it(tmp_path):
    path = save(tmp_path, 1)
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
    for epoch in range(1, 5):
        save(tmp_path, epoch, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0003", "epoch-0004"]
    save(tmp_path, 12, keep=1)
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-0012"]


def test_failed_save_leaves_no_partial_folder_and_keeps_the_previous_one(tmp_path):
    save(tmp_path, 1)
    with pytest.raises(TypeError):
        save(tmp_path, 2, unserialisable=object())
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-0001"]
    path, _ = latest_checkpoint(tmp_path, warn=pytest.fail)
    assert path.name == "epoch-0001"


def test_a_resume_moves_unusable_checkpoints_aside_so_pruning_keeps_its_new_ones(tmp_path):
    """epoch-0003 and epoch-0004 corrupt: the resume starts from scratch and its epoch-0001/0002 are kept."""
    for epoch in (3, 4):
        (save(tmp_path, epoch) / "tensors.safetensors").write_bytes(b"corrupt")
    warnings: list[str] = []
    assert latest_checkpoint(tmp_path, warn=warnings.append, move_aside=True) is None
    aside = tmp_path / "corrupt"
    for warning, name in zip(warnings, ["epoch-0004", "epoch-0003"], strict=True):
        assert warning.startswith(f"checkpoint {name} is unusable: {tmp_path / name / 'tensors.safetensors'}: size")
        assert warning.endswith(f"; moved to {aside / name}; falling back to the previous one")
    assert sorted(p.name for p in aside.iterdir()) == ["epoch-0003", "epoch-0004"]
    save(tmp_path, 1)
    save(tmp_path, 2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["epoch-0002", "epoch-0001"]
    assert latest_checkpoint(tmp_path, warn=pytest.fail)[0].name == "epoch-0002"
    (save(tmp_path, 4) / "tensors.safetensors").write_bytes(b"corrupt again")
    latest_checkpoint(tmp_path, warn=warnings.append, move_aside=True)
    assert sorted(p.name for p in aside.iterdir()) == ["epoch-0003", "epoch-0004", "epoch-0004.1"]


def test_pruning_never_removes_the_checkpoint_just_written(tmp_path):
    """A higher-numbered checkpoint left in place (read-only fallback) is not counted among those kept."""
    (save(tmp_path, 6) / "tensors.safetensors").write_bytes(b"corrupt")
    save(tmp_path, 1, keep=1)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["epoch-0006", "epoch-0001"]
    save(tmp_path, 2, keep=1)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["epoch-0006", "epoch-0002"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_checkpoint_files_get_the_mode_the_umask_gives_every_other_output(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = save(tmp_path, 1)
        atomic_write_text(tmp_path / "metrics.csv", "epoch\n0\n")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [*path.iterdir(), tmp_path / "metrics.csv"]}
    assert modes == dict.fromkeys([*FILES, "manifest.json", "metrics.csv"], 0o666 & ~umask)


SEARCH_LIKE = {"strategy": dict, "history": [{"epoch": int, "metrics": dict}]}
"""The fields a caller (here shaped like the search's) needs in state.json beyond epoch and RNG."""


def forge_state(path, change) -> dict:
    """Rewrite ``path``'s state.json as ``change(state)`` (a dict, or raw text) and make the manifest agree."""
    state = json.loads((path / "state.json").read_text())
    new = change(copy.deepcopy(state))
    (path / "state.json").write_text(new if isinstance(new, str) else json.dumps(new))
    rewrite_manifest(path, "state.json")
    return state


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda s: {}, "epoch: missing"),
        (lambda s: [], "expected an object, got a list"),
        (lambda s: "{", "not valid JSON (Expecting property name"),
        (lambda s: "[" * 100_000 + "]" * 100_000, "not valid JSON (nested too deeply"),
        (lambda s: {**s, "epoch": "3"}, "epoch: expected an integer, got a string"),
        (lambda s: {**s, "epoch": 0}, "epoch: expected at least 1, got 0"),
        (lambda s: numbered_from_zero(s) | {"epoch": -1}, "epoch: expected at least 0, got -1"),
        (lambda s: {k: v for k, v in s.items() if k != "strategy"}, "strategy: missing"),
        (lambda s: {**s, "history": 7}, "history: expected a list, got an integer"),
        (lambda s: {**s, "history": [{"epoch": 1, "metrics": {}}, "junk"]}, "history[1]: expected an object, got a "
                                                                            "string"),
        (lambda s: {**s, "history": [{"epoch": 1}]}, "history[0].metrics: missing"),
        (lambda s: {**s, "rng": "junk"}, "rng: expected an object, got a string"),
        (lambda s: {**s, "rng": {**s["rng"], "numpy": [1, 2]}}, "rng.numpy: not a NumPy RNG state"),
        (lambda s: {**s, "rng": {**s["rng"], "numpy": ["MT19937", ["x"] * 624, 0, 0, 0.0]}},
         "rng.numpy: not a NumPy RNG state"),
        (lambda s: {**s, "rng": {**s["rng"], "python": [3, [1, 2, 3], None]}}, "rng.python: not a Python RNG state"),
    ],
    ids=["empty", "list", "truncated", "deep", "epoch_str", "epoch_zero", "legacy_epoch_negative", "no_strategy",
         "history_int", "history_entry", "history_field", "rng_str", "numpy_short", "numpy_junk", "python_short"],
)
def test_junk_state_json_with_a_matching_manifest_falls_back_naming_file_and_field(change, problem, tmp_path):
    save(tmp_path, 1, strategy={}, history=[{"epoch": 1, "metrics": {}}])
    newest = save(tmp_path, 2, strategy={}, history=[{"epoch": 1, "metrics": {}}, {"epoch": 2, "metrics": {}}])
    forge_state(newest, change)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(newest, fields=SEARCH_LIKE)
    assert str(info.value).startswith(f"{newest / 'state.json'}: {problem}"), info.value
    warnings: list[str] = []
    path, (_, _, state) = latest_checkpoint(tmp_path, warn=warnings.append, fields=SEARCH_LIKE)
    assert path.name == "epoch-0001" and state["epoch"] == 1
    assert warnings == [f"checkpoint epoch-0002 is unusable: {info.value}; falling back to the previous one"]


@pytest.mark.parametrize(
    ("optim", "problem"),
    [
        ({"optimizers": {}}, "rng: missing"),
        ({"optimizers": [], "rng": {"torch": torch.get_rng_state()}}, "optimizers: expected a dict, got list"),
        ({"optimizers": {}, "rng": {"torch": torch.zeros(3)}}, "rng.torch: not a torch RNG state"),
    ],
)
def test_junk_optimizer_file_with_a_matching_manifest_is_an_error_naming_it(optim, problem, tmp_path):
    path = save(tmp_path, 1)
    torch.save(optim, path / "optim.pt")
    rewrite_manifest(path, "optim.pt")
    with pytest.raises(CheckpointError, match=re.escape(f"{path / 'optim.pt'}: {problem}")):
        load_checkpoint(path)


def test_search_resume_from_a_junk_state_json_falls_back_to_the_previous_checkpoint(tmp_path, tiny_config, capsys):
    config = tiny_config(strategy={"epochs": 1}, eval_bn_batches=1)
    original = search(config, output=tmp_path / "run")
    newest, previous = list_checkpoints(original.run_dir / "checkpoints")[:2]
    forge_state(newest, lambda s: {**s, "history": [1, 2]})
    capsys.readouterr()
    resumed = search(config, output=original.run_dir, resume=True)
    out = capsys.readouterr().out
    assert (f"checkpoint {newest.name} is unusable: {newest / 'state.json'}: history[0]: expected an object, got an "
            "integer") in out
    assert f"resuming from {previous}" in out
    assert resumed.genotype == original.genotype, "the last epoch is redone exactly"
    assert [h["alpha"] for h in resumed.history] == [h["alpha"] for h in original.history]


def test_retrain_resume_from_a_junk_state_json_falls_back_to_the_previous_checkpoint(tmp_path, capsys):
    config = make_tiny_retrain_config(val_fraction=0.0, epochs=2)
    original = retrain(config, output=tmp_path / "run", progress=False)
    newest, previous = list_checkpoints(original.run_dir / "checkpoints")[:2]
    forge_state(newest, lambda s: {**s, "best": None})
    capsys.readouterr()
    resumed = retrain(None, output=original.run_dir, resume=True, progress=False)
    out = capsys.readouterr().out
    assert f"checkpoint {newest.name} is unusable: {newest / 'state.json'}: best: expected an object, got null" in out
    assert f"resuming from {previous}" in out
    assert [row["test_top1"] for row in resumed.history] == [row["test_top1"] for row in original.history]


def test_save_refuses_an_epoch_before_the_first(tmp_path):
    net, opt = make_net()
    with pytest.raises(ValueError, match=r"epoch must be at least 1 \(epochs count from 1\), got 0"):
        save_checkpoint(tmp_path, 0, {"net": net}, {"opt": opt}, {})
    assert list(tmp_path.iterdir()) == []


def numbered_from_zero(value):
    """The inverse of loading an old checkpoint: every ``epoch`` 1 lower, and no numbering key."""
    if isinstance(value, list):
        return [numbered_from_zero(item) for item in value]
    if not isinstance(value, dict):
        return value
    return {k: v - 1 if k == "epoch" and type(v) is int else numbered_from_zero(v) for k, v in value.items()
            if k != NUMBERING}


def test_a_checkpoint_numbered_from_zero_loads_with_every_epoch_one_higher(tmp_path):
    path = save(tmp_path, 3, best={"epoch": 2, "val_top1": 50.0}, history=[{"epoch": 1}, {"epoch": 2}, {"epoch": 3}])
    new = load_checkpoint(path)[2]
    assert not legacy_numbering(new)
    forge_state(path, numbered_from_zero)
    assert json.loads((path / "state.json").read_text())["history"] == [{"epoch": 0}, {"epoch": 1}, {"epoch": 2}]
    old = load_checkpoint(path)[2]
    assert legacy_numbering(old)
    assert {k: v for k, v in old.items() if k != NUMBERING} == {k: v for k, v in new.items() if k != NUMBERING}


def as_previous_release(run_dir) -> None:
    """Rewrite a run folder as the release that counted epochs from 0 wrote it: checkpoint names, state.json and the
    logs' epoch columns one lower."""
    for folder in (run_dir / "checkpoints", run_dir / "best"):
        for path in sorted(list_checkpoints(folder)):  # oldest first: each new name is free
            forge_state(path, numbered_from_zero)
            path.rename(folder / f"epoch-{int(path.name[6:]) - 1:04d}")
    for name in ("metrics.csv", "steps.csv"):
        if (run_dir / name).is_file():
            rows = list(csv.DictReader((run_dir / name).open()))
            (run_dir / name).write_text(csv_text([{**r, "epoch": int(r["epoch"]) - 1} for r in rows]))


def test_a_search_begun_by_the_previous_release_resumes_numbered_from_1(tmp_path, tiny_config, capsys):
    config = tiny_config(strategy={"epochs": 1}, eval_bn_batches=1)
    original = search(config, output=tmp_path / "run")
    run = original.run_dir
    shutil.rmtree(run / "checkpoints" / "epoch-0002")  # stopped after the first epoch
    as_previous_release(run)
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["epoch-0000"]
    capsys.readouterr()
    resumed = search(config, output=run, resume=True)
    assert (f"resuming from {run / 'checkpoints' / 'epoch-0000'} after epoch 1 of 2 (pretrain 1/1)"
            in capsys.readouterr().out)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert [h["alpha"] for h in resumed.history] == [h["alpha"] for h in original.history]
    assert resumed.genotype == original.genotype
    assert [int(r["epoch"]) for r in csv.DictReader((run / "metrics.csv").open())] == [1, 2]
    assert [json.loads(line)["epoch"] for line in (run / "genotypes.jsonl").read_text().splitlines()] == [1, 2]
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["epoch-0002", "epoch-0000"]


def test_a_retrain_begun_by_the_previous_release_resumes_numbered_from_1(tmp_path, capsys):
    config = make_tiny_retrain_config(val_fraction=0.0, epochs=2)
    original = retrain(config, output=tmp_path / "run", progress=False)
    run = original.run_dir
    steps = (run / "steps.csv").read_text()
    shutil.rmtree(run / "checkpoints" / "epoch-0002")  # stopped after the first epoch, which was the best
    shutil.rmtree(run / "best" / "epoch-0002")
    shutil.copytree(run / "checkpoints" / "epoch-0001", run / "best" / "epoch-0001")
    as_previous_release(run)
    assert [p.name for p in (run / "best").iterdir()] == ["epoch-0000"]
    capsys.readouterr()
    resumed = retrain(None, output=run, resume=True, progress=False)
    assert (f"resuming from {run / 'checkpoints' / 'epoch-0000'} after epoch 1 of 2 (step 1)"
            in capsys.readouterr().out)
    assert [row["epoch"] for row in resumed.history] == [1, 2]
    assert [row["test_top1"] for row in resumed.history] == [row["test_top1"] for row in original.history]
    assert (run / "steps.csv").read_text() == steps
    assert resumed.summary["best_epoch"] == original.summary["best_epoch"] == 2
    assert [p.name for p in (run / "best").iterdir()] == ["epoch-0002"]
