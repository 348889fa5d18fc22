"""benchmarks/bench_search.py: its workers measure what they say, and its tables compute the ratios from them."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_search.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_search", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def keep_threads():
    """The workers set the process's thread count, as their own processes should; put it back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


TINY = {"config": "configs/demo.yaml", "batch": 8, "size": 8, "channels": 4, "layers": 3, "eval_layers": 3,
        "steps": 1, "threads": 1, "epoch_steps": 1, "runs": [("cpu", "fp32", 8)]}


def test_supernet_worker_times_steps_and_memory(bench):
    task = {**TINY, "preset": TINY, "device": "cpu", "precision": "fp32"}
    result = bench.worker_supernet(task)
    assert result["images_per_s"] == pytest.approx(8 / result["step_s"])
    assert result["peak_bytes"] >= result["base_bytes"] > 0
    assert result["threads"] == 1


def test_epoch_worker_runs_cdarts_at_the_requested_cycle(bench):
    task = {**TINY, "preset": TINY, "device": "cpu", "precision": "fp32", "strategy": "cdarts", "eval_epochs": 1}
    result = bench.worker_epoch(task)
    assert result["steps"] == 1 and result["eval_epochs"] == 1
    assert 0 < result["e_alone_s"] < result["epoch_s"]
    assert bench.search_config(TINY, "cpu", "fp32", 8, "darts")["strategy"]["type"] == "darts"
    assert bench.config_eval_epochs(TINY) == 2


def sample(**values):
    return [values, values]


def test_tables_compute_ratios_from_the_medians(bench):
    mib = 2**20
    samples = {
        "textbook": [{"step_s": 2.0, "peak_bytes": 900 * mib}, {"step_s": 4.0, "peak_bytes": 900 * mib},
                     {"step_s": 3.0, "peak_bytes": 900 * mib}],
        "textbook_same_threads": sample(step_s=4.0, peak_bytes=900 * mib),
        "ours": sample(step_s=1.0, peak_bytes=700 * mib, base_bytes=600 * mib, threads=1),
        "ours_checkpointed": sample(step_s=2.0, peak_bytes=650 * mib, base_bytes=600 * mib),
        "joint": sample(step_a=1.0, step_b=1.0, e_step=0.5, select=0.001, peak_bytes=800 * mib, base_bytes=600 * mib),
        "epoch_cdarts": sample(epoch_s=6.0, steps=10, e_alone_s=1.5, step_a_total_s=3.0, eval_epochs=2),
        "epoch_cdarts_se1": sample(epoch_s=4.5, steps=10, e_alone_s=0.75, step_a_total_s=3.0, eval_epochs=1),
        "epoch_darts": sample(epoch_s=4.0, steps=10, e_alone_s=0.0, step_a_total_s=2.0, eval_epochs=0),
    }
    results = [{"preset": "demo", "device": "cpu", "precision": "fp32", "batch": 64, "samples": samples,
                "textbook_base_bytes": 500 * mib}]
    text = bench.tables(results)
    assert "| 21.3 | 16.0 | 4.00x | 64.0 | **3.00x** | 900 (400) | 700 (100) |" in text
    assert "| 64.0 | 32.0 | 700 (100) | 650 (50) |" in text
    assert "| 4.000 | 1.000 | 1.000 | **0.50** | 0.500 | 64 / 64 / 128 | 1.00 | 900 (400) | 800 (200) |" in text
    assert "| 10 | 2 | 6.00 | 4.00 | **1.50** | 25% | 17% |" in text
    assert "| 10 | 1 | 4.50 | 4.00 | **1.12** | 17% | 22% |" in text
