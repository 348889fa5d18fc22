"""Epochs as a user reads them (#15 defect 3, build 3): numbered from 1 everywhere with pretraining labelled, an epoch
line with the loss and the run's ETA; and a search that would take over an hour on a CPU says so at the start (#15
defect 2), at no cost to a short one."""
from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import sys

import pytest
import yaml
from conftest import make_tiny_retrain_config

import cdarts.engine
import cdarts.progress
from cdarts.engine import dry_run, search
from cdarts.epochs import epoch_label, epoch_line, phase
from cdarts.genotypes import load_genotype
from cdarts.retrain import train
from cdarts.timing import eta_text, format_duration, long_run_warning, remaining_time, run_estimate

QUICK = {"strategy": {"type": "darts", "epochs": 1}, "max_steps_per_epoch": 1, "eval_bn_batches": 0}
"""One DARTS epoch of one batch: the cheapest search that writes a whole run folder."""


def test_epochs_are_labelled_by_phase_and_numbered_from_1():
    assert [epoch_label(epoch, 2, 3) for epoch in range(5)] == [
        "pretrain 1/2", "pretrain 2/2", "search 1/3", "search 2/3", "search 3/3"]
    assert [phase(epoch, 1) for epoch in range(3)] == ["pretrain", "search", "search"]
    assert epoch_label(0, 0, 30) == "search 1/30"


def test_durations_read_to_the_second_under_an_hour_and_to_the_minute_above():
    assert [format_duration(s) for s in (0, 59.4, 61, 3599, 3600, 7322)] == [
        "0s", "59s", "1m 01s", "59m 59s", "1h 00m", "2h 02m"]


def test_the_eta_takes_each_phases_mean_and_is_a_lower_bound_before_a_phase_is_timed():
    done = [("pretrain", 2.0), ("search", 10.0), ("search", 14.0)]
    assert remaining_time(done, ["search", "search"]) == (24.0, False)
    assert eta_text(done, ["search", "search"]) == "ETA 24s"
    assert remaining_time([("pretrain", 5.0)], ["pretrain", "search", "search"]) == (15.0, True)
    assert eta_text([("pretrain", 5.0)], ["pretrain", "search", "search"]) == "ETA >15s"
    assert eta_text(done, []) == ""


ROW = {"epoch": 3, "phase": "search", "train_loss": 0.8123, "joint_loss": 2.3012, "e_train_loss": 0.9,
       "s_val_acc": 71.25, "s_test_acc": 70.0, "e_val_acc": 80.0, "e_test_acc": 79.5, "lambda_reg": 4.5,
       "param_free_ops": 2.0, "time_s": 12.34}


def test_the_epoch_line_carries_the_losses_and_eta_and_the_genotype_only_when_it_changed():
    line = ("search 2/3 (epoch 3/4) | loss S 0.812 joint 2.301 E 0.900 | S val 71.2 test 70.0 | E val 80.0 test 79.5 "
            "| lambda' 4.50 | free ops 2 | 12.3s, ETA 25s")
    assert epoch_line(ROW, 4, "search 2/3", "ETA 25s", None) == line + " | genotype unchanged"
    genotype = load_genotype("DARTS_V2")
    assert epoch_line(ROW, 4, "search 2/3", "ETA 25s", genotype) == f"{line}\n  {genotype}"
    assert epoch_line({**ROW, "epoch": 4}, 4, "search 3/3", "", None).endswith("| 12.3s | genotype unchanged")


def test_the_run_estimate_scales_each_loop_by_its_batches_and_what_an_epoch_does_once_not():
    measured = {"pretrain_epoch_s": 0.5, "search_epoch_s": 2.0, "select": 0.25, "evaluate_s": 0.1, "calibrate_s": 0.3}
    # 2 pretraining epochs of 0.5 x 10, 3 search epochs of 1.75 x 10 + 0.25, 5 evaluations of 0.3 + 0.1 x 4
    assert run_estimate(measured, 2, 3, 10, 4.0) == pytest.approx(2 * 5.0 + 3 * 17.75 + 5 * 0.7)
    assert long_run_warning(9000.0, 50, 14) == (
        "estimated time on this CPU: about 2.5 h (50 epochs x 14 steps); for a shorter run --set strategy.epochs=N or "
        "max_steps_per_epoch=N, or run on a GPU (--dry-run times each step)")


def test_dry_run_estimates_the_whole_search_from_its_one_batch_epochs(tiny_config):
    result = dry_run(tiny_config(**QUICK))
    assert (result["epochs"], result["steps_per_epoch"]) == (1.0, 1.0)
    assert result["estimate_s"] == pytest.approx(result["search_epoch_s"] + result["calibrate_s"]
                                                 + result["evaluate_s"])
    assert 0 < result["step_a"] < result["search_epoch_s"]


def test_a_search_numbers_labels_and_times_its_epochs_from_1(tmp_path, tiny_config, monkeypatch, capsys):
    def must_not_measure(*args, **kwargs):
        raise AssertionError("a short search measured its steps")

    monkeypatch.setattr(cdarts.engine, "measure_steps", must_not_measure)
    monkeypatch.setattr(cdarts.progress, "LINE_INTERVAL_S", 0.0)  # a progress line after every batch
    result = search(tiny_config(), output=tmp_path / "run")
    out, err = capsys.readouterr()
    lines = [line for line in out.splitlines() if "(epoch " in line]
    assert [line.split(" | ")[0] for line in lines] == [
        "pretrain 1/1 (epoch 1/3)", "search 1/2 (epoch 2/3)", "search 2/2 (epoch 3/3)"]
    assert re.fullmatch(r"loss S \d\.\d{3}", lines[0].split(" | ")[1])
    assert re.fullmatch(r"loss S \d\.\d{3} joint \d\.\d{3} E \d\.\d{3}", lines[1].split(" | ")[1])
    assert re.search(r" \| [\d.]+s, ETA >\d+s$", lines[0]) and re.search(r" \| [\d.]+s, ETA \d+s$", lines[1])
    assert re.search(r" \| [\d.]+s$", lines[2]), "nothing left after the last epoch"
    descriptions = {line.split(": ")[0] + (": train E" if ": train E" in line else "") for line in err.splitlines()}
    assert descriptions == {"pretrain 1/1", "search 1/2", "search 1/2: train E", "search 2/2", "search 2/2: train E"}
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    with open(result.run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["epoch"], r["phase"]) for r in rows] == [("1", "pretrain"), ("2", "search"), ("3", "search")]
    lines = (result.run_dir / "genotypes.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    assert sorted(p.name for p in (result.run_dir / "checkpoints").iterdir()) == ["epoch-0002", "epoch-0003"]


def test_measuring_at_the_start_leaves_the_searchs_numbers_as_they_were(tmp_path, tiny_config, monkeypatch):
    reference = search(tiny_config(**QUICK), output=tmp_path / "reference", quiet=True)
    calls = []
    measure = cdarts.engine.measure_steps
    monkeypatch.setattr(cdarts.engine, "ESTIMATE_MIN_STEPS", 1)
    monkeypatch.setattr(cdarts.engine, "measure_steps", lambda *args, **kwargs: calls.append(1) or measure(*args,
                                                                                                          **kwargs))
    measured = search(tiny_config(**QUICK), output=tmp_path / "measured", quiet=True)
    assert calls == [1]
    assert [h["alpha"] for h in measured.history] == [h["alpha"] for h in reference.history]
    assert measured.genotype == reference.genotype


def test_a_search_estimated_at_over_an_hour_on_a_cpu_says_so_at_the_start(tmp_path, tiny_config, cli_env):
    config = tmp_path / "long.yaml"
    config.write_text(yaml.safe_dump(tiny_config(**{**QUICK, "strategy": {"type": "darts", "epochs": 1_000_000}})))
    process = subprocess.Popen([sys.executable, "-m", "cdarts.cli.search", "--config", str(config), "--output",
                                str(tmp_path / "run"), "--no-progress"], env=cli_env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        for line in process.stdout:
            seen.append(line)
            if line.startswith("estimated time") or "(epoch " in line:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    assert re.fullmatch(r"estimated time on this CPU: about [\d.]+ h \(1000000 epochs x 1 steps\); for a shorter run "
                        r"--set strategy\.epochs=N or max_steps_per_epoch=N, or run on a GPU \(--dry-run times each "
                        r"step\)\n", seen[-1]), (seen, err[-2000:])
    assert seen[0].startswith("search: darts on digits, 1 process x batch 32")


def test_a_retrain_numbers_its_epochs_from_1_with_an_eta(tmp_path, capsys):
    config = make_tiny_retrain_config(val_fraction=0.0, epochs=2)
    result = train(config, output=tmp_path / "run", progress=False)
    lines = capsys.readouterr().out.splitlines()
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert re.fullmatch(r"epoch 1/2 \| lr .* \| [\d.]+s, ETA \d+s", epochs[0]), epochs
    assert re.fullmatch(r"epoch 2/2 \| lr .* \| [\d.]+s", epochs[1]), epochs
    assert any(line.startswith("done: last epoch (no val split) at epoch 2: ") for line in lines)
    assert (result.summary["best_epoch"], [row["epoch"] for row in result.history]) == (2, [1, 2])
    with open(result.run_dir / "steps.csv", newline="") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1", "2"]
    assert [p.name for p in (result.run_dir / "best").iterdir()] == ["epoch-0002"]


def test_the_dry_run_report_ends_with_the_whole_search(tmp_path, tiny_config, capsys):
    from cdarts.cli.search import main

    config = tiny_config(**{**QUICK, "strategy": {"type": "darts", "epochs": 7}, "max_steps_per_epoch": 3})
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["--config", str(path), "--dry-run"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert re.fullmatch(r"whole search              about (\d+s|\d+m \d\ds) \(7 epochs x 3 steps\)", last), last
