"""Run helpers: one accelerator per run, run folders."""
import pytest

from cdarts.runs import make_accelerator, resolve_run_dir


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
