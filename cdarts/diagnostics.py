"""Stability signals of a search's derived cell, logged per epoch: parameter-free ops, skip-connects, alpha entropy and
the collapse flag."""
from __future__ import annotations

from functools import cache

import torch

from cdarts.genotypes import DartsGenotype, Genotype


@cache
def parameter_free(op: str) -> bool:
    """Whether an op has no learnable parameters (skip, pools, none): what a collapsing search piles up.

    The probe op is built under a forked RNG: its initialisation must not shift the run's random stream, or a
    resumed process (whose cache starts empty) would diverge from the uninterrupted run.
    """
    from cdarts.ops import build_op

    with torch.random.fork_rng(devices=[]):
        return not any(True for _ in build_op(op, 4, 1, True).parameters())


def diagnostics(genotype: Genotype, alphas: dict[str, torch.Tensor]) -> dict[str, float]:
    """Stability signals: parameter-free ops in the genotype, skip-connects, mean alpha entropy, and the collapse
    flag: more than half the ops of the normal cell (NAS-Bench-201: of the cell) are skip connections."""
    ops = genotype.ops()
    cell = "normal" if isinstance(genotype, DartsGenotype) else "cell"
    normal = [op for node in genotype.nodes(cell) for op, _ in node]
    free = sum(parameter_free(op) for op in ops)
    entropies = [-(p * p.clamp_min(1e-12).log()).sum(-1).mean() for p in
                 (torch.softmax(a.detach().float(), -1) for a in alphas.values())]
    return {
        "param_free_ops": float(free),
        "skip_connects": float(sum(op == "skip_connect" for op in ops)),
        "alpha_entropy": float(torch.stack(entropies).mean()),
        "collapse": float(2 * normal.count("skip_connect") > len(normal)),
    }


