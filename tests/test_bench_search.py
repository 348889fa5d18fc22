"""benchmarks/bench_search.py: its workers measure what they say, and its tables compute the ratios from them; the
textbook DARTS supernet it measures against ships beside it and is the DARTS paper's search network."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_search.py"
TEXTBOOK = ROOT / "benchmarks" / "textbook_darts.py"
DEVELOPMENT_COPY = ROOT.parent / "shared" / "benchmarks" / "textbook_darts.py"
"""The textbook script the benchmark read from a development checkout before it shipped its own (absent elsewhere)."""


def load_script(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_search", SCRIPT)


@pytest.fixture(scope="module")
def textbook():
    return load_script("textbook_darts", TEXTBOOK)


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


def test_bench_search_measures_against_the_textbook_beside_it(bench):
    assert bench.TEXTBOOK == TEXTBOOK and TEXTBOOK.is_file()


def test_textbook_supernet_is_the_darts_papers_search_network(textbook):
    net = textbook.SearchCNN(channels=4, num_classes=10, layers=6)
    assert textbook.PRIMITIVES == ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
                                   "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
    assert [cell.reduction for cell in net.cells] == [False, False, True, False, True, False]  # at 1/3 and 2/3
    assert net.alpha_normal.shape == net.alpha_reduce.shape == (14, 8)  # 2 + 3 + 4 + 5 edges, 8 ops each
    assert all(len(cell.edges) == 14 and all(len(edge.ops) == 8 for edge in cell.edges) for cell in net.cells)
    assert all(not bn.affine for cell in net.cells for bn in cell.modules() if isinstance(bn, nn.BatchNorm2d))
    widths = []
    s0 = s1 = net.stem(torch.randn(2, 3, 8, 8))
    for cell in net.cells:
        s0, s1 = s1, cell(s0, s1, torch.full((14, 8), 1 / 8))
        widths.append(tuple(s1.shape[1:]))
    assert widths == [(16, 8, 8), (16, 8, 8), (32, 4, 4), (32, 4, 4), (64, 2, 2), (64, 2, 2)]  # 4 nodes x C
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    assert len(net.weight_parameters()) == len(list(net.parameters())) - 2  # all but the two alphas


def test_textbook_edge_is_the_softmax_weighted_sum_of_every_op(textbook):
    torch.manual_seed(0)
    edge = textbook.MixedOp(4, stride=1).train()
    x = torch.randn(2, 4, 6, 6)
    one_hot = torch.eye(8)
    assert torch.equal(edge(x, one_hot[textbook.PRIMITIVES.index("skip_connect")]), x)
    assert torch.equal(edge(x, one_hot[textbook.PRIMITIVES.index("none")]), torch.zeros_like(x))
    weights = torch.softmax(torch.randn(8), dim=0)
    expected = sum(w * op(x) for w, op in zip(weights, edge.ops, strict=True))
    torch.testing.assert_close(edge(x, weights), expected)
    reducing = textbook.MixedOp(4, stride=2)
    assert all(op(x).shape == (2, 4, 3, 3) for op in reducing.ops)


def test_textbook_script_prints_the_json_line_bench_search_reads(bench):
    out = bench.run_json([sys.executable, str(TEXTBOOK), "--batch", "4", "--size", "8", "--channels", "2",
                          "--layers", "3", "--steps", "2"], env={"OMP_NUM_THREADS": "1"})
    assert (out["impl"], out["batch"], out["size"], out["channels"], out["layers"]) == ("textbook_darts", 4, 8, 2, 3)
    assert out["images_per_s"] == pytest.approx(4 / out["step_s"]) and out["peak_bytes"] > 0


@pytest.mark.skipif(not DEVELOPMENT_COPY.is_file(), reason="no development copy of the textbook script here")
def test_textbook_gives_the_same_steps_as_the_development_copy(textbook):
    """Both follow the original DARTS search model, so their parameters and buffers line up one for one: with one's
    state loaded into the other they give the same losses, step after step, and the same weights after."""
    reference = load_script("textbook_darts_development", DEVELOPMENT_COPY)
    torch.manual_seed(0)
    theirs = reference.SearchNetwork(4, 10, 3)
    ours = textbook.SearchCNN(4, 10, 3)
    their_state, our_state = theirs.state_dict(), ours.state_dict()
    assert [v.shape for v in our_state.values()] == [v.shape for v in their_state.values()]
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    ours.load_state_dict(dict(zip(our_state, their_state.values(), strict=True)))
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    their_opt = torch.optim.SGD([p for n, p in theirs.named_parameters() if "alphas" not in n], lr=0.025, momentum=0.9)
    our_opt = textbook.weight_optimizer(ours)
    for _ in range(3):
        their_opt.zero_grad()
        their_loss = nn.functional.cross_entropy(theirs(x), y)
        their_loss.backward()
        their_opt.step()
        our_loss = textbook.training_step(ours, our_opt, x, y)
        torch.testing.assert_close(our_loss, their_loss.detach(), rtol=1e-5, atol=1e-6)
    for ours_value, theirs_value in zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True):
        torch.testing.assert_close(ours_value, theirs_value, rtol=1e-5, atol=1e-6)
