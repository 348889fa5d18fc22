"""Multi-trial methods over a benchmark (RS, REA, REINFORCE, BOHB-like) and their place in ``cdarts-seeds``.

The tables are made up (``cdarts.synthetic`` or written here): they test the machinery, not NAS-Bench-201.
"""
from __future__ import annotations

import csv
import itertools
import json
import random
import sys

import pytest

from cdarts.cli import main as main_cli
from cdarts.cli import seeds
from cdarts.config import ConfigError, build, load_config
from cdarts.errors import FileError
from cdarts.genotypes import enumerate_nb201, nb201_from_ops, nb201_ops
from cdarts.registry import RegistryError, strategies, strategy_registry, trials
from cdarts.strategies.trials.base import BudgetSpent, Trials, search_metric
from cdarts.strategies.trials.run import run_trials, trial_config
from cdarts.synthetic import synthetic_accuracies, synthetic_table, synthetic_training

THREE = ["none", "skip_connect", "nor_conv_3x3"]


@pytest.fixture(scope="module")
def small_table(tmp_path_factory):
    """The synthetic table over three ops (729 cells), with its 12-epoch curves and training times."""
    return synthetic_table(tmp_path_factory.mktemp("bench") / "small.csv", THREE)


def table(path, **options):
    return build("benchmarks", {"type": "table", "path": str(path), **options})


def trial_run(table_path, method, **keys):
    return {"seed": 0, "benchmark": {"type": "table", "path": str(table_path)}, "strategy": method, **keys}


def spend(method, state):
    with pytest.raises(BudgetSpent):
        method.run(state)


# --- the budgeted loop and random search


def test_random_search_spends_at_most_the_budget_and_stops_at_the_query_that_does_not_fit(small_table):
    bench = table(small_table)
    state = Trials(bench, "valid_acc", 5_000.0, seed=7)
    spend(build("trials", {"type": "random"}), state)
    costs = [q.cost_s for q in state.history]
    assert sum(costs) == pytest.approx(state.clock_s) and state.clock_s <= 5_000.0 < state.clock_s + state.refused_s
    for query in state.history:  # each query pays its cell's whole recorded training and sees its last epoch
        training = synthetic_training(query.arch)
        assert (query.cost_s, query.value, query.epochs) == (training.seconds, training.curve[-1], 12)
    assert [q.clock_s for q in state.history] == pytest.approx(list(itertools.accumulate(costs)))


def test_random_search_with_a_seed_is_reproducible(small_table, tmp_path):
    first = run_trials(trial_run(small_table, "random", seed=3, budget_s=3_000), output=tmp_path / "a")
    again = run_trials(trial_run(small_table, "random", seed=3, budget_s=3_000), output=tmp_path / "b")
    other = run_trials(trial_run(small_table, "random", seed=4, budget_s=3_000), output=tmp_path / "c")
    assert (tmp_path / "a" / "metrics.csv").read_bytes() == (tmp_path / "b" / "metrics.csv").read_bytes()
    assert [q.ops for q in first.history] == [q.ops for q in again.history] != [q.ops for q in other.history]
    assert first.genotype == again.genotype


def test_a_run_writes_a_search_like_run_folder(small_table, tmp_path):
    result = run_trials(trial_run(small_table, "random", budget_s=2_000), output=tmp_path / "run")
    folder = tmp_path / "run"
    assert {p.name for p in folder.iterdir()} == {"config.yaml", "genotype.json", "metrics.csv", "summary.json"}
    saved = load_config(folder / "config.yaml", trial_config)
    assert saved == {"seed": 0, "benchmark": {"type": "table", "path": str(small_table), "arch_column": "arch",
                                              "metrics": None, "canonical": True},
                     "strategy": {"type": "random"}, "metric": None, "budget_s": 2000.0}
    with open(folder / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == list(range(1, len(result.history) + 1)) and rows[0]["phase"] == "trial"
    best = max(result.history, key=lambda q: q.value)
    assert json.loads((folder / "genotype.json").read_text())["arch"] == best.arch == str(result.genotype)
    expected = synthetic_accuracies(best.arch)
    assert float(rows[-1]["bench_valid_acc"]) == pytest.approx(expected["valid_acc"], abs=1e-3)
    assert float(rows[-1]["best_value"]) == pytest.approx(best.value, abs=1e-3)
    summary = json.loads((folder / "summary.json").read_text())
    assert (summary["queries"], summary["best"]["arch"], summary["benchmark"]) == (len(rows), best.arch, expected)
    assert summary["spent_s"] == pytest.approx(sum(q.cost_s for q in result.history)) and summary["spent_s"] <= 2000


def test_a_budget_below_one_training_is_a_config_error(small_table, tmp_path):
    rng = random.Random(0)
    first = synthetic_training(str(nb201_from_ops([rng.choice(THREE) for _ in range(6)]))).seconds
    with pytest.raises(ConfigError, match=rf"^budget_s: 10.0 s does not pay for one query \(the first costs {first} s"):
        run_trials(trial_run(small_table, "random", budget_s=10), output=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_search_metric_is_the_first_validation_metric_or_a_named_one(small_table, tmp_path):
    assert search_metric(table(small_table), None) == "valid_acc"
    assert search_metric(table(small_table), "test_acc") == "test_acc"
    with pytest.raises(ConfigError, match="metric: unknown benchmark metric 'valid'; available: test_acc, valid_acc; "
                                          "did you mean 'valid_acc'"):
        search_metric(table(small_table), "valid")
    with pytest.raises(ConfigError, match="has no validation metric to search on \\(test_acc\\)"):
        search_metric(table(small_table, metrics=["test_acc"]), None)


def test_a_table_without_training_times_is_a_clear_error(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("arch,valid_acc\n" + "".join(f"{c},{i}\n" for i, c in enumerate(enumerate_nb201(THREE))))
    with pytest.raises(FileError, match="has no 'train_time_s' column \\(each cell's training seconds\\)"):
        run_trials(trial_run(path, "random"), output=tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --- regularized evolution


def test_evolution_keeps_its_population_size_and_ages_out_the_oldest(small_table):
    state = Trials(table(small_table), "valid_acc", 1e7, seed=1)
    method = build("trials", {"type": "evolution"})
    method.initialize(state)
    assert [q.index for q in method.population] == list(range(10)) and all(q.parent is None for q in state.history)
    for _ in range(40):
        before = list(method.population)
        replay = random.Random()
        replay.setstate(state.rng.getstate())
        contenders = [replay.choice(before) for _ in range(3)]  # the tournament: 3 draws with replacement
        child = method.step(state)
        assert child.parent == max(contenders, key=lambda q: q.score).index
        parent = state.history[child.parent]
        assert sum(a != b for a, b in zip(parent.ops, child.ops, strict=True)) == 1, "one edge mutated"
        assert [q.index for q in method.population] == [q.index for q in before[1:]] + [child.index]
    assert len(method.population) == 10 and [q.index for q in method.population] == list(range(40, 50))


def test_evolution_population_options(small_table):
    state = Trials(table(small_table), "valid_acc", 1e7, seed=0)
    method = build("trials", {"type": "evolution", "population": 4, "sample": 2})
    method.initialize(state)
    method.step(state)
    assert [q.index for q in method.population] == [1, 2, 3, 4]
    with pytest.raises(ConfigError, match=r"strategy.sample: 5 is more than strategy.population \(4\)"):
        build("trials", {"type": "evolution", "population": 4, "sample": 5})
    with pytest.raises(ConfigError, match=r"strategy.population: expected in \[1, 10000\], got 0"):
        load_config(trial_run(small_table, {"type": "evolution", "population": 0}), trial_config)


# --- REINFORCE


def test_reinforce_moves_the_policy_to_the_op_that_dominates(tmp_path):
    path = tmp_path / "conv.csv"
    rows = ["arch,valid_acc,test_acc,train_time_s"]
    for cell in enumerate_nb201(THREE):
        convs = sum(op == "nor_conv_3x3" for op in nb201_ops(cell))
        rows.append(f"{cell},{10.0 * convs},{10.0 * convs},1")
    path.write_text("\n".join(rows) + "\n")
    result = run_trials(trial_run(path, {"type": "reinforce", "lr": 0.1}, budget_s=300), output=tmp_path / "run")
    assert len(result.history) == 300
    policy = result.summary["policy"]
    assert list(policy) == ["0->1", "0->2", "1->2", "0->3", "1->3", "2->3"]
    for probs in policy.values():
        assert sum(probs.values()) == pytest.approx(1.0)
        assert probs["nor_conv_3x3"] > 0.8 > 0.1 > max(probs["none"], probs["skip_connect"])
    last = result.history[-50:]  # a uniform policy's cells have 2 convs on average, the last ones nearly 6
    assert sum(q.value for q in last) / 50 > 55


# --- BOHB-like


def test_bohb_without_optuna_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ConfigError, match=r"multi-trial method 'bohb' needs the optional 'optuna' package: pip install "
                                          r"'cdarts\[bohb\]' \(or pip install optuna\)"):
        build("trials", {"type": "bohb"})


def test_bohb_trains_epoch_by_epoch_and_prunes_with_hyperband(small_table, tmp_path):
    pytest.importorskip("optuna")
    result = run_trials(trial_run(small_table, "bohb", budget_s=6_000), output=tmp_path / "a")
    again = run_trials(trial_run(small_table, "bohb", budget_s=6_000), output=tmp_path / "b")
    assert [(q.ops, q.epochs) for q in result.history] == [(q.ops, q.epochs) for q in again.history]
    trials_seen, epochs_of = [], {}
    for query in result.history:  # a trial's queries are its epochs 1, 2, ... each paying 1/12 of its training
        training = synthetic_training(query.arch)
        assert query.cost_s == pytest.approx(training.seconds / 12)
        assert query.value == training.curve[query.epochs - 1]
        if query.epochs == 1:
            trials_seen.append(query.ops)
        else:
            assert epochs_of[query.ops] == query.epochs - 1
        epochs_of[query.ops] = query.epochs
    assert sum(q.cost_s for q in result.history) <= 6_000
    lengths = [epochs_of[ops] for ops in dict.fromkeys(trials_seen)]
    assert result.summary["pruned_trials"] > 0 and 12 in lengths and min(lengths) < 12
    assert result.summary["name"] == "BOHB-like (optuna TPE + Hyperband)"
    best = result.history[result.summary["best"]["query"]]
    assert best.epochs == 12 and best.value == max(q.value for q in result.history if q.epochs == 12)


def test_bohb_needs_per_epoch_numbers(tmp_path):
    pytest.importorskip("optuna")
    path = tmp_path / "flat.csv"
    path.write_text("arch,valid_acc,train_time_s\n" + "".join(f"{c},1,10\n" for c in enumerate_nb201(THREE)))
    with pytest.raises(ConfigError, match="'bohb' needs per-epoch numbers, and the benchmark's training of 'valid_acc' "
                                          "has 1 epoch; a table needs valid_acc@1, valid_acc@2, ... columns"):
        run_trials(trial_run(path, "bohb"), output=tmp_path / "run")


# --- registries and the command line


def test_trial_methods_and_strategies_share_one_namespace(monkeypatch):
    import catalogue

    monkeypatch.setattr(catalogue, "REGISTRY", dict(catalogue.REGISTRY))
    assert {"random", "evolution", "reinforce", "bohb"} <= set(trials.names())
    assert not set(trials.names()) & set(strategies.names())
    assert strategy_registry("evolution") is trials and strategy_registry("darts") is strategies
    with pytest.raises(RegistryError, match=r"multi-trial method 'darts': the name is already a strategy \(by "
                                            r"cdarts.strategies.darts\); trials and strategies share one namespace"):
        trials.register("darts", lambda: None)
    with pytest.raises(RegistryError, match=r"^unknown strategy 'evolutoin'; available: bohb, cdarts, darts, .*; "
                                            r"did you mean 'evolution'\?$") as info:
        strategy_registry("evolutoin")
    listed = str(info.value).split("available: ")[1].split(";")[0].split(", ")
    assert listed == sorted(strategies.names() + trials.names())


def test_cdarts_list_strategies_lists_the_multi_trial_methods(capsys):
    assert main_cli.main(["list", "strategies"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "strategies: darts (cdarts.strategies.darts)" in out
    assert "trials: evolution (cdarts.strategies.trials.evolution)" in out


def test_seeds_over_multi_trial_methods_writes_table_1(small_table, tmp_path, capsys):
    config = tmp_path / "trials.yaml"
    config.write_text(f"benchmark: {{type: table, path: {small_table}}}\nstrategy: random\nbudget_s: 4000\n")
    output = tmp_path / "study"
    argv = ["--config", str(config), "--seeds", "0,1,2", "--strategies", "random,evolution,reinforce",
            "--output", str(output)]
    assert seeds.main(argv) == 0
    report = (output / "report.md").read_text().splitlines()
    start = report.index("| method | validation | test |")
    with open(small_table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    best = [max(float(r[m]) for r in rows) for m in ("valid_acc", "test_acc")]
    assert report[start + 2] == f"| optimal | {best[0]:.2f} | {best[1]:.2f} |"
    for offset, method in enumerate(["random", "evolution", "reinforce"], start=3):
        values = []
        for seed in (0, 1, 2):
            run = output / method / f"seed-{seed}"
            assert json.loads((run / "summary.json").read_text())["spent_s"] <= 4000
            values.append(synthetic_accuracies(json.loads((run / "genotype.json").read_text())["arch"]))
        cells = []
        for metric in ("valid_acc", "test_acc"):
            column = [v[metric] for v in values]
            mean = sum(column) / 3
            std = (sum((x - mean) ** 2 for x in column) / 3) ** 0.5
            cells.append(f"{mean:.2f} ± {std:.2f}")
        assert report[start + offset] == f"| {method} | {cells[0]} | {cells[1]} |"
    out = capsys.readouterr().out
    assert out.count("querying the benchmark in") == 9 and "| optimal |" in out
    assert seeds.main(argv) == 0 and capsys.readouterr().out.count("skipping") == 9


def test_seeds_mixes_a_weight_sharing_strategy_and_a_multi_trial_method(small_table, tmp_path, capsys, one_thread):
    output = tmp_path / "mixed"
    assert seeds.main(["--config", "configs/nb201-demo.yaml", "--seeds", "0", "--strategies", "cdarts,random",
                       "--set", "strategy.epochs=1", "--set", "max_steps_per_epoch=2", "--set", "plots=false",
                       "--set", f"space.primitives=[{', '.join(THREE)}]", "--set", "benchmark.type=table",
                       "--set", f"benchmark.path={small_table}", "--output", str(output)]) == 0
    searched = load_config(output / "random" / "seed-0" / "config.yaml", trial_config)
    assert searched["benchmark"]["path"] == str(small_table) and searched["budget_s"] == 12_000.0
    assert (output / "cdarts" / "seed-0" / "checkpoints").is_dir()
    report = (output / "report.md").read_text()
    cells = {}
    for method in ("cdarts", "random"):
        arch = json.loads((output / method / "seed-0" / "genotype.json").read_text())["arch"]
        values = synthetic_accuracies(arch)
        cells[method] = f"| {method} | {values['valid_acc']:.2f} ± 0.00 | {values['test_acc']:.2f} ± 0.00 |"
    lines = report.splitlines()
    start = lines.index("| method | validation | test |")
    assert lines[start + 2].startswith("| optimal | ") and lines[start + 3:start + 5] == [cells["cdarts"],
                                                                                           cells["random"]]
    assert "| cdarts | 1 | " in report and "| random | 1 | " in report


def test_seeds_refuses_a_multi_trial_method_without_a_benchmark(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        seeds.main(["--config", "configs/nb201-demo.yaml", "--strategies", "cdarts,evolution",
                    "--output", str(tmp_path / "s")])
    assert info.value.code == 2
    assert ("--strategies 'evolution': multi-trial method 'evolution' queries a benchmark and the config has none"
            in capsys.readouterr().err)
    assert not (tmp_path / "s").exists()
