"""SETN: the template learns toward the better op, candidates come from it, whole runs."""
from __future__ import annotations

from collections import Counter

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
from cdarts.strategies.loop import Meter

FAST_TEMPLATE = {"type": "adam", "lr": 0.01, "betas": [0.5, 0.999], "weight_decay": 0.0}


def test_the_template_moves_toward_the_op_the_weights_were_trained_with():
    """A toy: ops none and skip_connect; the weights trained on the all-skip cell, then template steps on val batches
    raise skip's probability on every edge (none throws the trained features away)."""
    ctx = context("nas-bench-201", batches=4, batch=16, channels=4, primitives=["none", "skip_connect"])
    setn = strategy("setn", ctx=ctx, alpha_optimizer=FAST_TEMPLATE)
    meter = Meter()
    for _ in range(3):
        for x, y in ctx.loader("train", 0):
            with setn.search_net.one_path({"cell": (1,) * 6}):
                setn.weight_step(x, y, meter)
    before = torch.softmax(setn.alphas()["cell"].detach(), dim=-1)[:, 1]
    weights = [p.detach().clone() for p in setn.search_net.weight_parameters()]
    for x, y in ctx.loader("val", 0) * 2:
        setn.alpha_step(x, y, 0.0, meter)
    after = torch.softmax(setn.alphas()["cell"].detach(), dim=-1)[:, 1]
    assert (after > before + 0.01).all(), (before, after)
    assert all(torch.equal(w, p) for w, p in zip(weights, setn.search_net.weight_parameters(), strict=True))


def test_candidates_are_drawn_from_the_template():
    setn = strategy("setn", "darts", candidates=200)
    with torch.no_grad():
        setn.search_net.alphas_normal.zero_()
        setn.search_net.alphas_normal[:, 3] = 4.0  # a strong template for op 3 on every edge
        setn.search_net.alphas_normal[2, 0] = 6.0  # and for none on edge 2 (node 3's from input 0)
    paths = setn.template_samples(torch.Generator().manual_seed(0))
    assert len(paths) == 200
    ops = Counter(op for path in paths for op in path["normal"] if op != OFF)
    assert ops[3] > 0.8 * sum(ops.values()), "op 3 dominates where the template says so"
    node3 = Counter(tuple(row for row in (2, 3, 4) if path["normal"][row] != OFF) for path in paths)
    assert node3[(3, 4)] > 0.7 * 200, "an edge likely to be none is the one a node leaves out"
    uniform = Counter(op for path in paths for op in path["reduce"] if op != OFF)
    assert set(uniform) == set(range(1, 8)) and max(uniform.values()) < 1.5 * min(uniform.values()), \
        "the untrained reduce template is near uniform"


def test_the_genotype_is_a_scored_template_sample_and_alphas_are_the_template():
    setn = strategy("setn", "nas-bench-201")
    metrics = setn.run_epoch(0)
    assert {"alpha_loss", "train_loss", "candidates", "best_score", "mean_score"} <= set(metrics)
    assert all(setn.alphas()[cell] is alpha for cell, alpha in setn.search_net.alphas().items())
    assert set(setn.optimizers()) == {"w", "alpha"}
    assert setn.path_of(setn.genotype()) == setn.candidate
    assert setn.candidate in setn.template_samples(setn.generator(0, stream=1))


@pytest.mark.parametrize("space", list(SPACES))
def test_setn_runs_two_epochs_on_digits(space, tmp_path):
    assert_runs_two_epochs("setn", space, tmp_path)


def test_setn_resumes_after_sigkill_as_the_uninterrupted_run(tmp_path):
    assert_resumes_after_sigkill("setn", tmp_path)


def test_setn_in_two_processes_ends_with_equal_template_and_candidate(tmp_path):
    assert_two_processes_agree("setn", tmp_path)
