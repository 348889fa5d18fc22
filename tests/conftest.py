"""Shared fixtures: the tiniest search config that still runs every part of the cycle in seconds."""
from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import torch
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")

# Tiny networks on a shared 2-core machine: a second intra-op thread only adds contention (a joint step took 10 s
# with two threads under load, 0.3 s with one).
torch.set_num_threads(1)



@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module, whatever an earlier test set: tiny convolutions run fastest on one thread
    and do not stall when other processes share the CPUs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Evil:
    """Unpickling this creates ``marker``: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


TINY_CONFIG: dict[str, Any] = {
    "seed": 0,
    "data": {"type": "digits", "image_size": 8, "channels": 3},
    "batch_size": 32,
    "threads": 1,
    "plots": False,
    "max_steps_per_epoch": 2,
    "space": {"type": "darts", "channels": 2, "layers": 3, "eval_layers": 3},
    "strategy": {"type": "cdarts", "epochs": 2, "pretrain_epochs": 1},
}


TINY_RETRAIN: dict[str, Any] = {
    "seed": 0,
    "data": {"type": "digits", "image_size": 8, "channels": 1},
    "model": {"channels": 4, "layers": 3},
    "epochs": 1,
    "batch_size": 16,
    "max_steps_per_epoch": 1,
    "threads": 1,
}
"""The tiniest retraining: a 3-cell C=4 network (the default genotype) on 8x8 digits, one step an epoch."""


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A fresh copy of ``base`` with ``changes``: a component dict of the same (or no) ``type`` is merged
    (``strategy={"epochs": 3}``), one naming another type replaces the slot, any other value replaces the key."""
    config = copy.deepcopy(base)
    for key, value in copy.deepcopy(changes).items():
        old = config.get(key)
        if isinstance(value, dict) and isinstance(old, dict) and value.get("type", old.get("type")) == old.get("type"):
            config[key] = {**old, **value}
        else:
            config[key] = value
    return config


def make_tiny_config(**changes: Any) -> dict[str, Any]:
    """``TINY_CONFIG`` with ``changes`` (see ``merged``)."""
    return merged(TINY_CONFIG, changes)


def make_tiny_retrain_config(**changes: Any) -> dict[str, Any]:
    """``TINY_RETRAIN`` with ``changes`` (see ``merged``): ``model={"genotype": "DARTS_V2"}`` keeps its sizes."""
    return merged(TINY_RETRAIN, changes)


@pytest.fixture(scope="session")
def tiny_config():
    """The ``make_tiny_config`` factory: ``tiny_config(strategy={"epochs": 3})``."""
    return make_tiny_config


def make_tree(root: Path, split: str, classes: dict[str, int], size: int = 20) -> None:
    """``root/split/<class>/<i>.png``: small PNGs whose colour encodes the class."""
    for label, (name, count) in enumerate(classes.items()):
        folder = root / split / name
        folder.mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (size, size), (100 * label, 7 * i, 50)).save(folder / f"{i}.png")


def cpu_runtime(**policy: Any) -> Any:
    """A single-process CPU ``Runtime`` (fp32) with the given non-finite / clipping policy."""
    from cdarts.runs import make_accelerator
    from cdarts.runtime import Runtime

    return Runtime(make_accelerator("no", True), **policy)


def cli_env() -> dict[str, str]:
    """Environment for running ``python -m cdarts...`` in a subprocess from any folder."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def run_cli(*args: str, timeout: float = 180, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m cdarts.cli.search ARGS`` to completion, capturing text output."""
    return subprocess.run(
        [sys.executable, "-m", "cdarts.cli.search", *args], env=cli_env(), cwd=cwd or ROOT, capture_output=True,
        text=True, timeout=timeout,
    )


def drive_beside(script: str, plan: Any, references: Callable[[], T], timeout: float = 300) -> tuple[Any, T]:
    """Run ``python -c script PLAN_JSON`` (a driver that forks the cases of ``plan``) while this process makes
    ``references()``; returns the JSON of the driver's last output line and the references. The driver never
    outlives the call, whatever fails."""
    driver = subprocess.Popen([sys.executable, "-c", script, json.dumps(plan)], env=cli_env(), cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        made = references()
        out, err = driver.communicate(timeout=timeout)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert driver.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1]), made


def free_port() -> int:
    """A TCP port free on this machine now, for a process group's rendezvous."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_two_processes(driver: str, config: dict[str, Any], folder: Path,
                         timeout: float) -> subprocess.CompletedProcess:
    """Write ``config`` and the ``driver`` script into ``folder``, then ``accelerate launch --multi_gpu`` the driver
    (its arguments: the config, ``folder/run``, ``folder``) as two gloo processes on the CPU, on any machine."""
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "driver.py").write_text(driver)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(free_port())]
    return subprocess.run([*launch, str(folder / "driver.py"), str(folder / "config.yaml"), str(folder / "run"),
                           str(folder)], env={**cli_env(), "CUDA_VISIBLE_DEVICES": ""}, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def cli():
    """The ``run_cli`` helper: ``cli("--config", path, "--output", run)``."""
    return run_cli


@pytest.fixture(name="cli_env", scope="session")
def cli_env_fixture() -> dict[str, str]:
    """``cli_env()`` for tests that start the process themselves (``subprocess.Popen``)."""
    return cli_env()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (minutes each) run only when asked for with ``-m slow``."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow; opt in with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
