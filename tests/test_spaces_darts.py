"""DARTS space: supernet S, discrete networks, and the weight-shared evaluation network E at tiny sizes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cdarts.config import build
from cdarts.genotypes import PUBLISHED, DartsGenotype
from cdarts.ops import DARTS_PRIMITIVES
from cdarts.spaces.base import StageOutputs
from cdarts.spaces.darts import DartsNetwork, DartsSpace, MixedOp, cell_edges, reduction_indices

NUM_CLASSES = 10


pytestmark = pytest.mark.usefixtures("one_thread")


def make_space(**options) -> DartsSpace:
    spec = {"type": "darts", "channels": 4, "layers": 5, "eval_layers": 5, **options}
    return build("spaces", spec, NUM_CLASSES, 3)


def stage_shapes(out: StageOutputs) -> list[tuple[int, ...]]:
    return [tuple(s.shape) for s in out.stages]


def genotype(normal: list[list[tuple[str, int]]], reduce: list[list[tuple[str, int]]]) -> DartsGenotype:
    """A genotype from per-node edge lists."""
    flat = [edge for node in normal for edge in node], [edge for node in reduce for edge in node]
    return DartsGenotype(flat[0], range(2, 6), flat[1], range(2, 6))


# A and B share no (node, input, op): their ops are disjoint, so E keeps disjoint modules for them.
GENOTYPE_A = genotype(
    [[("sep_conv_3x3", 0), ("sep_conv_3x3", 1)], [("sep_conv_5x5", 2), ("sep_conv_3x3", 0)],
     [("sep_conv_3x3", 3), ("max_pool_3x3", 1)], [("sep_conv_5x5", 4), ("sep_conv_3x3", 2)]],
    [[("sep_conv_5x5", 0), ("max_pool_3x3", 1)], [("sep_conv_3x3", 2), ("sep_conv_5x5", 1)],
     [("sep_conv_3x3", 0), ("sep_conv_3x3", 3)], [("sep_conv_5x5", 4), ("max_pool_3x3", 0)]],
)
GENOTYPE_B = genotype(
    [[("dil_conv_3x3", 0), ("dil_conv_5x5", 1)], [("dil_conv_3x3", 2), ("skip_connect", 0)],
     [("dil_conv_5x5", 3), ("dil_conv_3x3", 1)], [("dil_conv_3x3", 4), ("avg_pool_3x3", 2)]],
    [[("dil_conv_5x5", 0), ("dil_conv_3x3", 1)], [("dil_conv_3x3", 2), ("skip_connect", 1)],
     [("dil_conv_5x5", 0), ("avg_pool_3x3", 3)], [("dil_conv_3x3", 4), ("dil_conv_5x5", 0)]],
)


def test_layout_helpers():
    assert reduction_indices(8) == (2, 5)
    assert reduction_indices(20) == (6, 13)
    assert reduction_indices(5) == (1, 3)
    assert cell_edges(4) == [(0, 2), (1, 2), (0, 3), (1, 3), (2, 3), (0, 4), (1, 4), (2, 4), (3, 4),
                             (0, 5), (1, 5), (2, 5), (3, 5), (4, 5)]


def test_space_factory_passes_the_config():
    space = make_space(eval_layers=8, nodes=3, stem="imagenet", stem_multiplier=2, primitives=["none", "sep_conv_3x3"])
    assert (space.num_classes, space.in_chans, space.channels, space.layers, space.eval_layers) == (10, 3, 4, 5, 8)
    assert (space.nodes, space.stem, space.stem_multiplier) == (3, "imagenet", 2)
    assert space.primitives == ("none", "sep_conv_3x3")
    assert space.edges == cell_edges(3)


# --- supernet S ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [8, 16])
def test_supernet_forward_backward_shapes(size):
    torch.manual_seed(0)
    net = make_space().supernet()
    out = net.forward_stages(torch.randn(2, 3, size, size))
    assert isinstance(out, StageOutputs)
    assert out.logits.shape == (2, NUM_CLASSES)
    assert out.aux_logits is None
    half, quarter = size // 2, size // 4
    assert stage_shapes(out) == [(2, 32, half, half), (2, 64, quarter, quarter), (2, 64, quarter, quarter)]
    assert net.num_features == 64
    (out.logits.sum() + sum(s.mean() for s in out.stages)).backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None]
    assert missing == []
    for alpha in net.arch_parameters():
        assert alpha.grad.abs().sum(dim=0).min() > 0, "every primitive's alpha column, none included, gets a gradient"


def test_supernet_imagenet_stem():
    torch.manual_seed(0)
    net = make_space(stem="imagenet", layers=3).supernet()
    out = net.forward_stages(torch.randn(2, 3, 32, 32))
    assert out.logits.shape == (2, NUM_CLASSES)
    assert stage_shapes(out) == [(2, 32, 2, 2), (2, 64, 1, 1), (2, 64, 1, 1)]
    out.logits.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_supernet_forward_returns_logits():
    torch.manual_seed(0)
    net = make_space().supernet().eval()
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(net(x), net.forward_stages(x).logits)


def test_arch_and_weight_parameters_are_disjoint_and_cover_everything():
    net = make_space().supernet()
    arch = {id(p) for p in net.arch_parameters()}
    weights = {id(p) for p in net.weight_parameters()}
    assert len(arch) == 2
    assert arch.isdisjoint(weights)
    assert arch | weights == {id(p) for p in net.parameters()}
    assert len(net.weight_parameters()) == len(list(net.parameters())) - 2


def test_alphas_shapes_and_order():
    net = make_space().supernet()
    alphas = net.alphas()
    assert list(alphas) == ["normal", "reduce"]
    assert alphas["normal"].shape == alphas["reduce"].shape == (14, 8)
    assert alphas["normal"] is net.alphas_normal and alphas["reduce"] is net.alphas_reduce
    assert net.primitives == DARTS_PRIMITIVES
    assert net.edges == cell_edges(4)
    assert net.alphas_normal.abs().max() < 0.01


def test_mixed_op_is_the_weighted_sum_of_its_ops():
    torch.manual_seed(0)
    mixed = MixedOp(DARTS_PRIMITIVES, 4, 1).eval()
    x = torch.randn(2, 4, 6, 6)
    weights = torch.softmax(torch.randn(len(DARTS_PRIMITIVES)), dim=0)
    expected = sum(weights[i] * op(x) for i, op in enumerate(mixed.ops))
    torch.testing.assert_close(mixed(x, weights), expected)
    one_hot = torch.zeros(len(DARTS_PRIMITIVES))
    one_hot[DARTS_PRIMITIVES.index("sep_conv_3x3")] = 1.0
    torch.testing.assert_close(mixed(x, one_hot), mixed.ops[DARTS_PRIMITIVES.index("sep_conv_3x3")](x))
    assert mixed.computed == list(range(1, len(DARTS_PRIMITIVES)))
    pool = mixed.ops[DARTS_PRIMITIVES.index("max_pool_3x3")]
    assert isinstance(pool[1], torch.nn.BatchNorm2d) and not pool[1].affine


def test_supernet_with_custom_primitives():
    torch.manual_seed(0)
    net = make_space(primitives=["none", "skip_connect", "sep_conv_3x3"], nodes=2).supernet()
    assert net.alphas_normal.shape == (5, 3)
    out = net.forward_stages(torch.randn(2, 3, 8, 8))
    assert stage_shapes(out) == [(2, 16, 4, 4), (2, 32, 2, 2), (2, 32, 2, 2)]


def test_supernet_alphas_discretize_into_a_buildable_genotype():
    torch.manual_seed(0)
    space = make_space()
    net = space.supernet()
    with torch.no_grad():
        net.alphas_normal[:, DARTS_PRIMITIVES.index("dil_conv_3x3")] = 1.0
    nodes = build("discretizers", "topk")(net.alphas(), space.edges, space.primitives)
    found = space.genotype(nodes)
    assert found.normal_concat == found.reduce_concat == (2, 3, 4, 5)
    assert set(op for op, _ in found.normal) == {"dil_conv_3x3"}
    out = space.discrete(found).forward_stages(torch.randn(2, 3, 8, 8))
    assert out.logits.shape == (2, NUM_CLASSES)


# --- discrete network ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_discrete_network_for_published_genotypes(name):
    torch.manual_seed(0)
    net = make_space().discrete(PUBLISHED[name], auxiliary=True)
    x = torch.randn(2, 3, 32, 32)
    net.train()
    out = net.forward_stages(x)
    assert out.logits.shape == (2, NUM_CLASSES)
    assert out.aux_logits is not None and out.aux_logits.shape == (2, NUM_CLASSES)
    assert stage_shapes(out) == [(2, 32, 16, 16), (2, 64, 8, 8), (2, 64, 8, 8)]
    (out.logits.sum() + out.aux_logits.sum()).backward()
    assert all(p.grad is not None for p in net.parameters())
    net.eval()
    with torch.no_grad():
        out = net.forward_stages(x)
    assert out.aux_logits is None
    assert out.logits.shape == (2, NUM_CLASSES)


def test_discrete_network_has_exactly_the_genotypes_ops():
    net = make_space().discrete(PUBLISHED["DARTS_V2"])
    for cell in net.cells:
        cell_type = "reduce" if cell.reduction else "normal"
        assert len(cell.ops) == 8
        expected = sorted(op for op, _ in getattr(PUBLISHED["DARTS_V2"], cell_type))
        assert sorted(k.split("_", 2)[2] for k in cell.ops) == expected


def test_discrete_network_imagenet_stem():
    torch.manual_seed(0)
    net = make_space(stem="imagenet").discrete(PUBLISHED["CDARTS_IMAGENET"], layers=3)
    out = net.forward_stages(torch.randn(2, 3, 32, 32))
    assert stage_shapes(out) == [(2, 32, 2, 2), (2, 64, 1, 1), (2, 64, 1, 1)]


def test_discrete_network_refuses_another_genotype():
    net = make_space().discrete(PUBLISHED["DARTS_V2"])
    with pytest.raises(ValueError, match="has no candidate"):
        net.select(PUBLISHED["PDARTS"])
    with pytest.raises(ValueError, match="needs a genotype"):
        DartsNetwork(None, NUM_CLASSES)


def test_repeated_edge_is_refused():
    twice = genotype([[("sep_conv_3x3", 0), ("sep_conv_3x3", 0)]] * 4, [[("sep_conv_3x3", 0), ("sep_conv_3x3", 1)]] * 4)
    with pytest.raises(ValueError, match="node 2 uses \\('sep_conv_3x3', 0\\) twice"):
        make_space().discrete(twice)


def test_drop_path():
    torch.manual_seed(0)
    net = make_space().discrete(PUBLISHED["CDARTS_CIFAR"]).train()
    x = torch.randn(4, 3, 8, 8)
    net.drop_path_prob = 0.0
    assert torch.equal(net(x), net(x))
    net.drop_path_prob = 0.3
    assert not torch.equal(net(x), net(x))
    net.eval()
    assert torch.equal(net(x), net(x))


# --- weight-shared evaluation network E ----------------------------------------------------------------------------


def test_shared_network_needs_a_selection():
    net = make_space().eval_network()
    with pytest.raises(RuntimeError, match="select a genotype"):
        net(torch.randn(2, 3, 8, 8))


def test_shared_network_stages_match_the_supernet():
    torch.manual_seed(0)
    space = make_space(layers=5, eval_layers=8)
    x = torch.randn(2, 3, 16, 16)
    supernet_stages = stage_shapes(space.supernet().forward_stages(x))
    net = space.eval_network(PUBLISHED["CDARTS_CIFAR"])
    assert len(net.cells) == 8
    out = net.forward_stages(x)
    assert stage_shapes(out) == supernet_stages == [(2, 32, 8, 8), (2, 64, 4, 4), (2, 64, 4, 4)]
    assert out.aux_logits is None


def test_shared_network_pool_holds_every_candidate():
    net = make_space().eval_network(PUBLISHED["DARTS_V2"])
    assert all(len(cell.ops) == 14 * len(DARTS_PRIMITIVES) for cell in net.cells)
    net.select(PUBLISHED["PDARTS"])
    assert net.genotype is PUBLISHED["PDARTS"]


def selected_prefixes(net: DartsNetwork) -> set[str]:
    """State-dict prefixes of the pool modules the current genotype uses."""
    return {f"cells.{i}.ops.{key}." for i, cell in enumerate(net.cells) for node in cell.selected for key, _ in node}


def entries(state: dict[str, torch.Tensor], prefixes: set[str]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if any(k.startswith(p) for p in prefixes)}


def snapshot(net: DartsNetwork) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def train_step(net, optimizer, genotype, x, y) -> None:
    net.select(genotype)
    net.train()
    optimizer.zero_grad()
    F.cross_entropy(net(x), y).backward()
    optimizer.step()


def assert_same(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert actual.keys() == expected.keys()
    changed = [k for k in expected if not torch.equal(actual[k], expected[k])]
    assert changed == []


def test_weight_sharing_keeps_each_genotypes_modules():
    torch.manual_seed(0)
    net = make_space().eval_network()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, NUM_CLASSES, (4,))

    train_step(net, optimizer, GENOTYPE_A, x, y)
    a_prefixes = selected_prefixes(net)
    net.eval()
    with torch.no_grad():
        out_a = net(x)
    after_a = snapshot(net)
    a_state = entries(after_a, a_prefixes)
    assert any(k.endswith("num_batches_tracked") and v == 1 for k, v in a_state.items())

    train_step(net, optimizer, GENOTYPE_B, x, y)
    b_prefixes = selected_prefixes(net)
    assert a_prefixes.isdisjoint(b_prefixes)
    net.select(GENOTYPE_A)
    after_b = snapshot(net)

    assert_same(entries(after_b, a_prefixes), a_state)
    b_changed = [k for k, v in entries(after_b, b_prefixes).items() if not torch.equal(v, after_a[k])]
    assert any(k.endswith("running_mean") for k in b_changed) and any(k.endswith(".weight") for k in b_changed)
    shared = {k for k in after_a if ".ops." not in k}
    assert any(not torch.equal(after_b[k], after_a[k]) for k in shared), "stem, preprocessing, classifier are trained"

    net.load_state_dict({**after_b, **{k: after_a[k] for k in shared}})
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), out_a)


def test_weight_sharing_with_overlapping_genotypes():
    torch.manual_seed(0)
    net = make_space().eval_network()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, NUM_CLASSES, (4,))
    a, b = PUBLISHED["DARTS_V2"], PUBLISHED["CDARTS_CIFAR"]

    train_step(net, optimizer, a, x, y)
    a_prefixes = selected_prefixes(net)
    after_a = snapshot(net)
    train_step(net, optimizer, b, x, y)
    b_prefixes = selected_prefixes(net)
    net.select(a)
    after_b = snapshot(net)

    only_a, both = a_prefixes - b_prefixes, a_prefixes & b_prefixes
    assert only_a and both
    assert_same(entries(after_b, only_a), entries(after_a, only_a))
    assert all(not torch.equal(after_b[k], after_a[k]) for k in entries(after_a, both) if k.endswith("running_mean"))


# --- stage taps ------------------------------------------------------------------------------------------------------


def _cell_outputs(net) -> list[torch.Tensor]:
    outputs = []
    for cell in net.cells:
        cell.register_forward_hook(lambda module, args, out: outputs.append(out))
    return outputs


@pytest.mark.parametrize("shared", [False, True])
def test_stages_are_read_after_the_reduction_cells_by_default(shared):
    torch.manual_seed(0)
    space = build("spaces", {"type": "darts", "channels": 16, "layers": 8, "eval_layers": 20}, 10, 3)
    net = space.eval_network(PUBLISHED["CDARTS_CIFAR"]) if shared else space.supernet()
    cells = _cell_outputs(net)
    with torch.no_grad():
        out = net.forward_stages(torch.randn(1, 3, 32, 32))
    assert stage_shapes(out) == [(1, 128, 16, 16), (1, 256, 8, 8), (1, 256, 8, 8)]
    first, second = reduction_indices(len(net.cells))
    assert net.cells[first].reduction and net.cells[second].reduction
    for stage, index in zip(out.stages, (first, second, len(net.cells) - 1), strict=True):
        assert torch.equal(stage, cells[index])


def test_stage_taps_before_reduction_reads_the_cell_before_it():
    torch.manual_seed(0)
    space = build("spaces", {"type": "darts", "channels": 4, "layers": 5, "eval_layers": 8,
                             "stage_taps": "before_reduction"}, 10, 3)
    for net in (space.supernet(), space.eval_network(PUBLISHED["DARTS_V2"])):
        cells = _cell_outputs(net)
        with torch.no_grad():
            out = net.forward_stages(torch.randn(2, 3, 16, 16))
        assert stage_shapes(out) == [(2, 16, 16, 16), (2, 32, 8, 8), (2, 64, 4, 4)]
        first, second = reduction_indices(len(net.cells))
        for stage, index in zip(out.stages, (first - 1, second - 1, len(net.cells) - 1), strict=True):
            assert torch.equal(stage, cells[index])


def test_unknown_stage_taps_is_refused():
    with pytest.raises(ValueError, match="stage_taps must be 'after_reduction' or 'before_reduction', got 'middle'"):
        DartsNetwork(PUBLISHED["DARTS_V2"], 10, channels=4, layers=5, stage_taps="middle")
