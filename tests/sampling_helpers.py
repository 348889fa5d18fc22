"""What the tests of the one-path strategies (gdas, rsps, setn, enas) share: tiny configs in both spaces, a fixed-data
search context, and the three whole-run checks every strategy passes (two epochs on digits; a resume after SIGKILL
mid-epoch that ends as the uninterrupted run; two gloo processes that end with equal architecture state)."""
from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import yaml
from conftest import ROOT, cli_env, cpu_runtime, launch_two_processes, make_tiny_config
from safetensors.torch import load_file
from tqdm import tqdm

from cdarts.config import build
from cdarts.engine import search
from cdarts.strategies.base import SearchContext

SPACES = {
    "nas-bench-201": {"type": "nas-bench-201", "channels": 2, "cells_per_stage": 1},
    "darts": {"type": "darts", "channels": 2, "layers": 3, "eval_layers": 3},
}
FAST = {  # the fewest candidates and controller updates that still run every part of an epoch
    "gdas": {},
    "rsps": {"candidates": 3},
    "setn": {"candidates": 3},
    "enas": {"candidates": 3, "controller_steps": 2, "aggregate": 2},
}
STEPS_PER_EPOCH = {"gdas": 4, "rsps": 2, "setn": 4, "enas": 4}
"""``Runtime.step`` calls per epoch of ``tiny`` (two batches per loop): where a kill lands inside the second epoch."""


def tiny(name: str, space: str = "nas-bench-201", **changes: Any) -> dict[str, Any]:
    """conftest's tiny search with strategy ``name`` (two epochs) in ``space``, BN re-estimated on one batch;
    ``strategy={...}`` merges into the strategy slot."""
    spec = {"type": name, "epochs": 2, **FAST[name], **changes.pop("strategy", {})}
    return make_tiny_config(space=SPACES[space], strategy=spec, eval_bn_batches=1, **changes)


def context(space: str = "nas-bench-201", batches: int = 2, batch: int = 8, **space_changes: Any) -> SearchContext:
    """A context over fixed random 8 px batches (every split the same few batches)."""
    generator = torch.Generator().manual_seed(0)
    data = [(torch.randn(batch, 3, 8, 8, generator=generator), torch.randint(0, 10, (batch,), generator=generator))
            for _ in range(batches)]
    built = build("spaces", {**SPACES[space], **space_changes}, 10, 3)
    discretizer = build("discretizers", built.default_discretizer)
    return SearchContext(built, discretizer, cpu_runtime(), 10, data[0][0][:1], lambda split, epoch, repeat=0: data,
                         lambda batches, **kwargs: tqdm(batches, disable=True))


def strategy(name: str, space: str = "nas-bench-201", ctx: SearchContext | None = None, **spec: Any) -> Any:
    torch.manual_seed(0)
    built = build("strategies", {"type": name, "epochs": 2, **FAST[name], **spec})
    built.setup(ctx or context(space))
    return built


def assert_runs_two_epochs(name: str, space: str, tmp_path: Path) -> None:
    """Two epochs through the engine: a genotype of the space every epoch, finite metrics, the final genotype saved."""
    result = search(tiny(name, space), output=tmp_path / "run", quiet=True)
    assert len(result.history) == 2
    assert result.genotype.space == SPACES[space]["type"]
    assert json.loads((result.run_dir / "genotype.json").read_text()) == result.genotype.to_json()
    assert result.history[-1]["genotype"] == result.genotype.to_json()
    metrics = result.history[-1]["metrics"]
    assert 0 <= metrics["s_val_acc"] <= 100 and 0 <= metrics["s_test_acc"] <= 100
    assert all(math.isfinite(value) for value in metrics.values() if isinstance(value, float))


KILLER = """
import os, signal, sys

import torch

from cdarts.engine import search
from cdarts.runtime import Runtime

torch.set_num_threads(1)
step, calls = Runtime.step, []


def killing(self, *args, **kwargs):
    calls.append(1)
    if len(calls) == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
    return step(self, *args, **kwargs)


Runtime.step = killing
search(sys.argv[1], output=sys.argv[2], quiet=True)
"""


def assert_resumes_after_sigkill(name: str, tmp_path: Path, space: str = "nas-bench-201") -> None:
    """SIGKILL in the second epoch's second step; the resumed run ends with the uninterrupted run's tensors (every
    module and optimizer state), genotypes and strategy state."""
    config = tmp_path / "search.yaml"
    config.write_text(yaml.safe_dump(tiny(name, space)))
    killed = subprocess.run([sys.executable, "-c", KILLER, str(config), str(tmp_path / "killed"),
                             str(STEPS_PER_EPOCH[name] + 2)], env=cli_env(), cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert not (tmp_path / "killed" / "genotype.json").exists()
    resumed = search(config, output=tmp_path / "killed", resume=True, quiet=True)
    reference = search(config, output=tmp_path / "reference", quiet=True)
    assert resumed.genotype == reference.genotype
    for got, want in zip(resumed.history, reference.history, strict=True):
        assert (got["genotype"], got["alpha"]) == (want["genotype"], want["alpha"])
    last = [sorted((run / "checkpoints").glob("epoch-*"))[-1] for run in (resumed.run_dir, reference.run_dir)]
    assert last[0].name == last[1].name
    got, want = (load_file(folder / "tensors.safetensors") for folder in last)
    assert got.keys() == want.keys()
    assert [key for key in want if not torch.equal(got[key], want[key])] == []
    states = [json.loads((folder / "state.json").read_text())["strategy"] for folder in last]
    assert states[0] == states[1]


DRIVER = """
import hashlib, json, os, sys

from accelerate import PartialState

import cdarts.engine as engine

captured = []
setup = engine.setup_search


def capturing(*args, **kwargs):
    ctx, strategy = setup(*args, **kwargs)
    captured.append(strategy)
    return ctx, strategy


engine.setup_search = capturing
result = engine.search(sys.argv[1], output=sys.argv[2], quiet=True)
strategy = captured[0]
params = {name: hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in module.parameters())).hexdigest()
          for name, module in strategy.modules().items()}
record = {"world_size": PartialState().num_processes, "genotype": result.genotype.to_json(), "params": params,
          "alphas": {cell: a.tolist() for cell, a in strategy.alphas().items()}, "state": strategy.state(),
          "history": [h["genotype"] for h in result.history]}
with open(os.path.join(sys.argv[3], f"rank{os.environ['RANK']}.json"), "w") as handle:
    json.dump(record, handle)
"""


def assert_two_processes_agree(name: str, tmp_path: Path, space: str = "nas-bench-201") -> list[dict]:
    """Two gloo processes (accelerate launch --multi_gpu on the CPU) end with the same genotypes, architecture
    state (alphas, the strategy's state) and parameters of every module; returns the two ranks' records."""
    result = launch_two_processes(DRIVER, tiny(name, space), tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2], "each process ran alone instead of in one process group"
    for key in ("genotype", "history", "alphas", "state", "params"):
        assert ranks[0][key] == ranks[1][key], key
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 2
    return ranks
