"""A made-up benchmark table for demos and tests: NOT NAS-Bench-201 numbers.

Deterministic functions of the cell stand in for accuracies and training times, so every look-up, curve, correlation
and multi-trial search can be exercised without the real NATS-Bench file. Real numbers need that file (the
``nats-bench`` benchmark) or a table of real results.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

from cdarts.genotypes import NB201Genotype, canonical_nb201, enumerate_nb201, nb201_from_ops, nb201_ops
from cdarts.io import atomic_write_text
from cdarts.nasbench import TIME_COLUMN, Training, arch_string, cell_ops
from cdarts.ops import NB201_PRIMITIVES

SYNTHETIC_WEIGHTS = {"none": 0.0, "skip_connect": 0.35, "avg_pool_3x3": 0.45, "nor_conv_1x1": 0.8, "nor_conv_3x3": 1.0}


def synthetic_accuracies(arch: str | NB201Genotype) -> dict[str, float]:
    """Made-up but deterministic "accuracies" of a cell: NOT NAS-Bench-201 numbers, only for demos and tests.

    Computed on the canonical cell (isomorphic cells agree up to a little hash noise), they reward parameterised
    ops on live edges, like the real benchmark does, so correlations and curves have something to show.
    """
    ops = nb201_ops(canonical_nb201(nb201_from_ops(cell_ops(arch))))
    weights = [SYNTHETIC_WEIGHTS.get(op, 0.5) for op in ops]
    skips = sum(op == "skip_connect" for op in ops)
    score = sum(weights) + 0.5 * weights[-1] + 0.3 * weights[3] - 0.4 * max(0, skips - 2)
    digest = hashlib.sha256(arch_string(arch).encode()).digest()
    noise = [(byte / 255.0 - 0.5) for byte in digest[:2]]
    base = 10.0 + 80.0 / (1.0 + math.exp(-(score - 2.5)))
    return {"valid_acc": round(base + 1.5 * noise[0], 4), "test_acc": round(base + 0.6 + 1.5 * noise[1], 4)}


SYNTHETIC_EPOCHS = 12
"""Epochs of the synthetic table's timed training, as NAS-Bench-201's multi-trial runs used (its 12-epoch results)."""
SYNTHETIC_SECONDS = {"none": 0.0, "skip_connect": 0.1, "avg_pool_3x3": 0.4, "nor_conv_1x1": 1.0, "nor_conv_3x3": 2.5}
"""Made-up seconds per epoch an op adds to a cell's training (4 s for the rest): 9 s an epoch for an average cell,
about what NATS-Bench records for its 12-epoch CIFAR-10 runs."""


def synthetic_training(arch: str | NB201Genotype) -> Training:
    """Made-up but deterministic training of a cell (NOT NAS-Bench-201 numbers): a ``valid_acc`` curve over
    ``SYNTHETIC_EPOCHS`` epochs that rises to about 98% of ``synthetic_accuracies``' value, with per-epoch hash noise,
    and seconds that grow with the cell's convolutions."""
    ops = cell_ops(arch)
    final = synthetic_accuracies(arch)["valid_acc"]
    digest = hashlib.sha256(f"curve {arch_string(arch)}".encode()).digest()
    curve = tuple(round(final * (1 - 0.45 * math.exp(-(epoch - 1) / 3.5)) + 2.0 * (digest[epoch] / 255.0 - 0.5), 4)
                  for epoch in range(1, SYNTHETIC_EPOCHS + 1))
    per_epoch = 4.0 + sum(SYNTHETIC_SECONDS.get(op, 1.0) for op in ops)
    return Training(curve, round(per_epoch * SYNTHETIC_EPOCHS, 4))


def synthetic_table(path: str | Path, primitives: Sequence[str] = NB201_PRIMITIVES) -> Path:
    """Write a CSV of ``synthetic_accuracies`` and ``synthetic_training`` (``train_time_s``, ``valid_acc@1`` ...
    ``valid_acc@12``) for every cell over ``primitives`` (15,625 by default).

    Demo data only: real numbers need the real NATS-Bench file (the ``nats-bench`` benchmark).
    """
    epochs = ",".join(f"valid_acc@{epoch}" for epoch in range(1, SYNTHETIC_EPOCHS + 1))
    lines = [f"arch,valid_acc,test_acc,{TIME_COLUMN},{epochs}"]
    for cell in enumerate_nb201(primitives):
        values, training = synthetic_accuracies(cell), synthetic_training(cell)
        lines.append(f"{cell},{values['valid_acc']},{values['test_acc']},{training.seconds},"
                     + ",".join(map(str, training.curve)))
    return atomic_write_text(path, "\n".join(lines) + "\n")
