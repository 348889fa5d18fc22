"""RSPS: uniform paths train the shared weights, the genotype is the best-scoring sampled candidate; whole runs."""
from __future__ import annotations

import copy
import itertools
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
from cdarts.strategies.loop import correct
from cdarts.strategies.sampling import sample_path

CHI2_999 = {4: 18.47, 6: 22.46, 9: 27.88, 24: 51.18, 48: 84.04}
"""Chi-square critical values at p = 0.001 by degrees of freedom: a uniform draw exceeds them once in a thousand."""


def chi2(counts: list[int]) -> float:
    expected = sum(counts) / len(counts)
    return sum((c - expected) ** 2 / expected for c in counts)


def trained_paths(space: str, steps: int) -> list[dict]:
    """The path of each weight step of one RSPS epoch over ``steps`` batches (the steps themselves skipped)."""
    rsps = strategy("rsps", space, ctx=context(space, batches=steps, batch=1), candidates=1)
    paths = []
    rsps.weight_step = lambda x, y, meter: paths.append(rsps.search_net.path)
    rsps.select = lambda candidates, epoch: {}
    rsps.search_epoch(0, 0)
    assert len(paths) == steps
    return paths


def test_trained_paths_are_uniform_over_nas_bench_201_cells():
    paths = trained_paths("nas-bench-201", 1000)
    counts = [Counter(path["cell"][row] for path in paths) for row in range(6)]
    assert all(set(c) == set(range(5)) for c in counts), "every op of every edge is drawn"
    assert chi2([c[op] for c in counts for op in range(5)]) < CHI2_999[24]  # 6 edges x (5 ops - 1)
    assert len({path["cell"] for path in paths}) > 900, "cells, not a few repeated ones"


def test_trained_paths_are_uniform_over_darts_cells():
    paths = trained_paths("darts", 500)
    for cell in ("normal", "reduce"):
        kept = Counter(tuple(row for row in range(9, 14) if path[cell][row] != OFF) for path in paths)
        assert set(kept) == set(itertools.combinations(range(9, 14), 2)), "the last node keeps 2 of its 5 edges"
        assert chi2(list(kept.values())) < CHI2_999[9]
        ops = Counter(op for path in paths for op in path[cell] if op != OFF)
        assert set(ops) == set(range(1, 8)), "every op but none"
        assert chi2(list(ops.values())) < CHI2_999[6]
        assert all(sum(op != OFF for op in path[cell]) == 8 for path in paths), "2 edges for each of 4 nodes"


@pytest.mark.parametrize("space", list(SPACES))
def test_the_genotype_is_the_best_scoring_candidate(space):
    rsps = strategy("rsps", space, ctx=context(space, batches=2, batch=16), score_batches=2)
    candidates = [sample_path(rsps.choices, torch.Generator().manual_seed(seed)) for seed in range(4)]
    batches = rsps.ctx.loader("val_eval", 0)
    scores = []
    for path in candidates:  # each on a fresh copy in train mode: batch statistics, running ones untouched
        net = copy.deepcopy(rsps.search_net).train()
        with torch.no_grad(), net.one_path(path):
            scores.append(100.0 * sum(correct(net(x), y) for x, y in batches) / sum(len(y) for _, y in batches))
    assert len(set(scores)) > 1
    metrics = rsps.select(candidates, 0)
    best = scores.index(max(scores))
    assert rsps.candidate == candidates[best]
    assert metrics == {"candidates": 4.0, "best_score": pytest.approx(max(scores)),
                       "mean_score": pytest.approx(sum(scores) / 4)}
    built = rsps.ctx.space
    discretized = rsps.ctx.discretizer(rsps.alphas(), built.edges, built.primitives)
    for cell in built.cell_types:  # the one-hot alphas give the candidate back (edges of a node in any order)
        assert [sorted(node) for node in discretized[cell]] == [sorted(node) for node in rsps.genotype().nodes(cell)]
    assert rsps.path_of(rsps.genotype()) == rsps.candidate


def test_rsps_learns_no_alpha_and_checkpoints_its_candidate():
    rsps = strategy("rsps", "nas-bench-201")
    assert set(rsps.optimizers()) == {"w"} and rsps.alpha_opt is None
    other = strategy("rsps", "nas-bench-201")
    other.candidate = {"cell": (0, 1, 2, 3, 4, 0)}
    rsps.restore(other.state())
    assert rsps.candidate == other.candidate and rsps.genotype() == other.genotype()
    with pytest.raises(ValueError, match="need candidates >= 1 and score_batches >= 1, got 0 and 1"):
        strategy("rsps", "nas-bench-201", candidates=0)


@pytest.mark.parametrize("space", list(SPACES))
def test_rsps_runs_two_epochs_on_digits(space, tmp_path):
    assert_runs_two_epochs("rsps", space, tmp_path)


def test_rsps_resumes_after_sigkill_as_the_uninterrupted_run(tmp_path):
    assert_resumes_after_sigkill("rsps", tmp_path)


def test_rsps_in_two_processes_ends_with_equal_candidates(tmp_path):
    assert_two_processes_agree("rsps", tmp_path)
