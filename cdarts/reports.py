"""What several search runs add up to: multi-seed reports (paper Tables 1 and 6, Figure 3) and the correlation
between a run's alphas and benchmark accuracies (paper Figure 5).

A run is read back from its folder only (``config.yaml``, ``genotype.json``, ``metrics.csv``, ``genotypes.jsonl``),
so a report can be rebuilt at any time from finished runs. Standard deviations are population ones (``ddof=0``),
as NAS-Bench-201 reports its ``mean ± std``.
"""
from __future__ import annotations

import copy
import csv
import io
import json
import math
import random
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdarts.config import read_yaml
from cdarts.errors import ConfigError, DataError, FileError
from cdarts.genotypes import NB201_EDGES, load_genotype, nb201_from_ops
from cdarts.io import atomic_write, atomic_write_json, atomic_write_text
from cdarts.nasbench import PREFIX, Benchmark, UnknownArchError

FALLBACK_METRICS = ("e_val_acc", "e_test_acc", "s_val_acc", "s_test_acc")
"""Final-epoch accuracies a report shows besides the benchmark's (the search's own val/test splits)."""
CURVE_FALLBACK = ("s_val_acc", "s_test_acc")
"""What the curve plot shows when the runs had no benchmark: S's accuracies, which every strategy logs (and E's test
accuracy when every run has an E, so a sweep over its depth shows paper Figure 6's curves)."""


@dataclass
class RunRecord:
    """One finished search run as read from its folder."""

    label: str
    seed: int
    run_dir: Path
    genotype: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final(self) -> dict[str, Any]:
        return self.rows[-1] if self.rows else {}


def _value(text: str) -> Any:
    """A metrics.csv cell: a float where it reads as one, NaN when empty, else the text (``phase``)."""
    if text == "":
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
    return RunRecord(label, int(config.get("seed", 0)), run_dir, genotype, read_metrics(run_dir / "metrics.csv"))


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


def metric_title(metric: str) -> str:
    """``bench_test_acc`` -> ``benchmark test_acc``; the search's own metrics keep their names."""
    return f"benchmark {metric[len(PREFIX):]}" if metric.startswith(PREFIX) else metric


def _pm(mean: float, std: float) -> str:
    return "-" if math.isnan(mean) else f"{mean:.2f} ± {std:.2f}"


def _num(value: Any) -> str:
    return "-" if not isinstance(value, float) or math.isnan(value) else f"{value:.2f}"


def _code(text: str) -> str:
    """Inline code for a Markdown table cell: an arch string's pipes are escaped so they do not split the row."""
    return "`" + text.replace("|", "\\|") + "`"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def markdown_report(runs: Sequence[RunRecord], title: str, plot: str | None = None,
                    variants: Sequence[Variant] = ()) -> str:
    """The report as Markdown: mean ± std per strategy (Table 1's form), then every run with its genotype (Table 6).
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
    made = {v.label: ", ".join(map(_code, v.overrides)) or "the config as given" for v in variants}
    lines += _table([column, "runs", *names, *(["overrides"] if variants else [])],
                    [[row[column], str(row["runs"]), *(_pm(row[f"{m}_mean"], row[f"{m}_std"]) for m in metrics),
                      *([made.get(row[column], "")] if variants else [])]
                     for row in summary])
    lines += ["", "## Runs", ""]
    lines += _table([column, "seed", *names, "genotype"],
                    [[r.label, str(r.seed), *(_num(r.final.get(m)) for m in metrics), _code(r.genotype)]
                     for r in runs])
    if plot:
        lines += ["", f"![accuracy against search epoch]({plot})"]
    return "\n".join(lines) + "\n"


def _csv(columns: list[str], rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def curves(runs: Sequence[RunRecord], metric: str) -> dict[str, tuple[list[int], list[float], list[float]]]:
    """Per strategy label: epochs (1-based) and the mean and std of ``metric`` over its runs, epoch by epoch
    (as far as every run of the label got)."""
    result = {}
    for label in labels_of(runs):
        group = [r for r in runs if r.label == label]
        length = min(len(r.rows) for r in group)
        stats = [mean_std([r.rows[i].get(metric, math.nan) for r in group]) for i in range(length)]
        epochs = [group[0].rows[i]["epoch"] + 1 for i in range(length)]
        result[label] = (epochs, [m for m, _ in stats], [s for _, s in stats])
    return result


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
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.9), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes[0], metrics, strict=True):
        for index, (label, (epochs, means, stds)) in enumerate(curves(runs, metric).items()):
            color = colors[index % len(colors)]
            count = sum(r.label == label for r in runs)
            ax.plot(epochs, means, color=color, marker="o", markersize=3, linewidth=1.8, label=f"{label} (n={count})")
            ax.fill_between(epochs, [m - s for m, s in zip(means, stds, strict=True)],
                            [m + s for m, s in zip(means, stds, strict=True)], color=color, alpha=0.2, linewidth=0)
        pretrain = [r["epoch"] + 1 for run in runs for r in run.rows if r.get("phase") == "pretrain"]
        if pretrain:
            ax.axvspan(0.5, max(pretrain) + 0.5, color="0.9", zorder=0, label="pretraining")
        ax.set_title(metric_title(metric))
        ax.set_xlabel("search epoch")
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
                 variants: Sequence[Variant] = ()) -> dict[str, Path]:
    """Write ``report.md``, ``report.csv`` (mean and std per strategy, or per variant with its overrides), ``runs.csv``
    (every run) and ``curves.png`` into ``out_dir``; returns their paths by kind."""
    if not runs:
        raise ValueError("no finished runs to report")
    out_dir = Path(out_dir)
    metrics = report_metrics(runs)
    paths = {"plot": plot_curves(runs, out_dir / "curves.png")}
    paths["markdown"] = atomic_write_text(out_dir / "report.md", markdown_report(runs, title, "curves.png", variants))
    column = "variant" if variants else "strategy"
    summary_columns = [column, "runs"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    summary_columns += ["overrides"] if variants else []
    paths["csv"] = atomic_write_text(out_dir / "report.csv", _csv(summary_columns, summarize(runs, metrics, variants)))
    run_rows = [{column: r.label, "seed": r.seed, **{m: r.final.get(m, math.nan) for m in metrics},
                 "genotype": r.genotype, "run_dir": str(r.run_dir)} for r in runs]
    paths["runs"] = atomic_write_text(out_dir / "runs.csv",
                                      _csv([column, "seed", *metrics, "genotype", "run_dir"], run_rows))
    return paths


# --- correlation between alphas and benchmark accuracies (paper Figure 5)


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
            raise ConfigError(f"{path} has no epoch {epoch}; epochs: 0..{lines[-1]['epoch']}")
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
    ax.set_xlabel(f"alpha score: sum of log softmax(alpha) over edges (epoch {result['epoch'] + 1})")
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


# --- multi-seed studies: independent searches per (strategy, seed), resumable


@dataclass
class PlannedRun:
    """One search of a study: its label, seed, config (as given) and filled config, and its folder."""

    label: str
    seed: int
    config: dict[str, Any]
    filled: dict[str, Any]
    run_dir: Path


def strategy_variant(config: dict[str, Any], name: str) -> dict[str, Any]:
    """``config`` with its strategy replaced by strategy ``name`` at its defaults, keeping the epochs and pretraining
    epochs so the curves line up; ``config`` itself when its strategy already is ``name``."""
    from cdarts.config import config_parameters, load_config
    from cdarts.engine import search_config
    from cdarts.registry import strategies

    current = load_config(config, search_config)["strategy"]
    if current["type"] == name:
        return copy.deepcopy(config)
    params = config_parameters(strategies.get(name))
    kept = {k: current[k] for k in ("epochs", "pretrain_epochs") if k in params and k in current}
    return {**copy.deepcopy(config), "strategy": {"type": name, **kept}}


LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+=-]*")
"""What a variant label may be: it names the variant's folder and its row in the report."""
_NEXT_OVERRIDE = re.compile(r",(?=\s*[A-Za-z_][\w.-]*\s*=)")
"""A comma that starts another ``KEY=VALUE``; commas inside a YAML value (``[0.5, 0.99]``) are not followed by one."""


@dataclass(frozen=True)
class Variant:
    """One row of a study: a label (its folder, ``OUTPUT/<label>/seed-N``) and the overrides it adds to the config.

    An override of ``strategy.type`` swaps the strategy as ``strategy_variant`` does (its defaults, the config's
    epochs) before the others apply; ``origin`` (the option or file it came from) prefixes its errors.
    """

    label: str
    overrides: tuple[str, ...] = ()
    origin: str = field(default="--variant", compare=False)


def _check_variant(variant: Variant) -> Variant:
    from cdarts.config import parse_override

    where = f"{variant.origin} {variant.label!r}"
    if not LABEL.fullmatch(variant.label):
        raise ConfigError(f"{where}: a label is letters, digits and _ . + = - (it names the variant's folder), "
                          "e.g. darts+reg")
    for text in variant.overrides:
        key = text.partition("=")[0].strip()
        if "=" not in text or not key or not all(key.split(".")):
            raise ConfigError(f"{where}: {text!r}: expected KEY.PATH=VALUE, e.g. strategy.epochs=3")
        if parse_override(text)[0] == ["seed"]:
            raise ConfigError(f"{where}: 'seed' is set by --seeds, not by a variant")
    return variant


def parse_variant(text: str) -> Variant:
    """``"LABEL:KEY=VALUE[,KEY=VALUE...]"`` (the ``--variant`` option) as a ``Variant``."""
    label, colon, rest = text.partition(":")
    overrides = tuple(part.strip() for part in _NEXT_OVERRIDE.split(rest) if part.strip())
    if not colon or not overrides or any("=" not in part for part in overrides):
        raise ConfigError(f"--variant {text!r}: expected LABEL:KEY=VALUE[,KEY=VALUE...], "
                          "e.g. darts+reg:strategy.type=darts,strategy.reg_weight=5")
    return _check_variant(Variant(label.strip(), overrides))


def _split_values(text: str) -> list[str]:
    """Comma-separated values, keeping the commas inside brackets and braces (``[1,2],[3,4]`` is two values)."""
    values, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += (char in "[{") - (char in "]}")
        if char == "," and depth == 0:
            values.append(text[start:index])
            start = index + 1
    return [v.strip() for v in [*values, text[start:]] if v.strip()]


def parse_sweep(text: str) -> list[Variant]:
    """``"KEY=V1,V2,..."`` (the ``--sweep`` option): one variant per value, labelled ``<last key>=<value>``."""
    key, equals, rest = text.partition("=")
    values = _split_values(rest)
    if not equals or not key.strip() or not values:
        raise ConfigError(f"--sweep {text!r}: expected KEY=VALUE1,VALUE2,..., e.g. space.eval_layers=3,5,8")
    name = key.strip().split(".")[-1]
    unnamed = [value for value in values if not LABEL.fullmatch(f"{name}={value}")]
    if unnamed:
        raise ConfigError(f"--sweep {text!r}: value {unnamed[0]!r} cannot name a folder; give it a label with "
                          f"--variant LABEL:{key.strip()}={unnamed[0]}")
    return [_check_variant(Variant(f"{name}={value}", (f"{key.strip()}={value}",), "--sweep")) for value in values]


def _inline(value: Any) -> str:
    """A YAML value as ``--set`` text that parses back to it."""
    from cdarts.config import load_yaml_text

    if isinstance(value, str) and value and load_yaml_text(value) == value:
        return value
    return json.dumps(value)


def read_variants(path: str | Path) -> list[Variant]:
    """The ``variants:`` of a YAML file: label -> mapping of dotted keys to values (empty: the config as it is)."""
    data = read_yaml(path)
    entries = data.get("variants") if isinstance(data, dict) else None
    if not isinstance(data, dict) or set(data) != {"variants"} or not isinstance(entries, dict) or not entries:
        raise ConfigError(f"{path}: expected one key 'variants' mapping labels to overrides, "
                          "e.g. variants: {darts: {strategy.type: darts}}")
    variants = []
    for label, settings in entries.items():
        if not isinstance(settings, (dict, type(None))):
            raise ConfigError(f"{path}: variant {label!r}: expected a mapping of KEY.PATH: VALUE, "
                              f"got {type(settings).__name__}")
        overrides = tuple(f"{key}={_inline(value)}" for key, value in (settings or {}).items())
        variants.append(_check_variant(Variant(str(label), overrides, str(path))))
    return variants


def strategy_variants(names: Sequence[str]) -> list[Variant]:
    """``--strategies a,b``: one variant per strategy, labelled with its name."""
    return [Variant(name, (f"strategy.type={name}",), "--strategies") for name in names]


def apply_variant(config: dict[str, Any], variant: Variant) -> dict[str, Any]:
    """``config`` with the variant's strategy swapped in (if it sets ``strategy.type``), then its other overrides."""
    from cdarts.config import apply_overrides, parse_override

    result, rest = config, []
    for text in variant.overrides:
        keys, value = parse_override(text)
        if keys == ["strategy", "type"] or (keys == ["strategy"] and isinstance(value, str)):
            result = strategy_variant(result, str(value))
        else:
            rest.append(text)
    return apply_overrides(result, rest)


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """The dotted paths at which two config trees differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in list(a) + [k for k in b if k not in a]:
            found += differences(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
        return found
    return [] if a == b else [path or "<config>"]


def plan_study(
    config: str | Path | dict[str, Any],
    seeds: Sequence[int],
    output: str | Path,
    strategies: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
    variants: Sequence[Variant] = (),
) -> list[PlannedRun]:
    """Every (variant, seed) search of a study, validated up front so a bad config fails before any run.

    ``overrides`` apply to every run, then each variant's own (``strategies`` are variants that swap the strategy).
    Runs go to ``output/seed-N``, or ``output/<label>/seed-N`` when there are strategies or variants.
    """
    from cdarts.config import apply_overrides, load_config
    from cdarts.engine import search_config
    from cdarts.registry import RegistryError

    if not seeds:
        raise ConfigError("no seeds given")
    if len(set(seeds)) != len(seeds) or (strategies and len(set(strategies)) != len(strategies)):
        raise ConfigError(
            f"seeds and strategies must not repeat: seeds {list(seeds)}, strategies {list(strategies or [])}"
        )
    rows = [*strategy_variants(strategies or []), *variants]
    labels = [variant.label for variant in rows]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigError(f"variant labels must not repeat: {', '.join(map(repr, repeated))} given twice; "
                          f"labels: {', '.join(labels)}")
    raw = read_yaml(config) if isinstance(config, (str, Path)) else copy.deepcopy(dict(config))
    base = apply_overrides(raw, overrides)
    load_config(base, search_config)  # a bad config or --set is reported as such, not as one variant's problem
    output = Path(output)
    plans = []
    for variant in rows or [None]:
        for seed in seeds:
            if variant is None:
                run_config = {**base, "seed": seed}
                filled = load_config(run_config, search_config)
                plans.append(PlannedRun(filled["strategy"]["type"], seed, run_config, filled, output / f"seed-{seed}"))
                continue
            try:
                run_config = {**apply_variant(base, variant), "seed": seed}
                filled = load_config(run_config, search_config)
            except ConfigError as exc:
                raise ConfigError([f"{variant.origin} {variant.label!r}: {p}" for p in exc.problems]) from None
            except RegistryError as exc:
                raise ConfigError(f"{variant.origin} {variant.label!r}: {exc}") from None
            plans.append(PlannedRun(variant.label, seed, run_config, filled, output / variant.label / f"seed-{seed}"))
    return plans


def run_study(plans: Sequence[PlannedRun], log: Callable[[str], Any] = print) -> list[RunRecord]:
    """Run every planned search that has not finished (a folder with ``genotype.json`` is skipped, a started one is
    resumed from its last checkpoint); refuses a folder that holds a run of another config."""
    from cdarts.config import load_config
    from cdarts.engine import search, search_config

    for index, plan in enumerate(plans, start=1):
        saved = plan.run_dir / "config.yaml"
        if saved.is_file():
            changed = differences(load_config(saved, search_config), plan.filled)
            if changed:
                raise ConfigError(f"{plan.run_dir} holds a run of another config (differs at "
                                  f"{', '.join(changed[:5])}); choose another --output or remove that folder")
        where = f"[{index}/{len(plans)}] {plan.label} seed {plan.seed}"
        if (plan.run_dir / "genotype.json").is_file():
            log(f"{where}: finished in {plan.run_dir}, skipping")
            continue
        started = plan.run_dir.is_dir() and any(plan.run_dir.iterdir())
        log(f"{where}: {'resuming' if started else 'searching'} in {plan.run_dir}")
        search(plan.config, output=plan.run_dir, resume=started)
    return [load_run(plan.run_dir, plan.label) for plan in plans]
