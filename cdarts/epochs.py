"""Epochs as a user reads them. One numbering everywhere, from 1 as the console counts: ``metrics.csv``,
``genotypes.jsonl``, checkpoint folders (``epoch-0001`` holds the first epoch), plots and messages. A search's
``strategy.epochs`` counts its search epochs only; its ``pretrain_epochs`` come first and are numbered with them
(``pretrain 1/2``, ``pretrain 2/2``, then ``search 1/30`` is epoch 3 of 32)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from cdarts.genotypes import Genotype
from cdarts.io import atomic_write_text, csv_text
from cdarts.timing import eta_text

LOSSES = (("train_loss", "S"), ("joint_loss", "joint"), ("alpha_loss", "alpha"), ("e_train_loss", "E"))
"""The loss columns an epoch line shows, as it names them."""


def phase(epoch: int, pretrain_epochs: int) -> str:
    """``pretrain`` or ``search``: the phase of the 0-based loop index ``epoch``."""
    return "pretrain" if epoch < pretrain_epochs else "search"


def epoch_label(epoch: int, pretrain_epochs: int, epochs: int) -> str:
    """How logs and progress bars name the 0-based loop index ``epoch``: ``pretrain 1/2``, then ``search 1/30``."""
    if epoch < pretrain_epochs:
        return f"pretrain {epoch + 1}/{pretrain_epochs}"
    return f"search {epoch - pretrain_epochs + 1}/{epochs}"


def run_eta(history: list[dict[str, Any]], pretrain_epochs: int, total_epochs: int) -> str:
    """The ETA of a search's epochs after those in ``history`` (every epoch done so far, resumed ones included), at
    the mean time of the done epochs of each phase."""
    done = [(h["metrics"]["phase"], h["metrics"]["time_s"]) for h in history]
    return eta_text(done, [phase(epoch, pretrain_epochs) for epoch in range(len(history), total_epochs)])


def _fmt(value: Any) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1f}"


def epoch_line(row: dict[str, Any], total: int, label: str, eta: str, genotype: Genotype | None) -> str:
    """A search's console line for an epoch: ``search 1/3 (epoch 2/4) | loss S 0.812 joint 2.301 | S val ... |
    12.3s, ETA 25s``, then the genotype on its own line, or ``genotype unchanged`` (``genotype`` None)."""
    parts = [f"{label} (epoch {row['epoch']}/{total})"]
    losses = [f"{name} {row[key]:.3f}" for key, name in LOSSES if isinstance(row.get(key), float)]
    if losses:
        parts.append("loss " + " ".join(losses))
    if "s_val_acc" in row:
        parts.append(f"S val {_fmt(row['s_val_acc'])} test {_fmt(row.get('s_test_acc'))}")
    if "e_val_acc" in row:
        parts.append(f"E val {_fmt(row['e_val_acc'])} test {_fmt(row.get('e_test_acc'))}")
    if "lambda_reg" in row:
        parts.append(f"lambda' {row['lambda_reg']:.2f}")
    bench = [f"{key.removeprefix('bench_')} {_fmt(value)}" for key, value in row.items() if key.startswith("bench_")]
    if bench:
        parts.append("bench " + " ".join(bench))
    parts.append(f"free ops {row['param_free_ops']:.0f}")
    parts.append(", ".join(filter(None, [f"{row['time_s']:.1f}s", eta])))
    return " | ".join(parts) + (f"\n  {genotype}" if genotype is not None else " | genotype unchanged")


def write_logs(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite ``metrics.csv`` and ``genotypes.jsonl`` from the history (atomic, so they match the checkpoint)."""
    atomic_write_text(run_dir / "metrics.csv", csv_text([h["metrics"] for h in history]))
    lines = [json.dumps({k: h[k] for k in ("epoch", "genotype", "primitives", "alpha")}) for h in history]
    atomic_write_text(run_dir / "genotypes.jsonl", "\n".join(lines) + "\n")
