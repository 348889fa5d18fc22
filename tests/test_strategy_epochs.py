"""benchmarks/strategy_epochs.py: it refuses bad arguments, and ``--data`` times the strategies on the NB201 proxy's
sizes (32 px, channels 8, one cell per stage) over an ImageFolder."""
from __future__ import annotations

import importlib.util

import pytest
import torch
from conftest import ROOT, make_tree

SCRIPT = ROOT / "benchmarks" / "strategy_epochs.py"


@pytest.fixture(scope="module")
def bench():
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(SCRIPT.parent))  # it imports nb201_proxy from beside it, as when run
        spec = importlib.util.spec_from_file_location("strategy_epochs", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module


@pytest.fixture(autouse=True)
def keep_threads():
    """The script sets one thread for its process; put the suite's count back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_unknown_strategy_and_missing_folder_are_refused_with_the_choices(bench, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        bench.main(["--strategies", "darts,gdsa"])
    assert info.value.code == 2
    assert "unknown strategies ['gdsa']; available: darts, darts-v2, cdarts, gdas, rsps, setn, enas" in (
        capsys.readouterr().err)
    with pytest.raises(SystemExit) as info:
        bench.main(["--data", str(tmp_path / "nowhere")])
    assert info.value.code == 2
    assert f"--data: expected an ImageFolder of CIFAR-10 images (train/ and test/ class folders), got {tmp_path}" in (
        capsys.readouterr().err)


def test_data_runs_the_proxy_sizes_on_the_image_folder(bench, tmp_path):
    make_tree(tmp_path, "train", {"cat": 64, "dog": 64}, size=24)
    make_tree(tmp_path, "test", {"cat": 4, "dog": 4}, size=24)
    ctx = bench.setup("gdas", False, tmp_path).ctx
    images, _ = next(iter(ctx.loader("train", 0, 0)))
    assert images.shape == (64, 3, 32, 32) and ctx.num_classes == 2
    assert (ctx.space.channels, ctx.space.cells_per_stage) == (8, 1)


def test_the_table_gives_each_strategy_its_time_relative_to_darts(bench, tmp_path, capsys):
    make_tree(tmp_path, "train", {"cat": 64, "dog": 64}, size=24)
    make_tree(tmp_path, "test", {"cat": 4, "dog": 4}, size=24)
    assert bench.main(["--rounds", "1", "--strategies", "darts,gdas", "--data", str(tmp_path)]) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines()[2:]]
    assert [row[0].strip() for row in rows] == ["darts", "gdas"]
    darts, gdas = (float(row[1]) for row in rows)  # printed to 0.01 s: the ratio lies within what that allows
    assert rows[0][3].strip() == "1.00x" and rows[1][3].strip().endswith("x")
    low, high = (gdas - 0.005) / (darts + 0.005) - 0.005, (gdas + 0.005) / (darts - 0.005) + 0.005
    assert low <= float(rows[1][3].strip()[:-1]) <= high
