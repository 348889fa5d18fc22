"""Finished runs read back from their folders, and what a report computes from them: final-epoch metrics, mean ± std
per label, per-epoch curves.

A run is read back from its folder only (``config.yaml``, ``genotype.json``, ``metrics.csv``), so a report can be
rebuilt at any time from finished runs. Standard deviations are population ones (``ddof=0``), as NAS-Bench-201
reports its ``mean ± std``.
"""
from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cdarts.config import read_yaml
from cdarts.genotypes import load_genotype
from cdarts.nasbench import PREFIX

if TYPE_CHECKING:
    from cdarts.reports.variants import Variant

FALLBACK_METRICS = ("e_val_acc", "e_test_acc", "s_val_acc", "s_test_acc")
"""Final-epoch accuracies a report shows besides the benchmark's (the search's own val/test splits)."""
CURVE_FALLBACK = ("s_val_acc", "s_test_acc")
"""What the curve plot shows when the runs had no benchmark: S's accuracies, which every strategy logs (and E's test
accuracy when every run has an E, so a sweep over its depth shows paper Figure 6's curves)."""


@dataclass
class RunRecord:
    """One finished run (a search or a multi-trial run) as read from its folder."""

    label: str
    seed: int
    run_dir: Path
    genotype: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    method_name: str | None = None
    """What the method is, where its ``summary.json`` says (e.g. "BOHB-like (optuna TPE + Hyperband)")."""

    @property
    def final(self) -> dict[str, Any]:
        return self.rows[-1] if self.rows else {}


def _value(text: str | None) -> Any:
    """A metrics.csv cell: a float where it reads as one, NaN when empty or missing (a short row; older logs wrote
    ``nan``, which reads as NaN too), else the text (``phase``)."""
    if text is None or text == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        return text


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.csv`` with numbers as floats (``epoch`` as an int)."""
    with open(path, newline="") as handle:
        rows = [{k: _value(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    for row in rows:
        row["epoch"] = int(row["epoch"])
    return rows


def load_run(run_dir: str | Path, label: str | None = None) -> RunRecord:
    """Read a finished run; ``label`` defaults to the strategy type of its ``config.yaml``."""
    run_dir = Path(run_dir)
    missing = [name for name in ("config.yaml", "genotype.json", "metrics.csv") if not (run_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{run_dir} is not a finished run: {', '.join(missing)} missing")
    config = read_yaml(run_dir / "config.yaml")
    strategy = config.get("strategy") or {}
    label = label or (strategy.get("type") if isinstance(strategy, dict) else str(strategy)) or "search"
    genotype = str(load_genotype(run_dir / "genotype.json"))
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
    name = summary.get("name") if isinstance(summary, dict) and isinstance(summary.get("name"), str) else None
    return RunRecord(label, int(config.get("seed", 0)), run_dir, genotype, read_metrics(run_dir / "metrics.csv"), name)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation of the finite values (NaN, NaN when there are none)."""
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    mean = sum(finite) / len(finite)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in finite) / len(finite))


def report_metrics(runs: Sequence[RunRecord]) -> list[str]:
    """The final-epoch metrics a report shows: the benchmark's (``bench_*``), then the search's own accuracies."""
    columns: list[str] = []
    for run in runs:
        columns += [k for k in run.final if k.startswith(PREFIX) and k not in columns]
    present = [m for m in FALLBACK_METRICS if any(isinstance(r.final.get(m), float) for r in runs)]
    return columns + present


def curve_metrics(runs: Sequence[RunRecord]) -> list[str]:
    """The per-epoch metrics the curve plot shows: the benchmark's, else S's val and test accuracy."""
    bench = [m for m in report_metrics(runs) if m.startswith(PREFIX)]
    if bench:
        return bench
    with_e = bool(runs) and all(isinstance(r.final.get("e_test_acc"), float) and math.isfinite(r.final["e_test_acc"])
                                for r in runs)
    return [m for m in CURVE_FALLBACK if any(m in r.final for r in runs)] + ["e_test_acc"] * with_e


def labels_of(runs: Sequence[RunRecord]) -> list[str]:
    return list(dict.fromkeys(run.label for run in runs))


def summarize(
    runs: Sequence[RunRecord], metrics: Sequence[str], variants: Sequence[Variant] = ()
) -> list[dict[str, Any]]:
    """One row per label: the run count and ``<metric>_mean``/``<metric>_std`` of the final epochs. The label is the
    ``strategy``, or with ``variants`` the ``variant``, and then its ``overrides`` (``; ``-separated) follow."""
    overrides = {v.label: "; ".join(v.overrides) for v in variants}
    rows = []
    for label in labels_of(runs):
        group = [r for r in runs if r.label == label]
        row: dict[str, Any] = {"variant" if variants else "strategy": label, "runs": len(group)}
        for metric in metrics:
            row[f"{metric}_mean"], row[f"{metric}_std"] = mean_std([r.final.get(metric, math.nan) for r in group])
        if variants:
            row["overrides"] = overrides.get(label, "")
        rows.append(row)
    return rows



def curves(runs: Sequence[RunRecord], metric: str) -> dict[str, tuple[list[int], list[float], list[float]]]:
    """Per strategy label: epochs (1-based) and the mean and std of ``metric`` over its runs, epoch by epoch
    (as far as every run of the label got)."""
    result = {}
    for label in labels_of(runs):
        group = [r for r in runs if r.label == label]
        length = min(len(r.rows) for r in group)
        stats = [mean_std([r.rows[i].get(metric, math.nan) for r in group]) for i in range(length)]
        epochs = [group[0].rows[i]["epoch"] for i in range(length)]
        result[label] = (epochs, [m for m, _ in stats], [s for _, s in stats])
    return result
