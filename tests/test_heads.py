"""Distillation heads: any stage shape in, ``(batch, num_classes)`` out, differentiable, input untouched."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import cdarts.losses  # noqa: F401 - registers the heads
from cdarts.config import build, validate_component
from cdarts.losses.heads import AuxClassifierHead
from cdarts.registry import heads

HEAD_NAMES = heads.names()


def test_heads_are_registered():
    assert {"aux_classifier", "pooled_linear"} <= set(HEAD_NAMES)


@pytest.mark.parametrize("name", HEAD_NAMES)
@pytest.mark.parametrize("size", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("channels", [3, 64])
def test_head_output_shape_for_any_spatial_size(name, size, channels):
    head = build("heads", validate_component("heads", name), channels, 10)
    out = head(torch.randn(2, channels, size, size))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", HEAD_NAMES)
@pytest.mark.parametrize("shape", [(1, 1), (2, 5), (7, 3)])
def test_head_accepts_non_square_maps(name, shape):
    head = build("heads", name, 8, 5)
    assert head(torch.randn(3, 8, *shape)).shape == (3, 5)


@pytest.mark.parametrize("name", HEAD_NAMES)
@pytest.mark.parametrize("size", [1, 8])
def test_head_backward_reaches_input_and_parameters(name, size):
    head = build("heads", name, 16, 10)
    x = torch.randn(4, 16, size, size, requires_grad=True)
    head(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in head.parameters())


@pytest.mark.parametrize("name", HEAD_NAMES)
def test_head_does_not_modify_stage_output_in_place(name):
    head = build("heads", name, 8, 10)
    x = torch.randn(2, 8, 4, 4)
    before = x.clone()
    head(x)
    assert torch.equal(x, before)


def test_aux_classifier_matches_darts_layout_on_large_maps():
    torch.manual_seed(0)
    head = AuxClassifierHead(16, 10, hidden=12, features=20, pool_kernel=5)
    darts = nn.Sequential(
        nn.ReLU(),
        nn.AvgPool2d(5, stride=2, padding=0, count_include_pad=False),
        head.conv1,
        head.bn1,
        nn.ReLU(),
        head.conv2,
        head.bn2,
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        head.classifier,
    )
    x = torch.randn(4, 16, 8, 8)
    torch.testing.assert_close(head(x), darts(x))


def test_aux_classifier_config_keys():
    spec = validate_component("heads", {"type": "aux_classifier", "pool_kernel": 6})
    assert spec == {"type": "aux_classifier", "hidden": 128, "features": 768, "pool_kernel": 6, "pool_stride": 2}
    head = build("heads", spec, 32, 100)
    assert head.conv1.out_channels == 128 and head.conv2.out_channels == 768 and head.classifier.out_features == 100


def test_pooled_linear_is_global_pool_then_linear():
    head = build("heads", "pooled_linear", 6, 4)
    x = torch.randn(2, 6, 3, 3)
    torch.testing.assert_close(head(x), head.fc(x.mean((2, 3))))
