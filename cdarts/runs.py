"""What a search and a retrain run share: the Accelerator and the run folder, which one writer at a time holds."""
from __future__ import annotations

import json
import os
import reprlib
import shutil
import socket
import sys
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import torch

from cdarts.checkpoint import list_checkpoints
from cdarts.config import ConfigError
from cdarts.io import atomic_write_json, remove_temporaries

RESUMABLE_KEYS = ("strategy.epochs", "threads", "num_workers", "keep_checkpoints", "plots", "log_with",
                  "dist_timeout_s", "checkpoint_on_signal")
"""The search config keys a ``--resume`` may change; any other difference from the run's ``config.yaml`` is
refused. ``strategy.epochs`` extends (or shortens) the search: the LR schedule of the epochs still to run follows
the new length. The others change speed, disk use, plots, trackers or how the run stops, never the numbers."""

PRECISIONS = ("no", "fp16", "bf16")
"""The mixed precisions a run takes (its config's ``mixed_precision``)."""
LAUNCH_FILE = "launch.json"
"""What a run folder records of how the run was launched: processes, batch per process and in all, precision."""

P = ParamSpec("P")
R = TypeVar("R")


def launcher_precision() -> str | None:
    """The mixed precision ``accelerate launch`` passes down (its ``--mixed_precision``, else the ``accelerate config``
    default) in ``ACCELERATE_MIXED_PRECISION``; None outside a launcher."""
    value = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if value is None:
        return None
    if value.lower() not in PRECISIONS:
        raise ConfigError(f"ACCELERATE_MIXED_PRECISION={value!r} (set by accelerate launch): cdarts runs "
                          f"{', '.join(map(repr, PRECISIONS))}")
    return value.lower()


def resolve_precision(configured: str | None) -> str:
    """The precision a run with the config's ``mixed_precision`` runs: its own, else the launcher's, else ``no``."""
    return configured or launcher_precision() or "no"


def make_accelerator(mixed_precision: str | None, cpu: bool, dist_timeout_s: float | None = None,
                     **kwargs: Any) -> Any:
    """One Accelerator for the run (created in the command, never at import).

    ``mixed_precision`` is the config's (see ``resolve_precision``); the Accelerator's ``mixed_precision`` says which
    ran.

    Without GPUs accelerate forms a (gloo) process group only when told to run on the CPU; otherwise each process
    of ``accelerate launch --multi_gpu --num_processes 2`` would run the whole job alone, as its own main process.
    ``dist_timeout_s`` bounds every collective: when a process dies or hangs, the others fail after that long
    instead of waiting forever. A single process (a notebook, a script running several searches) gets fresh
    accelerate state for each run, since accelerate otherwise refuses a second run with another precision.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if dist_timeout_s is not None:
        from accelerate.utils import InitProcessGroupKwargs

        handler = InitProcessGroupKwargs(timeout=timedelta(seconds=dist_timeout_s))
        kwargs["kwargs_handlers"] = [*kwargs.get("kwargs_handlers", []), handler]
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if not launched:
        AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(mixed_precision=resolve_precision(mixed_precision),
                       cpu=cpu or (launched and not torch.cuda.is_available()), **kwargs)


def launch_record(accelerator: Any, batch_size: int) -> dict[str, Any]:
    """How a run is launched, as ``launch.json`` records it: processes, the config's ``batch_size`` (per process),
    the effective batch of one update (all processes together), the precision and the device type."""
    processes = accelerator.num_processes
    return {"num_processes": processes, "batch_size": batch_size, "effective_batch_size": processes * batch_size,
            "mixed_precision": accelerator.mixed_precision, "device": accelerator.device.type}


def launch_line(record: Mapping[str, Any], configured: str | None) -> str:
    """``2 processes x batch 64 = effective batch 128, mixed precision bf16 on cuda``, saying when the config's
    ``mixed_precision`` (``configured``) overrode the launcher's."""
    processes = record["num_processes"]
    line = (f"{processes} process{'es' * (processes != 1)} x batch {record['batch_size']} = effective batch "
            f"{record['effective_batch_size']}, mixed precision {record['mixed_precision']} on {record['device']}")
    launcher = launcher_precision()
    if configured is not None and launcher not in (None, configured):
        line += f" (the config's mixed_precision; the launcher's {launcher} is not used)"
    return line


def record_launch(run_dir: Path, record: Mapping[str, Any], warn: Callable[[str], Any] = print) -> None:
    """Write ``launch.json``; a resumed run launched with another effective batch is warned that its numbers will
    differ from an uninterrupted run's."""
    path = run_dir / LAUNCH_FILE
    try:
        before = json.loads(path.read_text())
    except (OSError, ValueError):
        before = None
    if isinstance(before, dict) and before.get("effective_batch_size") != record["effective_batch_size"]:
        warn(f"warning: this run began with effective batch {before.get('effective_batch_size')} "
             f"({before.get('num_processes')} process(es)); now {record['effective_batch_size']} "
             f"({record['num_processes']}): the epochs from here differ from an uninterrupted run's")
    atomic_write_json(path, dict(record))


def resolve_run_dir(output: str | Path | None, name: str, resume: bool, warn: Callable[[str], Any] = print) -> Path:
    """The run folder (created by the caller once the config has built); refuses one that another run is writing
    to, or that holds another run unless resuming it. The default is ``runs/<name>-<timestamp>``."""
    if output is None:
        if resume:
            raise ConfigError("--resume needs --output pointing at the run folder to continue")
        output = Path("runs") / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(output)
    if lock_path(run_dir).exists():  # a folder in use is refused now, before anything is built
        FolderLock(run_dir, warn).acquire().release()
    _check_contents(run_dir, resume)
    return run_dir


def _check_contents(run_dir: Path, resume: bool) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"output '{run_dir}' exists and is not a folder")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not resume:
        raise FileExistsError(
            f"output folder '{run_dir}' already holds files (another run?); pass --resume to continue it "
            "or choose another --output"
        )


def shared_run_dir(accelerator: Any, output: str | Path | None, name: str, resume: bool) -> Path:
    """``resolve_run_dir`` on the main process, the same path broadcast to every process."""
    from accelerate.utils import broadcast_object_list

    run_dir = [str(resolve_run_dir(output, name, resume)) if accelerator.is_main_process else ""]
    if accelerator.num_processes > 1:
        broadcast_object_list(run_dir)
    return Path(run_dir[0])


def open_run(cfg: dict[str, Any], output: str | Path | None, name: str, resume: bool) -> tuple[Any, Path, str]:
    """The run's Accelerator, its folder (the same on every process) and the configured precision (for the launch
    line): ``cfg["mixed_precision"]`` becomes the one that runs (the launcher's, or "no"), so config.yaml records it."""
    configured = cfg["mixed_precision"]
    accelerator = make_accelerator(configured, cfg["cpu"], cfg["dist_timeout_s"])
    cfg["mixed_precision"] = accelerator.mixed_precision
    return accelerator, shared_run_dir(accelerator, output, name, resume), configured


def check_resume_config(saved: Mapping[str, Any], cfg: Mapping[str, Any], source: Path) -> None:
    """Refuse to resume a run (whose filled config, read from ``source``, is ``saved``) with a config that differs
    in any key but ``RESUMABLE_KEYS``, naming each such key with both values."""
    from cdarts.reports.study import differences

    changed = [key for key in differences(saved, cfg) if key not in RESUMABLE_KEYS]
    if changed:
        def value(tree: Mapping[str, Any], key: str) -> str:
            for part in key.split("."):
                tree = tree.get(part) if isinstance(tree, Mapping) else None
            return reprlib.repr(tree)

        listed = ", ".join(f"{key} ({value(saved, key)} in the run, {value(cfg, key)} now)" for key in changed)
        raise ConfigError([f"the config differs from the run's {source} at {listed}; --resume may only change "
                           f"{', '.join(RESUMABLE_KEYS)}: resume with the run's own config or start a new --output"])


def lock_path(folder: str | Path) -> Path:
    """A folder's lock file: beside it (``runs/.c10.lock`` for ``runs/c10``), so the folder holds only its outputs and
    one replaced by a rename (an export) keeps its lock."""
    folder = Path(folder).resolve()
    return folder.parent / f".{folder.name}.lock"


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host is running (a zombie, dead but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _holder(fd: int) -> dict[str, Any] | None:
    """The pid and host a lock file names; None when it names none (a writer killed before filling it in)."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"null")
    except (OSError, ValueError):
        return None
    valid = (isinstance(holder, dict) and isinstance(holder.get("pid"), int) and holder["pid"] > 0
             and isinstance(holder.get("host"), str))
    return holder if valid else None


class FolderLock:
    """One writer at a time for an output folder: a lock file beside it names the writer's pid and host, and is held
    with ``flock`` while the writer runs, so two writers starting together cannot both take it. A lock left by a
    process of this host that is no longer running is taken over with a warning; one of another host is refused
    (whether it still runs cannot be seen from here), saying which file to delete if it does not."""

    def __init__(self, folder: str | Path, warn: Callable[[str], Any] = print) -> None:
        self.folder = Path(folder)
        self.path = lock_path(folder)
        self.warn = warn
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        """Take the lock, or raise FileExistsError naming the run that holds it."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise FileExistsError(self._in_use(holder)) from None
            if self._is_ours(fd):
                break
            os.close(fd)  # the holder removed the file between our open and flock: lock the one there now
        holder = _holder(fd)
        if holder is not None:
            if holder["host"] != socket.gethostname() or _alive(holder["pid"]):
                os.close(fd)
                raise FileExistsError(self._in_use(holder) + f"; if it is no longer running, delete {self.path}")
            self.warn(f"warning: {self.folder} was locked by pid {holder['pid']} on this host, which is no longer "
                      "running; taking the lock over")
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "since": datetime.now().isoformat(timespec="seconds"),
                "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(mine).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and let go of it (nothing if not held)."""
        if self._fd is None:
            return
        if self._is_ours(self._fd):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None

    def _is_ours(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def _in_use(self, holder: dict[str, Any] | None) -> str:
        who = "" if holder is None else (f" (pid {holder['pid']} on host {holder['host']}"
                                         + (f", since {holder['since']}" if "since" in holder else "") + ")")
        return (f"output folder '{self.folder}' is in use by another run{who}: wait for it to end or choose another "
                "output")

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class _Claim:
    lock: FolderLock
    run_dir: Path
    existed: bool
    empty: bool

    def end(self, bad_input: bool) -> None:
        """Release the folder; what this run wrote to a folder it found empty goes too if bad input stopped it before
        its first checkpoint."""
        if bad_input and self.empty and not list_checkpoints(self.run_dir / "checkpoints"):
            for path in list(self.run_dir.iterdir()) if self.existed else [self.run_dir]:  # a folder given empty stays
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        self.lock.release()


_claims: ContextVar[list[_Claim] | None] = ContextVar("cdarts_run_claims", default=None)


def guarded_run(run: Callable[P, R]) -> Callable[P, R]:
    """For a command that writes a run folder (``search``, ``train``): when ``run`` ends, release the folder that
    ``claim_run_dir`` claimed. If bad input (a ``ValueError``: config, data, files) stopped ``run`` before its first
    checkpoint, in a folder it found empty, what it wrote there goes too, so the corrected command can be run again
    with the same output; after a signal, a crash or a lost process the folder is kept for ``--resume``."""

    @wraps(run)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        token = _claims.set([])
        bad_input = False
        try:
            return run(*args, **kwargs)
        except ValueError:  # UserInputError, ConfigError, DataError... (a bad image met in the first epoch)
            bad_input = True
            raise
        finally:
            for claim in reversed(_claims.get()):
                claim.end(bad_input)
            _claims.reset(token)

    return wrapper


def claim_run_dir(run_dir: Path, resume: bool, warn: Callable[[str], Any] = print) -> None:
    """Lock ``run_dir`` for this process (the main one of a run, inside a ``guarded_run`` function), create it, and
    remove the temporary files of a writer killed mid-write. Raises FileExistsError if another run holds it, or,
    unless ``resume``, if a run that ended meanwhile filled it."""
    claims = _claims.get()
    if claims is None:
        raise RuntimeError("claim_run_dir must be called from a @guarded_run function")
    lock = FolderLock(run_dir, warn).acquire()
    try:
        _check_contents(run_dir, resume)
    except BaseException:
        lock.release()
        raise
    existed = run_dir.exists()
    claims.append(_Claim(lock, run_dir, existed, not existed or not any(run_dir.iterdir())))
    run_dir.mkdir(parents=True, exist_ok=True)
    for path in remove_temporaries(run_dir):
        warn(f"removed {path}, left by a write that was interrupted")
