"""What the strategies that train the supernet one path at a time share (``gdas``, ``rsps``, ``setn``, ``enas``):
seeded draws that every process makes alike, path sampling (uniform, from per-edge distributions, Gumbel), and for
the strategies whose genotype is a chosen candidate, scoring candidates on val batches with the shared weights.

Every draw comes from a generator seeded by the run (one number drawn from torch's seeded RNG when the strategy is
set up) and the epoch, never from the global RNG: every process draws the same paths, so the ranks keep equal
weights and architecture state, and a run resumed at an epoch boundary replays the same draws.
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cdarts.genotypes import Genotype
from cdarts.spaces.paths import OFF, CellChoices, Path, cell_choices, nodes_from_path, path_from_nodes
from cdarts.strategies.base import SearchContext, SearchStrategy
from cdarts.strategies.loop import correct, recalibrated_bn

CHOSEN_LOGIT = 10.0
"""The alpha entry of a chosen op in a candidate's one-hot alphas (softmax weight above 0.999 among 8 ops)."""


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A CPU generator for one kind of draw (``stream``) in one epoch, the same on every process."""
    state = np.random.SeedSequence([seed, epoch, stream]).generate_state(1, np.uint64)[0] >> 1
    return torch.Generator().manual_seed(int(state))


def sample_path(
    choices: Mapping[str, CellChoices], generator: torch.Generator, probs: Mapping[str, Tensor] | None = None
) -> Path:
    """One architecture: per node ``keep`` distinct incoming edges (all when ``keep`` is None), each with one of the
    allowed ops. Uniform without ``probs``; with per-cell ``probs`` (rows x primitives, e.g. softmax of alpha) each
    op is drawn from its row renormalised over the allowed ops, and the edges of a node in proportion to their
    probability of an allowed op (1 for every edge when nothing is excluded)."""
    path = {}
    for cell, choice in choices.items():
        allowed = list(choice.ops)
        rows = torch.ones(len(choice.sources), len(allowed), dtype=torch.float64)
        if probs is not None:
            rows = probs[cell].detach().double().cpu()[:, allowed].clamp_min(1e-30)
        index = [OFF] * len(choice.sources)
        for node in choice.nodes:
            kept = node
            if choice.keep is not None:
                strength = rows[list(node)].sum(dim=-1)
                kept = [node[int(i)] for i in torch.multinomial(strength, choice.keep, generator=generator)]
            for row in kept:
                index[row] = allowed[int(torch.multinomial(rows[row], 1, generator=generator))]
        path[cell] = tuple(index)
    return path


def gumbel_hard(
    alphas: Mapping[str, Tensor], tau: float, generator: torch.Generator
) -> tuple[Path, dict[str, Tensor]]:
    """GDAS's sample (Dong & Yang 2019): per edge the argmax of ``(log_softmax(alpha) + Gumbel noise) / tau``, and
    the hard one-hot weights ``one_hot - p.detach() + p`` (``p`` the tempered softmax): exactly one-hot forward, the
    gradient of ``p`` backward. The op drawn follows ``softmax(alpha)`` whatever ``tau``."""
    path, weights = {}, {}
    for cell, alpha in alphas.items():
        noise = torch.empty(alpha.shape, dtype=torch.float32).exponential_(generator=generator)
        gumbel = -noise.clamp_min(torch.finfo(torch.float32).tiny).log().to(alpha.device, alpha.dtype)
        probs = torch.softmax((torch.log_softmax(alpha, dim=-1) + gumbel) / tau, dim=-1)
        index = probs.detach().argmax(dim=-1, keepdim=True)
        weights[cell] = torch.zeros_like(probs).scatter_(-1, index, 1.0) - probs.detach() + probs
        path[cell] = tuple(index.flatten().tolist())
    return path, weights


def path_key(path: Path) -> tuple:
    """A hashable form of a path (to drop repeated candidates)."""
    return tuple(sorted(path.items()))


class SamplingSearch(SearchStrategy):
    """Base of the strategies that train S one path at a time: the run's draw seed, the architectures a sample may
    be (``choices``, what the discretizer could give: its ``k`` and ``exclude``), and evaluation of the current
    genotype's path with the shared weights (not the supernet's weighted sum)."""

    def setup(self, ctx: SearchContext) -> None:
        super().setup(ctx)
        discretizer = ctx.discretizer
        self.choices = cell_choices(ctx.space, getattr(discretizer, "k", None), getattr(discretizer, "exclude", ()))
        self.seed = int(torch.randint(0, 2**62, ()))  # the global RNG is seeded alike on every process

    def generator(self, epoch: int, stream: int = 0) -> torch.Generator:
        return epoch_generator(self.seed, epoch, stream)

    def path_of(self, genotype: Genotype) -> Path:
        space = self.ctx.space
        nodes = {cell: genotype.nodes(cell) for cell in space.cell_types}
        return path_from_nodes(nodes, space.edges, space.primitives)

    def evaluate(self, epoch: int) -> dict[str, float]:
        """Accuracy of the genotype's path through S (BN re-estimated on that path when ``eval_bn_batches``)."""
        with self.search_net.one_path(self.path_of(self.genotype())):
            return super().evaluate(epoch)


class CandidateSearch(SamplingSearch):
    """Base of the strategies whose genotype is the best of sampled candidates (``rsps``, ``setn``, ``enas``).

    ``score_batches`` val batches (un-augmented, the same for every candidate) score each candidate's path with the
    shared weights, BN on batch statistics (the running ones average over every path trained), the hits summed over
    processes. The chosen candidate is checkpointed state; ``alphas()`` is its one-hot encoding, so logs, plots and
    the discretizer see it (top-k of the one-hot gives the candidate back).
    """

    def __init__(self, *, candidates: int, score_batches: int, **common: Any) -> None:
        super().__init__(**common)
        if candidates < 1 or score_batches < 1:
            raise ValueError(f"need candidates >= 1 and score_batches >= 1, got {candidates} and {score_batches}")
        self.candidates, self.score_batches = candidates, score_batches

    def setup(self, ctx: SearchContext) -> None:
        super().setup(ctx)
        self.candidate = sample_path(self.choices, self.generator(0, stream=99))

    def state(self) -> dict[str, Any]:
        return {"candidate": {cell: list(index) for cell, index in self.candidate.items()}}

    def restore(self, state: dict[str, Any]) -> None:
        self.candidate = {cell: tuple(index) for cell, index in state["candidate"].items()}

    def genotype(self) -> Genotype:
        space = self.ctx.space
        return space.genotype(nodes_from_path(self.candidate, space.edges, space.primitives))

    def alphas(self) -> dict[str, Tensor]:
        return one_hot_alphas(self.candidate, self.choices)

    def select(self, paths: list[Path], epoch: int) -> dict[str, float]:
        """Score the distinct ``paths`` and keep the best (the first of equals) as the candidate."""
        paths = list({path_key(path): path for path in paths}.values())
        batches = list(itertools.islice(self.batches("val_eval", epoch), self.score_batches))
        runtime, net = self.ctx.runtime, self.search_net
        counts = torch.zeros(len(paths), 2, dtype=torch.float64, device=runtime.device)
        with torch.no_grad(), recalibrated_bn(net, [], runtime):  # train-mode BN; running statistics put back
            for i, path in enumerate(paths):
                with net.one_path(path), runtime.autocast():
                    for x, y in batches:
                        counts[i, 0] += correct(net(x), y)
                        counts[i, 1] += len(y)
        counts = runtime.reduce_sum(counts)
        scores = (100.0 * counts[:, 0] / counts[:, 1].clamp_min(1)).tolist()
        best = max(range(len(paths)), key=scores.__getitem__)
        self.candidate = paths[best]
        return {"candidates": float(len(paths)), "best_score": scores[best],
                "mean_score": sum(scores) / len(scores)}


def one_hot_alphas(path: Path, choices: Mapping[str, CellChoices]) -> dict[str, Tensor]:
    """Alphas that encode ``path``: ``CHOSEN_LOGIT`` on each edge's op, 0 elsewhere (OFF edges uniform)."""
    alphas = {}
    for cell, index in path.items():
        alpha = torch.zeros(len(index), choices[cell].num_ops)
        for row, op in enumerate(index):
            if op != OFF:
                alpha[row, op] = CHOSEN_LOGIT
        alphas[cell] = alpha
    return alphas
