"""Fault injection: a search or retrain killed anywhere (mid-epoch, between a checkpoint's files, before its
rename, while pruning or publishing ``best/``) resumes to the uninterrupted result; a full disk stops the run with
one line and leaves every earlier output intact; NaN/inf stops or skips a step and never reaches a checkpoint;
a dead or hung process makes the others exit within ``dist_timeout_s``."""
from __future__ import annotations

import csv
import errno
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT, cli_env, cpu_runtime, drive_beside, free_port, make_tiny_config, make_tiny_retrain_config
from safetensors.torch import load_file
from torch import nn

from cdarts.checkpoint import NonFiniteStateError, latest_checkpoint, save_checkpoint
from cdarts.cli.search import main as search_main
from cdarts.engine import search
from cdarts.retrain import train
from cdarts.runtime import NonFiniteLossError
from cdarts.strategies.base import SearchStrategy

EPOCHS = 3  # the tiny config: 1 pretraining + 2 search epochs

KILLER = """
import json, os, shutil, signal, sys
from pathlib import Path

import torch

from cdarts.engine import search
from cdarts.retrain import train
from cdarts.runtime import Runtime

torch.set_num_threads(1)  # before any fork: no thread pool exists yet
calls = 0


def kill_on_nth(nth, original, counts=lambda *args, **kwargs: True, before=lambda *args, **kwargs: None):
    def wrapper(*args, **kwargs):
        global calls
        if counts(*args, **kwargs):
            calls += 1
            if calls == nth:
                before(*args, **kwargs)
                os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)
    return wrapper


def run(kind, config, output, point, nth):
    if point == "between_files":  # tensors.safetensors written, optim.pt not yet
        torch.save = kill_on_nth(nth, torch.save)
    elif point == "before_rename":  # every file and the manifest written and fsynced, the folder not renamed
        os.replace = kill_on_nth(nth, os.replace, lambda src, dst: Path(src).name.startswith(".tmp-epoch-"))
    elif point == "while_pruning":  # the new checkpoint is in place; the old one is half deleted
        shutil.rmtree = kill_on_nth(nth, shutil.rmtree, lambda path, **kwargs: Path(path).name.startswith("epoch-"),
                                    lambda path, **kwargs: (Path(path) / "tensors.safetensors").unlink())
    elif point == "mid_epoch":
        Runtime.step = kill_on_nth(nth, Runtime.step)
    elif point == "publishing_best":  # best/ half copied
        shutil.copytree = kill_on_nth(nth, shutil.copytree, before=lambda src, dst, **kwargs: Path(dst).mkdir())
    if kind == "search":
        search(config, output=output)
    else:
        train(config, output=output, progress=False)


# One import, one forked process per case: each case is a fresh run in its own process, killed for real.
children = {}
for case in json.loads(sys.argv[1]):
    pid = os.fork()
    if pid == 0:
        log = os.open(case[2] + ".log", os.O_WRONLY | os.O_CREAT)
        os.dup2(log, 1)
        os.dup2(log, 2)
        try:
            run(*case)
        finally:
            os._exit(0)
    children[pid] = case[2]
statuses = {}
for pid, output in children.items():
    status = os.waitpid(pid, 0)[1]
    statuses[output] = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
print(json.dumps(statuses))
"""

SEARCH_KILLS = {  # point -> (call that is killed, the checkpoint a resume starts from)
    "between_files": (2, "epoch-0001"),
    "before_rename": (2, "epoch-0001"),
    "while_pruning": (1, "epoch-0002"),  # keep_checkpoints 1: epoch 2's save prunes epoch 1
    "mid_epoch": (11, "epoch-0002"),  # step 11 of 14: inside epoch 3
}
RETRAIN_KILLS = {"between_files": (2, "epoch-0001"), "publishing_best": (2, "epoch-0002")}
RETRAIN = make_tiny_retrain_config(val_fraction=0.0, epochs=3, max_steps_per_epoch=2,
                                   optimizer={"type": "sgd", "lr": 0.05}, keep_checkpoints=3)


@pytest.fixture(scope="module")
def tiny_config():
    """conftest's tiny config re-estimating BN statistics on one batch, not ten: the same code, half the time."""
    return lambda **changes: make_tiny_config(**{"eval_bn_batches": 1, **changes})


def error_line(err: str) -> str:
    """The CLI's error message (after any progress-bar output), asserting it is one line."""
    message = err[err.index("cdarts-search: error: "):]
    assert message.count("\n") == 1 and message.endswith("\n"), message
    return message.strip()


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_yaml(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def last_alpha(run: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(last genotypes.jsonl line, raw alphas of the newest checkpoint)."""
    line = json.loads((run / "genotypes.jsonl").read_text().splitlines()[-1])
    tensors = load_file(sorted((run / "checkpoints").glob("epoch-*"))[-1] / "tensors.safetensors")
    return line, {cell: tensors[f"search.alphas_{cell}"] for cell in ("normal", "reduce")}


def assert_same_search(run: Path, reference: Path) -> None:
    (got, got_alpha), (want, want_alpha) = last_alpha(run), last_alpha(reference)
    assert got["epoch"] == want["epoch"] == EPOCHS
    assert got["genotype"] == want["genotype"]
    for cell in ("normal", "reduce"):
        torch.testing.assert_close(got_alpha[cell], want_alpha[cell], rtol=0, atol=1e-6)
    assert json.loads((run / "genotype.json").read_text()) == json.loads((reference / "genotype.json").read_text())
    with open(run / "metrics.csv", newline="") as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == list(range(1, EPOCHS + 1))


@pytest.fixture(scope="module")
def killed_runs(tmp_path_factory, tiny_config) -> dict:
    """Every kill case run at once (in processes forked from one driver), beside the uninterrupted reference runs
    made in this process."""
    root = tmp_path_factory.mktemp("kills")
    search_config = write_yaml(root / "search.yaml", tiny_config())
    pruning_config = write_yaml(root / "search-keep1.yaml", tiny_config(keep_checkpoints=1))
    retrain_config = write_yaml(root / "retrain.yaml", RETRAIN)
    cases = {("search", point): (pruning_config if point == "while_pruning" else search_config, nth)
             for point, (nth, _) in SEARCH_KILLS.items()}
    cases.update({("retrain", point): (retrain_config, nth) for point, (nth, _) in RETRAIN_KILLS.items()})
    plan = [[kind, str(config), str(root / f"{kind}-{point}"), point, nth]
            for (kind, point), (config, nth) in cases.items()]
    statuses, references = drive_beside(KILLER, plan, lambda: {
        "search": search(search_config, output=root / "search-reference").run_dir,
        "retrain": train(retrain_config, output=root / "retrain-reference", progress=False).run_dir})
    runs = {}
    for (kind, point), (config, _) in cases.items():
        output = root / f"{kind}-{point}"
        runs[(kind, point)] = (statuses[str(output)], Path(f"{output}.log").read_text(), output, config)
    return {"references": references, "runs": runs}


@pytest.mark.parametrize("point", list(SEARCH_KILLS))
def test_search_killed_anywhere_resumes_to_the_uninterrupted_result(killed_runs, point, capsys):
    returncode, err, run, config = killed_runs["runs"][("search", point)]
    assert returncode == -9, err[-2000:]
    assert not (run / "genotype.json").exists(), "killed before the end"
    if point in ("between_files", "before_rename"):
        assert [p.name for p in (run / "checkpoints").glob(".tmp-epoch-0002-*")], "the kill left a partial folder"
    capsys.readouterr()
    search(config, output=run, resume=True)
    start = SEARCH_KILLS[point][1]
    assert f"resuming from {run / 'checkpoints' / start}" in capsys.readouterr().out
    assert not list((run / "checkpoints").glob(".tmp-*"))
    assert_same_search(run, killed_runs["references"]["search"])


@pytest.mark.parametrize("point", list(RETRAIN_KILLS))
def test_retrain_killed_anywhere_resumes_to_the_same_weights(killed_runs, point, capsys):
    returncode, err, run, config = killed_runs["runs"][("retrain", point)]
    assert returncode == -9, err[-2000:]
    assert not (run / "summary.json").exists()
    capsys.readouterr()
    train(None, output=run, resume=True, progress=False)
    assert f"resuming from {run / 'checkpoints' / RETRAIN_KILLS[point][1]}" in capsys.readouterr().out
    reference = killed_runs["references"]["retrain"]
    last = f"epoch-{RETRAIN['epochs']:04d}"
    for folder in ("checkpoints", "best"):
        assert not list((run / folder).glob(".tmp-*"))
        got = load_file(str(run / folder / last / "tensors.safetensors"))
        want = load_file(str(reference / folder / last / "tensors.safetensors"))
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want), folder
    assert [p.name for p in (run / "best").iterdir()] == [last]


def test_retrain_resume_falls_back_past_a_corrupt_checkpoint(killed_runs, tmp_path, capsys):
    """A truncated newest checkpoint: --resume says so, starts from the one before, and still ends the same."""
    import shutil

    reference = killed_runs["references"]["retrain"]
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    shutil.rmtree(run / "checkpoints" / "epoch-0003")
    shutil.rmtree(run / "best")
    (run / "summary.json").unlink()
    tensors = run / "checkpoints" / "epoch-0002" / "tensors.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:100])
    capsys.readouterr()
    train(None, output=run, resume=True, progress=False)
    out = capsys.readouterr().out
    assert f"checkpoint epoch-0002 is unusable: {tensors}: size 100 bytes" in out
    assert "falling back to the previous one" in out
    assert f"resuming from {run / 'checkpoints' / 'epoch-0001'}" in out, out
    got = load_file(str(run / "checkpoints" / "epoch-0003" / "tensors.safetensors"))
    want = load_file(str(reference / "checkpoints" / "epoch-0003" / "tensors.safetensors"))
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_a_truncated_checkpoint_given_to_export_is_one_line_naming_the_file(killed_runs, tmp_path, capsys):
    import shutil

    from cdarts.cli.export import main as export_main

    checkpoint = tmp_path / "epoch-0002"
    shutil.copytree(killed_runs["references"]["retrain"] / "checkpoints" / "epoch-0002", checkpoint)
    tensors = checkpoint / "tensors.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:-7])
    with pytest.raises(SystemExit) as info:
        export_main(["--model", str(checkpoint), "--output", str(tmp_path / "out")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    size = tensors.stat().st_size
    assert err == f"cdarts-export: error: {tensors}: size {size} bytes, manifest says {size + 7} (truncated?)\n"
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------------ disk full


@pytest.fixture(scope="module")
def search_reference(killed_runs) -> Path:
    return killed_runs["references"]["search"]


def full_disk(monkeypatch: pytest.MonkeyPatch, where: str, run: Path, nth: int = 3) -> dict[str, bytes]:
    """Make the ``nth`` write of ``where`` (the third: epoch 2's) hit a full disk, after writing half its bytes;
    return the run folder's files as they were just before, filled in when the write fails."""
    snapshot: dict[str, bytes] = {}
    calls = []

    def fail(path: Path, data: bytes) -> None:
        snapshot.update({k: v for k, v in files_of(run).items() if ".tmp" not in k})
        path.write_bytes(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if where == "checkpoint":
        import cdarts.checkpoint

        original = cdarts.checkpoint.save_file

        def save_file(tensors, filename, *args, **kwargs):
            calls.append(filename)
            if len(calls) == nth:
                fail(Path(filename), b"\0" * 4096)
            return original(tensors, filename, *args, **kwargs)

        monkeypatch.setattr(cdarts.checkpoint, "save_file", save_file)
    else:
        original = Path.write_text

        def write_text(self, text, *args, **kwargs):
            if self.name.startswith(".metrics.csv."):
                calls.append(self)
                if len(calls) == nth:
                    fail(self, text.encode())
            return original(self, text, *args, **kwargs)

        monkeypatch.setattr(Path, "write_text", write_text)
    return snapshot


@pytest.mark.parametrize("where", ["checkpoint", "metrics"])
def test_full_disk_stops_with_one_line_and_leaves_earlier_outputs_intact(where, tmp_path, tiny_config, monkeypatch,
                                                                         capsys, search_reference):
    config, run = write_yaml(tmp_path / "tiny.yaml", tiny_config()), tmp_path / "run"
    before = full_disk(monkeypatch, where, run)
    with pytest.raises(SystemExit) as info:
        search_main(["--config", str(config), "--output", str(run)])
    assert info.value.code == 1
    err = error_line(capsys.readouterr().err)
    target = run / ("checkpoints/epoch-0003/tensors.safetensors" if where == "checkpoint" else "metrics.csv")
    assert err == f"cdarts-search: error: disk full while writing {target}: No space left on device"
    assert before and files_of(run) == before, "every earlier output is unchanged, no partial file is left"
    with open(run / "metrics.csv", newline="") as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == [1, 2]
    assert len((run / "genotypes.jsonl").read_text().splitlines()) == 2
    newest = "epoch-0002" if where == "checkpoint" else "epoch-0003"
    path, _ = latest_checkpoint(run / "checkpoints", warn=pytest.fail)
    assert path.name == newest

    monkeypatch.undo()  # space freed: the run resumes to the uninterrupted result
    search(config, output=run, resume=True)
    assert_same_search(run, search_reference)


def test_full_disk_stops_a_retrain_with_one_line_and_it_resumes_to_the_same_weights(killed_runs, tmp_path,
                                                                                    monkeypatch, capsys):
    from cdarts.cli.train import main as train_main

    config, run = write_yaml(tmp_path / "retrain.yaml", RETRAIN), tmp_path / "run"
    before = full_disk(monkeypatch, "checkpoint", run, nth=2)
    with pytest.raises(SystemExit) as info:
        train_main(["--config", str(config), "--output", str(run), "--no-progress"])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"cdarts-train: error: disk full while writing {run / 'checkpoints/epoch-0002/tensors.safetensors'}"
                   ": No space left on device")
    assert files_of(run / "checkpoints") == {k.removeprefix("checkpoints/"): v for k, v in before.items()
                                             if k.startswith("checkpoints/")}
    assert [p.name for p in (run / "best").iterdir()] == ["epoch-0001"]
    assert latest_checkpoint(run / "checkpoints", warn=pytest.fail)[0].name == "epoch-0001"

    monkeypatch.undo()
    train(None, output=run, resume=True, progress=False)
    reference = killed_runs["references"]["retrain"]
    got = load_file(str(run / "checkpoints" / "epoch-0003" / "tensors.safetensors"))
    want = load_file(str(reference / "checkpoints" / "epoch-0003" / "tensors.safetensors"))
    assert all(torch.equal(got[k], want[k]) for k in want)


# ------------------------------------------------------------------------------------------------------- NaN / inf


def poison_batches(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """The first ``count`` val batches of step A in epoch 2 (loop index 1: the first search epoch) carry a NaN pixel."""
    original = SearchStrategy.batches

    def batches(self, split, epoch, repeat=0):
        for index, (x, y) in enumerate(original(self, split, epoch, repeat)):
            if (split, epoch, repeat) == ("val", 1, 0) and index < count:
                x = x.clone()
                x[0, 0, 0, 0] = math.nan
            yield x, y

    monkeypatch.setattr(SearchStrategy, "batches", batches)


def test_nan_loss_stops_the_run_naming_the_term_and_keeps_the_last_finite_checkpoint(tmp_path, tiny_config,
                                                                                   monkeypatch, capsys):
    poison_batches(monkeypatch, 1)
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        search_main(["--config", str(write_yaml(tmp_path / "c.yaml", tiny_config())), "--output", str(run)])
    assert info.value.code == 1
    err = error_line(capsys.readouterr().err)
    assert err.startswith("cdarts-search: error: loss term 'joint.ce_s' is not finite (nan); stopping")
    assert "nonfinite: skip" in err
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["epoch-0001"]


def test_skip_mode_drops_non_finite_steps_warns_and_writes_finite_checkpoints(tmp_path, tiny_config, monkeypatch,
                                                                              capsys):
    poison_batches(monkeypatch, 1)
    result = search(tiny_config(nonfinite="skip", max_skipped_batches=1), output=tmp_path / "run")
    out = capsys.readouterr().out
    assert out.count("warning: loss term 'joint.ce_s' is not finite (nan); skipped this batch (1 of at most 1)") == 1
    assert [row["metrics"]["skipped_batches"] for row in result.history] == [0.0, 1.0, 1.0]
    for folder in (tmp_path / "run" / "checkpoints").iterdir():
        tensors = load_file(folder / "tensors.safetensors")
        assert all(torch.isfinite(v).all() for v in tensors.values() if v.is_floating_point()), folder.name
    assert all(math.isfinite(row["metrics"]["s_val_acc"]) for row in result.history)


def test_skip_mode_stops_after_max_skipped_batches(tmp_path, tiny_config, monkeypatch):
    poison_batches(monkeypatch, 2)
    with pytest.raises(NonFiniteLossError, match="2 steps skipped, more than max_skipped_batches 1"):
        search(tiny_config(nonfinite="skip", max_skipped_batches=1), output=tmp_path / "run")
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["epoch-0001"]


def guarded_parts() -> tuple[nn.Module, nn.Parameter, torch.optim.Optimizer]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    alpha = nn.Parameter(torch.zeros(2, 4))
    return net, alpha, torch.optim.SGD([*net.parameters(), alpha], lr=0.1)


def test_guard_skip_puts_back_alphas_and_bn_statistics_and_takes_no_step():
    net, alpha, opt = guarded_parts()
    warnings: list[str] = []
    runtime = cpu_runtime(grad_clip=None, nonfinite="skip", max_skipped=3, warn=warnings.append)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with runtime.guard([net], lambda: {"normal": alpha}):  # a non-finite loss term
        loss = net(torch.randn(4, 3)).sum() * math.inf
        runtime.step(loss, [opt], {"joint.kd": loss})
    with runtime.guard([net], lambda: {"normal": alpha}):  # a finite loss with NaN gradients
        loss = net(torch.randn(4, 3)).sum() * 0 + (alpha - alpha.detach()).sqrt().sum()
        runtime.step(loss, [opt], {"joint.reg": loss})
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items()), "weights and BN buffers put back"
    assert all(p.grad is None for p in [*net.parameters(), alpha])
    with runtime.guard([net], lambda: {"normal": alpha}):  # an update that overflowed
        with torch.no_grad():
            alpha[0, 0] = math.inf
    assert torch.equal(alpha.detach(), torch.zeros(2, 4))
    assert warnings[0].startswith("warning: loss term 'joint.kd' is not finite (")
    assert warnings[1] == ("warning: the gradients of loss terms 'joint.reg' are not finite; skipped this batch "
                           "(2 of at most 3)")
    assert warnings[2] == ("warning: alpha 'normal' is not finite (has NaN or inf entries); skipped this batch "
                           "(3 of at most 3)")
    with pytest.raises(NonFiniteLossError, match="4 steps skipped, more than max_skipped_batches 3"):
        with runtime.guard([net], lambda: {"normal": alpha}):
            runtime.step(net(torch.randn(4, 3)).sum() * math.nan, [opt])


def test_guard_stop_raises_naming_the_alpha():
    net, alpha, _ = guarded_parts()
    runtime = cpu_runtime()
    with pytest.raises(NonFiniteLossError, match=r"^alpha 'reduce' is not finite \(has NaN or inf entries\); stop"):
        with runtime.guard([net], lambda: {"normal": alpha.detach()[:1], "reduce": alpha.detach() * math.nan}):
            pass


def test_non_finite_tensors_are_never_checkpointed(tmp_path):
    net, _, opt = guarded_parts()
    save_checkpoint(tmp_path, 1, {"net": net}, {"opt": opt}, {})
    with torch.no_grad():
        net[0].weight[1, 2] = math.nan
    with pytest.raises(NonFiniteStateError, match=r"epoch-0002: net\.0\.weight hold NaN or inf values"):
        save_checkpoint(tmp_path, 2, {"net": net}, {"opt": opt}, {})
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-0001"]


# ------------------------------------------------------------------------------------------- several processes


RANK_FAULT = """
import os, sys, time

from cdarts.runtime import Runtime

original = Runtime.step


def step(self, *args, **kwargs):
    if os.environ["RANK"] == "1":  # the first step: the other process waits for this one in its collectives
        if sys.argv[3] == "dies":
            os._exit(9)
        time.sleep(3600)
    return original(self, *args, **kwargs)


Runtime.step = step
from cdarts.cli.search import main

main(["--config", sys.argv[1], "--output", sys.argv[2]])
"""


def test_when_one_process_dies_or_hangs_the_other_exits_with_an_error_in_bounded_time(tmp_path, tiny_config):
    """Two gloo processes started by hand (no launcher to kill the survivor): rank 0 must stop by itself."""
    config = write_yaml(tmp_path / "tiny.yaml", tiny_config(dist_timeout_s=8))
    ranks = {}
    began = time.monotonic()
    for fault in ("dies", "hangs"):
        env = {**cli_env(), "CUDA_VISIBLE_DEVICES": "", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
               "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}
        ranks[fault] = [subprocess.Popen([sys.executable, "-c", RANK_FAULT, str(config), str(tmp_path / fault), fault],
                                         env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)}, cwd=ROOT,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                        for rank in (0, 1)]
    try:
        for fault, (rank0, _) in ranks.items():
            _, err = rank0.communicate(timeout=120)
            assert rank0.returncode == 1, (fault, err[-2000:])
            assert time.monotonic() - began < 120
            assert (tmp_path / fault / "config.yaml").is_file(), "the fault came in training, after setting up"
            assert not (tmp_path / fault / "genotype.json").exists()
    finally:
        for process in (p for pair in ranks.values() for p in pair):
            if process.poll() is None:
                process.kill()
            process.communicate()
    assert ranks["dies"][1].returncode == 9


def test_a_retrain_whose_loss_goes_nonfinite_stops_with_one_line_and_writes_no_checkpoint(tmp_path, capsys):
    from cdarts.cli.train import main as train_main

    config = write_yaml(tmp_path / "retrain.yaml", {**RETRAIN, "optimizer": {"type": "sgd", "lr": 1e30}})
    with pytest.raises(SystemExit) as stop:
        train_main(["--config", str(config), "--output", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert stop.value.code == 1
    lines = err.strip().splitlines()
    assert lines[-1].startswith("cdarts-train: error: loss term 'train_loss' is not finite (")
    assert "set `nonfinite: skip`" in lines[-1]
    assert "Traceback" not in err
    assert not list((tmp_path / "run" / "checkpoints").glob("epoch-*"))


def test_a_resume_past_corrupt_checkpoints_keeps_its_new_ones(tmp_path, tiny_config, capsys):
    """The newest checkpoints (epoch-0002/0003) are corrupt: the resume starts from scratch, moves them to
    ``checkpoints/corrupt/``, and pruning keeps its own epoch-0001 instead of the corrupt, higher-numbered ones."""
    run = tmp_path / "run"
    for name in ("epoch-0002", "epoch-0003"):
        (run / "checkpoints" / name).mkdir(parents=True)
        (run / "checkpoints" / name / "manifest.json").write_text("{truncated")
    config = tiny_config(strategy={"type": "darts", "epochs": 1}, max_steps_per_epoch=1, keep_checkpoints=2)
    search(config, output=run, resume=True)
    out = capsys.readouterr().out
    for name in ("epoch-0003", "epoch-0002"):
        assert f"checkpoint {name} is unusable: " in out and f"moved to {run / 'checkpoints' / 'corrupt' / name}" in out
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["corrupt", "epoch-0001"]
    assert sorted(p.name for p in (run / "checkpoints" / "corrupt").iterdir()) == ["epoch-0002", "epoch-0003"]
    assert latest_checkpoint(run / "checkpoints", warn=pytest.fail)[0].name == "epoch-0001"
