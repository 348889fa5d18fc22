"""Benchmark look-ups: the ``table`` and ``nats-bench`` benchmarks, and per-epoch tracking in a search."""
from __future__ import annotations

import csv
import json
import math
import sys
import types
import typing

import pytest

from cdarts.config import ConfigError, build, validate_component
from cdarts.engine import search
from cdarts.errors import FileError
from cdarts.genotypes import canonical_nb201, enumerate_nb201, nb201_from_ops, parse_arch_string
from cdarts.nasbench import (
    NATS_METRICS,
    Benchmark,
    NatsMetric,
    Training,
    UnknownArchError,
    arch_string,
    benchmark_metrics,
    cell_ops,
)
from cdarts.registry import benchmarks
from cdarts.synthetic import synthetic_accuracies, synthetic_table, synthetic_training

CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
CANON = "|none~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|nor_conv_3x3~2|"
"""A canonical cell: a conv on node 2, a conv on node 3, nothing on node 1."""
ISOMORPHIC = "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|nor_conv_3x3~2|"
"""``CANON`` plus a conv on node 1, which nothing reads: the same function, so the same canonical cell."""
ROWS = [(CONV, 93.76, 94.37), (SKIP, 39.77, 54.3), (CANON, 71.5, 72.25)]


def write_csv(path, rows=ROWS, header=("arch", "valid_acc", "test_acc")):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def table_path(tmp_path):
    return write_csv(tmp_path / "bench.csv")


def table(path, **options):
    return build("benchmarks", {"type": "table", "path": str(path), **options})


def test_both_benchmarks_are_registered():
    assert {"table", "nats-bench"} <= set(benchmarks.names())


def test_table_returns_the_exact_values(table_path):
    bench = table(table_path)
    assert bench.metrics == ("valid_acc", "test_acc")
    assert bench.query(CONV) == {"valid_acc": 93.76, "test_acc": 94.37}
    assert bench(parse_arch_string(SKIP)) == {"valid_acc": 39.77, "test_acc": 54.3}


def test_table_metrics_option_picks_and_orders_columns(table_path):
    assert table(table_path, metrics=["test_acc"]).query(CONV) == {"test_acc": 94.37}


def test_table_finds_a_cell_written_in_another_edge_order(table_path):
    shuffled = "|nor_conv_3x3~0|+|nor_conv_3x3~1|nor_conv_3x3~0|+|nor_conv_3x3~2|nor_conv_3x3~0|nor_conv_3x3~1|"
    assert table(table_path).query(shuffled)["test_acc"] == 94.37
    assert arch_string(shuffled) == CONV


def test_table_answers_an_isomorphic_cell_through_the_canonical_form(table_path):
    canonical = {str(canonical_nb201(parse_arch_string(arch))) for arch in (ISOMORPHIC, CANON)}
    assert canonical == {CANON}
    assert table(table_path).query(ISOMORPHIC) == {"valid_acc": 71.5, "test_acc": 72.25}
    with pytest.raises(UnknownArchError, match=r"has no cell '\|nor_conv_1x1~0\|\+.*'$"):
        table(table_path, canonical=False).query(ISOMORPHIC)


def test_unknown_arch_is_a_clear_error(table_path):
    other = str(nb201_from_ops(["avg_pool_3x3"] * 6))
    with pytest.raises(UnknownArchError) as info:
        table(table_path).query(other)
    assert str(info.value) == f"benchmark table '{table_path}' has no cell '{other}' (nor an isomorphic cell)"
    with pytest.raises(ValueError, match="bad NAS-Bench-201 arch string 'nonsense'"):
        table(table_path).query("nonsense")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"benchmark table '{tmp_path}/nope.csv' does not exist"):
        table(tmp_path / "nope.csv")


def test_wrong_column_names_are_clear_errors(table_path):
    with pytest.raises(ValueError) as info:
        table(table_path, arch_column="arch_str")
    assert str(info.value) == (f"benchmark table '{table_path}' has no arch column 'arch_str'; "
                               "columns: arch, valid_acc, test_acc; did you mean 'arch'?")
    with pytest.raises(ValueError, match="has no metric column 'test_accuracy'; columns: arch, valid_acc, test_acc; "
                                         "did you mean 'test_acc'"):
        table(table_path, metrics=["valid_acc", "test_accuracy"])


def test_table_schema_needs_a_path():
    with pytest.raises(ConfigError, match="benchmark.path: missing required key for benchmark 'table'"):
        validate_component("benchmarks", {"type": "table"}, "benchmark")


def test_json_tables_as_rows_or_columns_give_the_csv_values(tmp_path, table_path):
    records = [{"arch": a, "valid_acc": v, "test_acc": t} for a, v, t in ROWS]
    (tmp_path / "rows.json").write_text(json.dumps(records))
    (tmp_path / "cols.json").write_text(json.dumps({k: [r[k] for r in records] for k in records[0]}))
    for name in ("rows.json", "cols.json"):
        bench = table(tmp_path / name)
        assert bench.metrics == ("valid_acc", "test_acc")
        assert [bench.query(a) for a, _, _ in ROWS] == [table(table_path).query(a) for a, _, _ in ROWS]


def test_bad_table_contents_name_the_row(tmp_path):
    cases = {
        "number.csv": ([(CONV, "high", 1.0)], r"number.csv: row 2, column 'valid_acc': expected a number, got 'high'"),
        "arch.csv": ([(CONV, 1, 1), ("|conv~0|", 1, 1)], r"arch.csv: row 3: bad NAS-Bench-201 arch string|node"),
        "twice.csv": ([(CONV, 1, 1), (CONV, 2, 2)], r"twice.csv: row 3: cell .* appears twice"),
    }
    for name, (rows, message) in cases.items():
        with pytest.raises(ValueError, match=message):
            table(write_csv(tmp_path / name, rows))
    (tmp_path / "bench.txt").write_text("arch\n")
    with pytest.raises(ValueError, match=r"unknown format '.txt'; use .csv or .json"):
        table(tmp_path / "bench.txt")


def test_empty_metric_cells_are_nan(tmp_path):
    bench = table(write_csv(tmp_path / "gap.csv", [(CONV, "", 1.5)]))
    values = bench.query(CONV)
    assert math.isnan(values["valid_acc"]) and values["test_acc"] == 1.5


def test_benchmark_metrics_prefixes_and_warns_with_nan_for_a_missing_cell(table_path):
    bench = table(table_path, canonical=False)
    assert benchmark_metrics(bench, CONV) == {"bench_valid_acc": 93.76, "bench_test_acc": 94.37}
    warnings: list[str] = []
    missing = benchmark_metrics(bench, ISOMORPHIC, warn=warnings.append)
    assert list(missing) == ["bench_valid_acc", "bench_test_acc"] and all(math.isnan(v) for v in missing.values())
    assert len(warnings) == 1 and warnings[0].startswith("warning: benchmark table") and ISOMORPHIC in warnings[0]


def test_cell_ops_reads_standard_and_reordered_strings_alike():
    reordered = "|skip_connect~0|+|nor_conv_1x1~1|none~0|+|avg_pool_3x3~2|none~0|nor_conv_3x3~1|"
    assert cell_ops(reordered) == ("skip_connect", "none", "nor_conv_1x1", "none", "nor_conv_3x3", "avg_pool_3x3")
    assert cell_ops(arch_string(reordered)) == cell_ops(reordered)
    with pytest.raises(ValueError, match="expected a NAS-Bench-201 arch string or NB201Genotype, got int"):
        cell_ops(3)


# --- nats-bench


class FakeApi:
    """Stands in for ``nats_bench``'s topology API: arch string -> index, index -> per-dataset info dicts."""

    def __init__(self) -> None:
        self.archs = [str(cell) for cell in enumerate_nb201()]
        self.calls: list[tuple] = []

    def query_index_by_arch(self, arch):
        return self.archs.index(arch) if arch in self.archs else -1

    def get_more_info(self, index, dataset, iepoch=None, hp="12", is_random=True):
        self.calls.append((index, dataset, hp, is_random))
        base = {"cifar10-valid": 80.0, "cifar10": 81.0, "cifar100": 60.0, "ImageNet16-120": 30.0}[dataset]
        info = {"train-accuracy": 99.0, "valid-accuracy": base + index / 1e5}
        if dataset != "cifar10-valid":
            info["test-accuracy"] = base + 0.5 + index / 1e5
        return info


@pytest.fixture
def fake_nats(monkeypatch):
    created = []
    module = types.ModuleType("nats_bench")

    def create(path, space, fast_mode=False, verbose=True):
        created.append((path, space, fast_mode, verbose))
        return FakeApi()

    module.create = create
    monkeypatch.setitem(sys.modules, "nats_bench", module)
    return created


def test_nats_metric_names_match_the_schema_choices():
    assert typing.get_args(NatsMetric) == tuple(NATS_METRICS)


def test_nats_bench_maps_metrics_to_the_official_api(tmp_path, fake_nats):
    folder = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    folder.mkdir()
    bench = build("benchmarks", validate_component("benchmarks", {"type": "nats-bench", "path": str(folder)}))
    assert fake_nats == [(str(folder), "tss", True, False)]
    assert bench.metrics == tuple(NATS_METRICS)
    index = bench.api.archs.index(CONV)
    values = bench.query(parse_arch_string(CONV))
    assert values == pytest.approx({
        "cifar10_valid": 80.0 + index / 1e5, "cifar10_test": 81.5 + index / 1e5, "cifar100_valid": 60.0 + index / 1e5,
        "cifar100_test": 60.5 + index / 1e5, "imagenet16_valid": 30.0 + index / 1e5,
        "imagenet16_test": 30.5 + index / 1e5,
    })
    assert {call[1:] for call in bench.api.calls} == {
        ("cifar10-valid", "200", False), ("cifar10", "200", False), ("cifar100", "200", False),
        ("ImageNet16-120", "200", False),
    }
    assert len(bench.api.calls) == 4, "one get_more_info per dataset"
    with pytest.raises(UnknownArchError, match=r"has no cell '\|conv_7x7~0"):
        bench.query(str(nb201_from_ops(["conv_7x7"] * 6)))


def test_nats_bench_file_path_uses_slow_mode_and_hp_option(tmp_path, fake_nats):
    archive = tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2"
    archive.write_bytes(b"")
    bench = build("benchmarks", {"type": "nats-bench", "path": str(archive), "metrics": ["cifar10_test"], "hp": "12"})
    assert fake_nats[0][2] is False
    assert list(bench.query(CONV)) == ["cifar10_test"] and bench.api.calls[0][1:] == ("cifar10", "12", False)


def test_nats_bench_without_the_package_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "nats_bench", None)
    with pytest.raises(ValueError, match=r"needs the optional 'nats_bench' package \(pip install nats_bench\)"):
        build("benchmarks", {"type": "nats-bench", "path": str(tmp_path)})


def test_nats_bench_missing_file_and_bad_metric(monkeypatch, tmp_path, fake_nats):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"NATS-Bench file '{tmp_path}/NATS-tss-v1_0-3ffb9-simple' does not"):
        build("benchmarks", {"type": "nats-bench"})
    with pytest.raises(ConfigError, match=r"benchmark.metrics\[0\]: invalid value 'cifar10_val'.*did you mean "
                                          "'cifar10_valid'"):
        validate_component("benchmarks", {"type": "nats-bench", "metrics": ["cifar10_val"]}, "benchmark")


# --- the synthetic demo table


def test_synthetic_accuracies_are_deterministic_and_rank_convs_above_skips():
    assert synthetic_accuracies(CONV) == synthetic_accuracies(parse_arch_string(CONV))
    assert synthetic_accuracies(CONV)["test_acc"] > 80 > 30 > synthetic_accuracies(SKIP)["test_acc"]
    dead, iso = synthetic_accuracies(CANON), synthetic_accuracies(ISOMORPHIC)
    assert dead != iso and abs(dead["test_acc"] - iso["test_acc"]) <= 1.5, "isomorphic cells differ only by noise"


def test_synthetic_table_covers_the_space_and_loads(tmp_path):
    path = synthetic_table(tmp_path / "syn.csv", ["none", "skip_connect", "nor_conv_3x3"])
    bench = table(path)
    assert len(bench.rows) == 3 ** 6 and bench.metrics == ("valid_acc", "test_acc")
    assert bench.query(CONV) == synthetic_accuracies(CONV)


# --- per-epoch tracking in a search


PRIMITIVES = ["none", "skip_connect", "nor_conv_3x3"]


def nb201_config(tiny_config, benchmark):
    config = tiny_config(strategy={"epochs": 2, "pretrain_epochs": 0, "regularizer": None, "reg_weight": 0.0},
                         benchmark=benchmark)
    config["space"] = {"type": "nas-bench-201", "channels": 2, "cells_per_stage": 1, "primitives": PRIMITIVES}
    return config


def test_search_logs_the_benchmark_values_of_every_epochs_genotype(tmp_path, tiny_config, capsys):
    path = synthetic_table(tmp_path / "syn.csv", PRIMITIVES)
    result = search(nb201_config(tiny_config, {"type": "table", "path": str(path)}), output=tmp_path / "run")
    with open(result.run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(result.history) == 2
    for row, entry in zip(rows, result.history, strict=True):
        expected = synthetic_accuracies(entry["genotype"]["arch"])
        assert float(row["bench_valid_acc"]) == pytest.approx(expected["valid_acc"], abs=1e-3)
        assert float(row["bench_test_acc"]) == pytest.approx(expected["test_acc"], abs=1e-3)
        assert {"param_free_ops", "skip_connects", "alpha_entropy", "collapse"} <= set(row)
        assert 0 <= float(row["param_free_ops"]) <= 6 and 0 < float(row["alpha_entropy"]) <= math.log(3) + 1e-6
    out = capsys.readouterr().out
    assert f"bench valid_acc {expected['valid_acc']:.1f} test_acc {expected['test_acc']:.1f}" in out


def test_search_refuses_a_benchmark_for_another_space(tmp_path, tiny_config):
    path = write_csv(tmp_path / "bench.csv")
    with pytest.raises(ValueError, match="benchmark 'table' looks up nas-bench-201 cells; this search's space is "
                                         "'darts'"):
        search(tiny_config(benchmark={"type": "table", "path": str(path)}), output=tmp_path / "run")


def test_search_with_a_missing_table_fails_before_training(tmp_path, tiny_config):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        search(nb201_config(tiny_config, {"type": "table", "path": str(tmp_path / "none.csv")}), output=tmp_path / "r")
    assert not (tmp_path / "r" / "metrics.csv").exists()


# --- what multi-trial methods read: training times, per-epoch numbers, the optimum


def test_table_training_reads_the_time_and_per_epoch_columns(tmp_path):
    rows = [(CONV, 93.0, 94.0, 120.5, 50.0, 70.0, 80.0), (SKIP, 39.0, 54.0, 30, 10, 20, 30)]
    header = ("arch", "valid_acc", "test_acc", "train_time_s", "valid_acc@1", "valid_acc@2", "valid_acc@3")
    path = write_csv(tmp_path / "t.csv", rows, header=header)
    bench = table(path)
    assert bench.metrics == ("valid_acc", "test_acc") and bench.query(CONV) == {"valid_acc": 93.0, "test_acc": 94.0}
    assert bench.training(CONV, "valid_acc") == Training((50.0, 70.0, 80.0), 120.5)
    assert bench.training(SKIP, "test_acc") == Training((54.0,), 30.0), "no per-epoch columns: one epoch, the metric"
    assert bench.primitives == ("skip_connect", "nor_conv_3x3")
    assert bench.optimum() == {"valid_acc": 93.0, "test_acc": 94.0}


def test_table_per_epoch_columns_must_not_skip_an_epoch(tmp_path):
    path = write_csv(tmp_path / "gap.csv", [(CONV, 1, 2, 3)], header=("arch", "acc", "acc@1", "acc@3"))
    with pytest.raises(FileError, match="the per-epoch columns of 'acc' skip epoch 2 \\(epochs 1, 3\\); expected acc@1 "
                                        "to acc@3"):
        table(path)


def test_table_training_needs_positive_times(table_path, tmp_path):
    with pytest.raises(FileError, match="has no 'train_time_s' column"):
        table(table_path).training(CONV, "valid_acc")
    bench = table(write_csv(tmp_path / "t.csv", [(CONV, 1.0, 0)], header=("arch", "valid_acc", "train_time_s")))
    with pytest.raises(FileError, match="has train_time_s 0.0; expected a positive number of seconds"):
        bench.training(CONV, "valid_acc")


def test_optimum_over_the_space_skips_cells_the_benchmark_lacks(table_path):
    class Partial(Benchmark):
        metrics = ("valid_acc", "test_acc")

        def query(self, arch):
            return table(table_path).query(arch)

    assert Partial().optimum() == {"valid_acc": 93.76, "test_acc": 94.37}


def test_nats_bench_training_is_the_12_epoch_run_with_its_seconds(tmp_path, fake_nats):
    folder = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    folder.mkdir()
    bench = build("benchmarks", {"type": "nats-bench", "path": str(folder), "metrics": ["cifar10_valid"]})
    index = bench.api.archs.index(CONV)

    def info(index, dataset, iepoch=None, hp="12", is_random=True):
        bench.api.calls.append((index, dataset, iepoch, hp, is_random))
        return {"valid-accuracy": 50.0 + iepoch, "train-all-time": 10.0 * (iepoch + 1), "valid-per-time": 2.5}

    bench.api.get_more_info = info
    training = bench.training(CONV, "cifar10_valid")
    assert training == Training(tuple(50.0 + e for e in range(12)), 122.5)
    assert bench.api.calls == [(index, "cifar10-valid", e, "12", False) for e in range(12)]


def test_synthetic_training_rises_to_the_synthetic_accuracy(tmp_path):
    conv, skip = synthetic_training(CONV), synthetic_training(SKIP)
    assert len(conv.curve) == 12 and conv.curve[0] < conv.curve[-1]
    assert abs(conv.curve[-1] - 0.98 * synthetic_accuracies(CONV)["valid_acc"]) < 1.5
    assert (conv.seconds, skip.seconds) == (228.0, 55.2), "12 epochs of 4 s plus 2.5 s a conv, 0.1 s a skip"
    bench = table(synthetic_table(tmp_path / "syn.csv", ["none", "skip_connect", "nor_conv_3x3"]))
    assert bench.training(CONV, "valid_acc") == conv
