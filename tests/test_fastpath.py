"""The supernet's speed switches are exact: fast and plain paths give the same outputs, gradients (alpha included)
and BatchNorm statistics, within float32 rounding (relative difference <= 1e-5 on a fixed batch)."""
from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from cdarts.config import build
from cdarts.genotypes import load_genotype
from cdarts.spaces.darts import DartsNetwork, DartsSupernet, SearchCell, cell_edges
from cdarts.spaces.fastpath import cells
from cdarts.spaces.fastpath.grouped import reads_stride_grid, unused_border
from cdarts.spaces.fastpath.layout import keep_layout, subsample
from cdarts.spaces.fastpath.plan import op_kind, plan_sources

PLAIN = {"skip_zero": False, "share_inputs": False, "batch_edges": False, "channels_last": False}
SWITCHES = {
    "skip_zero": {**PLAIN, "skip_zero": True},
    "share_inputs": {**PLAIN, "share_inputs": True},
    "batch_edges": {**PLAIN, "batch_edges": True},
    "channels_last": {**PLAIN, "channels_last": True},
    "checkpoint_cells": {**PLAIN, "checkpoint_cells": True},
    "all": {},
    "all_checkpointed": {"checkpoint_cells": True},
}
TOLERANCE = 1e-5


pytestmark = pytest.mark.usefixtures("one_thread")


def data(batch: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed batch of images and labels."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, size, size, generator=generator), torch.randint(0, 10, (batch,), generator=generator)


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """``||a - b|| / ||b||`` (0 when both are zero)."""
    a, b = a.detach().double(), b.detach().double()
    scale = b.norm()
    return float((a - b).norm() / scale) if scale > 0 else float((a - b).norm())


def pair(options: dict, stem: str = "cifar", layers: int = 3, channels: int = 4) -> tuple[nn.Module, nn.Module]:
    """A plain supernet and one with ``options``, holding the same weights (their state dicts are interchangeable)."""
    torch.manual_seed(0)
    plain = DartsSupernet(10, channels=channels, layers=layers, stem=stem, **PLAIN)
    fast = DartsSupernet(10, channels=channels, layers=layers, stem=stem, **options)
    fast.load_state_dict(plain.state_dict())
    return plain, fast


def train_step(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """Forward (logits and stage outputs), a loss on all of them, backward; returns outputs and gradients."""
    net.train()
    net.zero_grad(set_to_none=True)
    out = net.forward_stages(x)
    loss = F.cross_entropy(out.logits, y) + sum(s.square().mean() for s in out.stages)
    loss.backward()
    grads = {name: p.grad for name, p in net.named_parameters() if p.grad is not None}
    return [out.logits, *out.stages], grads


def assert_same_training(
    plain: nn.Module, fast: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 2,
    alphas: tuple[str, ...] = ("alphas_normal", "alphas_reduce"),
) -> None:
    for _ in range(steps):
        outs_p, grads_p = train_step(plain, x, y)
        outs_f, grads_f = train_step(fast, x, y)
        for a, b in zip(outs_f, outs_p, strict=True):
            assert a.shape == b.shape
            assert relative_difference(a, b) <= TOLERANCE
        assert grads_f.keys() == grads_p.keys()
        worst = max(grads_p, key=lambda name: relative_difference(grads_f[name], grads_p[name]))
        assert relative_difference(grads_f[worst], grads_p[worst]) <= TOLERANCE, worst
        for alpha in alphas:
            assert relative_difference(grads_f[alpha], grads_p[alpha]) <= TOLERANCE
    assert_same_buffers(plain, fast)


def assert_same_buffers(plain: nn.Module, fast: nn.Module) -> None:
    buffers_f = dict(fast.named_buffers())
    for name, value in plain.named_buffers():
        if name.endswith("num_batches_tracked"):
            assert torch.equal(buffers_f[name], value), name
        else:
            torch.testing.assert_close(buffers_f[name], value, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("switch", sorted(SWITCHES))
def test_switch_gives_the_plain_outputs_gradients_and_statistics(switch):
    plain, fast = pair(SWITCHES[switch])
    x, y = data(6, 8)
    assert_same_training(plain, fast, x, y)


@pytest.mark.parametrize(("stem", "size", "batch"), [("cifar", 9, 4), ("cifar", 2, 16), ("imagenet", 64, 4)])
def test_fast_path_at_odd_and_tiny_resolutions(stem, size, batch):
    """9 px: odd sizes (padded FactorizedReduce); 2 px: reductions down to 1 px (a batch of 16, as BN over fewer
    values amplifies float32 rounding past the tolerance on any path); ImageNet: the 3-conv stem."""
    plain, fast = pair({}, stem=stem)
    x, y = data(batch, size)
    assert_same_training(plain, fast, x, y, steps=1)


def test_fast_path_is_exact_in_float64():
    """The regrouping changes nothing but rounding: in float64 the paths agree to ~1e-13."""
    plain, fast = pair({})
    plain.double()
    fast.double()
    x, y = data(4, 2)
    x = x.double()
    (logits_p, *_), grads_p = train_step(plain, x, y)
    (logits_f, *_), grads_f = train_step(fast, x, y)
    assert relative_difference(logits_f, logits_p) <= 1e-10
    assert max(relative_difference(grads_f[name], grads_p[name]) for name in grads_p) <= 1e-10


def test_edge_by_edge_above_the_batch_limit(monkeypatch):
    """Large activations run edge by edge even with ``batch_edges``; the result is the same."""
    monkeypatch.setattr(cells, "BATCH_LIMIT", 0)
    plain, fast = pair({})
    x, y = data(4, 8)
    assert_same_training(plain, fast, x, y, steps=1)


def test_eval_mode_uses_each_edges_own_running_statistics():
    plain, fast = pair({})
    generator = torch.Generator().manual_seed(1)
    for name, buffer in plain.named_buffers():
        if "running" in name:
            buffer.copy_(torch.rand(buffer.shape, generator=generator) + 0.5)
    fast.load_state_dict(plain.state_dict())
    x, _ = data(4, 8)
    with torch.no_grad():
        expected, got = plain.eval()(x), fast.eval()(x)
    assert relative_difference(got, expected) <= TOLERANCE


def test_cumulative_bn_statistics_match():
    """``momentum=None`` (BN re-estimation before eval-mode accuracy) counts batches the same way."""
    plain, fast = pair({})
    for net in (plain, fast):
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
    with torch.no_grad():
        for seed in range(3):
            x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
            plain(x)
            fast(x)
    assert_same_buffers(plain, fast)


def test_frozen_weights_give_the_same_alpha_gradients():
    """Step A freezes S's weights; only alpha gets gradients, on either path."""
    plain, fast = pair({})
    x, y = data(4, 8)
    grads = []
    for net in (plain, fast):
        for p in net.weight_parameters():
            p.requires_grad_(False)
        F.cross_entropy(net(x), y).backward()
        assert all(p.grad is None for p in net.weight_parameters())
        grads.append([a.grad for a in net.arch_parameters()])
    for a, b in zip(*grads, strict=True):
        assert relative_difference(b, a) <= TOLERANCE


def test_checkpointed_cells_recompute_with_the_weights_frozen_as_in_the_forward_pass():
    """Step A freezes S's weights for its forward pass and unfreezes them before backward recomputes the cells."""
    from cdarts.runtime import frozen

    plain, fast = pair({"checkpoint_cells": True})
    x, y = data(4, 8)
    grads = []
    for net in (plain, fast):
        with frozen(net.weight_parameters()):
            loss = F.cross_entropy(net(x), y)
        loss.backward()
        assert all(p.grad is None for p in net.weight_parameters())
        grads.append([a.grad for a in net.arch_parameters()])
    for a, b in zip(*grads, strict=True):
        assert relative_difference(b, a) <= TOLERANCE


def test_state_dicts_are_the_same_on_every_path():
    plain, fast = pair({"checkpoint_cells": True})
    assert list(plain.state_dict()) == list(fast.state_dict())


def test_checkpointed_cells_update_bn_statistics_once():
    plain, fast = pair({**PLAIN, "checkpoint_cells": True})
    x, y = data(4, 8)
    for net in (plain, fast):
        train_step(net, x, y)
    assert_same_buffers(plain, fast)
    counts = {int(m.num_batches_tracked) for m in fast.modules() if isinstance(m, nn.BatchNorm2d)}
    assert counts == {1}


class CountConvolutions(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (torch.ops.aten.convolution.default, torch.ops.aten.convolution_backward.default):
            self.calls += 1
        return func(*args, **(kwargs or {}))


def test_batched_edges_run_far_fewer_convolutions():
    plain, fast = pair({})
    x, y = data(4, 8)
    counts = []
    for net in (plain, fast):
        with CountConvolutions() as counter:
            train_step(net, x, y)
        counts.append(counter.calls)
    assert counts[1] * 2.5 < counts[0]


def test_channels_last_gradients_stay_channels_last():
    _, fast = pair({})
    x, y = data(4, 8)
    layouts = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func is torch.ops.aten.threshold_backward.default:
                layouts.extend(t.stride(1) == 1 for t in args[:2])
            return out

    out = fast(x)
    with Record():
        F.cross_entropy(out, y).backward()
    assert layouts and all(layouts)


def test_keep_layout_brings_gradients_to_channels_last():
    x = torch.randn(2, 3, 4, 4).contiguous(memory_format=torch.channels_last).requires_grad_()
    keep_layout(x).sum(dim=(2, 3), keepdim=True).sum().backward()
    assert x.grad.is_contiguous(memory_format=torch.channels_last)
    plain = torch.randn(2, 3, 4, 4, requires_grad=True)
    assert keep_layout(plain) is plain


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_subsample_matches_slicing_both_ways(memory_format):
    x = torch.randn(2, 3, 7, 6).contiguous(memory_format=memory_format).requires_grad_()
    out = subsample(x, 1, (2, 2))
    torch.testing.assert_close(out, x[:, :, 1::2, 1::2], rtol=0, atol=0)
    assert out.is_contiguous(memory_format=memory_format)
    out.backward(torch.ones_like(out))
    expected = torch.zeros(2, 3, 7, 6)
    expected[:, :, 1::2, 1::2] = 1
    torch.testing.assert_close(x.grad, expected, rtol=0, atol=0)
    assert x.grad.is_contiguous(memory_format=memory_format)


@pytest.mark.parametrize(("kernel", "stride", "dilation"), list(itertools.product((1, 3, 5, 7), (1, 2), (1, 2))))
def test_dropping_unused_kernel_borders_changes_nothing(kernel, stride, dilation):
    generator = torch.Generator().manual_seed(kernel * 10 + stride * 3 + dilation)
    for size in range(1, 9):
        for padding in range(dilation * (kernel - 1) // 2 + 2):
            if (size + 2 * padding - dilation * (kernel - 1) - 1) < 0:
                continue
            x = torch.randn(1, 1, size, size, dtype=torch.float64, generator=generator)
            w = torch.randn(1, 1, kernel, kernel, dtype=torch.float64, generator=generator)
            expected = F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation)
            border = unused_border(size, kernel, stride, padding, dilation)
            cropped = w[:, :, border : kernel - border, border : kernel - border]
            got = F.conv2d(x, cropped, stride=stride, padding=padding - dilation * border, dilation=dilation)
            torch.testing.assert_close(got, expected)


def test_unused_border_on_the_small_maps_of_the_demo():
    assert unused_border(2, 5, 1, 2, 1) == 1  # sep_conv_5x5 on 2x2: a 3x3 conv
    assert unused_border(2, 5, 1, 4, 2) == 2  # dil_conv_5x5 on 2x2: a 1x1 conv
    assert unused_border(8, 5, 1, 2, 1) == 0


@pytest.mark.parametrize(("name", "expected"), [
    ("dil_conv_3x3", True), ("dil_conv_5x5", True), ("sep_conv_3x3", False), ("skip_connect", True),
])
def test_reduction_ops_that_read_only_the_stride_grid(name, expected):
    op = build("ops", {"type": name}, 4, 2, False)
    conv = op[1] if name.startswith("dil") else op[0][1] if name.startswith("sep") else op.conv_1
    assert reads_stride_grid(conv) is expected
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    if expected:
        sampled = F.conv2d(x[:, :, ::2, ::2], conv.weight.double(), None, 1,
                           tuple(p // 2 for p in conv.padding), 1, conv.groups)
        torch.testing.assert_close(sampled, conv.double()(x))


def test_op_kinds_of_the_darts_primitives():
    cell = SearchCell(["none", "max_pool_3x3", "skip_connect", "sep_conv_3x3", "dil_conv_5x5"], 2, 8, 8, 4,
                      reduction=True, reduction_prev=False)
    kinds = [op_kind(op) for op in cell.edges[0].ops]
    assert kinds == ["zero", "pool", "reduce", "stages", "stages"]
    assert op_kind(cell.edges[4].ops[2]) == "identity"  # edge (2, 3): stride 1


def test_unknown_ops_run_edge_by_edge_with_their_own_modules():
    torch.manual_seed(0)
    cell = SearchCell(["skip_connect", "sep_conv_3x3", "avg_pool_3x3"], 2, 8, 8, 4, False, False)
    for edge in cell.edges:
        edge.ops[0] = nn.Sequential(nn.Tanh(), nn.Conv2d(4, 4, 1))
    plain = copy.deepcopy(cell)
    plain.plans = None
    cell.plans = plan_sources(cell_edges(2), list(cell.edges), skip_zero=True)
    assert cell.plans[0].edge_ops[0].kind == "other"
    s0, s1, weights = torch.randn(2, 8, 6, 6), torch.randn(2, 8, 6, 6), torch.softmax(torch.randn(5, 3), -1)
    assert relative_difference(cell(s0, s1, weights), plain(s0, s1, weights)) <= TOLERANCE


def test_space_factory_passes_the_speed_switches():
    space = build("spaces", {"type": "darts", "channels": 4, "layers": 3, "batch_edges": False,
                             "channels_last": False, "checkpoint_cells": True}, 10, 3)
    net = space.supernet()
    assert net.checkpoint_cells and not net.channels_last
    assert all(not cell.batch_edges and cell.plans is not None for cell in net.cells)
    default = build("spaces", {"type": "darts", "channels": 4, "layers": 3}, 10, 3).supernet()
    assert default.channels_last and not default.checkpoint_cells
    assert all(cell.batch_edges for cell in default.cells)


TINY_SEARCH = """
data: {type: digits, image_size: 8, channels: 3}
batch_size: 16
threads: 1
space: {type: darts, channels: 4, layers: 3, eval_layers: 3}
strategy: {type: cdarts, epochs: 1, pretrain_epochs: 1, eval_epochs: 1}
"""


def test_dry_run_times_every_step_and_writes_nothing(tmp_path, monkeypatch):
    from cdarts.engine import dry_run

    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_SEARCH)
    monkeypatch.chdir(tmp_path)
    result = dry_run(config)
    timings = {"step_a", "step_b", "e_step", "select", "search_epoch_s", "evaluate_s", "pretrain_epoch_s",
               "calibrate_s"}
    assert set(result) == timings | {"batch_size", "epochs", "steps_per_epoch", "estimate_s", "peak_bytes",
                                     "peak_above_build_bytes"}
    assert (result["batch_size"], result["epochs"], result["steps_per_epoch"]) == (16, 2, 44)
    assert all(value > 0 for value in result.values())
    assert result["select"] < 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]
    darts = dry_run(config, ["strategy={type: darts, epochs: 1}"])
    assert set(darts) == {"step_a", "step_b", "search_epoch_s", "evaluate_s", "calibrate_s", "batch_size", "epochs",
                          "steps_per_epoch", "estimate_s", "peak_bytes", "peak_above_build_bytes"}


def test_cli_dry_run_prints_step_times_and_memory(tmp_path, monkeypatch, capsys):
    from cdarts.cli.search import main

    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_SEARCH)
    monkeypatch.chdir(tmp_path)
    assert main(["--config", str(config), "--dry-run", "--set", "space.checkpoint_cells=true"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line[:26].rstrip() for line in lines] == [
        "step A (alpha, E, heads)", "step B (S's weights)", "E step (incl. batch)", "select E's genotype",
        "peak memory", "  of which since build", "whole search",
    ]
    ms, per_s = (float(word) for word in lines[0][26:].split()[::2])
    assert per_s == pytest.approx(16 / (ms / 1000), rel=0.01)
    assert not (tmp_path / "runs").exists()


# --- discrete cells (E, retraining, the timm model) ---------------------------------------------------------------


def discrete_pair(genotype: str, shared: bool = True, stem: str = "cifar") -> tuple[DartsNetwork, DartsNetwork]:
    """The discrete network edge by edge and with ``batch_edges``, same weights, both channels-last as E is."""
    nets = []
    for batch_edges in (False, True):
        torch.manual_seed(0)
        net = DartsNetwork(load_genotype(genotype), 10, channels=4, layers=5, stem=stem, shared=shared,
                           batch_edges=batch_edges)
        nets.append(net.to(memory_format=torch.channels_last))
    return nets[0], nets[1]


@pytest.mark.parametrize("genotype", ["CDARTS_CIFAR", "DARTS_V2", "PC_DARTS_CIFAR", "PDARTS"])
def test_discrete_batched_edges_give_the_plain_outputs_gradients_and_statistics(genotype):
    plain, fast = discrete_pair(genotype)
    x, y = data(6, 8)
    assert_same_training(plain, fast, x, y, alphas=())
    plain.eval()
    fast.eval()
    with torch.no_grad():
        assert relative_difference(fast(x), plain(x)) <= TOLERANCE


def test_discrete_batched_edges_on_the_imagenet_stem_and_after_reselection():
    plain, fast = discrete_pair("CDARTS_IMAGENET", stem="imagenet")
    x, y = data(4, 16)
    assert_same_training(plain, fast, x, y, alphas=())
    for net in (plain, fast):
        net.select(load_genotype("DARTS_V1"))
    assert_same_training(plain, fast, x, y, alphas=())


def test_discrete_batched_edges_run_fewer_convolutions():
    plain, fast = discrete_pair("CDARTS_CIFAR")
    x, y = data(4, 8)
    counts = []
    for net in (plain, fast):
        with CountConvolutions() as counter:
            train_step(net, x, y)
        counts.append(counter.calls)
    assert counts[1] * 1.5 < counts[0]


def test_discrete_edges_above_the_batch_limit_run_one_by_one(monkeypatch):
    monkeypatch.setattr(cells, "BATCH_LIMIT", 0)
    plain, fast = discrete_pair("DARTS_V2")
    x, y = data(4, 8)
    counts = []
    for net in (plain, fast):
        with CountConvolutions() as counter:
            train_step(net, x, y)
        counts.append(counter.calls)
    assert counts[1] == counts[0]
    assert_same_training(plain, fast, x, y, alphas=())


def test_discrete_nodes_pass_every_edge_output_through_finish():
    _, fast = discrete_pair("DARTS_V2", shared=False)
    cell = fast.cells[0]
    s = torch.randn(2, 4, 8, 8)
    states = [cell.preprocess0(torch.randn(2, 12, 8, 8)), cell.preprocess1(torch.randn(2, 12, 8, 8))]
    seen = []

    def finish(op: nn.Module, h: torch.Tensor) -> torch.Tensor:
        seen.append(op)
        return torch.zeros_like(h)

    nodes = cells.discrete_nodes(states, cell.waves, cell.ops, finish)
    assert [n.shape for n in nodes] == [s.shape] * 4
    assert all(torch.count_nonzero(n) == 0 for n in nodes)
    assert sorted(map(id, seen)) == sorted(id(cell.ops[key]) for keys in cell.selected for key, _ in keys)


@pytest.mark.slow
def test_compiled_cells_give_the_eager_outputs_and_gradients():
    spec = {"type": "darts", "channels": 4, "layers": 3}
    eager = build("spaces", spec, 10, 3).supernet()
    compiled = build("spaces", {**spec, "compile_mode": "default"}, 10, 3).supernet()
    compiled.load_state_dict(eager.state_dict())
    x, y = data(4, 8)
    assert_same_training(eager, compiled, x, y)
