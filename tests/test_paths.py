"""One path through a supernet (cdarts.spaces.paths): what every space offers the sampling strategies."""
from __future__ import annotations

import pytest
import torch
from sampling_helpers import SPACES

import cdarts  # noqa: F401 - registers the components
from cdarts.config import build
from cdarts.errors import ConfigError
from cdarts.genotypes import DartsGenotype, parse_arch_string
from cdarts.spaces.paths import OFF, cell_choices, check_path, nodes_from_path, path_from_nodes
from cdarts.strategies.sampling import sample_path


def space_of(name: str, **changes):
    return build("spaces", {**SPACES[name], **changes}, 10, 3)


def choices_of(space):
    discretizer = build("discretizers", space.default_discretizer)
    return cell_choices(space, discretizer.k, discretizer.exclude)


def test_choices_list_each_node_s_edges_and_the_ops_a_genotype_may_use():
    nb201 = choices_of(space_of("nas-bench-201"))
    assert list(nb201) == ["cell"]
    assert nb201["cell"].nodes == ((0,), (1, 2), (3, 4, 5)) and nb201["cell"].sources == (0, 0, 1, 0, 1, 2)
    assert nb201["cell"].keep is None and nb201["cell"].ops == (0, 1, 2, 3, 4)
    darts = choices_of(space_of("darts"))
    assert list(darts) == ["normal", "reduce"]
    assert darts["normal"].nodes == ((0, 1), (2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12, 13))
    assert darts["normal"].keep == 2 and darts["normal"].ops == (1, 2, 3, 4, 5, 6, 7)  # "none" excluded


def test_choices_refuse_more_kept_edges_than_a_node_has():
    with pytest.raises(ConfigError, match="k=3 but a node of this space has only 2 incoming edges"):
        cell_choices(space_of("darts"), 3)


@pytest.mark.parametrize("space", list(SPACES))
def test_one_path_is_the_weighted_sum_under_a_one_hot_alpha(space):
    """Only the path's ops run, and they compute what the supernet's weighted sum computes when alpha puts all
    weight on them (OFF edges: all weight on ``none``, which adds zero)."""
    torch.manual_seed(0)
    built = space_of(space)
    net = built.supernet()
    path = sample_path(choices_of(built), torch.Generator().manual_seed(3))
    none = built.primitives.index("none")
    with torch.no_grad():
        for cell, alpha in net.alphas().items():
            index = torch.tensor([none if op == OFF else op for op in path[cell]])
            alpha.copy_(torch.full_like(alpha, -1e4).scatter(1, index[:, None], 0.0))
    x = torch.randn(4, 3, 8, 8)
    weighted = net(x)
    with net.one_path(path):
        one = net(x)
    assert net.path is None, "the weighted sum is back after the block"
    torch.testing.assert_close(one, weighted, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("genotype", [
    parse_arch_string("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"),
    DartsGenotype([("sep_conv_3x3", 1), ("skip_connect", 0), ("dil_conv_3x3", 2), ("max_pool_3x3", 0),
                   ("sep_conv_5x5", 3), ("avg_pool_3x3", 1), ("skip_connect", 4), ("sep_conv_3x3", 2)], [2, 3, 4, 5],
                  [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
                   ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)], [2, 3, 4, 5]),
], ids=["nas-bench-201", "darts"])
def test_a_genotype_round_trips_through_its_path(genotype):
    space = space_of(genotype.space)
    nodes = {cell: genotype.nodes(cell) for cell in space.cell_types}
    path = path_from_nodes(nodes, space.edges, space.primitives)
    assert all(len(index) == len(space.edges) for index in path.values())
    back = space.genotype(nodes_from_path(path, space.edges, space.primitives))
    assert {cell: sorted(map(sorted, back.nodes(cell))) for cell in space.cell_types} == \
        {cell: sorted(map(sorted, genotype.nodes(cell))) for cell in space.cell_types}


def test_a_path_that_does_not_fit_the_supernet_is_refused_naming_it():
    alphas = {"normal": torch.zeros(14, 8), "reduce": torch.zeros(14, 8)}
    with pytest.raises(ValueError, match=r"a path needs the cell types \['normal', 'reduce'\], got \['cell'\]"):
        check_path({"cell": (0,) * 6}, alphas)
    with pytest.raises(ValueError, match=r"cell 'reduce': a path needs 14 op indices in \[-1, 8\)"):
        check_path({"normal": (0,) * 14, "reduce": (8,) * 14}, alphas)
    with pytest.raises(ValueError, match="cell 'normal': path weights must be 14x8, got \\(14, 7\\)"):
        check_path({"normal": (0,) * 14, "reduce": (0,) * 14}, alphas, {"normal": torch.zeros(14, 7)})


def test_a_darts_node_without_an_edge_is_refused():
    net = space_of("darts").supernet()
    path = {"normal": (OFF,) * 14, "reduce": (1,) * 14}
    with pytest.raises(ValueError, match="node 2 of the path has no edge"), net.one_path(path):
        net(torch.randn(2, 3, 8, 8))
