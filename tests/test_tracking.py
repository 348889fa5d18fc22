"""Trackers (``log_with``): names checked against accelerate's, a missing package refused before the run folder
exists, and what TensorBoard receives read back and compared with metrics.csv, genotypes.jsonl and steps.csv."""
import csv
import json
import math

import pytest
from test_retrain import tiny as tiny_retrain

from cdarts.config import ConfigError, load_config
from cdarts.engine import search, search_config
from cdarts.retrain import load_retrain_config, train
from cdarts.runs import make_accelerator
from cdarts.signals import Interrupted
from cdarts.tracking import RunTracker, accelerate_trackers, check_installed, flat_config


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def scalars(run_dir):
    """Every scalar TensorBoard holds for the run: {tag: {step: value}}."""
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = event_accumulator.EventAccumulator(str(run_dir / "trackers" / "cdarts"), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def test_tracker_names_are_accelerates():
    assert {"tensorboard", "wandb", "mlflow", "comet_ml", "aim"} <= set(accelerate_trackers())
    with pytest.raises(ConfigError) as error:
        load_config({"log_with": "tensorbord"}, search_config)
    assert error.value.problems == [
        f"log_with: unknown tracker 'tensorbord'; available: {', '.join(accelerate_trackers())}; "
        "did you mean 'tensorboard'?"]
    with pytest.raises(ConfigError, match=r"^log_with: unknown tracker 'wandbb'; available: .*did you mean 'wandb'"):
        load_retrain_config(tiny_retrain(log_with=["tensorboard", "wandbb"]))
    with pytest.raises(ConfigError, match=r"^log_with: expected a tracker name or a list of them, got int 3$"):
        load_config({"log_with": 3}, search_config)
    assert load_config({"log_with": ["tensorboard", "wandb"]}, search_config)["log_with"] == ["tensorboard", "wandb"]
    assert load_config({}, search_config)["log_with"] is None


def test_a_missing_tracker_package_is_one_line_before_the_run_folder(tmp_path, tiny_config, monkeypatch):
    import accelerate.tracking

    monkeypatch.setattr(accelerate.tracking, "get_available_trackers", lambda: [])
    message = "log_with: the wandb tracker needs its package, which is not installed: pip install 'wandb'"
    with pytest.raises(ConfigError) as error:
        search(tiny_config(log_with=["wandb"]), output=tmp_path / "search")
    assert str(error.value) == message
    with pytest.raises(ConfigError, match=r"pip install 'cdarts\[tensorboard\]'$"):
        train(tiny_retrain(log_with="tensorboard"), output=tmp_path / "retrain", progress=False)
    assert list(tmp_path.iterdir()) == []
    assert check_installed(None) == []


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, tiny_config):
    """A tiny search logging to TensorBoard, stopped after its first search epoch and resumed for a second one: the
    scalars after the first part, the run folder and the history."""
    pytest.importorskip("tensorboard")
    run_dir = tmp_path_factory.mktemp("tracked") / "run"
    search(tiny_config(log_with="tensorboard", strategy={"epochs": 1}), output=run_dir, quiet=True)
    first = scalars(run_dir)
    result = search(tiny_config(log_with="tensorboard"), output=run_dir, resume=True, quiet=True)
    return first, result


def test_tensorboard_holds_every_metrics_csv_value_the_alphas_and_the_steps(tracked):
    _, result = tracked
    logged = scalars(result.run_dir)
    rows = read_rows(result.run_dir / "metrics.csv")
    compared = 0
    for row in rows:
        for column, text in row.items():
            if column in ("epoch", "phase") or text in ("", "nan"):
                continue
            assert logged[f"epoch/{column}"][int(row["epoch"])] == pytest.approx(float(text), rel=1e-5), column
            compared += 1
    assert len(rows) == 3 and compared > 50
    assert all(not math.isnan(v) for steps in logged.values() for v in steps.values())  # missing cells: not logged
    history = [json.loads(line) for line in (result.run_dir / "genotypes.jsonl").read_text().splitlines()]
    for entry in history:
        for cell, weights in entry["alpha"].items():
            assert logged[f"alpha/{cell}/edge0-2/{entry['primitives'][0]}"][entry["epoch"]] == pytest.approx(
                weights[0][0], rel=1e-6)
            assert logged[f"alpha/{cell}/edge4-5/{entry['primitives'][-1]}"][entry["epoch"]] == pytest.approx(
                weights[13][-1], rel=1e-6)
    assert {tag for tag in logged if tag.startswith("step/")} == {
        "step/train.ce_s", "step/eval.ce_e", "step/joint.ce_s", "step/joint.ce_e", "step/joint.kd", "step/joint.reg"}


def test_a_resumed_search_continues_the_trackers_steps(tracked):
    first, result = tracked
    logged = scalars(result.run_dir)
    assert sorted(first["epoch/s_val_acc"]) == [1, 2] and sorted(logged["epoch/s_val_acc"]) == [1, 2, 3]
    # 2 steps a loop (max_steps_per_epoch): pretraining B, B (1-2); each search epoch E alone twice, then A, B, A, B
    assert sorted(first["step/train.ce_s"]) == [1, 2, 6, 8]
    assert sorted(logged["step/train.ce_s"]) == [1, 2, 6, 8, 12, 14]
    assert sorted({step for tag, values in logged.items() if tag.startswith("step/") for step in values}) == list(
        range(1, 15))
    assert sorted(logged["step/joint.kd"]) == [5, 7, 11, 13]


def test_retrain_logs_metrics_csv_and_steps_csv(tmp_path):
    pytest.importorskip("tensorboard")
    run = train(tiny_retrain(log_with="tensorboard", plots=True), output=tmp_path / "run", progress=False, quiet=True)
    logged = scalars(run.run_dir)
    for row in read_rows(run.run_dir / "metrics.csv"):
        for column in ("val_top1", "test_top1", "train_loss", "lr", "drop_path", "time_s"):
            assert logged[f"epoch/{column}"][int(row["epoch"])] == pytest.approx(float(row[column]), rel=1e-5)
    steps = read_rows(run.run_dir / "steps.csv")
    assert logged["step/loss"] == pytest.approx({int(s["step"]): float(s["loss"]) for s in steps}, rel=1e-5)
    assert logged["step/lr"] == pytest.approx({int(s["step"]): float(s["lr"]) for s in steps}, rel=1e-5)
    assert (run.run_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_trackers_end_when_a_signal_stops_the_run(tmp_path):
    pytest.importorskip("tensorboard")
    accelerator = make_accelerator("no", True)
    tracker = RunTracker(accelerator, ["tensorboard"], tmp_path, {"seed": 0, "space": {"layers": 3}})
    (writer,) = [t.writer for t in accelerator.trackers]
    with pytest.raises(Interrupted), tracker:
        tracker.on_step(1, {"loss": 2.5})
        tracker.log({"epoch": 1, "phase": "search", "s_val_acc": 50.0, "e_val_acc": math.nan})
        raise Interrupted(15)
    assert accelerator.trackers == [] and writer.file_writer is None  # closed: TensorBoard's writer drops it
    assert scalars(tmp_path) == {"step/loss": {1: 2.5}, "epoch/s_val_acc": {1: 50.0}}
    tracker.log({"epoch": 2, "s_val_acc": 60.0})  # an ended tracker logs nothing
    assert scalars(tmp_path)["epoch/s_val_acc"] == {1: 50.0}


def test_the_config_is_stored_as_flat_hyperparameters():
    flat = flat_config({"seed": 0, "space": {"type": "darts", "layers": 3}, "threads": None, "ops": ["a", "b"]})
    assert flat == {"seed": 0, "space.type": "darts", "space.layers": 3, "threads": "None", "ops": "['a', 'b']"}
