"""The registered optimizers: timm's, updating all tensors at once, with the same result as the per-tensor loop."""
from __future__ import annotations

import pytest
import torch
from timm.optim import create_optimizer_v2

from cdarts.config import build

TIMM_NAMES = {"sgd": "momentum", "adam": "adam", "adamw": "adamw"}


@pytest.mark.parametrize("name", sorted(TIMM_NAMES))
def test_foreach_update_equals_the_per_tensor_loop(name):
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(shape)) for shape in [(4, 3), (3,), (2, 2, 3, 3)]]
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    start = [p.detach().clone() for p in params]
    ours = build("optimizers", {"type": name, "lr": 0.05}, params)
    spec = {key: value for key, value in ours.defaults.items() if key in ("lr", "weight_decay", "eps", "momentum")}
    if "betas" in ours.defaults:
        spec["betas"] = ours.defaults["betas"]
    loop = create_optimizer_v2(twins, opt=TIMM_NAMES[name], foreach=False, **spec)
    assert ours.defaults["foreach"] is True
    for _ in range(3):
        for p, q in zip(params, twins, strict=True):
            p.grad = torch.sin(p.detach())
            q.grad = torch.sin(q.detach())
        ours.step()
        loop.step()
    for p, q, p0 in zip(params, twins, start, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
        assert (p - p0).abs().max() > 1e-3
