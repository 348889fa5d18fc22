"""GDAS: one op per edge forward, the straight-through gradient to alpha, the temperature schedule, whole runs."""
from __future__ import annotations

from collections import Counter

import pytest
import torch
from sampling_helpers import (
    SPACES,
    assert_resumes_after_sigkill,
    assert_runs_two_epochs,
    assert_two_processes_agree,
    strategy,
)

from cdarts.spaces.darts.supernet import MixedOp
from cdarts.strategies.loop import Meter
from cdarts.strategies.sampling import gumbel_hard


def count_op_calls(net: torch.nn.Module) -> tuple[Counter, list]:
    """Hooks on every candidate op of every edge: calls per (edge module, op index)."""
    calls: Counter = Counter()
    handles = []
    for edge in (m for m in net.modules() if isinstance(m, MixedOp)):
        for index, op in enumerate(edge.ops):
            handles.append(op.register_forward_hook(lambda *_, key=(id(edge), index): calls.update([key])))
    return calls, handles


@pytest.mark.parametrize("space", list(SPACES))
def test_a_step_runs_exactly_the_sampled_op_of_every_edge(space):
    gdas = strategy("gdas", space)
    net = gdas.search_net
    path, weights = gumbel_hard(net.alphas(), 10.0, torch.Generator().manual_seed(0))
    calls, handles = count_op_calls(net)
    with net.one_path(path, weights):
        net(torch.randn(2, 3, 8, 8))
    for handle in handles:
        handle.remove()
    expected = Counter()
    for cell in net.cells:
        kind = "cell" if space == "nas-bench-201" else ("reduce" if cell.reduction else "normal")
        expected.update((id(edge), path[kind][row]) for row, edge in enumerate(cell.edges))
    assert calls == expected, "one call per edge, of the sampled op, and nothing else"
    assert sum(calls.values()) == len(net.cells) * len(gdas.ctx.space.edges)


@pytest.mark.parametrize("space", list(SPACES))
def test_the_hard_sample_is_one_hot_forward_and_passes_the_gradient_to_every_alpha(space):
    gdas = strategy("gdas", space)
    net = gdas.search_net
    conv = gdas.ctx.space.primitives.index("nor_conv_3x3" if space == "nas-bench-201" else "sep_conv_3x3")
    with torch.no_grad():  # mostly convolutions: a path of none and pools can leave the output constant
        for alpha in net.arch_parameters():
            alpha[:, conv] += 3.0
    path, weights = gumbel_hard(net.alphas(), 1.0, torch.Generator().manual_seed(1))
    for cell, w in weights.items():
        assert torch.equal(w.detach().argmax(dim=-1), torch.tensor(path[cell]))
        one_hot = torch.nn.functional.one_hot(torch.tensor(path[cell]), w.shape[1]).float()
        torch.testing.assert_close(w.detach(), one_hot)
    x = torch.randn(4, 3, 8, 8)
    net.eval()  # BN on running statistics: the two passes below see the same normalisation
    with net.one_path(path, weights):
        weighted = net(x)
    with net.one_path(path):
        plain = net(x)
    torch.testing.assert_close(weighted, plain)
    weighted.logsumexp(dim=-1).sum().backward()
    for alpha in net.arch_parameters():
        assert alpha.grad is not None and torch.isfinite(alpha.grad).all()
        assert (alpha.grad != 0).all(), "the straight-through estimate reaches every op's alpha"


def test_alpha_step_moves_alpha_only_and_weight_step_moves_weights_only():
    gdas = strategy("gdas", "nas-bench-201")
    net, (x, y) = gdas.search_net, gdas.ctx.loader("val", 0)[0]
    alpha, weights = [p.detach().clone() for p in net.arch_parameters()], [
        p.detach().clone() for p in net.weight_parameters()]
    gdas.alpha_step(x, y, 5.0, torch.Generator().manual_seed(0), Meter())
    assert all((a != p.detach()).all() for a, p in zip(alpha, net.arch_parameters(), strict=True))
    assert all(torch.equal(w, p.detach()) for w, p in zip(weights, net.weight_parameters(), strict=True))
    metrics = gdas.run_epoch(0)
    assert metrics["tau"] == 10.0 and {"alpha_loss", "train_loss"} <= set(metrics)


def test_the_sampled_op_follows_softmax_alpha_whatever_the_temperature():
    alpha = torch.tensor([[2.0, 0.0, -1.0, 1.0]])
    generator = torch.Generator().manual_seed(0)
    for tau in (10.0, 0.1):
        counts = torch.bincount(torch.tensor([gumbel_hard({"cell": alpha}, tau, generator)[0]["cell"][0]
                                              for _ in range(2000)]), minlength=4)
        torch.testing.assert_close(counts / 2000, torch.softmax(alpha[0], dim=0), atol=0.04, rtol=0)


def test_temperature_falls_linearly_from_tau_max_to_tau_min():
    gdas = strategy("gdas", "nas-bench-201", epochs=5)
    assert [gdas.tau(e) for e in range(5)] == pytest.approx([10.0, 7.525, 5.05, 2.575, 0.1])
    with pytest.raises(ValueError, match="need 0 < tau_min <= tau_max, got tau_min=2.0 and tau_max=1.0"):
        strategy("gdas", "nas-bench-201", tau_max=1.0, tau_min=2.0)


@pytest.mark.parametrize("space", list(SPACES))
def test_gdas_runs_two_epochs_on_digits(space, tmp_path):
    assert_runs_two_epochs("gdas", space, tmp_path)


def test_gdas_resumes_after_sigkill_as_the_uninterrupted_run(tmp_path):
    assert_resumes_after_sigkill("gdas", tmp_path)


def test_gdas_in_two_processes_ends_with_equal_alphas(tmp_path):
    ranks = assert_two_processes_agree("gdas", tmp_path)
    assert ranks[0]["alphas"]["cell"] != [[0.0] * 5] * 6
