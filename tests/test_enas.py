"""ENAS: the controller samples valid cells in every space, REINFORCE moves it toward rewarded choices, whole runs."""
from __future__ import annotations

import pytest
import torch
from sampling_helpers import (
    SPACES,
    assert_resumes_after_sigkill,
    assert_runs_two_epochs,
    assert_two_processes_agree,
    context,
    strategy,
)

from cdarts.spaces.paths import OFF
from cdarts.strategies.enas import Rollout
from cdarts.strategies.loop import Meter


@pytest.mark.parametrize("space", list(SPACES))
def test_the_controller_samples_a_valid_cell_for_every_space(space):
    enas = strategy("enas", space)
    generator = torch.Generator().manual_seed(0)
    built = enas.ctx.space
    for _ in range(10):
        path, log_prob, entropy = enas.controller(generator)
        assert set(path) == set(built.cell_types)
        for cell, choice in enas.choices.items():
            for node in choice.nodes:
                kept = [row for row in node if path[cell][row] != OFF]
                assert len(kept) == (len(node) if choice.keep is None else choice.keep)
                assert all(path[cell][row] in choice.ops for row in kept)
        assert log_prob.item() < 0 and entropy.item() > 0 and log_prob.requires_grad
        enas.candidate = path
        network = built.discrete(enas.genotype())
        assert network(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    assert enas.controller.attention is None if space == "nas-bench-201" else enas.controller.attention is not None


def first_op_probability(controller, op: int) -> float:
    """The exact probability that the first decision (edge 0's op) is ``op``: tanh_constant * tanh(logits / T)."""
    with torch.no_grad():
        h = Rollout(controller, torch.Generator()).step(controller.start)
        logits = controller.tanh_constant * torch.tanh(controller.op_head(h).view(-1) / controller.temperature)
        return torch.softmax(logits, dim=0)[op].item()


def test_reinforce_moves_probability_toward_a_rewarded_choice():
    enas = strategy("enas", "nas-bench-201", controller_optimizer={"type": "adam", "lr": 0.05, "betas": [0.0, 0.999]})
    generator = torch.Generator().manual_seed(0)
    before = first_op_probability(enas.controller, 3)
    for _ in range(10):
        samples = [enas.controller(generator) for _ in range(8)]
        rewards = [float(path["cell"][0] == 3) for path, _, _ in samples]
        enas.ctl_opt.zero_grad()
        enas.reinforce(samples, rewards, Meter()).backward()
        enas.ctl_opt.step()
    after = first_op_probability(enas.controller, 3)
    assert before < 0.25 and after > 0.6, (before, after)
    draws = [enas.sample(generator)["cell"][0] for _ in range(100)]
    assert draws.count(3) > 45, "the sampler follows the moved distribution"


def test_reinforce_loss_uses_the_moving_average_baseline_and_the_entropy_bonus():
    enas = strategy("enas", "nas-bench-201", entropy_weight=0.1, baseline_decay=0.9)
    log_probs = [torch.tensor(-1.0, requires_grad=True), torch.tensor(-2.0, requires_grad=True)]
    samples = [({}, log_probs[0], torch.tensor(3.0)), ({}, log_probs[1], torch.tensor(1.0))]
    meter = Meter()
    loss = enas.reinforce(samples, [0.5, 1.0], meter)
    rewards = [0.5 + 0.1 * 3.0, 1.0 + 0.1 * 1.0]
    baseline = rewards[0] - 0.1 * (rewards[0] - rewards[1])  # starts at the first reward, then moves 10% per reward
    assert enas.baseline == pytest.approx(baseline)
    assert loss.item() == pytest.approx((1.0 * 0.0 + 2.0 * (rewards[1] - baseline)) / 2)
    assert meter.mean("reward") == pytest.approx(sum(rewards) / 2)


def test_an_epoch_trains_weights_and_controller_and_leaves_bn_statistics_to_the_weight_steps():
    ctx = context("nas-bench-201")
    enas = strategy("enas", ctx=ctx)
    controller = [p.detach().clone() for p in enas.controller.parameters()]
    after_weights, before_select = [], []
    weight_step, select = enas.weight_step, enas.select
    enas.weight_step = lambda *args: weight_step(*args) or after_weights.append(
        [b.clone() for b in enas.search_net.buffers()])
    enas.select = lambda *args: before_select.append([b.clone() for b in enas.search_net.buffers()]) or select(*args)
    metrics = enas.run_epoch(0)
    assert len(after_weights) == 2, "a weight step per train batch"
    assert all(torch.equal(a, b) for a, b in zip(after_weights[-1], before_select[0], strict=True)), \
        "the controller's rewards use batch statistics and leave the running ones as the weight steps left them"
    assert all(not torch.equal(a, p) for a, p in zip(controller, enas.controller.parameters(), strict=True))
    assert {"train_loss", "reward", "controller_acc", "baseline", "candidates", "best_score"} <= set(metrics)
    assert set(enas.modules()) == {"search", "controller"} and set(enas.optimizers()) == {"w", "controller"}
    assert enas.state() == {"candidate": {"cell": list(enas.candidate["cell"])}, "baseline": enas.baseline}


@pytest.mark.parametrize("space", list(SPACES))
def test_enas_runs_two_epochs_on_digits(space, tmp_path):
    assert_runs_two_epochs("enas", space, tmp_path)


def test_enas_resumes_after_sigkill_as_the_uninterrupted_run(tmp_path):
    assert_resumes_after_sigkill("enas", tmp_path)


def test_enas_in_two_processes_ends_with_equal_controllers(tmp_path):
    ranks = assert_two_processes_agree("enas", tmp_path)
    assert ranks[0]["state"]["baseline"] is not None
