"""``cdarts-seeds`` and ``cdarts-analyze`` as a user runs them on configs/nb201-demo.yaml, with a synthetic table.

There is no NAS-Bench-201 file on this machine: the table holds ``synthetic_accuracies`` of all 15,625 cells.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from cdarts.cli import analyze, seeds
from cdarts.cli import main as main_cli
from cdarts.config import load_config
from cdarts.engine import search_config
from cdarts.runs import FolderLock
from cdarts.synthetic import synthetic_accuracies

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "nb201-demo.yaml"
FAST = ["--set", "strategy.epochs=2", "--set", "max_steps_per_epoch=2", "--set", "plots=false"]


def exit_code(main, argv, capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """The synthetic table, written through the ``cdarts analyze synthetic-table`` dispatch."""
    path = tmp_path_factory.mktemp("bench") / "synthetic.csv"
    assert main_cli.main(["analyze", "synthetic-table", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory, table):
    output = tmp_path_factory.mktemp("study") / "out"
    argv = ["--config", str(DEMO), "--seeds", "0,1", "--strategies", "cdarts,darts", "--output", str(output), *FAST,
            "--set", "benchmark.type=table", "--set", f"benchmark.path={table}"]
    assert seeds.main(argv) == 0
    return output, argv


def test_nb201_configs_load_with_the_papers_settings():
    paper = load_config(ROOT / "configs" / "nb201-cifar10.yaml", search_config)
    assert paper["space"] == {"type": "nas-bench-201", "channels": 16, "cells_per_stage": 5,
                              "primitives": ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"],
                              "stage_taps": "after_reduction"}
    assert (paper["strategy"]["epochs"], paper["strategy"]["pretrain_epochs"]) == (50, 0)
    assert paper["strategy"]["regularizer"] is None and paper["discretizer"]["type"] == "argmax"
    assert paper["batch_size"] == 64 and paper["benchmark"] is None
    demo = load_config(DEMO, search_config)
    assert demo["data"]["type"] == "digits" and demo["data"]["image_size"] == 8 and demo["threads"] == 1
    assert demo["space"]["cells_per_stage"] == 1 and demo["space"]["channels"] <= 8
    assert demo["strategy"]["regularizer"] is None and demo["strategy"]["epochs"] <= 10


def test_table_has_every_cell(table):
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 15_625 and len({r["arch"] for r in rows}) == 15_625
    assert float(rows[-1]["test_acc"]) == synthetic_accuracies(rows[-1]["arch"])["test_acc"]


def test_study_writes_run_folders_report_and_plot(study):
    output, _ = study
    for strategy in ("cdarts", "darts"):
        for seed in (0, 1):
            run = output / strategy / f"seed-{seed}"
            assert (run / "genotype.json").is_file()
            with open(run / "metrics.csv", newline="") as handle:
                rows = list(csv.DictReader(handle))
            arch = json.loads((run / "genotype.json").read_text())["arch"]
            assert len(rows) == 2 and float(rows[-1]["bench_test_acc"]) == synthetic_accuracies(arch)["test_acc"]
    assert {p.name for p in output.iterdir()} == {"cdarts", "darts", "report.md", "report.csv", "runs.csv",
                                                   "curves.png"}
    assert (output / "curves.png").read_bytes().startswith(b"\x89PNG")
    report = (output / "report.md").read_text()
    assert report.startswith("# nb201-demo: cdarts, darts, 2 seeds\n")
    assert "| strategy | runs | benchmark valid_acc | benchmark test_acc |" in report
    with open(output / "runs.csv", newline="") as handle:
        per_run = list(csv.DictReader(handle))
    assert [(r["strategy"], r["seed"]) for r in per_run] == [("cdarts", "0"), ("cdarts", "1"), ("darts", "0"),
                                                             ("darts", "1")]
    with open(output / "report.csv", newline="") as handle:
        summary = {r["strategy"]: r for r in csv.DictReader(handle)}
    tests = [float(r["bench_test_acc"]) for r in per_run if r["strategy"] == "darts"]
    assert float(summary["darts"]["bench_test_acc_mean"]) == pytest.approx(sum(tests) / 2, abs=1e-3)
    assert float(summary["darts"]["bench_test_acc_std"]) == pytest.approx(abs(tests[0] - tests[1]) / 2, abs=1e-3)


def test_rerun_skips_finished_seeds_and_resumes_an_unfinished_one(study, capsys):
    output, argv = study
    before = (output / "cdarts" / "seed-0" / "metrics.csv").read_bytes()
    (output / "darts" / "seed-1" / "genotype.json").unlink()
    code, out, _ = exit_code(seeds.main, argv, capsys)
    assert code == 0
    assert out.count("skipping") == 3 and "[4/4] darts seed 1: resuming in" in out
    assert (output / "darts" / "seed-1" / "genotype.json").is_file()
    assert (output / "cdarts" / "seed-0" / "metrics.csv").read_bytes() == before


def test_rerun_with_another_config_is_refused(study, capsys):
    output, argv = study
    code, _, err = exit_code(seeds.main, [*argv, "--set", "strategy.epochs=3"], capsys)
    assert code == 2
    assert err.startswith(f"cdarts-seeds: error: {output / 'cdarts' / 'seed-0'} holds a run of another config "
                          "(differs at strategy.epochs)")


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    code, _, err = exit_code(seeds.main, ["--config", str(DEMO), "--strategies", "cdarts,dartz",
                                          "--output", str(tmp_path)], capsys)
    assert code == 2 and "unknown strategy 'dartz'" in err and "did you mean 'darts'?" in err
    code, _, err = exit_code(seeds.main, ["--config", str(DEMO), "--seeds", "0,x"], capsys)
    assert code == 2 and "expected comma-separated integers like 0,1,2, got '0,x'" in err
    assert not any(tmp_path.iterdir()), "nothing runs when the plan is invalid"


def test_single_strategy_study_uses_seed_folders(tmp_path, capsys):
    code, out, _ = exit_code(seeds.main, ["--config", str(DEMO), "--seeds", "3", "--output", str(tmp_path / "s"),
                                          *FAST, "--set", "strategy.epochs=1"], capsys)
    assert code == 0 and (tmp_path / "s" / "seed-3" / "genotype.json").is_file()
    assert "No benchmark was configured" in (tmp_path / "s" / "report.md").read_text()
    assert "| cdarts | 1 |" in out


def test_correlation_command_uses_the_runs_benchmark(study, tmp_path, capsys):
    output, _ = study
    run = tmp_path / "run"
    shutil.copytree(output / "cdarts" / "seed-0", run)
    code, out, err = exit_code(analyze.main, ["correlation", str(run), "--samples", "40", "--metric", "test_acc"],
                               capsys)
    assert code == 0, err
    result = json.loads((run / "correlation.json").read_text())
    assert (result["found"], result["metric"], result["epoch"]) == (40, "test_acc", 2)
    assert -1 <= result["kendall_tau"] <= 1 and -1 <= result["spearman_rho"] <= 1
    assert f"Kendall tau  {result['kendall_tau']:.3f}" in out and (run / "correlation.png").is_file()


def test_correlation_command_errors(study, tmp_path, table, capsys):
    output, _ = study
    run = output / "cdarts" / "seed-1"
    code, _, err = exit_code(analyze.main, ["correlation", str(run), "--benchmark", "{type: table}"], capsys)
    assert code == 2 and err.strip() == ("cdarts-analyze: error: --benchmark.path: missing required key for "
                                         "benchmark 'table'")
    code, _, err = exit_code(analyze.main, ["correlation", str(run), "--metric", "acc", "--output", str(tmp_path),
                                            "--benchmark", f"{{type: table, path: {table}}}"], capsys)
    assert code == 2 and "unknown benchmark metric 'acc'; available: valid_acc, test_acc" in err
    code, _, err = exit_code(analyze.main, ["correlation", str(tmp_path / "nope")], capsys)
    assert code == 2 and "run folder" in err and "does not exist" in err


def test_a_study_on_a_folder_another_study_writes_to_is_refused(tmp_path, capsys):
    output = tmp_path / "study"
    with FolderLock(output):
        code, _, err = exit_code(seeds.main, ["--config", str(DEMO), "--seeds", "0", "--output", str(output), *FAST],
                                 capsys)
    assert code == 2
    assert err.startswith(f"cdarts-seeds: error: output folder '{output}' is in use by another run (pid {os.getpid()}")
    assert not output.exists()


DARTS_DEMO = ROOT / "configs" / "demo.yaml"
TINY = ["--set", "strategy.epochs=1", "--set", "strategy.pretrain_epochs=0", "--set", "max_steps_per_epoch=2",
        "--set", "plots=false", "--set", "space.channels=2"]


def test_variants_study_reports_one_row_per_label(tmp_path, capsys):
    output = tmp_path / "ablation"
    code, out, err = exit_code(seeds.main, [
        "--config", str(DARTS_DEMO), "--seeds", "0", "--output", str(output), *TINY,
        "--variant", "darts+reg:strategy.type=darts,strategy.reg_weight=5", "--sweep", "space.eval_layers=4"], capsys)
    assert code == 0, err
    assert {p.name for p in output.iterdir()} == {"darts+reg", "eval_layers=4", "report.md", "report.csv", "runs.csv",
                                                   "curves.png"}
    darts = load_config(output / "darts+reg" / "seed-0" / "config.yaml", search_config)
    deep = load_config(output / "eval_layers=4" / "seed-0" / "config.yaml", search_config)
    assert (darts["strategy"]["type"], darts["strategy"]["reg_weight"], darts["strategy"]["epochs"]) == ("darts", 5, 1)
    assert (deep["strategy"]["type"], deep["space"]["eval_layers"], deep["space"]["channels"]) == ("cdarts", 4, 2)
    with open(output / "report.csv", newline="") as handle:
        summary = list(csv.DictReader(handle))
    assert [(r["variant"], r["runs"], r["overrides"]) for r in summary] == [
        ("darts+reg", "1", "strategy.type=darts; strategy.reg_weight=5"), ("eval_layers=4", "1", "space.eval_layers=4")]
    assert summary[0]["e_test_acc_mean"] == "" and 0 <= float(summary[1]["e_test_acc_mean"]) <= 100
    header = "| variant | runs | e_val_acc | e_test_acc | s_val_acc | s_test_acc | overrides |"
    assert header in (output / "report.md").read_text().splitlines() and header in out.splitlines()
    assert "# demo: darts+reg, eval_layers=4, 1 seed" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["--variant", "darts"], "--variant 'darts': expected LABEL:KEY=VALUE[,KEY=VALUE...], "
                             "e.g. darts+reg:strategy.type=darts,strategy.reg_weight=5"),
    (["--variant", "x:strategy.reg_wieght=1"], "--variant 'x': strategy.reg_wieght: unknown key for strategy "
                                               "'cdarts'; valid keys: "),
    (["--variant", "a:strategy.epochs=1", "--sweep", "strategy.epochs=1,2", "--variant", "a:strategy.epochs=2"],
     "variant labels must not repeat: 'a' given twice; labels: a, a, epochs=1, epochs=2"),
    (["--variants", "nope.yaml"], "nope.yaml: config file does not exist"),
])
def test_bad_variants_are_one_line_errors_before_any_folder(tmp_path, capsys, argv, message):
    output = tmp_path / "study"
    code, _, err = exit_code(seeds.main, ["--config", str(DARTS_DEMO), "--output", str(output), *argv], capsys)
    assert code == 2 and err.startswith(f"cdarts-seeds: error: {message}") and err.count("\n") == 1
    assert not output.exists()
