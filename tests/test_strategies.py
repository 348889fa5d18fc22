"""Search strategies: which parameters each step may change, optimizer membership, lambda' and the cycle's order.

The loss terms themselves are pinned in test_losses.py; here the question is who learns from them.
"""
from __future__ import annotations

import math

import pytest
import torch
from conftest import ROOT, cpu_runtime
from tqdm import tqdm

import cdarts  # noqa: F401 - registers the components
from cdarts.config import build
from cdarts.discretizers import topk
from cdarts.strategies.base import SearchContext
from cdarts.strategies.cdarts import CyclicSearch
from cdarts.strategies.darts import FirstOrderDarts
from cdarts.strategies.loop import Meter

SPLITS = ("train", "val", "val_eval", "test")
SPACE = {"type": "darts", "channels": 2, "layers": 3, "eval_layers": 4}


def make_context(calls: list | None = None, batches: int = 2, batch: int = 8) -> SearchContext:
    """A context over fixed random 8 px batches; ``calls`` records every ``loader(split, epoch, repeat)``."""
    generator = torch.Generator().manual_seed(0)
    data = {
        split: [(torch.randn(batch, 3, 8, 8, generator=generator), torch.randint(0, 10, (batch,), generator=generator))
                for _ in range(batches)]
        for split in SPLITS
    }

    def loader(split: str, epoch: int, repeat: int = 0) -> list:
        if calls is not None:
            calls.append((split, epoch, repeat))
        return data[split]

    space = build("spaces", SPACE, 10, 3)
    return SearchContext(space, topk(), cpu_runtime(), 10, torch.randn(1, 3, 8, 8), loader,
                         lambda batches, **kwargs: tqdm(batches, disable=True))


def make_strategy(ctx: SearchContext | None = None, **spec) -> CyclicSearch | FirstOrderDarts:
    torch.manual_seed(0)
    strategy = build("strategies", {"type": "cdarts", "epochs": 2, "pretrain_epochs": 0, **spec})
    strategy.setup(ctx or make_context())
    return strategy


def snapshot(params) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def changed(before: list[torch.Tensor], params) -> list[bool]:
    return [not torch.equal(b, p.detach()) for b, p in zip(before, list(params), strict=True)]


def batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(8, 3, 8, 8, generator=generator), torch.randint(0, 10, (8,), generator=generator)


def test_build_gives_cyclic_search_with_eval_network_and_distill_heads():
    strategy = make_strategy()
    assert isinstance(strategy, CyclicSearch)
    assert set(strategy.modules()) == {"search", "eval", "distill"}
    assert set(strategy.optimizers()) == {"w", "alpha", "e"}
    assert len(strategy.eval_net.cells) == SPACE["eval_layers"]
    assert strategy.eval_net.genotype == strategy.genotype()


def test_joint_step_changes_alpha_eval_net_and_heads_but_not_search_weights():
    strategy = make_strategy(share_stem=False)
    s_net, e_net, distill = strategy.search_net, strategy.eval_net, strategy.distill
    weights, alpha = snapshot(s_net.weight_parameters()), snapshot(s_net.arch_parameters())
    e_before, heads = snapshot(e_net.parameters()), snapshot(distill.parameters())
    meter = Meter()
    strategy.joint_step(*batch(), 4.0, 1.0, meter)

    assert not any(changed(weights, s_net.weight_parameters()))
    for before, a in zip(alpha, s_net.arch_parameters(), strict=True):
        assert (before != a.detach()).all(), "every alpha entry gets a gradient from CE(S) and the KD term"
    assert all(changed(heads, distill.parameters())), "the heads learn in step A unless fixed"
    e_changed = changed(e_before, e_net.parameters())
    with_grad = [p.grad is not None for p in e_net.parameters()]
    assert e_changed == with_grad, "exactly E's parameters on the selected genotype move"
    assert e_changed[-1] and any(e_changed[:-1])
    assert {"joint_ce_s", "joint_ce_e", "joint_kd", "joint_reg", "joint_loss"} <= set(meter.meters)


def test_shared_stem_is_one_module_trained_by_both_steps():
    strategy = make_strategy()
    s_net, e_net = strategy.search_net, strategy.eval_net
    assert e_net.stem is s_net.stem
    stem = list(s_net.stem.parameters())
    assert {id(p) for p in stem}.isdisjoint(id(p) for p in strategy.search_only)
    others = snapshot(strategy.search_only)
    before = snapshot(stem)
    strategy.joint_step(*batch(), 4.0, 1.0, Meter())
    assert all(changed(before, stem)), "step A trains the shared stem as part of E"
    assert not any(changed(others, strategy.search_only))
    before = snapshot(stem)
    strategy.weight_step(*batch(2), Meter())
    assert all(changed(before, stem)), "step B trains it as part of S"


def test_separate_stems_when_not_shared():
    strategy = make_strategy(share_stem=False)
    assert strategy.eval_net.stem is not strategy.search_net.stem
    assert len(strategy.search_only) == len(strategy.search_net.weight_parameters())


def test_weight_step_after_joint_step_changes_only_search_weights():
    strategy = make_strategy(share_stem=False)
    s_net, e_net, distill = strategy.search_net, strategy.eval_net, strategy.distill
    strategy.joint_step(*batch(), 4.0, 1.0, Meter())  # leaves gradients on alpha and E that step B must not apply
    weights, alpha = snapshot(s_net.weight_parameters()), snapshot(s_net.arch_parameters())
    e_before, heads = snapshot(e_net.parameters()), snapshot(distill.parameters())
    strategy.weight_step(*batch(2), Meter())

    assert not any(changed(alpha, s_net.arch_parameters()))
    assert not any(changed(e_before, e_net.parameters()))
    assert not any(changed(heads, distill.parameters()))
    assert changed(weights, s_net.weight_parameters()) == [p.grad is not None for p in s_net.weight_parameters()]
    assert s_net.classifier.weight.grad is not None and changed(weights, s_net.weight_parameters())[-2]


def test_joint_step_ablation_keeps_eval_net_fixed_but_trains_heads():
    strategy = make_strategy(update_eval_in_joint_step=False)
    e_net, distill = strategy.eval_net, strategy.distill
    e_before, heads = snapshot(e_net.parameters()), snapshot(distill.parameters())
    alpha = snapshot(strategy.search_net.arch_parameters())
    strategy.joint_step(*batch(), 4.0, 1.0, Meter())
    assert not any(changed(e_before, e_net.parameters()))
    assert all(changed(heads, distill.parameters()))
    assert all(changed(alpha, strategy.search_net.arch_parameters()))


def test_no_distillation_ablation_has_no_heads_and_no_kd_term():
    strategy = make_strategy(distill=None)
    assert strategy.distill is None and "distill" not in strategy.modules()
    meter = Meter()
    strategy.joint_step(*batch(), 0.0, 0.0, meter)
    assert "joint_kd" not in meter.meters and "joint_reg" not in meter.meters


@pytest.mark.parametrize("kind", ["cdarts", "darts"])
def test_alpha_is_only_in_the_alpha_optimizer(kind):
    strategy = make_strategy(type=kind)
    net = strategy.search_net

    def ids(opt) -> set[int]:
        return {id(p) for group in opt.param_groups for p in group["params"]}

    arch, weights = {id(p) for p in net.arch_parameters()}, {id(p) for p in net.weight_parameters()}
    assert len(arch) == 2
    assert ids(strategy.alpha_opt) == arch
    assert ids(strategy.w_opt) == weights
    assert arch | weights == {id(p) for p in net.parameters()}
    if kind == "cdarts":
        e_ids = ids(strategy.e_opt)
        assert not e_ids & arch
        assert e_ids & weights == {id(p) for p in strategy.search_net.stem.parameters()}, "only the shared stem"
        assert e_ids == {id(p) for p in [*strategy.eval_net.parameters(), *strategy.distill.parameters()]}


def test_first_order_darts_alpha_step_and_weight_step_are_separate():
    strategy = make_strategy(type="darts")
    assert isinstance(strategy, FirstOrderDarts)
    net = strategy.search_net
    weights, alpha = snapshot(net.weight_parameters()), snapshot(net.arch_parameters())
    strategy.alpha_step(*batch(), 0.0, Meter())
    assert not any(changed(weights, net.weight_parameters()))
    assert all(changed(alpha, net.arch_parameters()))

    alpha = snapshot(net.arch_parameters())
    strategy.weight_step(*batch(2), Meter())
    assert not any(changed(alpha, net.arch_parameters()))
    assert any(changed(weights, net.weight_parameters()))


def test_reg_lambda_decays_linearly_to_zero_at_stop_epoch():
    strategy = make_strategy(reg_weight=5.0, reg_stop_epoch=20)
    assert [strategy.reg_lambda(e) for e in (0, 10, 20, 25)] == [5.0, 2.5, 0.0, 0.0]


def test_reg_lambda_is_zero_without_regularizer():
    strategy = make_strategy(regularizer=None, reg_weight=5.0)
    assert strategy.regularizer is None and strategy.reg_lambda(0) == 0.0


def test_search_epoch_counts_lambda_from_the_end_of_pretraining():
    strategy = make_strategy(pretrain_epochs=1, reg_weight=4.0, reg_stop_epoch=4)
    assert strategy.run_epoch(1)["lambda_reg"] == 4.0  # search epoch 0, not global epoch 1


def test_search_epoch_reselects_eval_genotype_then_trains_e_on_val_and_s_on_train():
    calls: list = []
    strategy = make_strategy(make_context(calls), pretrain_epochs=1, update_every=2)
    torch.nn.init.normal_(strategy.search_net.alphas_normal, std=1.0)  # a genotype unlike E's initial one
    before = strategy.genotype()
    assert strategy.eval_net.genotype != before
    metrics = strategy.run_epoch(1)
    assert strategy.eval_net.genotype == before, "E is re-derived from alpha at the start of the cycle"
    assert {(split, repeat) for split, epoch, repeat in calls if epoch == 1} == {("val", 1), ("val", 0), ("train", 0)}
    assert {"e_train_acc", "joint_loss", "train_loss"} <= set(metrics)

    calls.clear()
    strategy.run_epoch(2)  # search epoch 1: no re-derivation and no E-only epoch with update_every=2
    assert strategy.eval_net.genotype == before
    assert {(split, repeat) for split, epoch, repeat in calls if epoch == 2} == {("val", 0), ("train", 0)}


def test_pretrain_epoch_trains_search_weights_only():
    strategy = make_strategy(pretrain_epochs=1, share_stem=False)
    net = strategy.search_net
    alpha, e_before = snapshot(net.arch_parameters()), snapshot(strategy.eval_net.parameters())
    metrics = strategy.run_epoch(0)
    assert not any(changed(alpha, net.arch_parameters()))
    assert not any(changed(e_before, strategy.eval_net.parameters()))
    assert set(metrics) == {"train_loss", "train_acc"}


def test_evaluate_reports_nan_for_eval_net_during_pretraining():
    strategy = make_strategy(pretrain_epochs=1)
    metrics = strategy.evaluate(0)
    assert set(metrics) == {"s_val_acc", "s_test_acc", "e_val_acc", "e_test_acc"}
    assert math.isnan(metrics["e_val_acc"]) and math.isnan(metrics["e_test_acc"])
    assert 0 <= metrics["s_val_acc"] <= 100
    assert strategy.search_net.training and strategy.eval_net.training, "evaluation restores training mode"


def test_alpha_adam_betas_default_to_the_papers_but_darts_keeps_the_darts_papers():
    assert make_strategy().alpha_opt.param_groups[0]["betas"] == (0.5, 0.99)  # CDARTS Appendix A.1/A.2
    assert build("optimizers", {"type": "adam"}, [torch.nn.Parameter(torch.zeros(1))]).defaults["betas"] == (0.5, 0.99)
    assert make_strategy(type="darts").alpha_opt.param_groups[0]["betas"] == (0.5, 0.999)  # the DARTS paper


def two_optimizer_grads(scope: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients after ``Runtime.step`` clips at 5 with ``clip_scope=scope`` (None: the default): ``a``'s norm is 6,
    ``b``'s 12, sqrt(36 + 144) = 13.42 together; each has its own SGD optimizer."""
    a, b = torch.nn.Parameter(torch.zeros(4)), torch.nn.Parameter(torch.zeros(9))
    optimizers = [torch.optim.SGD([a], lr=1.0), torch.optim.SGD([b], lr=1.0)]
    runtime = cpu_runtime() if scope is None else cpu_runtime(clip_scope=scope)
    runtime.step((3 * a).sum() + (4 * b).sum(), optimizers)
    return a.grad, b.grad


@pytest.mark.parametrize("scope", [None, "global"])
def test_step_clips_one_norm_over_all_optimizers_by_default(scope):
    a, b = two_optimizer_grads(scope)
    scale = 5.0 / math.sqrt(6.0**2 + 12.0**2)
    torch.testing.assert_close(a, torch.full((4,), 3.0 * scale))
    torch.testing.assert_close(b, torch.full((9,), 4.0 * scale))
    assert math.isclose(math.hypot(a.norm(), b.norm()), 5.0, rel_tol=1e-5)


def test_step_clips_each_optimizer_alone_with_per_optimizer_scope():
    a, b = two_optimizer_grads("per_optimizer")
    torch.testing.assert_close(a, torch.full((4,), 3.0 * 5.0 / 6.0))
    torch.testing.assert_close(b, torch.full((9,), 4.0 * 5.0 / 12.0))


def test_darts_regulariser_decays_on_the_cdarts_schedule():
    strategy = make_strategy(type="darts", reg_weight=5.0, reg_stop_epoch=20)
    assert FirstOrderDarts.reg_lambda is CyclicSearch.reg_lambda, "one schedule, shared"
    assert strategy.regularizer is not None, "darts penalises skip_connect by default once reg_weight > 0"
    assert [strategy.reg_lambda(e) for e in (0, 10, 20, 25)] == [5.0, 2.5, 0.0, 0.0]
    assert make_strategy(type="darts").reg_lambda(0) == 0.0, "plain DARTS: no regulariser"


def test_darts_alpha_step_uses_the_epochs_lambda():
    strategy = make_strategy(type="darts", reg_weight=4.0, reg_stop_epoch=4)
    metrics = strategy.run_epoch(3)  # search epoch 3 of 4: lambda' = 4 * (1 - 3/4)
    assert metrics["lambda_reg"] == 1.0
    reg = strategy.regularizer(strategy.search_net.arch_parameters())
    terms: dict = {}
    strategy.ctx.runtime.step = lambda loss, optimizers, named: terms.update(named)
    strategy.alpha_step(*batch(), strategy.reg_lambda(3), Meter())
    torch.testing.assert_close(terms["alpha.reg"], 1.0 * reg)


def test_uniform_levels_keep_every_level_distilling_after_two_demo_epochs(one_thread):
    """Learned level weights drain onto the level with the smallest KD (the logits' weight falls to ~0.002 in one demo
    epoch); the uniform weights of Eq. 7 (multi_level's default) keep every level, the logits included, in the loss."""
    from cdarts.config import load_config
    from cdarts.engine import search_config, setup_search
    from cdarts.runs import make_accelerator

    overrides = ["strategy.pretrain_epochs=0", "strategy.distill.weighting=uniform", "strategy.distill.fix_heads=true"]
    cfg = load_config(ROOT / "configs" / "demo.yaml", search_config, overrides)
    assert cfg["strategy"]["distill"]["weighting"] == "uniform"
    torch.manual_seed(cfg["seed"])
    ctx, strategy = setup_search(cfg, make_accelerator("no", True))
    ctx.progress = lambda batches, **kwargs: tqdm(batches, disable=True)
    for epoch in range(2):
        strategy.run_epoch(epoch)
    distill = strategy.distill
    torch.testing.assert_close(distill.weights(), torch.full((3,), 1 / 3))
    x, _ = next(strategy.batches("val_eval", 0))
    with torch.no_grad():
        per_level = distill.level_losses(strategy.search_net.forward_stages(x), strategy.eval_net.forward_stages(x))
    shares = per_level / per_level.sum()
    assert (shares > 0.02).all(), f"every level, the logits included, contributes to KD: {shares.tolist()}"
