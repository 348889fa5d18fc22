"""Crash-safe file writing: write to a temporary file beside the target, fsync, then rename over it.

A reader therefore sees either the old complete file or the new complete file, never a half-written one.
"""
from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

TEMPORARY = re.compile(r"\..+\.[0-9a-f]{8}\.tmp")
"""The name of ``atomic_write``'s temporary file: ``.metrics.csv.1f0c9a2b.tmp`` beside ``metrics.csv``."""


def first_line(exc: BaseException) -> str:
    """An exception's message in one line for an error report; its type's name when the message is empty."""
    return (str(exc).splitlines() or [type(exc).__name__])[0]


class WriteError(OSError):
    """Writing an output failed (disk full, no permission, ...); the message names the file and the cause."""

    def __init__(self, path: str | Path, cause: BaseException) -> None:
        code = getattr(cause, "errno", None)
        if code is None and "no space left" in str(cause).lower():  # safetensors and torch wrap the OS error in text
            code = errno.ENOSPC
        reason = getattr(cause, "strerror", None) or first_line(cause)
        what = "disk full while writing" if code == errno.ENOSPC else "cannot write"
        super().__init__(code, f"{what} {path}: {reason}")
        self.filename = str(path)

    def __str__(self) -> str:
        return self.strerror


def fsync_dir(path: Path) -> None:
    """Persist a rename in ``path`` (a directory) where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_mode() -> int:
    """The permissions a plain ``open(path, "w")`` gives a new file: 0o666 less the process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def remove_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files ``atomic_write`` left in ``folder`` when its process was killed mid-write; return
    them. Only the folder's one writer (the holder of its lock) may call this: another's temporaries would go too."""
    found = [p for p in Path(folder).glob(".*.tmp") if TEMPORARY.fullmatch(p.name) and p.is_file()]
    for path in found:
        path.unlink(missing_ok=True)
    return found


def _create_temporary(path: Path) -> Path:
    """A new empty file beside ``path``, with the permissions a plain ``open(path, "w")`` would give.

    ``tempfile.mkstemp`` creates files readable by their owner only, and the rename would carry that over.
    """
    while True:
        tmp_path = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp_path


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)``, fsync it and rename it to ``path``; on any error the target is untouched.

    Raises:
        WriteError: an OSError while writing (e.g. the disk is full), naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = _create_temporary(path)
    except OSError as exc:
        raise WriteError(path, exc) from exc
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException as exc:
        tmp_path.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, WriteError):
            raise WriteError(path, exc) from exc
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def csv_cell(value: Any) -> Any:
    """A CSV cell of our logs and reports: floats to 6 significant digits; a missing number (None, NaN) is an empty
    cell, as a column a row lacks is, so every reader meets one spelling of "no value"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else value


def csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows as CSV text; the columns are every key in order of first appearance, cells as ``csv_cell`` writes them."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: csv_cell(v) for k, v in row.items()})
    return buffer.getvalue()
