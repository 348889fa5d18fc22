"""The NAS-Bench-201 space: cell enumeration, canonical forms, network sizes, shapes, weight sharing, discretizing."""
from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cdarts
from cdarts.config import build, validate_component
from cdarts.discretizers import argmax
from cdarts.genotypes import (
    NB201_EDGES,
    NB201Genotype,
    canonical_nb201,
    enumerate_nb201,
    nb201_from_ops,
    nb201_ops,
    parse_arch_string,
)
from cdarts.ops import NB201_PRIMITIVES
from cdarts.spaces.nb201 import NB201Cell, NB201Network, NB201Space, NB201Supernet

RESNET = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
MIXED = "|nor_conv_1x1~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"


def uniform(op: str) -> NB201Genotype:
    return nb201_from_ops([op] * 6)


def tiny_batch(classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(4, 3, 8, 8, generator=generator), torch.randint(0, classes, (4,), generator=generator)


# --- genotypes: enumeration, edge order, canonical forms ---


def test_enumerate_nb201_yields_every_cell_once_and_each_round_trips_through_its_arch_string():
    cells = list(enumerate_nb201())
    assert len(cells) == 5**6 == 15_625
    assert len(set(cells)) == 15_625
    assert all(parse_arch_string(str(cell)) == cell for cell in cells)
    assert str(cells[0]) == "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    assert str(cells[1]) == "|none~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|"


def test_enumerate_nb201_uses_the_given_primitives():
    cells = list(enumerate_nb201(["none", "nor_conv_3x3"]))
    assert len(cells) == 64
    assert {op for cell in cells for op in cell.ops()} == {"none", "nor_conv_3x3"}


def test_nb201_ops_follows_alpha_rows_whatever_the_edge_order_within_a_node():
    assert NB201_EDGES == ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
    node3 = (("avg_pool_3x3", 2), ("nor_conv_1x1", 0), ("none", 1))
    shuffled = NB201Genotype(((("nor_conv_3x3", 0),), (("skip_connect", 1), ("none", 0)), node3))
    ops = ("nor_conv_3x3", "none", "skip_connect", "nor_conv_1x1", "none", "avg_pool_3x3")
    assert nb201_ops(shuffled) == ops
    assert nb201_ops(nb201_from_ops(ops)) == ops


def test_nb201_from_ops_needs_six_ops():
    with pytest.raises(ValueError, match="has 6 edges, got 5 ops"):
        nb201_from_ops(["none"] * 5)


def test_nb201_ops_rejects_a_cell_without_three_nodes():
    with pytest.raises(ValueError, match="has 3 nodes; .* has 2"):
        nb201_ops(parse_arch_string("|none~0|+|none~0|none~1|"))


def _evaluate(genotype: NB201Genotype, functions: dict[str, Callable[[float], float]], x: float) -> float:
    """The cell's output with one fixed scalar function per op type."""
    states = [x]
    for edges in genotype.node_edges:
        states.append(sum(functions[op](states[i]) for op, i in edges))
    return states[3]


def test_every_cell_computes_the_same_as_its_canonical_form():
    functions = {  # generic functions with f(0) = 0, the convention for ops on zero nodes
        "none": lambda v: 0.0,
        "skip_connect": lambda v: v,
        "nor_conv_1x1": lambda v: math.tanh(1.37 * v + 0.21 * v * v),
        "nor_conv_3x3": lambda v: math.sin(2.11 * v) + 0.3 * v**3,
        "avg_pool_3x3": lambda v: 0.59 * v,
    }
    classes = set()
    for cell in enumerate_nb201():
        canonical = canonical_nb201(cell)
        classes.add(canonical)
        assert canonical_nb201(canonical) == canonical
        assert sum(op != "none" for op in canonical.ops()) <= sum(op != "none" for op in cell.ops())
        assert _evaluate(canonical, functions, 0.731) == pytest.approx(_evaluate(cell, functions, 0.731), abs=1e-12)
    assert len(classes) == 5_425


@pytest.mark.parametrize(
    "cell, expected",
    [
        (  # edges that cannot reach the output
            "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|nor_conv_3x3~0|none~1|none~2|",
            "|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|",
        ),
        (  # edges out of a node that is always zero
            "|none~0|+|none~0|nor_conv_3x3~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|",
            "|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|",
        ),
        (  # an op reached through skip connections is the op on the input
            "|skip_connect~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|",
            "|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|",
        ),
        (  # a cell whose output is always zero
            "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|none~1|none~2|",
            "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        ),
        (
            RESNET,
            "|none~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
        ),
    ],
)
def test_canonical_nb201_representatives(cell, expected):
    assert str(canonical_nb201(parse_arch_string(cell))) == expected


def test_canonical_nb201_tells_one_module_used_twice_from_two_modules():
    twice = parse_arch_string("|nor_conv_1x1~0|+|none~0|skip_connect~1|+|none~0|skip_connect~1|skip_connect~2|")
    two = parse_arch_string("|nor_conv_1x1~0|+|nor_conv_1x1~0|none~1|+|none~0|skip_connect~1|skip_connect~2|")
    two_elsewhere = parse_arch_string("|none~0|+|nor_conv_1x1~0|none~1|+|nor_conv_1x1~0|none~1|skip_connect~2|")
    assert canonical_nb201(two) == canonical_nb201(two_elsewhere)
    assert canonical_nb201(twice) != canonical_nb201(two)


def test_canonical_nb201_counts_multiplicity():
    double = parse_arch_string("|skip_connect~0|+|none~0|none~1|+|skip_connect~0|skip_connect~1|none~2|")
    single = parse_arch_string("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    assert canonical_nb201(single) == single
    assert canonical_nb201(double) != single


# --- networks ---


def _expected_parameters(ops: tuple[str, ...], c: int = 16, n: int = 5, classes: int = 10, in_chans: int = 3) -> int:
    """The NAS-Bench-201 CIFAR network's size, counted by hand from the skeleton."""

    def conv_bn(c_in: int, c_out: int, k: int) -> int:
        return k * k * c_in * c_out + 2 * c_out  # bias-free conv + affine BN

    per_op = {
        "none": lambda w: 0,
        "skip_connect": lambda w: 0,
        "avg_pool_3x3": lambda w: 0,
        "nor_conv_1x1": lambda w: conv_bn(w, w, 1),
        "nor_conv_3x3": lambda w: conv_bn(w, w, 3),
    }
    stem = conv_bn(in_chans, c, 3)
    cells = sum(n * sum(per_op[op](width) for op in ops) for width in (c, 2 * c, 4 * c))
    blocks = sum(conv_bn(w, 2 * w, 3) + conv_bn(2 * w, 2 * w, 3) + w * 2 * w for w in (c, 2 * c))
    head = 2 * 4 * c + 4 * c * classes + classes
    return stem + cells + blocks + head


@pytest.mark.parametrize(
    "genotype",
    [uniform("none"), uniform("skip_connect"), uniform("nor_conv_3x3"), uniform("nor_conv_1x1"), RESNET, MIXED],
    ids=str,
)
def test_cifar10_network_parameter_count(genotype):
    genotype = parse_arch_string(genotype) if isinstance(genotype, str) else genotype
    net = NB201Network(genotype, num_classes=10, in_chans=3, channels=16, cells_per_stage=5)
    assert sum(p.numel() for p in net.parameters()) == _expected_parameters(nb201_ops(genotype))


def test_largest_cifar10_network_is_about_one_and_a_half_million_parameters():
    net = NB201Network(uniform("nor_conv_3x3"), 10)
    assert sum(p.numel() for p in net.parameters()) == 1_531_546
    assert sum(p.numel() for p in NB201Network(uniform("none"), 10).parameters()) == 73_306


def test_supernet_forward_backward_shapes_and_gradients():
    net = NB201Supernet(10, 3, channels=4, cells_per_stage=1)
    x, y = tiny_batch()
    out = net.forward_stages(x)
    assert out.logits.shape == (4, 10)
    assert [tuple(s.shape) for s in out.stages] == [(4, 8, 4, 4), (4, 16, 2, 2), (4, 16, 2, 2)]
    assert out.aux_logits is None
    F.cross_entropy(out.logits, y).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_supernet_pooling_has_no_batchnorm_and_ops_are_not_affine():
    net = NB201Supernet(10, 3, channels=4, cells_per_stage=1)
    pool = net.cells[0].edges[0].ops[NB201_PRIMITIVES.index("avg_pool_3x3")]
    assert isinstance(pool, nn.AvgPool2d)
    assert all(not m.affine for cell in net.cells for m in cell.modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize("shared", [False, True])
def test_discrete_network_forward_backward_and_stage_shapes_match_the_supernet(shared):
    space = NB201Space(10, 3, channels=4, cells_per_stage=1, primitives=NB201_PRIMITIVES)
    genotype = parse_arch_string(MIXED)
    net = space.eval_network(genotype) if shared else space.discrete(genotype)
    x, y = tiny_batch()
    out = net.forward_stages(x)
    supernet_stages = space.supernet().forward_stages(x).stages
    assert [s.shape for s in out.stages] == [s.shape for s in supernet_stages]
    assert out.logits.shape == (4, 10)
    F.cross_entropy(out.logits, y).backward()
    selected = {key for cell in net.cells for node in cell.selected for key, _ in node}
    for cell in net.cells:
        for key, op in cell.ops.items():
            grads = [p.grad for p in op.parameters()]
            assert all(g is not None for g in grads) if key in selected else all(g is None for g in grads)
    assert all(p.grad is not None for p in net.stem.parameters())


def test_node_with_only_none_inputs_is_zero():
    cell = NB201Cell([(i, j, op) for i, j in NB201_EDGES for op in NB201_PRIMITIVES], 4)
    x = torch.randn(2, 4, 8, 8)
    cell.select(parse_arch_string("|none~0|+|skip_connect~0|none~1|+|none~0|skip_connect~1|none~2|").nodes())
    assert torch.equal(cell(x), torch.zeros_like(x))
    cell.select(parse_arch_string("|skip_connect~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|").nodes())
    assert torch.equal(cell(x), torch.zeros_like(x))
    cell.select(parse_arch_string("|skip_connect~0|+|skip_connect~0|skip_connect~1|+|none~0|none~1|skip_connect~2|").nodes())
    assert torch.equal(cell(x), 2 * x)
    assert not any("none" in key for key in cell.ops)


def test_all_none_network_runs():
    net = NB201Network(uniform("none"), 10, 3, channels=4, cells_per_stage=1)
    assert net(tiny_batch()[0]).shape == (4, 10)


def _op_states(net: NB201Network) -> dict[tuple[int, str], dict[str, torch.Tensor]]:
    return {
        (index, key): {name: t.clone() for name, t in op.state_dict().items()}
        for index, cell in enumerate(net.cells)
        for key, op in cell.ops.items()
    }


def _selected_with_state(net: NB201Network) -> set[tuple[int, str]]:
    """The selected ops that have weights or BN statistics (skip and pool ops have neither)."""
    return {
        (index, key)
        for index, cell in enumerate(net.cells)
        for node in cell.selected
        for key, _ in node
        if cell.ops[key].state_dict()
    }


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[name], b[name]) for name in a)


def test_shared_network_keeps_each_ops_weights_and_bn_statistics_across_selections():
    torch.manual_seed(0)
    net = NB201Network(None, 10, 3, channels=4, cells_per_stage=1, shared=True)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x, y = tiny_batch()
    conv1, conv3, pool, skip = "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", "skip_connect"
    a = nb201_from_ops([conv3, conv1, conv3, skip, conv3, pool])
    b = nb201_from_ops([conv1, conv3, pool, skip, conv1, conv3])

    def train_step(genotype: NB201Genotype) -> set[tuple[int, str]]:
        net.select(genotype)
        net.train()
        optimizer.zero_grad()
        F.cross_entropy(net(x), y).backward()
        optimizer.step()
        return _selected_with_state(net)

    initial = _op_states(net)
    ops_a = train_step(a)
    after_a = _op_states(net)
    ops_b = train_step(b)
    net.select(a)
    after_b = _op_states(net)

    assert ops_a and ops_b and not ops_a & ops_b
    assert all(not _same(after_a[key], initial[key]) for key in ops_a)
    assert all(_same(after_b[key], after_a[key]) for key in ops_a)
    assert all(not _same(after_b[key], initial[key]) for key in ops_b)
    for key in ops_b:  # weights and BN running statistics both moved
        assert not torch.equal(after_b[key]["2.running_mean"], initial[key]["2.running_mean"])
        assert not torch.equal(after_b[key]["1.weight"], initial[key]["1.weight"])
    assert all(_same(after_b[key], initial[key]) for key in set(initial) - ops_a - ops_b)
    assert net.genotype == a


def test_shared_network_must_select_before_running():
    net = NB201Network(None, 10, 3, channels=4, cells_per_stage=1, shared=True)
    with pytest.raises(RuntimeError, match="select a genotype"):
        net(tiny_batch()[0])


def test_discrete_network_needs_a_genotype_and_accepts_only_its_own_ops():
    with pytest.raises(ValueError, match="needs a genotype"):
        NB201Network(None, 10)
    net = NB201Network(parse_arch_string(MIXED), 10, 3, channels=4, cells_per_stage=1)
    with pytest.raises(ValueError, match=r"node 1 has no candidate \('nor_conv_3x3', input 0\)"):
        net.select(uniform("nor_conv_3x3"))


def test_shared_network_rejects_ops_outside_its_primitives():
    net = NB201Network(None, 10, 3, channels=4, cells_per_stage=1, shared=True, primitives=["none", "skip_connect"])
    with pytest.raises(ValueError, match=r"node 1 has no candidate \('nor_conv_1x1', input 0\)"):
        net.select(uniform("nor_conv_1x1"))


def test_arch_and_weight_parameters_are_disjoint_and_cover_all_parameters():
    net = NB201Supernet(10, 3, channels=4, cells_per_stage=1)
    arch = {id(p) for p in net.arch_parameters()}
    weights = {id(p) for p in net.weight_parameters()}
    assert not arch & weights
    assert arch | weights == {id(p) for p in net.parameters()}
    assert net.alphas()["cell"] is net.alphas_cell
    assert net.alphas_cell.shape == (6, 5)


def test_argmax_discretizer_reads_the_expected_genotype_from_hand_set_alphas():
    space = NB201Space(10, 3, channels=4, cells_per_stage=1, primitives=NB201_PRIMITIVES)
    net = space.supernet()
    chosen = ["nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none"]
    with torch.no_grad():
        net.alphas_cell.zero_()
        for row, op in enumerate(chosen):
            net.alphas_cell[row, NB201_PRIMITIVES.index(op)] = 1.0
    genotype = space.genotype(argmax()(net.alphas(), space.edges, space.primitives))
    assert genotype == nb201_from_ops(chosen)
    assert str(genotype) == "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"


def test_registered_space_builds_from_config():
    spec = validate_component("spaces", {"type": "nas-bench-201", "channels": 4, "cells_per_stage": 1})
    assert spec["primitives"] == list(NB201_PRIMITIVES)
    space = build("spaces", spec, 10, 3)
    assert isinstance(space, NB201Space)
    assert space.name == "nas-bench-201"
    assert space.default_discretizer == {"type": "argmax"}
    assert space.edges == list(NB201_EDGES)
    assert len(space.eval_network().cells) == len(space.supernet().cells) == 3
    wide = space.discrete(parse_arch_string(RESNET), channels=8, cells_per_stage=2)
    assert wide.num_features == 32 and len(wide.cells) == 6


def test_network_rejects_a_darts_genotype_and_a_cell_without_three_nodes():
    net = NB201Network(None, 10, 3, channels=4, cells_per_stage=1, shared=True)
    with pytest.raises(ValueError, match="expected a NAS-Bench-201 genotype"):
        net.select(cdarts.load_genotype("DARTS_V2"))
    with pytest.raises(ValueError, match="has 3 nodes"):
        net.select(parse_arch_string("|skip_connect~0|+|skip_connect~0|none~1|"))


@pytest.mark.parametrize("taps", ["after_reduction", "before_reduction"])
def test_stage_taps_read_the_residual_blocks_or_the_cells_before_them(taps):
    torch.manual_seed(0)
    space = build("spaces", {"type": "nas-bench-201", "channels": 4, "cells_per_stage": 2, "stage_taps": taps}, 10, 3)
    for net in (space.supernet(), space.eval_network(parse_arch_string(MIXED))):
        outputs: dict[str, torch.Tensor] = {}
        named = [(f"block{i}", m) for i, m in enumerate(net.reductions)]
        named += [(f"cell{i}", m) for i, m in enumerate(net.cells)]
        for name, module in named:
            module.register_forward_hook(lambda m, a, out, name=name, seen=outputs: seen.__setitem__(name, out))
        with torch.no_grad():
            stages = net.forward_stages(torch.randn(2, 3, 16, 16)).stages
        expected = ["block0", "block1", "cell5"] if taps == "after_reduction" else ["cell1", "cell3", "cell5"]
        assert all(torch.equal(stage, outputs[name]) for stage, name in zip(stages, expected, strict=True))
