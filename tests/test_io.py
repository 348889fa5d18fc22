"""Crash-safe writes: the old file survives a failing writer and no temporary file is left behind."""
from __future__ import annotations

import json
import math
import os
import stat

import pytest

from cdarts.io import atomic_write, atomic_write_json, atomic_write_text, csv_cell, csv_text


class WriterCrash(RuntimeError):
    pass


def test_atomic_write_text_replaces_the_file(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    assert atomic_write_text(path, "new") == path
    assert path.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_atomic_write_json_creates_parents(tmp_path):
    path = tmp_path / "run" / "deep" / "genotype.json"
    atomic_write_json(str(path), {"a": [1, 2]})
    assert json.loads(path.read_text()) == {"a": [1, 2]}
    assert path.read_text().endswith("\n")


def test_failing_writer_leaves_the_old_file_and_no_temporaries(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("old complete file")
    seen = []

    def write(tmp):
        seen.append(tmp)
        assert tmp.parent == tmp_path and tmp != path
        tmp.write_text("half")
        raise WriterCrash("disk full")

    with pytest.raises(WriterCrash, match="disk full"):
        atomic_write(path, write)
    assert path.read_text() == "old complete file"
    assert not seen[0].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_failing_writer_without_an_old_file_creates_nothing(tmp_path):
    path = tmp_path / "new.json"

    def write(tmp):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, write)
    assert list(tmp_path.iterdir()) == []


def test_writer_may_replace_the_temporary_file(tmp_path):
    path = tmp_path / "model.bin"

    def write(tmp):
        tmp.unlink()
        tmp.write_bytes(b"\x00\x01")

    atomic_write(path, write)
    assert path.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]


def test_written_file_gets_the_usual_permissions(tmp_path):
    """A file written atomically is as readable as one written with ``open``: the umask decides, not mkstemp."""
    old_umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        (tmp_path / "b.txt").write_text("x")
    finally:
        os.umask(old_umask)
    mode = stat.S_IMODE((tmp_path / "a.txt").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o644


def test_csv_text_writes_a_missing_number_as_an_empty_cell():
    rows = [{"epoch": 1, "phase": "pretrain", "e_val_acc": math.nan, "lr": None},
            {"epoch": 2, "phase": "search", "e_val_acc": 93.12345678, "lr": 0.1, "lambda_reg": 5.0}]
    assert csv_text(rows).splitlines() == ["epoch,phase,e_val_acc,lr,lambda_reg", "1,pretrain,,,",
                                           "2,search,93.1235,0.1,5"]
    assert csv_cell(math.inf) == "inf" and csv_cell(0.0) == "0" and csv_cell("nan") == "nan"
