"""Discretizers: DARTS top-k (no ``none``, strongest edges first) and NAS-Bench-201 argmax on hand-set alphas."""
from __future__ import annotations

import pytest
import torch

from cdarts.config import ConfigError, build, validate_component
from cdarts.discretizers import TopK
from cdarts.ops import DARTS_PRIMITIVES, NB201_PRIMITIVES
from cdarts.registry import discretizers

EDGES = [(i, node) for node in range(2, 6) for i in range(node)]
"""``(input, node)`` of the 14 DARTS edges in alpha-row order."""
NB201_EDGES = [(i, node) for node in range(1, 4) for i in range(node)]
P = {name: i for i, name in enumerate(DARTS_PRIMITIVES)}


def darts_alphas(choices: dict[tuple[int, int], tuple[str, float]], none: float = 0.0) -> torch.Tensor:
    """Alphas with ``op`` at logit ``value`` on the given ``(input, node)`` edges, ``none`` at ``none``, rest 0."""
    alpha = torch.zeros(len(EDGES), len(DARTS_PRIMITIVES))
    alpha[:, P["none"]] = none
    for row, edge in enumerate(EDGES):
        if edge in choices:
            op, value = choices[edge]
            alpha[row, P[op]] = value
    return alpha


NORMAL = {
    (0, 2): ("sep_conv_3x3", 3.0),
    (1, 2): ("skip_connect", 5.0),
    (0, 3): ("dil_conv_3x3", 1.0),
    (1, 3): ("max_pool_3x3", 4.0),
    (2, 3): ("sep_conv_5x5", 2.0),
    (1, 4): ("avg_pool_3x3", 2.0),
    (3, 4): ("dil_conv_5x5", 6.0),
    (0, 5): ("sep_conv_3x3", 1.5),
    (2, 5): ("skip_connect", 2.5),
    (4, 5): ("sep_conv_5x5", 3.5),
}


def test_registered():
    assert {"topk", "argmax"} <= set(discretizers.names())
    assert build("discretizers", {"type": "topk"}) == TopK(2, ("none",), cost={"type": "macs"})
    assert build("discretizers", {"type": "argmax"}) == TopK(None, (), cost={"type": "macs"})


def test_topk_picks_the_two_strongest_edges_per_node_in_descending_order():
    alpha = darts_alphas(NORMAL)
    result = build("discretizers", "topk")({"normal": alpha}, EDGES, DARTS_PRIMITIVES)
    assert result == {
        "normal": [
            [("skip_connect", 1), ("sep_conv_3x3", 0)],
            [("max_pool_3x3", 1), ("sep_conv_5x5", 2)],
            [("dil_conv_5x5", 3), ("avg_pool_3x3", 1)],
            [("sep_conv_5x5", 4), ("skip_connect", 2)],
        ]
    }


def test_topk_excludes_none_even_when_it_wins():
    alpha = darts_alphas(NORMAL, none=10.0)
    result = build("discretizers", "topk")({"normal": alpha, "reduce": alpha.clone()}, EDGES, DARTS_PRIMITIVES)
    assert result["normal"] == result["reduce"]
    assert all(op != "none" for node in result["normal"] for op, _ in node)
    assert result["normal"][0] == [("skip_connect", 1), ("sep_conv_3x3", 0)]


def test_topk_ranks_edges_by_softmax_weight_not_logit():
    """A large ``none`` logit on an edge shrinks the softmax weight of its best op, so that edge ranks lower."""
    alpha = darts_alphas({(0, 2): ("sep_conv_3x3", 3.0), (1, 2): ("sep_conv_5x5", 2.0)})
    alpha[0, P["none"]] = 8.0
    nodes = build("discretizers", "topk")({"normal": alpha}, EDGES, DARTS_PRIMITIVES)["normal"]
    assert nodes[0] == [("sep_conv_5x5", 1), ("sep_conv_3x3", 0)]


def test_topk_k_is_configurable():
    alpha = darts_alphas(NORMAL)
    one = build("discretizers", {"type": "topk", "k": 1})({"normal": alpha}, EDGES, DARTS_PRIMITIVES)["normal"]
    assert one == [[("skip_connect", 1)], [("max_pool_3x3", 1)], [("dil_conv_5x5", 3)], [("sep_conv_5x5", 4)]]
    with pytest.raises(ValueError, match="k=3 but node 2 has only 2 incoming edges"):
        TopK(3, ("none",))({"normal": alpha}, EDGES, DARTS_PRIMITIVES)


def test_topk_exclude_is_configurable():
    alpha = darts_alphas(NORMAL)
    no_skip = build("discretizers", {"type": "topk", "exclude": ["none", "skip_connect"]})
    nodes = no_skip({"normal": alpha}, EDGES, DARTS_PRIMITIVES)["normal"]
    assert all(op not in ("none", "skip_connect") for node in nodes for op, _ in node)
    assert nodes[0][0] == ("sep_conv_3x3", 0)


def test_topk_config_is_validated():
    with pytest.raises(ConfigError) as info:
        validate_component("discretizers", {"type": "topk", "k": "2", "exclude": ["nonee"]}, "discretizer")
    assert info.value.problems[0] == "discretizer.k: expected int, got str '2'"
    assert info.value.problems[1].startswith("discretizer.exclude[0]: unknown op 'nonee'")
    with pytest.raises(ConfigError) as info:
        validate_component("discretizers", {"type": "topk", "k": 0}, "discretizer")
    assert info.value.problems == ["discretizer.k: expected at least 1, got 0"]


def test_everything_excluded_raises():
    with pytest.raises(ValueError, match="every primitive is excluded"):
        TopK(2, ("none", "skip_connect"))({"normal": torch.zeros(1, 2)}, [(0, 2)], ["none", "skip_connect"])


def test_argmax_keeps_none_when_it_wins_and_every_edge():
    alpha = torch.zeros(len(NB201_EDGES), len(NB201_PRIMITIVES))
    winners = ["nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none"]
    for row, op in enumerate(winners):
        alpha[row, NB201_PRIMITIVES.index(op)] = 1.0 + row
    nodes = build("discretizers", "argmax")({"cell": alpha}, NB201_EDGES, NB201_PRIMITIVES)["cell"]
    assert nodes == [
        [("nor_conv_3x3", 0)],
        [("none", 0), ("skip_connect", 1)],
        [("avg_pool_3x3", 0), ("nor_conv_1x1", 1), ("none", 2)],
    ]


def test_argmax_keeps_input_order_not_weight_order():
    alpha = torch.zeros(len(NB201_EDGES), len(NB201_PRIMITIVES))
    alpha[3, 2], alpha[4, 3], alpha[5, 4] = 1.0, 2.0, 3.0
    nodes = TopK(None, ())({"cell": alpha}, NB201_EDGES, NB201_PRIMITIVES)["cell"]
    assert [source for _, source in nodes[2]] == [0, 1, 2]


def test_discretizer_ignores_gradients_and_dtype():
    alpha = darts_alphas(NORMAL).half().requires_grad_()
    nodes = TopK(2, ("none",))({"normal": alpha}, EDGES, DARTS_PRIMITIVES)["normal"]
    assert nodes[1] == [("max_pool_3x3", 1), ("sep_conv_5x5", 2)]
