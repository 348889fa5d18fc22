"""The correlation between a run's alphas and benchmark accuracies (paper Figure 5): Kendall tau and Spearman rho
over seeded random cells, and its scatter plot."""
from __future__ import annotations

import json
import math
import random
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cdarts.errors import ConfigError, DataError, FileError
from cdarts.genotypes import NB201_EDGES, nb201_from_ops
from cdarts.io import atomic_write, atomic_write_json
from cdarts.nasbench import PREFIX, Benchmark, UnknownArchError
from cdarts.reports.format import metric_title


def final_alpha(run_dir: str | Path, epoch: int | None = None) -> tuple[int, list[str], list[list[float]]]:
    """``(epoch, primitives, softmax(alpha) rows)`` from a NAS-Bench-201 run's last (or given) epoch."""
    path = Path(run_dir) / "genotypes.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} has no genotypes.jsonl (not a search run folder?)")
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise FileError(f"{path} is empty: the run has not finished an epoch")
    if epoch is None:
        line = lines[-1]
    else:
        found = [line for line in lines if line["epoch"] == epoch]
        if not found:
            raise ConfigError(f"{path} has no epoch {epoch}; epochs: {lines[0]['epoch']}..{lines[-1]['epoch']}")
        line = found[0]
    if set(line["alpha"]) != {"cell"} or line.get("genotype", {}).get("space") != "nas-bench-201":
        space = line.get("genotype", {}).get("space", "?")
        raise FileError(f"correlation needs a nas-bench-201 run; {run_dir} searched the {space!r} space")
    return line["epoch"], list(line["primitives"]), line["alpha"]["cell"]


def alpha_score(weights: Sequence[Sequence[float]], primitives: Sequence[str], ops: Sequence[str]) -> float:
    """Sum over edges of log softmax(alpha) of the cell's op: the log-probability the alphas give the cell."""
    index = {op: i for i, op in enumerate(primitives)}
    unknown = [op for op in ops if op not in index]
    if unknown:
        raise ValueError(f"op {unknown[0]!r} is not among the run's primitives ({', '.join(primitives)})")
    return sum(math.log(max(row[index[op]], 1e-300)) for row, op in zip(weights, ops, strict=True))


def sample_cells(primitives: Sequence[str], count: int, seed: int) -> list[tuple[str, ...]]:
    """``count`` distinct cells drawn uniformly (seeded) from the ``len(primitives) ** 6`` of the space."""
    total = len(primitives) ** len(NB201_EDGES)
    if count < 2:
        raise ConfigError(f"need at least 2 sampled cells for a correlation, got {count}")
    picks = random.Random(seed).sample(range(total), min(count, total))
    cells = []
    for pick in picks:
        digits = []
        for _ in NB201_EDGES:
            pick, digit = divmod(pick, len(primitives))
            digits.append(primitives[digit])
        cells.append(tuple(reversed(digits)))  # the last edge varies fastest, as in ``enumerate_nb201``
    return cells


def correlation(
    run_dir: str | Path,
    benchmark: Benchmark,
    metric: str | None = None,
    samples: int = 100,
    seed: int = 0,
    epoch: int | None = None,
) -> dict[str, Any]:
    """Kendall tau and Spearman rho between the alpha score (``alpha_score``) of ``samples`` seeded random cells and
    their benchmark ``metric`` (default: the benchmark's first); cells the benchmark lacks are left out."""
    from scipy import stats

    metric = metric or benchmark.metrics[0]
    if metric not in benchmark.metrics:
        raise ConfigError(f"unknown benchmark metric {metric!r}; available: {', '.join(benchmark.metrics)}")
    epoch, primitives, weights = final_alpha(run_dir, epoch)
    points, missing = [], 0
    for ops in sample_cells(primitives, samples, seed):
        arch = str(nb201_from_ops(ops))
        try:
            value = benchmark.query(arch)[metric]
        except UnknownArchError:
            missing += 1
            continue
        if math.isfinite(value):
            points.append({"arch": arch, "score": alpha_score(weights, primitives, ops), "value": value})
    if len(points) < 2:
        raise DataError(f"only {len(points)} of {samples} sampled cells have a {metric!r} value in the benchmark")
    scores, values = [p["score"] for p in points], [p["value"] for p in points]
    with warnings.catch_warnings():  # constant input: the coefficients are NaN, reported as undefined (None)
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        tau, rho = stats.kendalltau(scores, values), stats.spearmanr(scores, values)

    def finite(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    return {
        "run_dir": str(run_dir), "epoch": epoch, "metric": metric, "benchmark": benchmark.name, "seed": seed,
        "samples": samples, "found": len(points), "missing": missing,
        "kendall_tau": finite(tau.statistic), "kendall_p": finite(tau.pvalue),
        "spearman_rho": finite(rho.statistic), "spearman_p": finite(rho.pvalue),
        "points": points,
    }


def plot_correlation(result: dict[str, Any], path: str | Path) -> Path:
    """Paper Figure 5's view: each sampled cell's benchmark value against its alpha score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cdarts.plotting import plot_format

    fmt, path = plot_format(path), Path(path)
    fig, ax = plt.subplots(figsize=(5.6, 4.3))
    ax.scatter([p["score"] for p in result["points"]], [p["value"] for p in result["points"]], s=14, alpha=0.7)

    def show(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    ax.set_title(f"Kendall tau {show(result['kendall_tau'])}, Spearman rho {show(result['spearman_rho'])} "
                 f"(n={result['found']})", fontsize=10)
    ax.set_xlabel(f"alpha score: sum of log softmax(alpha) over edges (epoch {result['epoch']})")
    ax.set_ylabel(metric_title(PREFIX + result["metric"]))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight"))
    finally:
        plt.close(fig)


def write_correlation(result: dict[str, Any], out_dir: str | Path, name: str = "correlation") -> dict[str, Path]:
    """``<name>.json`` and ``<name>.png`` in ``out_dir``."""
    out_dir = Path(out_dir)
    return {"json": atomic_write_json(out_dir / f"{name}.json", result),
            "plot": plot_correlation(result, out_dir / f"{name}.png")}
