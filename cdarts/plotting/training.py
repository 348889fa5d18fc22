"""A run's plots, redrawn after every epoch: ``curves.png`` (the ``metrics.csv`` columns of a search or a retrain
against the epoch) and ``alphas.png`` (a search's architecture weights: this epoch's softmax per edge and op, and how
the weight of each edge's leading op moved).

Every axis scales to its data (accuracies are not pinned to 0..100, weights not to 0..1), so small changes show.
Legends name the ``metrics.csv`` column each line plots.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdarts.genotypes import genotype_from_json
from cdarts.plotting.files import plot_format, save_figure

DPI = 100


@dataclass(frozen=True)
class Panel:
    """One plot of curves: the columns it draws (those a run has), in legend order, with their legend glosses."""

    title: str
    ylabel: str
    columns: Mapping[str, str]
    prefix: str = ""
    """Also draw every column starting with this (``bench_``: one per benchmark metric)."""

    def present(self, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        names = list(dict.fromkeys(key for row in rows for key in row))
        wanted = [c for c in self.columns if c in names]
        return wanted + [c for c in names if self.prefix and c.startswith(self.prefix) and c not in wanted]


SEARCH_PANELS = (
    Panel("S (search network): loss", "loss", {
        "train_loss": "step B, train split", "alpha_loss": "alpha step, val split", "joint_ce_s": "step A, val split"}),
    Panel("E (evaluation network): loss", "loss", {
        "e_train_loss": "E alone, val split", "joint_ce_e": "step A, val split", "joint_kd": "distillation, step A"}),
    Panel("loss weights", "weight", {"lambda_reg": "lambda' (alpha L1)", "lambda_kd": "lambda (distillation)"}),
    Panel("S: top-1 accuracy", "accuracy (%)", {
        "train_acc": "train batches", "s_alpha_acc": "alpha-step batches", "s_joint_acc": "step-A batches",
        "s_val_acc": "val, eval mode", "s_test_acc": "test, eval mode"}),
    Panel("E: top-1 accuracy", "accuracy (%)", {
        "e_train_acc": "training batches", "e_joint_acc": "step-A batches", "e_val_acc": "val, eval mode",
        "e_test_acc": "test, eval mode"}),
    Panel("benchmark: each epoch's genotype looked up", "benchmark metric", {}, prefix="bench_"),
)
"""The panels of a search's ``curves.png``; a panel without any of its columns in the run is left out."""

RETRAIN_PANELS = (
    Panel("loss", "cross-entropy", {
        "train_loss": "train batches", "val_loss": "val", "test_loss": "test", "ema_val_loss": "EMA val",
        "ema_test_loss": "EMA test"}),
    Panel("top-1 accuracy", "accuracy (%)", {
        "train_top1": "train", "val_top1": "val (chooses best/)", "test_top1": "test", "ema_val_top1": "EMA val",
        "ema_test_top1": "EMA test"}),
    Panel("learning rate", "lr at the epoch's last step", {"lr": "learning rate"}),
)
"""The panels of a retrain's ``curves.png``."""


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _figure() -> Any:
    """A matplotlib Figure on the Agg canvas (no pyplot: nothing global to close, safe in any thread)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    FigureCanvasAgg(fig)
    return fig


def curves_figure(rows: Sequence[Mapping[str, Any]], panels: Sequence[Panel], title: str) -> Any:
    """Each panel's columns of ``rows`` (``metrics.csv`` rows: an ``epoch`` and numbers, as floats or text) against
    the epoch, pretraining epochs (``phase: pretrain``) shaded; panels without columns in ``rows`` are left out."""
    if not rows:
        raise ValueError("no epochs to plot")
    drawn = [(panel, columns) for panel in panels if (columns := panel.present(rows))]
    if not drawn:
        raise ValueError(f"no column of {', '.join(p.title for p in panels)} to plot")
    cols = min(3, len(drawn))
    lines = math.ceil(len(drawn) / cols)
    fig = _figure()
    fig.set_size_inches(5.0 * cols, 3.3 * lines)
    axes = fig.subplots(lines, cols, squeeze=False)
    epochs = [int(_number(row["epoch"])) for row in rows]
    pretrain = [e for e, row in zip(epochs, rows, strict=True) if row.get("phase") == "pretrain"]
    for ax, (panel, columns) in zip(axes.flat, drawn, strict=False):  # a last row may have empty slots
        if pretrain:
            ax.axvspan(min(pretrain) - 0.5, max(pretrain) + 0.5, color="0.92", zorder=0, label="pretraining")
        for column in columns:
            values = [_number(row.get(column)) for row in rows]
            gloss = panel.columns.get(column)
            ax.plot(epochs, values, marker="o", markersize=3.5, linewidth=1.6,
                    label=f"{column}: {gloss}" if gloss else column)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel(panel.ylabel)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=7.5, loc="best")
    for ax in list(axes.flat)[len(drawn):]:
        ax.set_axis_off()
    fig.suptitle(f"{title} (metrics.csv), epoch {epochs[-1]}", fontsize=11)
    fig.tight_layout()
    return fig


def plot_search_curves(rows: Sequence[Mapping[str, Any]], path: str | Path, dpi: float = DPI) -> Path:
    """A search's ``curves.png``: loss and accuracy of S and E, lambda', and the benchmark metrics when present."""
    plot_format(path)
    return save_figure(curves_figure(rows, SEARCH_PANELS, "search"), path, dpi)


def plot_retrain_curves(rows: Sequence[Mapping[str, Any]], path: str | Path, dpi: float = DPI) -> Path:
    """A retrain's ``curves.png``: train/val/test loss and top-1 (and EMA's), the learning rate."""
    plot_format(path)
    return save_figure(curves_figure(rows, RETRAIN_PANELS, "retrain"), path, dpi)


def alpha_edges(space: str, rows: int) -> list[tuple[int, int]]:
    """``(input, node)`` of each alpha row, numbered as the genotype's text numbers them: DARTS cells start at node
    2 (inputs 0 and 1 are the previous cells), NAS-Bench-201 at node 1 (node 0 is the input)."""
    first = 2 if space == "darts" else 1
    pairs = ((i, node) for node in itertools.count(first) for i in range(node))
    return list(itertools.islice(pairs, rows))


def _chosen(genotype: Mapping[str, Any] | None, cell: str, edges: list[tuple[int, int]],
            primitives: Sequence[str]) -> list[tuple[int, int]]:
    """(alpha row, op index) of every edge the genotype keeps in ``cell``."""
    if not genotype:
        return []
    parsed = genotype_from_json(genotype)
    first = 2 if parsed.space == "darts" else 1
    cells = {"cell": "cell"} if parsed.space != "darts" else {"normal": "normal", "reduce": "reduce"}
    if cell not in cells:
        return []
    return [(edges.index((source, node)), list(primitives).index(op))
            for node, pairs in enumerate(parsed.nodes(cells[cell]), first) for op, source in pairs
            if (source, node) in edges and op in primitives]


def plot_alphas(history: Sequence[Mapping[str, Any]], path: str | Path, dpi: float = DPI) -> Path:
    """``alphas.png`` (see ``alphas_figure``), written atomically."""
    plot_format(path)
    return save_figure(alphas_figure(history), path, dpi)


def alphas_figure(history: Sequence[Mapping[str, Any]]) -> Any:
    """A search's architecture weights from its per-epoch history (``genotypes.jsonl`` lines: ``epoch``, ``alpha``
    softmax per cell type, ``primitives``, ``genotype``): per cell type, a heatmap of the latest epoch (rows: edges
    ``input→node``, columns: ops; the genotype's choices boxed) over the weight, against the epoch, of the op that
    leads each edge now."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.patches import Rectangle

    if not history:
        raise ValueError("no epochs to plot")
    last = history[-1]
    cells = list(last["alpha"])
    count = len(last["alpha"][cells[0]][0])
    primitives = list(last.get("primitives") or [f"op {i}" for i in range(count)])
    genotype = last.get("genotype")
    space = genotype.get("space", "darts") if genotype else "darts"
    epochs = [h["epoch"] for h in history]
    rows = len(last["alpha"][cells[0]])
    heat = 0.8 + 0.3 * rows
    fig = _figure()
    fig.set_size_inches(7.2 * len(cells), heat + 3.6)
    axes = fig.subplots(2, len(cells), squeeze=False, gridspec_kw={"height_ratios": [heat, 3.0]})
    colors = colormaps["tab20"]
    for column, cell in enumerate(cells):
        weights = np.asarray(last["alpha"][cell], dtype=float)
        edges = alpha_edges(space, len(weights))
        labels = [f"{i}→{j}" for i, j in edges]
        ax = axes[0][column]
        image = ax.imshow(weights, cmap="viridis", aspect="auto", vmin=weights.min(), vmax=weights.max())
        middle, spread = (weights.min() + weights.max()) / 2, weights.max() - weights.min()
        digits = min(5, max(2, 1 - math.floor(math.log10(spread)))) if spread > 0 else 2  # enough to tell apart
        for (r, c), value in np.ndenumerate(weights):
            ax.text(c, r, f"{value:.{digits}f}", ha="center", va="center", fontsize=6.5,
                    color="black" if value > middle else "white")
        for r, c in _chosen(genotype, cell, edges, primitives):
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
        ax.set_xticks(range(len(primitives)), primitives, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_ylabel("edge (input→node)")
        name = cell if cell == "cell" else f"{cell} cell"
        ax.set_title(f"{name}: softmax(alpha) at epoch {epochs[-1]} (red: in the genotype)", fontsize=10)
        bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
        bar.set_label("softmax(alpha)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
        ax = axes[1][column]
        for r, (label, current) in enumerate(zip(labels, weights, strict=True)):
            top = int(np.argmax(current))
            ax.plot(epochs, [h["alpha"][cell][r][top] for h in history], marker="o", markersize=2.5, linewidth=1.3,
                    color=colors(r % 20), label=f"{label} {primitives[top]}")
        ax.axhline(1 / len(primitives), color="0.5", linestyle="--", linewidth=1, label="uniform")
        ax.set_title(f"{name}: weight of each edge's leading op", fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("softmax(alpha)")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=6.5, loc="center left", bbox_to_anchor=(1.0, 0.5), ncol=1 + rows // 12)
    fig.tight_layout()
    return fig


def write_search_plots(run_dir: Path, history: Sequence[Mapping[str, Any]]) -> None:
    """A search run folder's plots after an epoch (``history``: the engine's, one entry per epoch so far):
    ``curves.png`` and ``alphas.png``, and ``genotype.png`` when the genotype changed (or is not drawn yet)."""
    from cdarts.plotting.cells import plot_genotype

    plot_search_curves([h["metrics"] for h in history], run_dir / "curves.png")
    plot_alphas(history, run_dir / "alphas.png")
    changed = len(history) < 2 or history[-1]["genotype"] != history[-2]["genotype"]
    if changed or not (run_dir / "genotype.png").exists():
        plot_genotype(genotype_from_json(history[-1]["genotype"]), run_dir / "genotype.png")
