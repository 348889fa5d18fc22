"""Retraining: config schema, the training loop's run folder, held-out splits, resume after SIGKILL, safe --init."""
import csv
import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import Evil
from safetensors.torch import load_file

from cdarts.cli import train as train_cli
from cdarts.config import ConfigError
from cdarts.genotypes import load_genotype
from cdarts.io import WriteError
from cdarts.models.load import read_trained
from cdarts.retrain import build_data, load_retrain_config, train
from cdarts.runs import FolderLock

ROOT = Path(__file__).resolve().parents[1]


def tiny(**overrides):
    """A config that trains in about a second: 8 px digits, C=4, 3 cells, 3 updates per epoch."""
    cfg = {
        "seed": 0,
        "data": {"type": "digits", "image_size": 8, "channels": 1},
        "val_fraction": 0.1,
        "model": {"channels": 4, "layers": 3, "drop_path_rate": 0.2},
        "epochs": 2,
        "batch_size": 16,
        "max_steps_per_epoch": 3,
        "optimizer": {"type": "sgd", "lr": 0.05},
        "scheduler": {"type": "cosine", "per_update": True, "warmup_epochs": 1, "warmup_lr": 0.01},
        "threads": 1,
        "plots": False,
    }
    cfg.update(overrides)
    return cfg


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_config(path, cfg):
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train(tiny(), output=tmp_path_factory.mktemp("run") / "r", progress=False)


def test_config_problems_of_every_section_are_reported_together():
    bad = tiny(epoch=3, model={"chanels": 4, "architecture": "cdarts_cfar"}, augment={"mixup": "a"})
    with pytest.raises(ConfigError) as info:
        load_retrain_config(bad)
    problems = "\n".join(info.value.problems)
    assert "epoch: unknown key for this config" in problems and "did you mean 'epochs'?" in problems
    assert "model.chanels: unknown key" in problems and "did you mean 'channels'?" in problems
    choices = "valid choices: 'cdarts_cifar', 'cdarts_imagenet'"
    assert f"model.architecture: invalid value 'cdarts_cfar'; {choices}" in problems
    assert "augment.mixup: expected float, got str 'a'" in problems
    assert len(info.value.problems) == 4


def test_config_fills_architecture_defaults_and_resolves_the_genotype_to_json():
    cfg = load_retrain_config({"model": {"architecture": "cdarts_imagenet"}})
    assert (cfg["model"]["channels"], cfg["model"]["layers"]) == (48, 14)
    assert cfg["model"]["genotype"] == load_genotype("CDARTS_IMAGENET").to_json()
    assert cfg["augment"]["mixup"] == 0.0 and cfg["ema"] is None


def test_genotype_argument_overrides_the_config():
    cfg = load_retrain_config(tiny(), genotype="PDARTS")
    assert cfg["model"]["genotype"] == load_genotype("PDARTS").to_json()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("val_fraction=1.0", "val_fraction: expected in [0, 1), got 1.0"),
        ("model.layers=2", "model.layers: expected at least 3 (two reduction cells), got 2"),
        ("model.genotype=NOPE", "model.genotype: unknown genotype 'NOPE'; available:"),
        ("ema.decay=1.5", "ema.decay: expected in (0, 1), got 1.5"),
    ],
)
def test_config_values_out_of_range_are_refused(override, message):
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_retrain_config(tiny(), [override])


def test_val_split_is_a_seeded_unaugmented_carve_out_disjoint_from_train():
    cfg = load_retrain_config(tiny())
    data = build_data(cfg)
    assert set(data.train.indices).isdisjoint(data.val.indices)
    assert len(data.val) == round(0.1 * (len(data.train) + len(data.val)))
    assert torch.equal(data.val[0][0], data.val[0][0])
    again = build_data(load_retrain_config(tiny(seed=5)))
    assert again.val.indices == data.val.indices


def test_train_writes_the_run_folder(run):
    folder = run.run_dir
    for name in ("config.yaml", "genotype.json", "metrics.csv", "steps.csv", "summary.json"):
        assert (folder / name).is_file(), name
    rows = read_rows(folder / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    columns = {"lr", "train_loss", "train_top1", "val_top1", "val_top5", "test_top1", "test_top5", "time_s"}
    assert columns <= set(rows[0])
    assert [float(r["drop_path"]) for r in rows] == [0.0, 0.1]
    steps = read_rows(folder / "steps.csv")
    assert [int(s["step"]) for s in steps] == [1, 2, 3, 4, 5, 6]
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["epoch-0001", "epoch-0002"]
    assert len(list((folder / "best").iterdir())) == 1
    assert json.loads((folder / "genotype.json").read_text()) == load_genotype("CDARTS_CIFAR").to_json()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["best_epoch"] in (1, 2)


def test_lr_follows_the_timm_warmup_then_cosine(run):
    lrs = [float(s["lr"]) for s in read_rows(run.run_dir / "steps.csv")]
    assert lrs[0] == pytest.approx(0.01)
    assert lrs[1] == pytest.approx(0.01 + (0.05 - 0.01) / 3)
    assert all(a > b for a, b in zip(lrs[3:], lrs[4:], strict=False))


def test_best_epoch_is_chosen_on_val_not_test(run):
    rows = read_rows(run.run_dir / "metrics.csv")
    best = max(range(1, len(rows) + 1), key=lambda epoch: (float(rows[epoch - 1]["val_top1"]), -epoch))
    assert run.summary["best_epoch"] == best
    assert (run.run_dir / "best" / f"epoch-{best:04d}").is_dir()


def test_output_folder_of_another_run_is_refused_and_untouched(run):
    before = {p: p.stat().st_mtime_ns for p in run.run_dir.rglob("*")}
    with pytest.raises(FileExistsError, match="already holds files .* pass --resume"):
        train(tiny(), output=run.run_dir, progress=False)
    assert {p: p.stat().st_mtime_ns for p in run.run_dir.rglob("*")} == before


def test_resume_with_a_different_config_is_refused(run):
    with pytest.raises(ValueError, match="differs from the run's config.yaml in epochs"):
        train(tiny(epochs=3), output=run.run_dir, resume=True, progress=False)


def test_timm_augmentation_needs_an_image_dataset(tmp_path):
    with pytest.raises(ValueError, match="augment.auto_augment and augment.re_prob need a dataset of images"):
        train(tiny(augment={"auto_augment": "rand-m9-mstd0.5"}), output=tmp_path / "aa", progress=False)


@pytest.fixture
def image_folder(tmp_path):
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for label in ("a", "b"):
            folder = tmp_path / "images" / split / label
            folder.mkdir(parents=True)
            for i in range(8):
                pixels = torch.randint(0, 255, (16, 16, 3), generator=generator, dtype=torch.uint8).numpy()
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return tmp_path / "images"


def test_timm_augmentation_replaces_the_train_transform_only(image_folder, tmp_path):
    augment = {"auto_augment": "rand-m9-mstd0.5", "re_prob": 0.5}
    cfg = tiny(data={"type": "imagefolder", "root": str(image_folder), "image_size": 16}, val_fraction=0.25,
               batch_size=4, epochs=1, max_steps_per_epoch=2, augment=augment)
    data = build_data(load_retrain_config(cfg))
    steps = [type(t).__name__ for t in data.splits.train.transform.transforms]
    assert steps == ["RandomCrop", "RandomHorizontalFlip", "RandAugment", "ToTensor", "Normalize", "RandomErasing"]
    assert torch.equal(data.val[0][0], data.val[0][0]) and torch.equal(data.test[0][0], data.test[0][0])
    result = train(cfg, output=tmp_path / "aa", progress=False)
    assert len(result.history) == 1


def test_unknown_timm_augmentation_is_named_with_the_config():
    with pytest.raises(ConfigError) as info:
        load_retrain_config(tiny(augment={"auto_augment": "foo", "re_prob": 2}))
    assert info.value.problems == ["augment.auto_augment: invalid timm augmentation 'foo' (Unknown AA policy foo)",
                                   "augment.re_prob: expected in [0, 1], got 2"]
    with pytest.raises(ConfigError) as info:
        load_retrain_config(tiny(augment={"auto_augment": 5}))
    assert info.value.problems == ["augment.auto_augment: expected a timm augmentation string (original, "
                                   "rand-m9-mstd0.5, ...), got 5"]


def test_auxiliary_loss_ema_and_mixup_run_together(tmp_path):
    cfg = tiny(
        epochs=1, max_steps_per_epoch=2,
        model={"channels": 4, "layers": 3, "auxiliary": True}, augment={"mixup": 0.2, "cutmix": 1.0},
        ema={"decay": 0.9}, label_smoothing=0.1,
    )
    result = train(cfg, output=tmp_path / "full", progress=False)
    row = result.history[0]
    assert {"ema_val_top1", "ema_test_top1", "ema_test_top5"} <= set(row)
    assert torch.isfinite(torch.tensor(row["train_loss"]))
    tensors = load_file(str(result.run_dir / "checkpoints" / "epoch-0001" / "tensors.safetensors"))
    assert any(k.startswith("ema.") for k in tensors) and any(k.startswith("model.auxiliary_head.") for k in tensors)


def _cli(output, config, *extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "cdarts.cli.train", "--output", str(output), "--no-progress", *extra]
    command += ["--config", str(config)] if config is not None else []
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_resume_after_sigkill_replays_the_uninterrupted_run(tmp_path):
    cfg = tiny(epochs=4, augment={"mixup": 0.2}, ema={"decay": 0.9})
    killed = _cli(tmp_path / "killed", write_config(tmp_path / "resume.yaml", cfg))
    first = tmp_path / "killed" / "checkpoints" / "epoch-0001"

    def kill_after_the_first_epoch():
        deadline = time.time() + 120
        while not first.exists() and killed.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        killed.send_signal(signal.SIGKILL)

    watcher = threading.Thread(target=kill_after_the_first_epoch)
    watcher.start()
    train(cfg, output=tmp_path / "straight", progress=False)
    watcher.join()
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "summary.json").exists(), "the run finished before it was killed"
    resumed = _cli(tmp_path / "killed", None, "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "resuming from" in out
    steps_a = read_rows(tmp_path / "straight" / "steps.csv")
    steps_b = read_rows(tmp_path / "killed" / "steps.csv")
    assert [int(s["step"]) for s in steps_b] == list(range(1, 13))
    assert [(s["step"], s["lr"]) for s in steps_b] == [(s["step"], s["lr"]) for s in steps_a]
    assert steps_b == steps_a
    final_a = load_file(str(tmp_path / "straight" / "checkpoints" / "epoch-0004" / "tensors.safetensors"))
    final_b = load_file(str(tmp_path / "killed" / "checkpoints" / "epoch-0004" / "tensors.safetensors"))
    assert final_a.keys() == final_b.keys()
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)

    def untimed(run):
        return [{k: v for k, v in r.items() if k != "time_s"} for r in read_rows(tmp_path / run / "metrics.csv")]

    assert untimed("killed") == untimed("straight")


def test_init_refuses_a_malicious_pickle_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Evil(marker)}, evil)
    config = write_config(tmp_path / "c.yaml", tiny())
    with pytest.raises(SystemExit) as info:
        train_cli.main(["--config", str(config), "--output", str(tmp_path / "out"), "--init", str(evil)])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cdarts-train: error: ") and "refused to load" in err and len(err.splitlines()) == 1
    assert not marker.exists()


def test_init_starts_from_the_weights_of_a_run(run, tmp_path):
    cfg = tiny(epochs=1, max_steps_per_epoch=1, optimizer={"type": "sgd", "lr": 0.0}, scheduler={"type": "constant"})
    result = train(cfg, output=tmp_path / "init", init=run.run_dir, progress=False)
    source = read_trained(run.run_dir).weights
    after = load_file(str(result.run_dir / "checkpoints" / "epoch-0001" / "tensors.safetensors"))
    convs = [k for k, v in source.items() if v.ndim == 4]
    assert convs and all(torch.equal(after[f"model.{k}"], source[k]) for k in convs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "missing.yaml"], "missing.yaml: config file does not exist"),
        (["--genotype", "NOPE"], "model.genotype: unknown genotype 'NOPE'"),
        (["--resume"], "--resume needs --output"),
        (["--set", "epochs=0"], "epochs: expected at least 1, got 0"),
        (["--resume", "--output", "EMPTY"], "nothing to resume in"),
        (["--output", "EMPTY"], "--config is required"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(args, message, tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", tiny())
    args = [str(tmp_path / "empty") if a == "EMPTY" else a for a in args]
    if "--config" not in args and args != ["--output", str(tmp_path / "empty")]:
        args = ["--config", str(config), *args]
    with pytest.raises(SystemExit) as info:
        train_cli.main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_demo_reaches_95_percent_and_its_export_reproduces_it(tmp_path):
    """The README's retrain demo, end to end (under a minute)."""
    from cdarts.evaluate import evaluate_model
    from cdarts.models.export import export

    result = train(ROOT / "configs" / "retrain-demo.yaml", output=tmp_path / "demo", progress=False)
    assert result.summary["test_top1_at_best"] >= 95.0
    export(result.run_dir, tmp_path / "export")
    measured = evaluate_model(f"local-dir:{tmp_path / 'export'}")
    assert measured["top1"] == pytest.approx(result.summary["test_top1_at_best"], abs=1e-9)


def test_two_processes_retrain_a_train_split_that_shards_unevenly_and_count_each_test_image_once(tmp_path):
    """255 train images at batch 64 on 2 gloo processes: 128 + 127 images, padded to 2 updates on both ranks."""
    import socket

    from conftest import cli_env

    from cdarts.evaluate import evaluate_model

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = write_config(tmp_path / "uneven.yaml", tiny(val_fraction=0.8225, batch_size=64, epochs=1,
                                                         dist_timeout_s=30))
    assert len(build_data(load_retrain_config(config)).train) == 255
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
              str(port), "-m", "cdarts.cli.train"]
    result = subprocess.run([*launch, "--config", str(config), "--output", str(tmp_path / "run"), "--no-progress"],
                            env={**cli_env(), "CUDA_VISIBLE_DEVICES": ""}, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    row = read_rows(tmp_path / "run" / "metrics.csv")[-1]
    assert int(row["step"]) == 2
    alone = evaluate_model(str(tmp_path / "run"), split="test", device="cpu")
    assert alone["images"] == 359
    assert float(row["test_top1"]) == pytest.approx(alone["top1"], abs=1e-3), "each test image counted once"


def test_logs_are_written_after_the_checkpoint_and_a_resume_completes_them(run, tmp_path, monkeypatch):
    """A failed checkpoint write leaves logs without its epoch; the resume rewrites them to the uninterrupted run's."""
    import cdarts.retrain.run

    original = cdarts.retrain.run.save_checkpoint

    def disk_full_at_epoch_2(folder, epoch, *args, **kwargs):
        if epoch == 2:
            raise WriteError(folder / "epoch-0002", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        return original(folder, epoch, *args, **kwargs)

    monkeypatch.setattr(cdarts.retrain.run, "save_checkpoint", disk_full_at_epoch_2)
    output = tmp_path / "run"
    with pytest.raises(WriteError, match="disk full while writing"):
        train(tiny(), output=output, progress=False)
    assert [int(r["epoch"]) for r in read_rows(output / "metrics.csv")] == [1]
    assert [int(s["step"]) for s in read_rows(output / "steps.csv")] == [1, 2, 3]

    monkeypatch.undo()
    leftover = output / ".metrics.csv.5eed0bad.tmp"  # what a kill during a log write leaves
    leftover.write_text("epoch\n")
    train(None, output=output, resume=True, progress=False)
    assert not leftover.exists()
    assert read_rows(output / "steps.csv") == read_rows(run.run_dir / "steps.csv")
    untimed = [{k: v for k, v in r.items() if k != "time_s"} for r in read_rows(output / "metrics.csv")]
    assert untimed == [{k: v for k, v in r.items() if k != "time_s"} for r in read_rows(run.run_dir / "metrics.csv")]


def test_a_retrain_stopped_by_bad_data_in_its_first_epoch_leaves_no_run_folder(image_folder, tmp_path, capsys):
    garbage = image_folder / "val" / "a" / "garbage.png"  # the test split, read whole after each epoch
    garbage.write_bytes(b"GIF89a and then nothing")
    cfg = tiny(data={"type": "imagefolder", "root": str(image_folder), "image_size": 16}, val_fraction=0.0,
               batch_size=4, epochs=1, max_steps_per_epoch=1)
    argv = ["--config", str(write_config(tmp_path / "c.yaml", cfg)), "--output", str(tmp_path / "run"), "--no-progress"]
    with pytest.raises(SystemExit) as info:
        train_cli.main(argv)
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith(f"cdarts-train: error: {garbage}: cannot read image (")
    assert not (tmp_path / "run").exists()
    garbage.unlink()
    assert train_cli.main(argv) == 0, "the same command runs once the data is fixed"
    assert (tmp_path / "run" / "summary.json").is_file()


def test_a_retrain_or_export_to_an_output_another_run_writes_to_is_refused(run, tmp_path, capsys):
    from cdarts.cli import export as export_cli

    config, output = write_config(tmp_path / "c.yaml", tiny()), tmp_path / "out"
    for main, argv in ((train_cli.main, ["--config", str(config), "--output", str(output)]),
                       (export_cli.main, ["--model", str(run.run_dir), "--output", str(output)])):
        with FolderLock(output), pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        program = "cdarts-train" if main is train_cli.main else "cdarts-export"
        assert capsys.readouterr().err.startswith(
            f"{program}: error: output folder '{output}' is in use by another run (pid {os.getpid()} on host ")
        assert not output.exists()
