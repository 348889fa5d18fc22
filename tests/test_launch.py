"""The launcher's settings (#15 defect 1): ``accelerate launch --mixed_precision`` applies unless the config sets a
precision; config.yaml records what ran; the processes and the effective batch are printed and kept in launch.json."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from conftest import make_tiny_retrain_config

from cdarts.config import ConfigError
from cdarts.engine import search
from cdarts.retrain import train
from cdarts.runs import launch_line, make_accelerator

QUICK = {"strategy": {"type": "darts", "epochs": 1}, "max_steps_per_epoch": 1, "eval_bn_batches": 0}
"""One DARTS epoch of one batch: the cheapest search that writes a whole run folder."""
RETRAIN = make_tiny_retrain_config(val_fraction=0.0)


@pytest.fixture
def no_launcher(monkeypatch):
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    return monkeypatch


def test_the_launchers_precision_applies_unless_the_config_sets_one(no_launcher):
    assert make_accelerator(None, True).mixed_precision == "no"
    no_launcher.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    assert make_accelerator(None, True).mixed_precision == "bf16"
    assert make_accelerator("no", True).mixed_precision == "no"
    no_launcher.setenv("ACCELERATE_MIXED_PRECISION", "fp8")
    with pytest.raises(ConfigError, match=r"^ACCELERATE_MIXED_PRECISION='fp8' \(set by accelerate launch\): cdarts "
                                          r"runs 'no', 'fp16', 'bf16'$"):
        make_accelerator(None, True)


def test_the_launch_line_names_processes_effective_batch_and_an_overridden_launcher(no_launcher):
    record = {"num_processes": 8, "batch_size": 128, "effective_batch_size": 1024, "mixed_precision": "no",
              "device": "cuda"}
    assert launch_line(record, None) == "8 processes x batch 128 = effective batch 1024, mixed precision no on cuda"
    no_launcher.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    assert launch_line(record, "no") == ("8 processes x batch 128 = effective batch 1024, mixed precision no on cuda "
                                         "(the config's mixed_precision; the launcher's bf16 is not used)")
    assert launch_line({**record, "num_processes": 1, "effective_batch_size": 128}, None).startswith(
        "1 process x batch 128 = effective batch 128")


def test_accelerate_launch_mixed_precision_runs_is_recorded_and_resumes(tmp_path, tiny_config, cli_env, no_launcher,
                                                                        capsys):
    config, run = tmp_path / "tiny.yaml", tmp_path / "run"
    config.write_text(yaml.safe_dump(tiny_config(**QUICK)))
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--mixed_precision", "bf16",
              "--num_processes", "1", "--num_machines", "1", "--dynamo_backend", "no"]
    result = subprocess.run([*launch, "-m", "cdarts.cli.search", "--config", str(config), "--output", str(run),
                             "--no-progress"], env=cli_env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"1 process x batch 32 = effective batch 32, mixed precision bf16 on cpu -> {run}" in result.stdout
    assert yaml.safe_load((run / "config.yaml").read_text())["mixed_precision"] == "bf16"
    assert json.loads((run / "launch.json").read_text()) == {
        "num_processes": 1, "batch_size": 32, "effective_batch_size": 32, "mixed_precision": "bf16", "device": "cpu"}

    search(run / "config.yaml", output=run, resume=True)  # the run's own config, without the launcher: bf16 still
    assert "nothing left to run" in capsys.readouterr().out
    with pytest.raises(ConfigError, match=r"mixed_precision \('bf16' in the run, 'no' now\)"):
        search(config, output=run, resume=True)  # the first config without the launcher would run fp32


def test_a_config_that_sets_a_precision_overrides_the_launchers(tmp_path, tiny_config, no_launcher, capsys):
    no_launcher.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    result = search(tiny_config(mixed_precision="no", **QUICK), output=tmp_path / "run", progress=False)
    assert "mixed precision no on cpu (the config's mixed_precision; the launcher's bf16 is not used)" in (
        capsys.readouterr().out)
    assert yaml.safe_load((result.run_dir / "config.yaml").read_text())["mixed_precision"] == "no"


def test_a_retrain_takes_the_launchers_precision_and_records_it(tmp_path, no_launcher, capsys):
    no_launcher.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    run = train(RETRAIN, output=tmp_path / "run", progress=False).run_dir
    assert f"1 process x batch 16 = effective batch 16, mixed precision bf16 on cpu -> {run}" in (
        capsys.readouterr().out)
    assert yaml.safe_load((run / "config.yaml").read_text())["mixed_precision"] == "bf16"
    assert json.loads((run / "launch.json").read_text())["effective_batch_size"] == 16
    no_launcher.delenv("ACCELERATE_MIXED_PRECISION")
    train(None, output=run, resume=True, progress=False)  # its own config.yaml says bf16: accepted
    assert f"resuming from {run / 'checkpoints' / 'epoch-0001'} after epoch 1 of 1 (step 1)\n" in (
        capsys.readouterr().out)
