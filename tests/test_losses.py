"""Losses: CE, KD (KL and SmoothL1), multi-level distillation, alpha L1 and its lambda' schedule."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import cdarts.losses  # noqa: F401 - registers the losses and heads
from cdarts.config import ConfigError, build, validate_component
from cdarts.losses import linear_decay
from cdarts.ops.darts import DARTS_PRIMITIVES
from cdarts.registry import losses, ops
from cdarts.spaces.base import StageOutputs

STUDENT = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]])
TEACHER = torch.tensor([[3.0, 2.0, 1.0], [1.0, 0.0, 0.0]])
PRIMITIVES = list(DARTS_PRIMITIVES)
STAGE_CHANNELS = [64, 128, 256]


def _softmax(row: list[float]) -> list[float]:
    exps = [math.exp(v) for v in row]
    return [e / sum(exps) for e in exps]


def _kl_rows_by_hand(student: torch.Tensor, teacher: torch.Tensor, t: float) -> list[float]:
    """KL(p_teacher || q_student) of each row, with plain floats."""
    rows = []
    for s_row, t_row in zip(student.tolist(), teacher.tolist(), strict=True):
        p = _softmax([v / t for v in t_row])
        q = _softmax([v / t for v in s_row])
        rows.append(sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True)))
    return rows


def test_losses_are_registered():
    assert {"ce", "kd_kl", "kd_smooth_l1", "multi_level", "alpha_l1"} <= set(losses.names())


# --- classification ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_ce_matches_torch_cross_entropy(smoothing):
    torch.manual_seed(0)
    logits, target = torch.randn(5, 7), torch.randint(0, 7, (5,))
    loss = build("losses", {"type": "ce", "label_smoothing": smoothing})
    torch.testing.assert_close(loss(logits, target), F.cross_entropy(logits, target, label_smoothing=smoothing))


# --- KD ---------------------------------------------------------------------------------------------------------


def test_kd_kl_batchmean_equals_hand_computation_with_t_squared():
    rows = _kl_rows_by_hand(STUDENT, TEACHER, 2.0)
    expected = 4.0 * sum(rows) / 2  # T^2 = 4; sum over classes, mean over the batch of 2
    loss = build("losses", {"type": "kd_kl", "temperature": 2.0})(STUDENT, TEACHER)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert loss.item() == pytest.approx(0.818107478, rel=1e-6)


def test_kd_kl_mean_is_batchmean_over_num_classes():
    batchmean = build("losses", {"type": "kd_kl", "reduction": "batchmean"})(STUDENT, TEACHER)
    mean = build("losses", {"type": "kd_kl", "reduction": "mean"})(STUDENT, TEACHER)
    assert mean.item() == pytest.approx(4.0 * sum(_kl_rows_by_hand(STUDENT, TEACHER, 2.0)) / 6, rel=1e-6)
    assert (batchmean / mean).item() == pytest.approx(STUDENT.shape[1], rel=1e-6)


@pytest.mark.parametrize("name", ["kd_kl", "kd_smooth_l1"])
def test_kd_is_zero_when_student_equals_teacher(name):
    logits = torch.randn(4, 10)
    assert build("losses", name)(logits, logits.clone()).item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("name", ["kd_kl", "kd_smooth_l1"])
@pytest.mark.parametrize("detach", [False, True])
def test_kd_detach_teacher_controls_teacher_gradient(name, detach):
    student = STUDENT.clone().requires_grad_()
    teacher = TEACHER.clone().requires_grad_()
    build("losses", {"type": name, "detach_teacher": detach})(student, teacher).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    if detach:
        assert teacher.grad is None
    else:
        assert teacher.grad is not None and teacher.grad.abs().sum() > 0


def test_kd_smooth_l1_equals_hand_computation():
    # |s - t| = 2, 0, 2 / 1, 0, 1 -> SmoothL1 1.5, 0, 1.5 / 0.5, 0, 0.5; mean 4/6; times T^2 = 4
    loss = build("losses", {"type": "kd_smooth_l1", "temperature": 2.0})(STUDENT, TEACHER)
    assert loss.item() == pytest.approx(8.0 / 3.0, rel=1e-6)
    loss_t1 = build("losses", {"type": "kd_smooth_l1", "temperature": 1.0})(STUDENT, TEACHER)
    assert loss_t1.item() == pytest.approx(2.0 / 3.0, rel=1e-6)


# --- multi-level distillation -----------------------------------------------------------------------------------


def _fake_outputs(batch: int = 4, num_classes: int = 10, seed: int = 0) -> StageOutputs:
    g = torch.Generator().manual_seed(seed)
    stages = [torch.randn(batch, c, s, s, generator=g) for c, s in zip(STAGE_CHANNELS, [8, 4, 2], strict=True)]
    return StageOutputs(torch.randn(batch, num_classes, generator=g), stages)


SMALL_AUX_HEAD = {"type": "aux_classifier", "hidden": 8, "features": 16}


def _multi_level(**spec):
    spec = {"type": "multi_level", "head": SMALL_AUX_HEAD, **spec}
    return build("losses", validate_component("losses", spec), STAGE_CHANNELS, 10)


def test_multi_level_defaults_two_aux_heads_plus_logits_uniform():
    ml = build("losses", validate_component("losses", "multi_level"), STAGE_CHANNELS, 10)
    assert ml.levels == [0, 1] and len(ml.heads) == 2
    assert [h.conv1.in_channels for h in ml.heads] == [64, 128]
    assert ml.weighting == "uniform" and not isinstance(ml.ensemble_weights, torch.nn.Parameter)
    assert [p.requires_grad for p in ml.parameters()] == [True] * len(list(ml.parameters()))
    assert torch.equal(ml.weights(), torch.full((3,), 1 / 3))


def test_multi_level_learned_weighting_is_a_parameter_starting_uniform():
    ml = _multi_level(weighting="learned")
    assert isinstance(ml.ensemble_weights, torch.nn.Parameter) and ml.ensemble_weights.shape == (3,)
    assert torch.equal(ml.ensemble_weights.detach(), torch.zeros(3))


def test_multi_level_fix_heads_freezes_every_head_parameter_at_its_initialisation():
    torch.manual_seed(0)
    ml = _multi_level(fix_heads=True)
    assert list(ml.parameters()) and not any(p.requires_grad for p in ml.parameters())
    norms = [m for m in ml.heads.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in norms)
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in norms), "BN without a learned shift"
    student, teacher = _fake_outputs(seed=0), _fake_outputs(seed=1)
    student.logits.requires_grad_()
    ml(student, teacher).backward()
    assert student.logits.grad is not None and all(p.grad is None for p in ml.parameters())


def test_multi_level_level_logits_shapes():
    ml = _multi_level(levels=[0, 1, 2], head={"type": "pooled_linear"})
    outputs = _fake_outputs()
    levels = ml.level_logits(outputs)
    assert [tuple(x.shape) for x in levels] == [(4, 10)] * 4
    assert levels[-1] is outputs.logits


@pytest.mark.parametrize("kd", ["kd_kl", "kd_smooth_l1"])
def test_multi_level_uniform_sum_is_mean_of_per_level_kd(kd):
    ml = _multi_level(weighting="uniform", kd={"type": kd})
    student, teacher = _fake_outputs(seed=0), _fake_outputs(seed=1)
    kd_loss = build("losses", kd)
    per_level = [
        kd_loss(ml.heads[0](student.stages[0]), ml.heads[0](teacher.stages[0])),
        kd_loss(ml.heads[1](student.stages[1]), ml.heads[1](teacher.stages[1])),
        kd_loss(student.logits, teacher.logits),
    ]
    expected = sum(per_level) / 3
    torch.testing.assert_close(ml(student, teacher), expected)
    assert "ensemble_weights" not in dict(ml.named_parameters())
    torch.testing.assert_close(ml.weights(), torch.full((3,), 1 / 3))


def test_multi_level_uniform_concat_is_one_kd_on_weighted_concatenation():
    ml = _multi_level(weighting="uniform", combine="concat")
    student, teacher = _fake_outputs(seed=0), _fake_outputs(seed=1)
    s = torch.cat([x / 3 for x in ml.level_logits(student)])
    t = torch.cat([x / 3 for x in ml.level_logits(teacher)])
    torch.testing.assert_close(ml(student, teacher), build("losses", "kd_kl")(s, t))


@pytest.mark.parametrize("combine", ["sum", "concat"])
@pytest.mark.parametrize("weighting", ["learned", "uniform"])
def test_multi_level_identical_networks_give_zero(combine, weighting):
    ml = _multi_level(combine=combine, weighting=weighting)
    outputs = _fake_outputs()
    assert ml(outputs, outputs).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("combine", ["sum", "concat"])
def test_multi_level_learned_weights_heads_and_both_networks_get_gradients(combine):
    ml = _multi_level(combine=combine, weighting="learned")
    student, teacher = _fake_outputs(seed=0), _fake_outputs(seed=1)
    for t in (*student.stages, student.logits, *teacher.stages, teacher.logits):
        t.requires_grad_()
    ml(student, teacher).backward()
    assert ml.ensemble_weights.grad is not None and ml.ensemble_weights.grad.abs().sum() > 0
    assert all(p.grad is not None for p in ml.heads.parameters())
    for outputs in (student, teacher):
        assert outputs.logits.grad is not None
        assert [s.grad is not None for s in outputs.stages] == [True, True, False]


def test_multi_level_detached_teacher_gets_no_gradient():
    ml = _multi_level(kd={"type": "kd_kl", "detach_teacher": True}, head={"type": "pooled_linear"})
    student, teacher = _fake_outputs(seed=0), _fake_outputs(seed=1)
    teacher.logits.requires_grad_()
    student.logits.requires_grad_()
    ml(student, teacher).backward()
    assert teacher.logits.grad is None and student.logits.grad is not None


def test_multi_level_ensemble_logits_is_weighted_sum_of_levels():
    ml = _multi_level(head={"type": "pooled_linear"})
    with torch.no_grad():
        ml.ensemble_weights.copy_(torch.tensor([0.0, 1.0, 2.0]))
    outputs = _fake_outputs()
    w = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0)
    levels = ml.level_logits(outputs)
    expected = w[0] * levels[0] + w[1] * levels[1] + w[2] * levels[2]
    torch.testing.assert_close(ml.ensemble_logits(outputs), expected)


def test_multi_level_rejects_levels_out_of_range():
    with pytest.raises(ValueError, match=r"levels \[3\]"):
        _multi_level(levels=[0, 3])


# --- alpha regulariser ------------------------------------------------------------------------------------------


def _logit_alphas() -> list[torch.Tensor]:
    normal = torch.zeros(2, 8)
    normal[0, 1:4] = torch.tensor([-1.0, 2.0, -3.0])  # max_pool, avg_pool, skip
    normal[1, 1:4] = torch.tensor([0.5, 0.0, 1.0])
    normal[:, 4:] = 7.0  # other ops never count
    reduce = torch.zeros(1, 8)
    reduce[0, 3] = -2.0
    return [normal, reduce]


def _softmax_alphas() -> list[torch.Tensor]:
    # softmax rows: [1, 2, 1, 4, 1, 1, 1, 1] / 12 and uniform 1/8
    weighted = torch.log(torch.tensor([[1.0, 2.0, 1.0, 4.0, 1.0, 1.0, 1.0, 1.0]]))
    return [weighted, torch.zeros(1, 8)]


POOLS_AND_SKIP = ["max_pool_3x3", "avg_pool_3x3", "skip_connect"]


@pytest.mark.parametrize(
    "ops, expected",
    [(["skip_connect"], 3.0 + 1.0 + 2.0), (POOLS_AND_SKIP, (1.0 + 2.0 + 3.0) + (0.5 + 0.0 + 1.0) + 2.0)],
)
def test_alpha_l1_on_logits(ops, expected):
    reg = build("losses", {"type": "alpha_l1", "ops": ops, "on": "logits"}, PRIMITIVES)
    assert reg(_logit_alphas()).item() == pytest.approx(expected)


@pytest.mark.parametrize(
    "ops, expected", [(["skip_connect"], 4 / 12 + 1 / 8), (POOLS_AND_SKIP, (2 + 1 + 4) / 12 + 3 / 8)]
)
def test_alpha_l1_on_softmax(ops, expected):
    reg = build("losses", {"type": "alpha_l1", "ops": ops, "on": "softmax"}, PRIMITIVES)
    assert reg(_softmax_alphas()).item() == pytest.approx(expected, rel=1e-6)


def test_alpha_l1_default_is_skip_connect_on_logits_with_sign_gradient():
    reg = build("losses", validate_component("losses", "alpha_l1"), PRIMITIVES)
    alphas = [a.requires_grad_() for a in _logit_alphas()]
    reg(alphas).backward()
    expected = torch.zeros(2, 8)
    expected[0, 3], expected[1, 3] = -1.0, 1.0
    torch.testing.assert_close(alphas[0].grad, expected)


def test_alpha_l1_unknown_op_names_it_and_lists_primitives():
    with pytest.raises(ValueError, match="skip_conect") as info:
        build("losses", {"type": "alpha_l1", "ops": ["skip_conect"]}, PRIMITIVES)
    assert all(p in str(info.value) for p in PRIMITIVES)
    assert "did you mean 'skip_connect'" in str(info.value)


def test_alpha_l1_op_names_are_checked_with_the_config():
    with pytest.raises(ConfigError) as info:
        validate_component("losses", {"type": "alpha_l1", "ops": ["skip_connect", "skip_conect"]},
                           "strategy.regularizer")
    assert info.value.problems == [
        f"strategy.regularizer.ops[1]: unknown op 'skip_conect'; available: {', '.join(ops.names())}; "
        "did you mean 'skip_connect'?"
    ]


# --- lambda' schedule -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("epoch, expected", [(0, 5.0), (10, 2.5), (20, 0.0), (25, 0.0)])
def test_linear_decay_paper_schedule(epoch, expected):
    assert linear_decay(epoch, start=5.0, stop_epoch=20) == pytest.approx(expected)


def test_linear_decay_without_stop_epoch_is_constant():
    assert [linear_decay(e, start=3.0, stop_epoch=0) for e in (0, 10, 100)] == [3.0, 3.0, 3.0]
