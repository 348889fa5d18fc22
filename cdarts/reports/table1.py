"""Paper Table 1's form: per method, the benchmark's validation and test accuracy of its final cell for each dataset
the benchmark has (mean ± std over seeds), under a row for the benchmark's optimum ("Optimal" in the paper: the best
value of each column, each from its own cell)."""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from cdarts.nasbench import PREFIX
from cdarts.reports.format import markdown_table, mean_pm_std, number
from cdarts.reports.records import RunRecord, labels_of, report_metrics, summarize

DATASETS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet16": "ImageNet-16-120"}
"""Display names of the datasets in NATS-Bench's metric names (``cifar10_valid`` ...)."""
_SPLIT = re.compile(r"(?:(?P<data>.+?)[_-])?(?P<split>valid|val|test)(?:[_-]acc(?:uracy)?)?")
SPLITS = {"valid": "validation", "val": "validation", "test": "test"}
OPTIMUM_LABEL = "optimal"


def column_title(metric: str) -> str:
    """A benchmark metric as Table 1 heads it: ``cifar10_valid`` -> ``CIFAR-10 validation``, ``valid_acc`` ->
    ``validation``; a name that says no split stays as it is."""
    match = _SPLIT.fullmatch(metric)
    if not match:
        return metric
    data = match["data"]
    return " ".join(part for part in (DATASETS.get(data, data) if data else None, SPLITS[match["split"]]) if part)


def table1_lines(runs: Sequence[RunRecord], optimum: Mapping[str, float] | None = None,
                 column: str = "method") -> list[str]:
    """The Table 1 section of ``report.md`` (nothing when the runs had no benchmark). ``optimum`` maps the
    benchmark's metrics (without ``bench_``) to their best values; a run folder that names its method (BOHB-like's
    ``summary.json``) shows that name beside the label."""
    metrics = [m for m in report_metrics(runs) if m.startswith(PREFIX)]
    if not metrics:
        return []
    names = {r.label: r.method_name for r in runs if r.method_name}
    rows = [[OPTIMUM_LABEL, *(number(optimum.get(m[len(PREFIX):])) for m in metrics)]] if optimum else []
    for row, label in zip(summarize(runs, metrics), labels_of(runs), strict=True):
        shown = f"{label}: {names[label]}" if label in names else label
        rows.append([shown, *(mean_pm_std(row[f"{m}_mean"], row[f"{m}_std"]) for m in metrics)])
    text = ("Accuracy (%) in the benchmark of each run's final cell, mean ± std (population) over the seeds"
            + (f"; `{OPTIMUM_LABEL}` is the benchmark's best value of each column (each its own cell)." if optimum
               else "."))
    return ["## Table 1", "", text, "",
            *markdown_table([column, *(column_title(m[len(PREFIX):]) for m in metrics)], rows), ""]
