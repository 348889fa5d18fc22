"""Progress of the training and evaluation loops: a redrawn bar in a terminal, whole lines in a log.

A bar redraws itself with carriage returns, which a log file keeps as one endless line (or thousands of copies).
So the bar is tqdm's only when both stdout and stderr are terminals; otherwise progress is a plain line on stderr at
most every ``LINE_INTERVAL_S`` seconds, and a loop that ends sooner prints nothing (the epoch line follows anyway).
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

LINE_INTERVAL_S = 30.0
"""Seconds between two progress lines in a log."""


def interactive() -> bool:
    """Whether progress may redraw a line in place: stdout and stderr are both terminals."""
    return all(getattr(stream, "isatty", lambda: False)() for stream in (sys.stdout, sys.stderr))


class LineProgress:
    """An iterable's progress as whole lines, at most one per ``interval`` seconds, with tqdm's ``set_postfix``.

    ``search 3: 120/400 (30%) 61s, 1.97 it/s, loss=1.234``: the count is of finished items (the line is written when
    the next one is asked for), the rate over the whole loop so far.
    """

    def __init__(self, iterable: Iterable, desc: str, total: int | None = None, interval: float = LINE_INTERVAL_S,
                 file: IO[str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.iterable = iterable
        self.desc = desc
        self.total = total
        self.interval = interval
        self.file = file
        self.clock = clock
        self.postfix: dict[str, Any] = {}

    def set_postfix(self, **values: Any) -> None:
        self.postfix = values

    def line(self, count: int, elapsed: float) -> str:
        done = f"{count}/{self.total} ({100 * count / self.total:.0f}%)" if self.total else f"{count}"
        rate = f", {count / elapsed:.2f} it/s" if elapsed > 0 else ""
        extra = "".join(f", {key}={value}" for key, value in self.postfix.items())
        return f"{self.desc}: {done} {elapsed:.0f}s{rate}{extra}"

    def __iter__(self) -> Iterator:
        started = last = self.clock()
        for count, item in enumerate(self.iterable, 1):
            yield item
            now = self.clock()
            if now - last >= self.interval:
                print(self.line(count, now - started), file=self.file or sys.stderr, flush=True)
                last = now


def progress_bar(batches: Iterable, desc: str, total: int | None = None, enabled: bool = True) -> Any:
    """``batches`` with progress shown as this process's output allows (see the module); nothing if not ``enabled``
    (``--no-progress``, ``--quiet``, or not the main process). The result has tqdm's ``set_postfix`` in every case."""
    from tqdm.auto import tqdm

    if not enabled:
        return tqdm(batches, disable=True)
    if interactive():
        return tqdm(batches, desc=desc, total=total, leave=False, dynamic_ncols=True)
    return LineProgress(batches, desc, total, LINE_INTERVAL_S)


def no_progress(batches: Iterable, desc: str, total: int | None = None) -> Any:
    """A ``SearchContext.progress`` that shows nothing (``--quiet``, dry runs, benchmarks)."""
    return progress_bar(batches, desc, total, enabled=False)
