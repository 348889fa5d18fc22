"""SIGTERM, SIGHUP and SIGINT stop a search or a retrain at a step boundary with exit code 128 + the signal, the
newest checkpoint verified and the command that resumes it printed; that command ends where an uninterrupted run
ends. Several processes stop together; one that hangs is named in one line."""
from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from conftest import ROOT, cli_env, drive_beside, make_tiny_config, make_tiny_retrain_config
from safetensors.torch import load_file

import cdarts.signals
from cdarts.checkpoint import latest_checkpoint
from cdarts.engine import resume_command, search
from cdarts.retrain import train
from cdarts.signals import Interrupted, RunGuard

SIGNALLER = """
import json, os, sys, traceback

import torch

torch.set_num_threads(1)  # before any fork: no thread pool exists yet


def signal_on_nth(nth, signum, original):
    calls = 0

    def wrapper(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == nth:  # a real signal, delivered while this step runs
            os.kill(os.getpid(), signum)
        return original(*args, **kwargs)
    return wrapper


def run(kind, argv, signum, nth):
    if kind == "search":
        from cdarts.cli.search import main
        from cdarts.runtime import Runtime

        Runtime.step = signal_on_nth(nth, signum, Runtime.step)
    else:
        import accelerate

        from cdarts.cli.train import main

        accelerate.Accelerator.backward = signal_on_nth(nth, signum, accelerate.Accelerator.backward)
    main(argv)


children = {}
for case in json.loads(sys.argv[1]):
    pid = os.fork()
    if pid == 0:
        for fd, suffix in ((1, ".out"), (2, ".err")):
            os.dup2(os.open(case["output"] + suffix, os.O_WRONLY | os.O_CREAT), fd)
        code = 0
        try:
            run(case["kind"], case["argv"], case["signum"], case["nth"])
        except SystemExit as exc:
            code = exc.code
        except BaseException:
            traceback.print_exc()
            code = 99
        finally:
            os._exit(code)
    children[pid] = case["output"]
statuses = {}
for pid, output in children.items():
    status = os.waitpid(pid, 0)[1]
    statuses[output] = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
print(json.dumps(statuses))
"""

RETRAIN = make_tiny_retrain_config(val_fraction=0.0, epochs=3, max_steps_per_epoch=2,
                                   optimizer={"type": "sgd", "lr": 0.05}, keep_checkpoints=3)
# The tiny search: epoch 1 pretrains (steps 1-2), epochs 2 and 3 search (steps 3-8 and 9-14: E, then joint + weight
# pairs). Retraining: 2 steps per epoch.
CASES = {  # name -> (kind, signal, the step it lands in, checkpoint_on_signal, the newest checkpoint at the exit)
    "search-term": ("search", signal.SIGTERM, 5, False, "epoch-0001"),
    "search-term-finish": ("search", signal.SIGTERM, 5, True, "epoch-0002"),
    "search-hup": ("search", signal.SIGHUP, 3, False, "epoch-0001"),
    "search-int": ("search", signal.SIGINT, 4, False, "epoch-0001"),  # E's last step: stops before the joint steps
    "retrain-term": ("retrain", signal.SIGTERM, 3, False, "epoch-0001"),
    "retrain-hup": ("retrain", signal.SIGHUP, 4, False, "epoch-0002"),  # the epoch's last step: no step is dropped
    "retrain-int": ("retrain", signal.SIGINT, 5, False, "epoch-0002"),
    "retrain-hup-finish": ("retrain", signal.SIGHUP, 3, True, "epoch-0002"),
}
FINISHED = ("search-term-finish", "retrain-hup", "retrain-hup-finish")
RESUMED = ("search-term", "search-term-finish", "retrain-term", "retrain-hup-finish")


def write_yaml(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def cli_argv(command: str) -> list[str]:
    """A printed ``cdarts-...`` command as this interpreter runs it."""
    program, *args = shlex.split(command)
    return [sys.executable, "-m", f"cdarts.cli.{program.removeprefix('cdarts-')}", *args]


@pytest.fixture(scope="module")
def signalled(tmp_path_factory) -> dict:
    """Every case run at once in processes forked from one driver, beside the uninterrupted references made here;
    then the printed resume commands of ``RESUMED``, run as given."""
    root = tmp_path_factory.mktemp("signals")
    plan = []
    for name, (kind, signum, nth, finish, _) in CASES.items():
        config = (make_tiny_config(eval_bn_batches=1, checkpoint_on_signal=finish) if kind == "search"
                  else {**RETRAIN, "checkpoint_on_signal": finish})
        path = write_yaml(root / f"{name}.yaml", config)
        argv = ["--config", str(path), "--output", str(root / name)] + (["--no-progress"] if kind == "retrain" else [])
        plan.append({"kind": kind, "argv": argv, "signum": int(signum), "nth": nth, "output": str(root / name)})
    statuses, references = drive_beside(SIGNALLER, plan, lambda: {
        "search": search(write_yaml(root / "search.yaml", make_tiny_config(eval_bn_batches=1)),
                         output=root / "search-reference").run_dir,
        "retrain": train(RETRAIN, output=root / "retrain-reference", progress=False).run_dir,
    })
    runs = {name: SimpleNamespace(run=root / name, code=statuses[str(root / name)], out=Path(f"{root / name}.out")
                                  .read_text(), err=Path(f"{root / name}.err").read_text()) for name in CASES}
    for name, case in runs.items():  # before the resumes write newer ones
        case.newest = latest_checkpoint(case.run / "checkpoints", warn=pytest.fail)[0]
        case.temporaries = list((case.run / "checkpoints").glob(".tmp-*"))
        case.ended = (case.run / ("genotype.json" if CASES[name][0] == "search" else "summary.json")).exists()
    resumes = {}
    for name in RESUMED:
        command = runs[name].err.splitlines()[-1].removeprefix("resume with: ")
        resumes[name] = subprocess.Popen(cli_argv(command), env=cli_env(), cwd=ROOT, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
    for name, process in resumes.items():
        out, err = process.communicate(timeout=300)
        runs[name].resumed = (process.returncode, out, err)
    return {"references": references, "runs": runs}


@pytest.mark.parametrize("name", list(CASES))
def test_a_signal_stops_at_a_step_boundary_with_128_plus_the_signal_and_the_resume_command(signalled, name):
    kind, signum, _, _, newest = CASES[name]
    case = signalled["runs"][name]
    assert case.code == 128 + signum, case.err[-3000:]
    assert "Traceback" not in case.err
    path = case.newest
    assert path.name == newest and not case.temporaries
    program = f"cdarts-{'search' if kind == 'search' else 'train'}"
    epoch, total = int(newest[-4:]), 3
    if name in FINISHED:
        what = f"stopped by {signum.name} after epoch {epoch} of {total}"
    else:
        what = (f"stopped by {signum.name} in epoch {epoch + 1} of {total}; its progress is dropped (checkpoints are "
                "written at epoch ends; `checkpoint_on_signal: true` finishes the epoch first)")
    config = case.run.parent / f"{name}.yaml"
    resume = (f"cdarts-search --config {config} --output {case.run} --resume" if kind == "search"
              else f"cdarts-train --output {case.run} --resume")
    assert case.err.endswith(f"{program}: {what}\nnewest checkpoint: {path}\nresume with: {resume}\n")  # after bars
    assert not case.ended, "the run wrote its final outputs"


@pytest.mark.parametrize("name", [name for name in RESUMED if name.startswith("search")])
def test_the_printed_command_resumes_a_signalled_search_to_the_uninterrupted_result(signalled, name):
    case, reference = signalled["runs"][name], signalled["references"]["search"]
    code, out, err = case.resumed
    assert code == 0, err[-3000:]
    assert f"resuming from {case.run / 'checkpoints' / CASES[name][4]}" in out
    got, want = (json.loads((run / "genotypes.jsonl").read_text().splitlines()[-1]) for run in (case.run, reference))
    assert got["epoch"] == want["epoch"] == 3 and got["genotype"] == want["genotype"]
    got, want = (load_file(run / "checkpoints" / "epoch-0003" / "tensors.safetensors") for run in (case.run, reference))
    for cell in ("normal", "reduce"):
        torch.testing.assert_close(got[f"search.alphas_{cell}"], want[f"search.alphas_{cell}"], rtol=0, atol=1e-6)
    assert (case.run / "genotype.json").read_text() == (reference / "genotype.json").read_text()


@pytest.mark.parametrize("name", [name for name in RESUMED if name.startswith("retrain")])
def test_the_printed_command_resumes_a_signalled_retrain_to_the_same_weights(signalled, name):
    case, reference = signalled["runs"][name], signalled["references"]["retrain"]
    code, out, err = case.resumed
    assert code == 0, err[-3000:]
    assert f"resuming from {case.run / 'checkpoints' / CASES[name][4]}" in out
    got, want = (load_file(run / "checkpoints" / "epoch-0003" / "tensors.safetensors") for run in (case.run, reference))
    assert got.keys() == want.keys() and all(torch.equal(got[key], want[key]) for key in want)
    assert (case.run / "steps.csv").read_text() == (reference / "steps.csv").read_text()


# ------------------------------------------------------------------------------------------------------ the guard


def guard(**changes) -> RunGuard:
    accelerator = SimpleNamespace(num_processes=1, process_index=0, is_main_process=True, device=torch.device("cpu"))
    options = {"finish_epoch": True, "dist_timeout_s": 600.0, "command": "cdarts-search --resume", "total_epochs": 5,
               **changes}
    return RunGuard(accelerator, **options)


def test_a_repeated_signal_escalates_but_a_forwarded_copy_does_not(monkeypatch):
    """Under ``accelerate launch`` each process gets the job's signal twice at once: that is one request. Asked
    again later, a finishing run drops its epoch, and then the signal's own action (here a handler set before) runs."""
    received = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        with guard() as watched:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            watched.at_step()  # one request: the epoch is finished
            with pytest.raises(Interrupted) as stop:
                watched.at_epoch_end()
            assert stop.value.exit_code == 143 and str(stop.value).startswith("stopped by SIGTERM after epoch 1 of 5")
            monkeypatch.setattr(cdarts.signals, "REPEAT_S", 0.0)
            os.kill(os.getpid(), signal.SIGTERM)
            with pytest.raises(Interrupted, match=r"in epoch 1 of 5; its progress is dropped \(a repeated signal\)"):
                watched.at_step()
            assert received == []
            os.kill(os.getpid(), signal.SIGTERM)
            assert received == [signal.SIGTERM], "the third request is the signal's own action, at once"
        assert signal.getsignal(signal.SIGTERM) is not watched._handle
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_guard_puts_back_the_handlers_it_replaced():
    before = {signum: signal.getsignal(signum) for signum in cdarts.signals.SIGNALS}
    with guard(finish_epoch=False) as watched:
        assert all(signal.getsignal(signum) == watched._handle for signum in before)
        os.kill(os.getpid(), signal.SIGHUP)
        with pytest.raises(Interrupted) as stop:
            list(watched.watch(range(3)))
    assert stop.value.exit_code == 129
    assert {signum: signal.getsignal(signum) for signum in before} == before


def test_the_resume_command_quotes_paths_and_repeats_the_overrides(tmp_path):
    run = tmp_path / "my run"
    assert resume_command("c 1.yaml", ["strategy.epochs=5", "seed=1"], run) == (
        f"cdarts-search --config 'c 1.yaml' --set strategy.epochs=5 --set seed=1 --output '{run}' --resume")
    assert resume_command({"seed": 0}, [], run) == (
        f"cdarts-search --config '{run}/config.yaml' --output '{run}' --resume")


# ------------------------------------------------------------------------------------------- several processes


RANK_FAULT = """
import os, signal, sys, time
from pathlib import Path

import torch

import cdarts.engine
from cdarts.cli.search import main
from cdarts.signals import RunGuard
from cdarts.runtime import Runtime

torch.set_num_threads(1)
rank, output, fault = os.environ["RANK"], sys.argv[2], sys.argv[3]
step, enter, calls = Runtime.step, RunGuard.__enter__, 0


def meet(name):  # wait for the other process: only the fault, not a slow import or setup, may take dist_timeout_s
    Path(f"{output}.{name}{rank}").touch()
    while not all(Path(f"{output}.{name}{other}").exists() for other in (0, 1)):
        time.sleep(0.05)


def faulty_step(self, *args, **kwargs):
    global calls
    calls += 1
    if rank == "1" and fault == "hangs":
        time.sleep(3600)
    if rank == "1" and calls == 3:  # epoch 2's first step
        os.kill(os.getpid(), signal.SIGTERM)
    return step(self, *args, **kwargs)


def met_then_enter(self):
    meet("loop")
    return enter(self)


Runtime.step, RunGuard.__enter__ = faulty_step, met_then_enter
meet("start")
main(["--config", sys.argv[1], "--output", output])
"""


def test_two_processes_stop_together_on_one_signal_and_name_a_hung_rank(tmp_path):
    """Two gloo processes started by hand: SIGTERM to rank 1 stops both at the same step with 143; when rank 1
    hangs instead, rank 0 says so in one line after ``dist_timeout_s``."""
    configs = {fault: write_yaml(tmp_path / f"{fault}.yaml", make_tiny_config(eval_bn_batches=1,
                                                                            dist_timeout_s=timeout))
               for fault, timeout in (("signalled", 300), ("hangs", 10))}  # signalled: no wait may time out
    ranks = {}
    for fault, config in configs.items():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**cli_env(), "CUDA_VISIBLE_DEVICES": "", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}
        ranks[fault] = [subprocess.Popen([sys.executable, "-c", RANK_FAULT, str(config), str(tmp_path / fault), fault],
                                         env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)}, cwd=ROOT,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                        for rank in (0, 1)]
    try:
        results = {fault: [process.communicate(timeout=600) for process in pair[:1 if fault == "hangs" else 2]]
                   for fault, pair in ranks.items()}
    finally:
        for process in (p for pair in ranks.values() for p in pair):
            if process.poll() is None:
                process.kill()
            process.communicate()
    run = tmp_path / "signalled"
    (_, err0), (_, err1) = results["signalled"]
    assert [p.returncode for p in ranks["signalled"]] == [143, 143], (err0[-2000:], err1[-2000:])
    assert err0.endswith(
        "cdarts-search: stopped by SIGTERM in epoch 2 of 3; its progress is dropped (checkpoints are written at epoch "
        f"ends; `checkpoint_on_signal: true` finishes the epoch first)\nnewest checkpoint: {run / 'checkpoints'}/"
        f"epoch-0001\nresume with: cdarts-search --config {configs['signalled']} --output {run} --resume (launched as "
        "before, with 2 processes)\n")
    assert "Traceback" not in err1 and "stopped by" not in err1
    assert latest_checkpoint(run / "checkpoints", warn=pytest.fail)[0].name == "epoch-0001"

    (_, err), = results["hangs"]
    assert ranks["hangs"][0].returncode == 1
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        "cdarts-search: error: rank 1 of 2 processes did not answer within dist_timeout_s (10 s): hung, died or fell "
        f"behind; this process (rank 0) stops too; resume with: cdarts-search --config {configs['hangs']} --output "
        f"{tmp_path / 'hangs'} --resume (launched as before, with 2 processes)")


def test_the_one_line_names_rank_0_when_the_store_it_serves_is_gone(monkeypatch):
    class Gone:
        def set(self, key, value):
            raise RuntimeError("Connection reset by peer")

    monkeypatch.setattr(torch.distributed.distributed_c10d, "_get_default_store", lambda: Gone())
    accelerator = SimpleNamespace(num_processes=4, process_index=2, is_main_process=False, device=torch.device("cpu"))
    watched = RunGuard(accelerator, finish_epoch=False, dist_timeout_s=9.0, command="c", total_epochs=1)
    with pytest.raises(cdarts.signals.RankLostError, match=r"^rank 0 of 4 processes did not answer within "
                                                           r"dist_timeout_s \(9 s\): hung, died or fell behind; "
                                                           r"this process \(rank 2\) stops too; resume with: c "
                                                           r"\(launched as before, with 4 processes\)$"):
        with watched:
            raise RuntimeError("[gloo/transport/tcp/pair.cc:545] Read error: Connection reset by peer")
    started = time.monotonic()
    with pytest.raises(KeyError), watched:  # not a failed collective: left alone
        raise KeyError("timed out")
    assert time.monotonic() - started < 1
