"""``cdarts-search`` as a user runs it: a killed run resumes to the uninterrupted result, bad input is one line."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from cdarts.cli.search import main
from cdarts.runs import RESUMABLE_KEYS, FolderLock

EPOCHS = 4  # 1 pretraining + 3 search epochs: killed after epoch 1's checkpoint, at least two epochs are left
BAD_CONFIGS = {
    "op": ({"space": {"primitives": ["none", "sep_conv_3x3", "bogus_op"]}},
           ["space.primitives[2]", "'bogus_op'", "sep_conv_3x3", "skip_connect"]),
    "loss": ({"strategy": {"loss": {"type": "cee"}}}, ["strategy.loss.type", "'cee'", "kd_kl", "'ce'"]),
    "strategy": ({"strategy": {"type": "cdartz"}}, ["strategy.type", "'cdartz'", "cdarts, darts"]),
    "dataset": ({"data": {"type": "digitz"}}, ["data.type", "'digitz'", "cifar10", "imagefolder", "'digits'"]),
    "dataset_folder": ({"data": {"type": "imagefolder", "root": "/nonexistent"}}, ["'/nonexistent'", "does not exist"]),
}


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def final_alpha(run: Path) -> tuple[dict, dict]:
    """(softmax alpha and genotype of the last genotypes.jsonl line, raw alpha tensors of the newest checkpoint)."""
    last = json.loads((run / "genotypes.jsonl").read_text().splitlines()[-1])
    newest = sorted((run / "checkpoints").iterdir())[-1]
    tensors = load_file(newest / "tensors.safetensors")
    return last, {cell: tensors[f"search.alphas_{cell}"] for cell in ("normal", "reduce")}


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def command(config: Path, output: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cdarts.cli.search", "--config", str(config), "--output", str(output), *extra]


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, tiny_config, cli, cli_env):
    config = write_config(tmp_path / "tiny.yaml", tiny_config(strategy={"epochs": EPOCHS - 1}))
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    options = dict(env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    uninterrupted = subprocess.Popen(command(config, reference), **options)  # runs alongside: two cores
    victim = subprocess.Popen(command(config, killed), **options)
    try:
        deadline = time.monotonic() + 240
        while not (killed / "checkpoints" / "epoch-0002").is_dir():
            assert victim.poll() is None, f"run ended before epoch 2's checkpoint: {victim.communicate()}"
            assert time.monotonic() < deadline, "no epoch-0002 checkpoint within 240 s"
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        out, err = uninterrupted.communicate(timeout=240)
    finally:
        for process in (victim, uninterrupted):
            if process.poll() is None:
                process.kill()
    assert victim.returncode == -signal.SIGKILL
    assert uninterrupted.returncode == 0, err
    assert not (killed / "genotype.json").exists(), "the victim must die before finishing"
    saved = sorted(p.name for p in (killed / "checkpoints").iterdir() if p.name.startswith("epoch-"))
    assert saved[-1] < f"epoch-{EPOCHS:04d}"

    resumed = cli("--config", str(config), "--output", str(killed), "--resume", timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {killed / 'checkpoints' / saved[-1]}" in resumed.stdout

    (want, want_tensors), (got, got_tensors) = final_alpha(reference), final_alpha(killed)
    assert got["epoch"] == want["epoch"] == EPOCHS
    assert got["genotype"] == want["genotype"]
    for cell in ("normal", "reduce"):
        torch.testing.assert_close(torch.tensor(got["alpha"][cell]), torch.tensor(want["alpha"][cell]),
                                   rtol=0, atol=1e-6)
        torch.testing.assert_close(got_tensors[cell], want_tensors[cell], rtol=0, atol=1e-6)
    assert json.loads((killed / "genotype.json").read_text()) == json.loads((reference / "genotype.json").read_text())
    with open(killed / "metrics.csv", newline="") as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == list(range(1, EPOCHS + 1))


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory, tiny_config, cli_env) -> dict[str, tuple[subprocess.CompletedProcess, Path, dict]]:
    """Every bad-input case run at once (they only start up and fail): name -> (result, output folder, files)."""
    root = tmp_path_factory.mktemp("bad")
    cases = {name: command(write_config(root / f"{name}.yaml", tiny_config(**change)), root / f"out-{name}")
             for name, (change, _) in BAD_CONFIGS.items()}
    existing = root / "out-existing"
    (existing / "checkpoints" / "epoch-0001").mkdir(parents=True)
    (existing / "metrics.csv").write_text("epoch,phase\n1,pretrain\n")
    (existing / "config.yaml").write_text("seed: 7\n")
    (existing / "checkpoints" / "epoch-0001" / "manifest.json").write_text("{}")
    cases["existing_run"] = command(write_config(root / "good.yaml", tiny_config()), existing)
    before = files_of(existing)
    started = {name: subprocess.Popen(argv, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name, argv in cases.items()}
    results = {}
    for name, process in started.items():
        try:
            out, err = process.communicate(timeout=180)
        finally:
            if process.poll() is None:
                process.kill()
        results[name] = (subprocess.CompletedProcess(process.args, process.returncode, out, err), Path(cases[name][-1]),
                         before if name == "existing_run" else {})
    return results


@pytest.mark.parametrize("case", [*BAD_CONFIGS, "existing_run"])
def test_bad_input_exits_2_with_one_line_naming_the_problem(bad_runs, case):
    result, output, before = bad_runs[case]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cdarts-search: error: "), result.stderr
    expected = BAD_CONFIGS[case][1] if case in BAD_CONFIGS else [f"'{output}'", "already holds files", "--resume"]
    for fragment in expected:
        assert fragment in lines[0]
    if case == "existing_run":
        assert files_of(output) == before, "a refused run must not touch the folder it refused"
    elif case != "dataset_folder":
        assert not output.exists(), "a config error is reported before anything is written"


def test_several_config_problems_are_reported_together(tmp_path, tiny_config, capsys):
    config = tiny_config(strategy={"type": "cdartz"}, data={"type": "digitz"})
    with pytest.raises(SystemExit) as info:
        main(["--config", str(write_config(tmp_path / "bad.yaml", config)), "--output", str(tmp_path / "run")])
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "'digitz'" in lines[0] + lines[1] and "'cdartz'" in lines[0] + lines[1]
    assert not (tmp_path / "run").exists()


def test_missing_config_file_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--config", str(tmp_path / "absent.yaml")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "absent.yaml" in err and "does not exist" in err


def test_resume_without_output_is_one_line(tmp_path, tiny_config, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--config", str(write_config(tmp_path / "tiny.yaml", tiny_config())), "--resume"])
    assert info.value.code == 2
    assert "--resume needs --output" in capsys.readouterr().err


LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
          "--mixed_precision", "no", "--dynamo_backend", "no"]


def test_accelerate_launch_forms_run_the_same_search(tmp_path, tiny_config, cli_env):
    config = write_config(tmp_path / "tiny.yaml", tiny_config(strategy={"epochs": 1}))
    script = str(Path(sys.executable).parent / "cdarts-search")
    forms = {
        "plain": command(config, tmp_path / "plain"),
        "module": [*LAUNCH, "-m", "cdarts.cli.search", "--config", str(config), "--output", str(tmp_path / "module")],
        "no_python": [*LAUNCH, "--no_python", script, "--config", str(config), "--output", str(tmp_path / "no_python")],
    }
    genotypes = {}
    for name, argv in forms.items():
        result = subprocess.run(argv, env=cli_env, capture_output=True, text=True, timeout=240)
        assert result.returncode == 0, f"{name}: {result.stderr[-2000:]}"
        assert result.stdout.count("final genotype:") == 1
        genotypes[name] = json.loads((tmp_path / name / "genotype.json").read_text())
    assert genotypes["module"] == genotypes["plain"] == genotypes["no_python"]


def quick(tiny_config, **changes) -> dict:
    """One DARTS epoch of one batch: the cheapest search that writes a whole run folder."""
    return tiny_config(strategy={"type": "darts", "epochs": 1}, max_steps_per_epoch=1, eval_bn_batches=0, **changes)


def test_resume_with_another_config_is_refused_naming_the_keys_unless_they_are_safe_to_change(tmp_path, tiny_config,
                                                                                            capsys):
    config, run = write_config(tmp_path / "tiny.yaml", quick(tiny_config)), tmp_path / "run"
    assert main(["--config", str(config), "--output", str(run)]) == 0
    saved = files_of(run)
    resume = ["--config", str(config), "--output", str(run), "--resume"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main([*resume, "--set", "seed=7", "--set", "strategy.epochs=2", "--set", "batch_size=16"])
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        f"cdarts-search: error: the config differs from the run's {run / 'config.yaml'} at seed (0 in the run, 7 now), "
        "batch_size (32 in the run, 16 now); --resume may only change "
        f"{', '.join(RESUMABLE_KEYS)}: resume with the run's own config or start a new --output\n")
    assert files_of(run) == saved, "a refused resume leaves the run as it was"

    leftover = run / ".metrics.csv.0badc0de.tmp"  # what a kill during a log write leaves
    leftover.write_text("epoch,phase\n")
    assert main([*resume, "--set", "strategy.epochs=2", "--set", "keep_checkpoints=3", "--set", "threads=2"]) == 0
    assert f"removed {leftover}, left by a write that was interrupted" in capsys.readouterr().out
    assert not leftover.exists()
    filled = yaml.safe_load((run / "config.yaml").read_text())
    assert (filled["strategy"]["epochs"], filled["keep_checkpoints"], filled["threads"], filled["seed"]) == (2, 3, 2, 0)
    with open(run / "metrics.csv", newline="") as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == [1, 2]


def test_a_search_on_an_output_another_run_writes_to_is_refused(tmp_path, tiny_config, capsys):
    config, run = write_config(tmp_path / "tiny.yaml", quick(tiny_config)), tmp_path / "run"
    for extra in ([], ["--resume"]):
        with FolderLock(run), pytest.raises(SystemExit) as info:
            main(["--config", str(config), "--output", str(run), *extra])
        assert info.value.code == 2
        assert capsys.readouterr().err.startswith(
            f"cdarts-search: error: output folder '{run}' is in use by another run (pid {os.getpid()} on host ")
    assert not run.exists()


def test_a_search_stopped_by_bad_data_in_its_first_epoch_leaves_no_run_folder(tmp_path, tiny_config, capsys):
    from PIL import Image

    for split, count in (("train", 8), ("test", 2)):
        for label, name in enumerate(("cat", "dog")):
            (tmp_path / "data" / split / name).mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (8, 8), (100 * label, 20 * i, 50)).save(tmp_path / "data" / split / name / f"{i}.png")
    garbage = tmp_path / "data" / "test" / "cat" / "garbage.png"  # the test split is read whole after epoch 0
    garbage.write_bytes(b"GIF89a and then nothing")
    data = {"type": "imagefolder", "root": str(tmp_path / "data"), "image_size": 8, "augment": False}
    config, run = write_config(tmp_path / "c.yaml", quick(tiny_config, data=data, batch_size=4)), tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        main(["--config", str(config), "--output", str(run)])
    assert info.value.code == 2
    err = capsys.readouterr().err  # after the progress bar
    assert err[err.index("cdarts-search: error: "):].startswith(f"cdarts-search: error: {garbage}: cannot read image (")
    assert not run.exists()
    garbage.unlink()
    assert main(["--config", str(config), "--output", str(run)]) == 0, "the same command runs once the data is fixed"
    assert (run / "genotype.json").is_file()
