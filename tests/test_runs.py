"""Run helpers: one accelerator per run, run folders, one writer per output folder."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cdarts.runs import FolderLock, claim_run_dir, guarded_run, lock_path, make_accelerator, resolve_run_dir


def test_a_second_run_in_one_process_gets_its_own_precision(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert make_accelerator("no", True).mixed_precision == "no"
    assert make_accelerator("bf16", True).mixed_precision == "bf16"
    assert make_accelerator("no", True).mixed_precision == "no"


def test_run_dir_holding_files_needs_resume(tmp_path):
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(FileExistsError, match="pass --resume"):
        resolve_run_dir(tmp_path, "x", resume=False)
    assert resolve_run_dir(tmp_path, "x", resume=True) == tmp_path


def dead_pid() -> int:
    """The pid of a process of this host that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def plant_lock(folder, pid: int, host: str) -> None:
    lock_path(folder).write_text(json.dumps({"pid": pid, "host": host, "since": "2024-05-01T12:00:00"}))


def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    run = tmp_path / "run"
    with FolderLock(run) as first:
        assert json.loads(first.path.read_text())["pid"] == os.getpid()
        message = (f"output folder '{run}' is in use by another run (pid {os.getpid()} on host "
                   f"{socket.gethostname()}, since ")
        with pytest.raises(FileExistsError) as info:
            FolderLock(run).acquire()
        assert str(info.value).startswith(message)
        assert str(info.value).endswith(": wait for it to end or choose another output")
        with pytest.raises(FileExistsError, match="is in use by another run"):
            resolve_run_dir(run, "x", resume=True)
    assert not lock_path(run).exists() and not run.exists(), "released: the lock file goes, no folder is made"
    FolderLock(run).acquire().release()


def test_a_stale_lock_of_this_host_is_taken_over_with_a_warning(tmp_path):
    run, pid = tmp_path / "run", dead_pid()
    plant_lock(run, pid, socket.gethostname())
    warnings: list[str] = []
    with FolderLock(run, warn=warnings.append):
        assert json.loads(lock_path(run).read_text())["pid"] == os.getpid()
    assert warnings == [f"warning: {run} was locked by pid {pid} on this host, which is no longer running; "
                        "taking the lock over"]


@pytest.mark.parametrize("where", ["another host", "a live process"])
def test_a_lock_that_may_be_live_is_refused_saying_which_file_to_delete(tmp_path, where):
    run = tmp_path / "run"
    pid, host = (dead_pid(), "elsewhere") if where == "another host" else (os.getppid(), socket.gethostname())
    plant_lock(run, pid, host)
    with pytest.raises(FileExistsError) as info:
        FolderLock(run, warn=pytest.fail).acquire()
    assert f"(pid {pid} on host {host}, since 2024-05-01T12:00:00)" in str(info.value)
    assert str(info.value).endswith(f"; if it is no longer running, delete {lock_path(run)}")
    assert json.loads(lock_path(run).read_text())["pid"] == pid, "the lock is left as it was"


def test_a_zombie_holder_counts_as_ended(tmp_path):
    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        while Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            time.sleep(0.01)
        plant_lock(run, process.pid, socket.gethostname())
        warnings: list[str] = []
        FolderLock(run, warn=warnings.append).acquire().release()
        assert len(warnings) == 1 and f"pid {process.pid}" in warnings[0]
    finally:
        process.wait()


def test_the_lock_lies_beside_the_folder_whatever_path_names_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "c10").mkdir(parents=True)
    assert lock_path("runs/c10") == lock_path(tmp_path / "runs" / "c10" / ".") == tmp_path / "runs" / ".c10.lock"


@guarded_run
def fake_run(run_dir, resume: bool = False, error: BaseException | None = None, checkpoint: bool = False) -> None:
    """What a search does to its folder: claim it, write the config (and a checkpoint), then maybe fail."""
    claim_run_dir(run_dir, resume)
    (run_dir / "config.yaml").write_text("seed: 0\n")
    if checkpoint:
        (run_dir / "checkpoints" / "epoch-0001").mkdir(parents=True)
    if error is not None:
        raise error


def test_a_run_that_fails_before_its_first_checkpoint_leaves_its_folder_as_it_found_it(tmp_path):
    given = tmp_path / "given"
    given.mkdir()
    for run_dir in (tmp_path / "new", given):
        with pytest.raises(ValueError, match="bad image"):
            fake_run(run_dir, error=ValueError("bad image"))
        assert not lock_path(run_dir).exists()
    assert not (tmp_path / "new").exists()
    assert given.is_dir() and not any(given.iterdir()), "a folder given empty stays, emptied"
    fake_run(tmp_path / "new")  # the same command once the input is fixed
    assert (tmp_path / "new" / "config.yaml").is_file() and not lock_path(tmp_path / "new").exists()


@pytest.mark.parametrize("case", ["interrupted", "crashed", "after a checkpoint", "resumed"])
def test_a_run_stopped_otherwise_than_by_bad_input_or_later_keeps_its_folder(tmp_path, case):
    """A signal, a lost process or a full disk keep what a --resume needs; so does a checkpoint or a resumed run."""
    run_dir = tmp_path / "run"
    if case == "resumed":
        fake_run(run_dir)
    error = {"interrupted": KeyboardInterrupt(), "crashed": RuntimeError("gloo: connection reset by peer")}.get(
        case, ValueError("bad image"))
    with pytest.raises(type(error)):
        fake_run(run_dir, resume=case == "resumed", error=error, checkpoint=case == "after a checkpoint")
    assert (run_dir / "config.yaml").is_file() and not lock_path(run_dir).exists()
