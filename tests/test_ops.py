"""Ops: every registered primitive keeps (or halves, at stride 2) the shape, trains, and builds search variants."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import cdarts.ops  # noqa: F401 - registers the primitives
from cdarts.ops import DARTS_PRIMITIVES, NB201_PRIMITIVES, build_op
from cdarts.ops.layers import DilConv, FactorizedReduce, ReLUConvBN, SepConv, Zero
from cdarts.registry import RegistryError, ops

OP_NAMES = ops.names()


pytestmark = pytest.mark.usefixtures("one_thread")


def test_primitive_lists_are_registered():
    assert DARTS_PRIMITIVES == (
        "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
        "dil_conv_5x5",
    )
    assert NB201_PRIMITIVES == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert set(DARTS_PRIMITIVES) | set(NB201_PRIMITIVES) <= set(OP_NAMES)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", OP_NAMES)
def test_op_shape_and_gradients(name, stride, affine):
    torch.manual_seed(0)
    op = build_op(name, 8, stride, affine)
    op.train()
    x = torch.randn(2, 8, 8, 8, requires_grad=True)
    out = op(x)
    assert out.shape == (2, 8, 8 // stride, 8 // stride)
    (out * torch.randn_like(out)).sum().backward()
    for param_name, param in op.named_parameters():
        assert param.grad is not None, param_name
        assert param.grad.abs().sum() > 0, param_name
    if name != "none":
        assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("stride", [1, 2])
def test_none_outputs_zeros(stride):
    out = build_op("none", 8, stride, True)(torch.randn(2, 8, 8, 8))
    assert out.shape == (2, 8, 8 // stride, 8 // stride)
    assert torch.count_nonzero(out) == 0


@pytest.mark.parametrize("name", OP_NAMES)
def test_search_variant_has_no_affine_bn(name):
    for stride in (1, 2):
        searched = build_op(name, 8, stride, affine=False)
        for module in searched.modules():
            if isinstance(module, nn.BatchNorm2d):
                assert not module.affine and module.weight is None and module.bias is None
        evaluated = build_op(name, 8, stride, affine=True)
        bns = [m for m in evaluated.modules() if isinstance(m, nn.BatchNorm2d)]
        assert all(bn.affine for bn in bns)
        bn_params = sum(2 * bn.num_features for bn in bns)
        assert count(evaluated) - count(searched) == bn_params


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "name, params",
    [
        ("none", 0),
        ("max_pool_3x3", 0),
        ("avg_pool_3x3", 0),
        ("sep_conv_3x3", 2 * (8 * 9 + 8 * 8 + 16)),
        ("sep_conv_5x5", 2 * (8 * 25 + 8 * 8 + 16)),
        ("dil_conv_3x3", 8 * 9 + 8 * 8 + 16),
        ("dil_conv_5x5", 8 * 25 + 8 * 8 + 16),
        ("nor_conv_1x1", 8 * 8 + 16),
        ("nor_conv_3x3", 8 * 8 * 9 + 16),
    ],
)
def test_parameter_counts(name, params):
    assert count(build_op(name, 8, 1, True)) == params


def test_structure_of_the_standard_ops():
    assert isinstance(build_op("skip_connect", 8, 1, True), nn.Identity)
    assert isinstance(build_op("skip_connect", 8, 2, True), FactorizedReduce)
    assert isinstance(build_op("sep_conv_3x3", 8, 2, True), SepConv)
    assert isinstance(build_op("dil_conv_3x3", 8, 1, True), DilConv)
    assert isinstance(build_op("nor_conv_3x3", 8, 1, True), ReLUConvBN)
    assert isinstance(build_op("none", 8, 2, True), Zero)
    sep = build_op("sep_conv_3x3", 8, 2, True)
    assert sep[0][1].stride == (2, 2) and sep[1][1].stride == (1, 1)
    dil = build_op("dil_conv_5x5", 8, 1, True)
    assert dil[1].dilation == (2, 2) and dil[1].padding == (4, 4) and dil[1].groups == 8
    avg = build_op("avg_pool_3x3", 8, 1, True)
    assert avg.count_include_pad is False


def test_avg_pool_excludes_padding():
    out = build_op("avg_pool_3x3", 1, 1, True)(torch.ones(1, 1, 4, 4))
    torch.testing.assert_close(out, torch.ones(1, 1, 4, 4))


def test_relu_is_not_in_place():
    x = -torch.ones(1, 8, 4, 4)
    for name in ("sep_conv_3x3", "dil_conv_3x3", "nor_conv_1x1", "skip_connect"):
        build_op(name, 8, 2 if name == "skip_connect" else 1, True)(x)
        assert torch.equal(x, -torch.ones(1, 8, 4, 4)), name


@pytest.mark.parametrize("size", [7, 5, 1])
def test_stride_two_rounds_odd_sizes_up_for_every_op(size):
    x = torch.randn(2, 8, size, size)
    shapes = {name: build_op(name, 8, 2, True)(x).shape for name in OP_NAMES}
    expected = (2, 8, (size + 1) // 2, (size + 1) // 2)
    assert all(shape == expected for shape in shapes.values()), shapes


def test_factorized_reduce_needs_even_channels():
    with pytest.raises(ValueError, match="even number of output channels, got 7"):
        FactorizedReduce(8, 7)


def test_factorized_reduce_sees_even_and_odd_pixels():
    reduce = FactorizedReduce(1, 2, affine=False).eval()
    nn.init.ones_(reduce.conv_1.weight)
    nn.init.ones_(reduce.conv_2.weight)
    odd = torch.zeros(1, 1, 4, 4)
    odd[0, 0, 1, 1] = 1.0
    out = reduce(odd)
    assert out[0, 0].sum() == 0
    torch.testing.assert_close(out[0, 1].sum(), torch.tensor(1.0), rtol=1e-4, atol=0)
    even = torch.zeros(1, 1, 4, 4)
    even[0, 0, 2, 2] = 1.0
    out = reduce(even)
    torch.testing.assert_close(out[0, 0].sum(), torch.tensor(1.0), rtol=1e-4, atol=0)
    assert out[0, 1].sum() == 0


def test_unknown_op_raises_with_names():
    with pytest.raises(RegistryError, match=r"unknown op 'sep_conv_3x4'; available: .*did you mean 'sep_conv_3x3'\?"):
        build_op("sep_conv_3x4", 8, 1, True)
