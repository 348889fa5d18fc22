"""How a report writes numbers, metric names and tables (Markdown and CSV)."""
from __future__ import annotations

import csv
import io
import math
from typing import Any

from cdarts.io import csv_cell
from cdarts.nasbench import PREFIX


def metric_title(metric: str) -> str:
    """``bench_test_acc`` -> ``benchmark test_acc``; the search's own metrics keep their names."""
    return f"benchmark {metric[len(PREFIX):]}" if metric.startswith(PREFIX) else metric


def mean_pm_std(mean: float, std: float) -> str:
    """``91.13 ± 0.44`` (``-`` for no value)."""
    return "-" if math.isnan(mean) else f"{mean:.2f} ± {std:.2f}"


def number(value: Any) -> str:
    """Two decimals (``-`` for no value)."""
    return "-" if not isinstance(value, float) or math.isnan(value) else f"{value:.2f}"


def code(text: str) -> str:
    """Inline code for a Markdown table cell: an arch string's pipes are escaped so they do not split the row."""
    return "`" + text.replace("|", "\\|") + "`"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def csv_table(columns: list[str], rows: list[dict[str, Any]]) -> str:
    """CSV text with the given columns, cells as ``cdarts.io.csv_cell`` writes them (a missing value empty)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: csv_cell(v) for k, v in row.items()})
    return buffer.getvalue()
