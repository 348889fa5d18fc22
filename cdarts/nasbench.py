"""NAS-Bench-201 look-ups: the ``benchmarks`` registry, which turns a cell into its trained accuracies.

A benchmark answers ``query(arch) -> {metric: value}`` for an arch string (``|op~0|+|op~0|op~1|+...``) or an
``NB201Genotype``. ``nats-bench`` asks the official ``nats_bench`` package (an optional dependency, imported only
when the benchmark is built) and its benchmark file; ``table`` reads a CSV or JSON file with an arch-string column
and one column per metric. Both accept a cell in any edge order; ``table`` also finds a cell through an isomorphic
one (``canonical_nb201``) when the file lacks the exact string. The engine logs every epoch's look-up as
``bench_<metric>`` (paper Figure 3); ``cdarts.synthetic`` writes a made-up table for demos and tests only.

Multi-trial methods (``cdarts.strategies.trials``) also need what training a cell cost: ``Benchmark.training`` gives the
search metric after each epoch of a (proxy) training and its simulated seconds. A table holds them in a
``train_time_s`` column and ``<metric>@<epoch>`` columns (1-based epochs); NATS-Bench in its 12-epoch results.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cdarts.errors import ConfigError, DataError, FileError
from cdarts.genotypes import NB201Genotype, canonical_nb201, enumerate_nb201, nb201_from_ops, nb201_ops
from cdarts.genotypes import parse_arch_string as _parse_arch_string
from cdarts.ops import NB201_PRIMITIVES
from cdarts.registry import benchmarks, close_match

PREFIX = "bench_"
"""Metric columns of ``metrics.csv`` that come from the benchmark: ``bench_<metric>``."""

_STANDARD = re.compile(r"\|([^|~+]+)~0\|\+\|([^|~+]+)~0\|([^|~+]+)~1\|\+\|([^|~+]+)~0\|([^|~+]+)~1\|([^|~+]+)~2\|")
"""An arch string in the standard edge order, read without building a genotype (tables hold 15,625 of them)."""

Ops = tuple[str, ...]

TIME_COLUMN = "train_time_s"
"""A table's column of each cell's simulated training seconds: what multi-trial methods spend their budget on."""
EPOCH_COLUMN = re.compile(r"(.+)@([1-9][0-9]*)")
"""A table's per-epoch columns, ``<metric>@<epoch>``: the metric after each epoch of the training that
``train_time_s`` timed."""


class UnknownArchError(DataError, KeyError):
    """The benchmark has no entry for a cell (nor for any cell isomorphic to it): bad input to the commands, and a
    KeyError to code that looks cells up; ``str`` is the plain message (KeyError's would quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def cell_ops(arch: str | NB201Genotype) -> Ops:
    """The cell's op per edge in ``NB201_EDGES`` order; raises ValueError for a string that is no arch string."""
    if isinstance(arch, NB201Genotype):
        return nb201_ops(arch)
    if not isinstance(arch, str):
        raise ValueError(f"expected a NAS-Bench-201 arch string or NB201Genotype, got {type(arch).__name__}")
    match = _STANDARD.fullmatch(arch.strip())
    return tuple(match.groups()) if match else nb201_ops(_parse_arch_string(arch))


def arch_string(arch: str | NB201Genotype) -> str:
    """The standard arch string of a cell (edges of each node in input order)."""
    return str(nb201_from_ops(cell_ops(arch)))


@dataclass(frozen=True)
class Training:
    """One simulated training of a cell, as a multi-trial method pays for and sees it: the search metric after each
    epoch (``curve``) and the seconds the whole training took; each epoch costs an equal share of them."""

    curve: tuple[float, ...]
    seconds: float


class Benchmark:
    """What every benchmark offers: the metric names it returns and ``query``; ``primitives``, ``training`` and
    ``optimum`` for multi-trial methods and Table 1's "Optimal" row."""

    name = "benchmark"
    space = "nas-bench-201"
    metrics: tuple[str, ...] = ()
    primitives: tuple[str, ...] = NB201_PRIMITIVES
    """The ops of the benchmark's cells: what a multi-trial method samples from."""

    def query(self, arch: str | NB201Genotype) -> dict[str, float]:
        """``{metric: value}`` for the cell; raises ``UnknownArchError`` when the benchmark lacks it."""
        raise NotImplementedError

    def training(self, arch: str | NB201Genotype, metric: str) -> Training:
        """The simulated training a multi-trial method pays for: ``metric`` per epoch and the seconds it took."""
        raise ConfigError(f"benchmark {self.name!r} has no training times, which multi-trial methods spend their "
                          "budget on; use a table with a 'train_time_s' column or nats-bench")

    def optimum(self) -> dict[str, float]:
        """The best value of each metric over the space's cells, each metric its own cell (Table 1's "Optimal")."""
        best = dict.fromkeys(self.metrics, math.nan)
        for cell in enumerate_nb201(self.primitives):
            try:
                values = self.query(cell)
            except UnknownArchError:
                continue
            for metric, value in values.items():
                best[metric] = value if math.isnan(best[metric]) else max(best[metric], value)
        return best

    def __call__(self, arch: str | NB201Genotype) -> dict[str, float]:
        return self.query(arch)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, metrics={list(self.metrics)})"


def _number(value: Any, where: str) -> float:
    """A metric cell as a float; empty and null cells are NaN (a benchmark may lack a number)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    if isinstance(value, bool):
        raise FileError(f"{where}: expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise FileError(f"{where}: expected a number, got {value!r}") from None


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names and rows of a CSV file, or of a JSON file holding a list of row objects or a mapping of
    column name to a list of values."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    if suffix != ".json":
        raise ConfigError(
            f"benchmark table {str(path)!r}: unknown format {suffix or '(no suffix)'!r}; use .csv or .json"
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise FileError(f"benchmark table {str(path)!r}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
        lengths = {len(v) for v in data.values()}
        if len(lengths) > 1:
            raise FileError(f"benchmark table {str(path)!r}: the column lists differ in length ({sorted(lengths)})")
        count = lengths.pop() if lengths else 0
        return list(data), [{k: v[i] for k, v in data.items()} for i in range(count)]
    if isinstance(data, list) and all(isinstance(row, dict) for row in data):
        columns: list[str] = []
        for row in data:
            columns += [k for k in row if k not in columns]
        return columns, data
    raise FileError(
        f"benchmark table {str(path)!r}: expected a list of row objects or an object of column lists, "
        f"got {type(data).__name__}"
    )


def _missing_columns(what: str, names: Iterable[str], columns: list[str], path: Path) -> None:
    missing = [n for n in names if n not in columns]
    if missing:
        match = close_match(missing[0], columns)
        hint = f"; did you mean {match!r}?" if match else ""
        raise FileError(f"benchmark table {str(path)!r} has no {what} column {missing[0]!r}; "
                        f"columns: {', '.join(columns) or '(none)'}{hint}")


class TableBenchmark(Benchmark):
    """Look-ups in a table of arch strings and metrics, read once into memory.

    Rows are keyed by the cell's ops, so a cell written with a node's edges in another order is found; with
    ``canonical`` a cell the table lacks is answered by a row of the same ``canonical_nb201`` class. The
    ``train_time_s`` and ``<metric>@<epoch>`` columns are no metrics: they are the training ``training`` reports.
    """

    name = "table"

    def __init__(self, path: str | Path, arch_column: str, metrics: Sequence[str] | None, canonical: bool) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"benchmark table {str(self.path)!r} does not exist")
        columns, rows = _read_rows(self.path)
        _missing_columns("arch", [arch_column], columns, self.path)
        self.curve_columns = _epoch_columns(columns, self.path)
        """metric -> its per-epoch columns, epoch 1 first."""
        reserved = {arch_column, TIME_COLUMN, *(c for group in self.curve_columns.values() for c in group)}
        names = tuple(metrics) if metrics is not None else tuple(c for c in columns if c not in reserved)
        if not names:
            raise FileError(f"benchmark table {str(self.path)!r} has no metric columns besides {arch_column!r}")
        _missing_columns("metric", names, columns, self.path)
        self.arch_column, self.metrics, self.canonical = arch_column, names, canonical
        self.has_times = TIME_COLUMN in columns
        extra = ([TIME_COLUMN] if self.has_times else []) + [c for group in self.curve_columns.values() for c in group]
        self.rows: dict[Ops, dict[str, float]] = {}
        self.extra: dict[Ops, dict[str, float]] = {}
        """Per cell: its training time and per-epoch values, by column."""
        self.ops: set[str] = set(NB201_PRIMITIVES)
        """Ops a canonical look-up may meet (others would make ``canonical_nb201`` enumerate a larger space)."""
        seen: set[str] = set()
        for number, row in enumerate(rows, start=2 if self.path.suffix.lower() == ".csv" else 1):
            where = f"{self.path}: row {number}"
            try:
                ops = cell_ops(row.get(arch_column))
            except ValueError as exc:
                raise FileError(f"{where}: {exc}") from None
            if ops in self.rows:
                raise FileError(f"{where}: cell {row.get(arch_column)!r} appears twice")
            self.rows[ops] = {m: _number(row.get(m), f"{where}, column {m!r}") for m in names}
            self.extra[ops] = {c: _number(row.get(c), f"{where}, column {c!r}") for c in extra}
            seen.update(ops)
        self.ops |= seen
        others = tuple(sorted(seen - set(NB201_PRIMITIVES)))
        self.primitives = tuple(op for op in NB201_PRIMITIVES if op in seen) + others
        self._by_class: dict[Ops, Ops] | None = None

    def _canonical_index(self) -> dict[Ops, Ops]:
        """Canonical cell -> the table's row for it: the representative itself when present, else the first."""
        if self._by_class is None:
            index: dict[Ops, Ops] = {}
            for ops in self.rows:
                key = nb201_ops(canonical_nb201(nb201_from_ops(ops)))
                if key not in index or ops == key:
                    index[key] = ops
            self._by_class = index
        return self._by_class

    def _key(self, arch: str | NB201Genotype) -> Ops:
        """The table row that answers for the cell (itself or, with ``canonical``, an isomorphic one)."""
        ops = cell_ops(arch)
        if ops not in self.rows and self.canonical and self.ops.issuperset(ops):
            ops = self._canonical_index().get(nb201_ops(canonical_nb201(nb201_from_ops(ops))), ops)
        if ops not in self.rows:
            also = " (nor an isomorphic cell)" if self.canonical else ""
            raise UnknownArchError(f"benchmark table {str(self.path)!r} has no cell {arch_string(arch)!r}{also}")
        return ops

    def query(self, arch: str | NB201Genotype) -> dict[str, float]:
        return dict(self.rows[self._key(arch)])

    def training(self, arch: str | NB201Genotype, metric: str) -> Training:
        """``<metric>@<epoch>`` values (or, without them, the ``metric`` column as a one-epoch curve) and
        ``train_time_s``."""
        if not self.has_times:
            raise FileError(f"benchmark table {str(self.path)!r} has no {TIME_COLUMN!r} column (each cell's training "
                            "seconds), which multi-trial methods spend their budget on")
        key = self._key(arch)
        extra = self.extra[key]
        seconds = extra[TIME_COLUMN]
        if not (math.isfinite(seconds) and seconds > 0):
            raise FileError(f"benchmark table {str(self.path)!r}: cell {arch_string(arch)!r} has {TIME_COLUMN} "
                            f"{seconds}; expected a positive number of seconds")
        if metric in self.curve_columns:
            return Training(tuple(extra[c] for c in self.curve_columns[metric]), seconds)
        return Training((self.rows[key][metric],), seconds)

    def optimum(self) -> dict[str, float]:
        return {m: max((row[m] for row in self.rows.values() if not math.isnan(row[m])), default=math.nan)
                for m in self.metrics}


def _epoch_columns(columns: list[str], path: Path) -> dict[str, list[str]]:
    """``<metric>@<epoch>`` columns grouped by metric in epoch order; the epochs of a metric must be 1, 2, ..., E."""
    epochs: dict[str, dict[int, str]] = {}
    for column in columns:
        match = EPOCH_COLUMN.fullmatch(column)
        if match:
            epochs.setdefault(match[1], {})[int(match[2])] = column
    for metric, found in epochs.items():
        if sorted(found) != list(range(1, len(found) + 1)):
            missing = min(set(range(1, max(found) + 1)) - set(found))
            raise FileError(f"benchmark table {str(path)!r}: the per-epoch columns of {metric!r} skip epoch "
                            f"{missing} (epochs {', '.join(map(str, sorted(found)))}); expected {metric}@1 to "
                            f"{metric}@{max(found)}")
    return {metric: [found[e] for e in sorted(found)] for metric, found in epochs.items()}


@benchmarks.register("table")
def table(
    *,
    path: str,
    arch_column: str = "arch",
    metrics: list[str] | None = None,
    canonical: bool = True,
) -> TableBenchmark:
    """A CSV or JSON table: ``arch_column`` holds arch strings, ``metrics`` names the metric columns (default: every
    other column but ``train_time_s`` and the per-epoch ``<metric>@<epoch>`` ones, which multi-trial methods read);
    ``canonical`` answers a missing cell from an isomorphic one."""
    return TableBenchmark(path, arch_column, metrics, canonical)


NATS_FILE = "NATS-tss-v1_0-3ffb9"
"""NATS-Bench's topology-space (= NAS-Bench-201) benchmark file: a ``-simple`` folder or a ``.pickle.pbz2`` file."""

NATS_METRICS = {
    "cifar10_valid": ("cifar10-valid", "valid-accuracy"),
    "cifar10_test": ("cifar10", "test-accuracy"),
    "cifar100_valid": ("cifar100", "valid-accuracy"),
    "cifar100_test": ("cifar100", "test-accuracy"),
    "imagenet16_valid": ("ImageNet16-120", "valid-accuracy"),
    "imagenet16_test": ("ImageNet16-120", "test-accuracy"),
}
"""Metric -> (NATS-Bench dataset, ``get_more_info`` key), as NAS-Bench-201 and the CDARTS paper's Table 1 report
them: CIFAR-10 valid from the model trained on the train split, CIFAR-10 test from the one trained on train+valid."""

NatsMetric = Literal[
    "cifar10_valid", "cifar10_test", "cifar100_valid", "cifar100_test", "imagenet16_valid", "imagenet16_test"
]
NATS_INSTALL = "pip install nats_bench"


def default_nats_path() -> Path:
    """Where ``nats_bench`` itself looks: ``$TORCH_HOME/NATS-tss-v1_0-3ffb9-simple`` (``~/.torch`` without it)."""
    home = os.environ.get("TORCH_HOME") or os.path.join(os.path.expanduser("~"), ".torch")
    return Path(home) / f"{NATS_FILE}-simple"


class NatsBenchmark(Benchmark):
    """Look-ups through the official NATS-Bench API (topology search space, mean over the trained seeds)."""

    name = "nats-bench"

    def __init__(self, path: str | None, metrics: Sequence[str], hp: str, search_hp: str) -> None:
        unknown = [m for m in metrics if m not in NATS_METRICS]
        if unknown or not metrics:
            raise ConfigError(f"unknown nats-bench metric {unknown[0] if unknown else '(none given)'!r}; "
                              f"available: {', '.join(NATS_METRICS)}")
        try:
            import nats_bench
        except ImportError:
            raise ConfigError(
                f"the nats-bench benchmark needs the optional 'nats_bench' package ({NATS_INSTALL}) and the "
                f"{NATS_FILE} benchmark file; or use the 'table' benchmark with a CSV/JSON table"
            ) from None
        location = Path(path).expanduser() if path else default_nats_path()
        if not location.exists():
            raise FileNotFoundError(
                f"NATS-Bench file {str(location)!r} does not exist; download {NATS_FILE}-simple (a folder) or "
                f"{NATS_FILE}.pickle.pbz2 from the NATS-Bench project and set the benchmark's 'path' (or $TORCH_HOME)"
            )
        self.path, self.metrics, self.hp, self.search_hp = location, tuple(metrics), hp, search_hp
        self.api = nats_bench.create(str(location), "tss", fast_mode=location.is_dir(), verbose=False)

    def _index(self, arch: str | NB201Genotype) -> tuple[int, str]:
        text = arch_string(arch)
        index = self.api.query_index_by_arch(text)
        if index is None or index < 0:
            raise UnknownArchError(f"NATS-Bench ({self.path}) has no cell {text!r}")
        return index, text

    def query(self, arch: str | NB201Genotype) -> dict[str, float]:
        index, text = self._index(arch)
        infos: dict[str, dict[str, Any]] = {}
        result = {}
        for metric in self.metrics:
            dataset, key = NATS_METRICS[metric]
            if dataset not in infos:
                infos[dataset] = self.api.get_more_info(index, dataset, hp=self.hp, is_random=False)
            result[metric] = _number(infos[dataset].get(key), f"NATS-Bench {dataset} {key} of {text!r}")
        return result

    def training(self, arch: str | NB201Genotype, metric: str) -> Training:
        """The ``search_hp`` training (12 epochs by default) as NATS-Bench's ``simulate_train_eval`` times it: its
        training seconds plus one evaluation, and ``metric`` after each epoch (mean over the trained seeds)."""
        if metric not in NATS_METRICS:
            raise ConfigError(f"unknown nats-bench metric {metric!r}; available: {', '.join(NATS_METRICS)}")
        index, text = self._index(arch)
        dataset, key = NATS_METRICS[metric]
        infos = [self.api.get_more_info(index, dataset, iepoch=epoch, hp=self.search_hp, is_random=False)
                 for epoch in range(int(self.search_hp))]
        where = f"NATS-Bench {dataset} (hp {self.search_hp}) of {text!r}"
        split = key.split("-")[0]
        seconds = (_number(infos[-1].get("train-all-time"), f"{where}, train-all-time")
                   + _number(infos[-1].get(f"{split}-per-time"), f"{where}, {split}-per-time"))
        return Training(tuple(_number(info.get(key), f"{where}, {key}") for info in infos), seconds)


@benchmarks.register("nats-bench")
def nats_bench(
    *,
    path: str | None = None,
    metrics: list[NatsMetric] = list(NATS_METRICS),  # noqa: B006 - schema default
    hp: Literal["12", "200"] = "200",
    search_hp: Literal["12", "200"] = "12",
) -> NatsBenchmark:
    """The official NATS-Bench API (``pip install nats_bench`` plus its benchmark file, at ``path`` or under
    ``$TORCH_HOME``); ``hp`` picks the 200-epoch (NAS-Bench-201's) or the 12-epoch training results that ``query``
    reports, ``search_hp`` the training that multi-trial methods simulate (NAS-Bench-201's protocol: 12 epochs)."""
    return NatsBenchmark(path, metrics, hp, search_hp)


def benchmark_metrics(
    benchmark: Benchmark, arch: str | NB201Genotype, warn: Callable[[str], Any] | None = None
) -> dict[str, float]:
    """``bench_<metric>`` values for one metrics row; NaN (and a warning) for a cell the benchmark lacks, so a long
    search is not lost to one missing entry."""
    try:
        values = benchmark.query(arch)
    except UnknownArchError as exc:
        if warn is not None:
            warn(f"warning: {exc}")
        values = dict.fromkeys(benchmark.metrics, math.nan)
    return {f"{PREFIX}{name}": float(value) for name, value in values.items()}
