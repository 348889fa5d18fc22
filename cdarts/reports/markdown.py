"""A study's report as files: ``report.md`` (paper Tables 1, 5 and 6), ``report.csv``, ``runs.csv`` and the curve
plot ``curves.png`` (paper Figures 3 and 6)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from cdarts.io import atomic_write, atomic_write_text
from cdarts.nasbench import PREFIX
from cdarts.reports.format import code, csv_table, markdown_table, mean_pm_std, metric_title, number
from cdarts.reports.records import RunRecord, curve_metrics, curves, report_metrics, summarize
from cdarts.reports.table1 import table1_lines
from cdarts.reports.variants import Variant


def markdown_report(runs: Sequence[RunRecord], title: str, plot: str | None = None,
                    variants: Sequence[Variant] = (), optimum: Mapping[str, float] | None = None) -> str:
    """The report as Markdown: Table 1 (benchmark accuracies per method, under the benchmark's ``optimum``) when the
    runs had a benchmark, mean ± std of every final metric per strategy, then every run with its genotype (Table 6).
    With ``variants`` the rows are the variants, each with the overrides that make it."""
    metrics = report_metrics(runs)
    summary = summarize(runs, metrics, variants)
    names = [metric_title(m) for m in metrics]
    column = "variant" if variants else "strategy"
    seeds = ", ".join(str(s) for s in sorted({r.seed for r in runs}))
    lines = [f"# {title}", "", f"{len(runs)} runs (seeds {seeds}); final-epoch values, mean ± std (population) over "
             f"the seeds of each {column}.", ""]
    if not any(m.startswith(PREFIX) for m in metrics):
        lines += ["No benchmark was configured: the accuracies are the search's own val/test splits, not "
                  "NAS-Bench-201 numbers.", ""]
    table1 = table1_lines(runs, optimum, column if variants else "method")
    lines += [*table1, *(["## All final metrics", ""] if table1 else [])]
    made = {v.label: ", ".join(map(code, v.overrides)) or "the config as given" for v in variants}
    lines += markdown_table(
        [column, "runs", *names, *(["overrides"] if variants else [])],
        [[row[column], str(row["runs"]), *(mean_pm_std(row[f"{m}_mean"], row[f"{m}_std"]) for m in metrics),
          *([made.get(row[column], "")] if variants else [])] for row in summary])
    lines += ["", "## Runs", ""]
    lines += markdown_table([column, "seed", *names, "genotype"],
                            [[r.label, str(r.seed), *(number(r.final.get(m)) for m in metrics), code(r.genotype)]
                             for r in runs])
    if plot:
        lines += ["", f"![accuracy against search epoch]({plot})"]
    return "\n".join(lines) + "\n"


def plot_curves(runs: Sequence[RunRecord], path: str | Path, metrics: Sequence[str] | None = None) -> Path:
    """Paper Figure 3: each metric against the search epoch, one mean line and ± std band per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cdarts.plotting import plot_format

    fmt, path = plot_format(path), Path(path)
    metrics = list(metrics if metrics is not None else curve_metrics(runs))
    if not runs or not metrics:
        raise ValueError("nothing to plot: no runs or no per-epoch accuracy columns")
    bench = any(m.startswith(PREFIX) for m in metrics)
    trials = any(row.get("phase") == "trial" for run in runs for row in run.rows[:1])
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.9), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes[0], metrics, strict=True):
        for index, (label, (epochs, means, stds)) in enumerate(curves(runs, metric).items()):
            color = colors[index % len(colors)]
            count = sum(r.label == label for r in runs)
            ax.plot(epochs, means, color=color, marker="o", markersize=3, linewidth=1.8, label=f"{label} (n={count})")
            ax.fill_between(epochs, [m - s for m, s in zip(means, stds, strict=True)],
                            [m + s for m, s in zip(means, stds, strict=True)], color=color, alpha=0.2, linewidth=0)
        pretrain = [r["epoch"] for run in runs for r in run.rows if r.get("phase") == "pretrain"]
        if pretrain:
            ax.axvspan(0.5, max(pretrain) + 0.5, color="0.9", zorder=0, label="pretraining")
        ax.set_title(metric_title(metric))
        ax.set_xlabel("search epoch (multi-trial methods: query)" if trials else "search epoch")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0][0].legend(fontsize=9)
    networks = "S and E" if "e_test_acc" in metrics else "search network S"
    title = "benchmark accuracy of each epoch's genotype" if bench else f"{networks} accuracy (no benchmark)"
    fig.suptitle(f"{title}: mean ± std over seeds", fontsize=11)
    fig.tight_layout()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight"))
    finally:
        plt.close(fig)


def write_report(runs: Sequence[RunRecord], out_dir: str | Path, title: str = "Search report",
                 variants: Sequence[Variant] = (), optimum: Mapping[str, float] | None = None) -> dict[str, Path]:
    """Write ``report.md`` (with Table 1 under the benchmark's ``optimum``), ``report.csv`` (mean and std per strategy,
    or per variant with its overrides), ``runs.csv`` (every run) and ``curves.png`` into ``out_dir``; returns their
    paths by kind."""
    if not runs:
        raise ValueError("no finished runs to report")
    out_dir = Path(out_dir)
    metrics = report_metrics(runs)
    paths = {"plot": plot_curves(runs, out_dir / "curves.png")}
    paths["markdown"] = atomic_write_text(out_dir / "report.md", markdown_report(runs, title, "curves.png", variants,
                                                                              optimum))
    column = "variant" if variants else "strategy"
    summary_columns = [column, "runs"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    summary_columns += ["overrides"] if variants else []
    summary = summarize(runs, metrics, variants)
    paths["csv"] = atomic_write_text(out_dir / "report.csv", csv_table(summary_columns, summary))
    run_rows = [{column: r.label, "seed": r.seed, **{m: r.final.get(m, math.nan) for m in metrics},
                 "genotype": r.genotype, "run_dir": str(r.run_dir)} for r in runs]
    paths["runs"] = atomic_write_text(out_dir / "runs.csv",
                                      csv_table([column, "seed", *metrics, "genotype", "run_dir"], run_rows))
    return paths
