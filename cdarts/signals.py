"""Stopping a run cleanly when asked to, and naming the process that stopped answering.

SIGTERM and SIGHUP (what Slurm and other schedulers send some time before they kill a job) and SIGINT (Ctrl-C) do not
stop a run where they land: a handler records them, and the training loop acts on them at its next step boundary,
where every process agrees on what was received through one all-reduce, so all of them stop at the same step and
none is left waiting in a collective for one that left. Checkpoints are written at epoch ends only: the run either
drops its partial epoch (``checkpoint_on_signal: false``, the default: it is out within a step) or finishes the epoch
and writes its checkpoint first (``true``, when the scheduler's grace period covers an epoch). Either way the newest
checkpoint resumes exactly; the run prints the command that resumes it and exits with 128 + the signal's number
(143 for SIGTERM, 129 for SIGHUP, 130 for SIGINT). The same signal again, at least ``REPEAT_S`` later (sooner, it is
the copy a launcher forwards), escalates: a finishing run drops its epoch, a dropping one takes the signal's default
action at once (SIGTERM kills, SIGINT raises ``KeyboardInterrupt``).

When a collective fails because a process hung past ``dist_timeout_s`` or died, every surviving process marks itself
in the rendezvous store and reports, in one line, the ranks that did not.
"""
from __future__ import annotations

import re
import shlex
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)

REPEAT_S = 1.0
"""A signal this soon after the previous one is the same request: ``accelerate launch`` (torchrun) forwards the one
the whole job got, so each process receives it twice."""

ANSWER_GRACE_S = 5.0
"""How long a process whose collective failed waits for the other survivors to say so too (the processes of a
collective fail within moments of each other); the ranks still silent then are the ones named."""

COLLECTIVE_FAILURE = re.compile(r"gloo|nccl|connection (reset|closed) by peer|pair closure|timed out", re.IGNORECASE)
"""What the messages of a failed collective contain (gloo raises a plain RuntimeError naming its source file)."""


class Interrupted(KeyboardInterrupt):
    """The run stopped at a step or epoch boundary on a signal; ``exit_code`` is 128 + the signal's number. The
    message (the main process's; empty on the others) names the newest checkpoint and the command to resume."""

    def __init__(self, signum: int, message: str = "") -> None:
        super().__init__(message)
        self.signum, self.exit_code = signum, 128 + signum


class RankLostError(TimeoutError):
    """A collective failed because another process hung or died; the one-line message names its rank."""


def shell_command(*args: str | Path) -> str:
    """``args`` as one line a POSIX shell runs as given."""
    return shlex.join(str(arg) for arg in args)


class RunGuard:
    """Signals and lost processes around a training loop (a search's or a retrain's), as the module says.

    The loop sets ``epoch`` at each epoch's start and ``checkpoint`` after writing one; it calls ``at_step()``
    before each optimisation step (or iterates ``watch(batches)``) and ``at_epoch_end()`` after the epoch's
    checkpoint, on every process alike. ``command`` resumes the run.
    """

    def __init__(self, accelerator: Any, *, finish_epoch: bool, dist_timeout_s: float, command: str,
                 total_epochs: int, checkpoint: Path | None = None) -> None:
        self.world, self.rank = accelerator.num_processes, accelerator.process_index
        self.main, self.device = accelerator.is_main_process, accelerator.device
        self.finish_epoch, self.timeout, self.total = finish_epoch, dist_timeout_s, total_epochs
        self.command = command if self.world == 1 else f"{command} (launched as before, with {self.world} processes)"
        self.epoch, self.checkpoint = 0, checkpoint
        self.level = self.signum = 0  # requests received (a repeat escalates) and the first signal's number
        self._last = 0.0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> RunGuard:
        if threading.current_thread() is threading.main_thread():  # Python runs signal handlers there only
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, traceback: Any) -> None:
        self._restore()
        if self.world > 1 and isinstance(exc, RuntimeError) and COLLECTIVE_FAILURE.search(str(exc)):
            raise RankLostError(self._lost_message(exc)) from exc

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if not self.level:
            self.level, self.signum = 1, signum
        elif now - self._last >= REPEAT_S:
            self.level += 1
            if self.level > (2 if self.finish_epoch else 1):  # asked again after "stop at the next step"
                self._restore()
                signal.raise_signal(signum)
        self._last = now

    def agreed(self) -> tuple[int, int]:
        """(level, signal) of the most insistent request any process received: one all-reduce, so every process
        takes the same decision at the same boundary."""
        if self.world == 1:
            return self.level, self.signum
        import torch
        import torch.distributed as dist

        flags = torch.tensor([self.level, self.signum], device=self.device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        level, signum = (int(value) for value in flags.tolist())
        return level, signum

    def at_step(self) -> None:
        """Between two optimisation steps: stop if asked to drop the partial epoch."""
        level, signum = self.agreed()
        if level >= (2 if self.finish_epoch else 1):
            raise self._stopped(signum, finished=False)

    def at_epoch_end(self) -> None:
        """After the epoch's checkpoint: stop if asked to at all."""
        level, signum = self.agreed()
        if level:
            raise self._stopped(signum, finished=True)

    def watch(self, batches: Iterable[T]) -> Iterator[T]:
        """``batches`` with ``at_step()`` before each one is handed to the step."""
        for batch in batches:
            self.at_step()
            yield batch

    def watching(self, progress: Callable[..., Any]) -> Callable[..., Any]:
        """A progress-bar factory (``progress(batches, desc, total)``) whose batches are watched."""
        return lambda batches, *args, **kwargs: progress(self.watch(batches), *args, **kwargs)

    def _stopped(self, signum: int, finished: bool) -> Interrupted:
        if not self.main:
            return Interrupted(signum)
        name = signal.Signals(signum).name
        if finished:
            what = f"stopped by {name} after epoch {self.epoch + 1} of {self.total}"
        else:
            why = ("a repeated signal" if self.finish_epoch else
                   "checkpoints are written at epoch ends; `checkpoint_on_signal: true` finishes the epoch first")
            what = f"stopped by {name} in epoch {self.epoch + 1} of {self.total}; its progress is dropped ({why})"
        newest = self.checkpoint or "none yet (the resumed run starts from the beginning)"
        return Interrupted(signum, f"{what}\nnewest checkpoint: {newest}\nresume with: {self.command}")

    def _lost_message(self, exc: RuntimeError) -> str:
        silent = self._silent_ranks()
        timeout = f"dist_timeout_s ({self.timeout:g} s)"
        if silent:
            who = f"rank {silent[0]}" if len(silent) == 1 else f"ranks {', '.join(map(str, silent))}"
            head = (f"{who} of {self.world} processes did not answer within {timeout}: hung, died or fell behind; "
                    f"this process (rank {self.rank}) stops too")
        else:  # every other process is a survivor too: they gave up on this one
            head = (f"the other processes stopped waiting for this one (rank {self.rank}) after {timeout}: it fell "
                    f"behind (a slow step or an overloaded machine; raise dist_timeout_s) or the network failed "
                    f"({str(exc).splitlines()[0][:200]})")
        return f"{head}; resume with: {self.command}"

    def _silent_ranks(self) -> list[int]:
        """Mark this process as a survivor in the rendezvous store; return the ranks that have not marked
        themselves ``ANSWER_GRACE_S`` later. The store is served by rank 0's process: when it cannot be reached,
        rank 0 is the one that is gone."""
        import torch.distributed as dist

        try:
            store = dist.distributed_c10d._get_default_store()
            store.set(f"cdarts/survivor/{self.rank}", "1")
            deadline = time.monotonic() + min(ANSWER_GRACE_S, self.timeout)
            while True:
                silent = [rank for rank in range(self.world)
                          if rank != self.rank and not store.check([f"cdarts/survivor/{rank}"])]
                if not silent or time.monotonic() >= deadline:
                    return silent
                time.sleep(0.05)
        except (RuntimeError, AttributeError, ValueError):
            return [0] if self.rank != 0 else []
