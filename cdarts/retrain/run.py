"""Retraining a discovered genotype from scratch: config schema, the Accelerate training loop, trained checkpoints.

``cdarts-train`` is a thin layer over :func:`train`. The run folder holds the filled ``config.yaml``, ``launch.json``,
``genotype.json``, ``metrics.csv`` (one row per epoch), ``steps.csv`` (LR and loss per update),
``checkpoints/epoch-NNNN`` (the latest few, for ``--resume``), ``best/epoch-NNNN`` (best val top-1; the test split
is reported, never used to choose) and ``summary.json``; epochs count from 1 everywhere. Checkpoints are written by
:mod:`cdarts.checkpoint` (temporary folder, fsync, rename; safetensors and ``weights_only`` tensors, so loading never
runs code).
"""
from __future__ import annotations

import csv
import math
import os
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from cdarts.checkpoint import (
    CheckpointError,
    Shape,
    latest_checkpoint,
    legacy_numbering,
    list_checkpoints,
    restore_modules,
    save_checkpoint,
    set_rng_state,
)
from cdarts.config import (
    ConfigError,
    build,
    dump_yaml,
)
from cdarts.data import epoch_seed, make_loader
from cdarts.io import WriteError, atomic_write_json, atomic_write_text, csv_text, fsync_dir
from cdarts.models.load import RETRAIN_INFO, find_checkpoint, load_into, load_weights, read_trained
from cdarts.plotting import plot_retrain_curves
from cdarts.progress import progress_bar
from cdarts.retrain.config import config_hash, load_retrain_config
from cdarts.retrain.data import build_data
from cdarts.retrain.loop import (
    TrainForward,
    create_network,
    make_criterion,
    model_args,
    train_one_epoch,
    unwrap,
    validate,
)
from cdarts.runs import (
    claim_run_dir,
    guarded_run,
    launch_line,
    launch_record,
    open_run,
    record_launch,
)
from cdarts.runtime import Runtime
from cdarts.signals import RunGuard, shell_command
from cdarts.stats import inference_parameters
from cdarts.timing import eta_text
from cdarts.tracking import RunTracker, check_installed

RETRAIN_STATE: dict[str, Shape] = {
    "step": int,
    "best": {"epoch": (int, type(None)), "val_top1": (int, float, type(None))},
    "config_hash": str,
    "retrain": RETRAIN_INFO,
    "history": [{"epoch": int}],
}
"""The state.json fields a resume reads: a checkpoint without them is unusable and the resume falls back."""


def publish_best(run_dir: Path, checkpoint: Path) -> Path:
    """Copy a checkpoint to ``best/`` (temporary folder, then rename) and drop the previous best."""
    folder = run_dir / "best"
    folder.mkdir(exist_ok=True)
    final = folder / checkpoint.name
    tmp = folder / f".tmp-{checkpoint.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(checkpoint, tmp)
    fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_dir(folder)
    for old in list_checkpoints(folder):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def reconcile_best(run_dir: Path, best_epoch: int | None, checkpoint: Path, epoch: int) -> None:
    """After a crash, make ``best/`` hold the best checkpoint the resumed state knows: the resumed ``checkpoint`` (of
    ``epoch``) when it is the best and ``best/`` holds another."""
    current = list_checkpoints(run_dir / "best")
    if best_epoch == epoch and not (current and current[0].name == checkpoint.name):
        publish_best(run_dir, checkpoint)


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@dataclass
class TrainResult:
    run_dir: Path
    history: list[dict[str, Any]]
    summary: dict[str, Any]


def _fmt(value: Any) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


@guarded_run
def train(
    config: str | Path | Mapping[str, Any] | None,
    overrides: Sequence[str] = (),
    genotype: str | None = None,
    output: str | Path | None = None,
    resume: bool = False,
    init: str | Path | None = None,
    progress: bool = True,
    quiet: bool = False,
) -> TrainResult:
    """Retrain a genotype from scratch (or from ``init`` weights) as the config says; return the run.

    ``progress`` shows the batches of each loop (a bar in a terminal, plain lines in a log: ``cdarts.progress``);
    ``quiet`` prints only warnings and the final result (no progress, no start or epoch lines).

    With ``resume`` and ``config`` None the run folder's own ``config.yaml`` is used; a given config must fill
    to the same one. The latest complete checkpoint restores weights, optimizer, EMA, RNGs and logs, so the
    resumed run takes the same steps at the same LRs as an uninterrupted one.
    """
    from accelerate.utils import set_seed

    if config is None:
        if not resume or output is None:
            raise ConfigError("a config is needed (only --resume with --output can reuse the run's own config.yaml)")
        config = Path(output) / "config.yaml"
    cfg = load_retrain_config(config, overrides, genotype)
    trackers = check_installed(cfg["log_with"])
    name = Path(config).stem if isinstance(config, (str, Path)) else "config"
    accelerator, run_dir, configured = open_run(cfg, output, f"retrain-{name}", resume)
    main = accelerator.is_main_process
    log = accelerator.print
    if resume and not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"nothing to resume in '{run_dir}': it holds no config.yaml of a retrain run")
    if resume:
        saved = load_retrain_config(run_dir / "config.yaml")
        if config_hash(saved) != config_hash(cfg):
            changed = sorted(k for k in set(saved) | set(cfg) if saved.get(k) != cfg.get(k))
            raise ConfigError(f"the config differs from the run's config.yaml in {', '.join(changed)}; resume with "
                              "the run's own config (omit --config) or start a new --output")
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    set_seed(cfg["seed"])

    data = build_data(cfg)
    net = create_network(cfg, data)
    if init is not None:
        source = find_checkpoint(init)
        weights = read_trained(source).weights if source.is_dir() else load_weights(source)
        load_into(net, weights, source, strict_aux=False)
    if main:  # only once every input has been read: a refused --init leaves no run folder behind
        claim_run_dir(run_dir, resume, warn=log)
    mcfg, acfg = cfg["model"], cfg["augment"]
    world, rank = accelerator.num_processes, accelerator.process_index
    eval_batch = cfg["eval_batch_size"] or 2 * cfg["batch_size"]

    def train_loader(epoch: int) -> Any:
        return make_loader(data.train, cfg["batch_size"], shuffle=True, seed=epoch_seed(cfg["seed"], epoch),
                           num_workers=cfg["num_workers"], rank=rank, world_size=world)

    def eval_loader(dataset: Dataset) -> Any:
        return make_loader(dataset, eval_batch, shuffle=False, seed=0, drop_last=False,
                           num_workers=cfg["num_workers"], rank=rank, world_size=world)

    updates_per_epoch = len(train_loader(0))
    if cfg["max_steps_per_epoch"]:
        updates_per_epoch = min(updates_per_epoch, cfg["max_steps_per_epoch"])
    optimizer = build("optimizers", cfg["optimizer"], net.parameters())
    scheduler = build("schedulers", cfg["scheduler"], optimizer, cfg["epochs"], updates_per_epoch)
    wrapped = accelerator.prepare(TrainForward(net))
    net = unwrap(wrapped)
    runtime = Runtime(accelerator, cfg["grad_clip"], cfg["nonfinite"], cfg["max_skipped_batches"], ddp=world > 1)
    ema = None
    if cfg["ema"] is not None:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(net, decay=cfg["ema"]["decay"], use_warmup=cfg["ema"]["warmup"])
    mixup = None
    if acfg["mixup"] > 0 or acfg["cutmix"] > 0:
        from timm.data import Mixup

        mixup = Mixup(mixup_alpha=acfg["mixup"], cutmix_alpha=acfg["cutmix"], prob=acfg["mixup_prob"],
                      switch_prob=acfg["switch_prob"], label_smoothing=cfg["label_smoothing"],
                      num_classes=data.splits.num_classes)
    criterion = make_criterion(mixup is not None, cfg["label_smoothing"])
    modules = {"model": net, **({"ema": ema.module} if ema is not None else {})}
    scaler = getattr(accelerator, "scaler", None)

    history: list[dict[str, Any]] = []
    step, start, best = 0, 0, {"epoch": None, "val_top1": None}
    last_steps: list[dict[str, Any]] = []  # steps.csv's rows of the checkpoint's epoch, which it may lack
    legacy = False  # a checkpoint of a run that numbered its epochs from 0
    checkpoints = run_dir / "checkpoints"
    if resume:
        found = latest_checkpoint(checkpoints, warn=log, move_aside=main, fields=RETRAIN_STATE)
        if found is not None:
            path, (tensors, optim, state) = found
            if state.get("config_hash") != config_hash(cfg):
                raise CheckpointError(f"{path}: written by a different config than the run's config.yaml")
            restore_modules(tensors, modules)
            optimizer.load_state_dict(optim["optimizers"]["model"])
            if scaler is not None and "scaler" in state:
                scaler.load_state_dict(state["scaler"])
            set_rng_state(optim["rng"], state["rng"])
            history, step, best, start = state["history"], state["step"], state["best"], state["epoch"]
            last_steps, legacy = state.get("epoch_steps", []), legacy_numbering(state)
            if main:
                reconcile_best(run_dir, best["epoch"], path, start)
            eta = eta_text([("train", row["time_s"]) for row in history], ["train"] * (cfg["epochs"] - start))
            log(f"resuming from {path} after epoch {start} of {cfg['epochs']} (step {step})"
                + (f"; {eta}" if eta else ""))
        else:
            log(f"no complete checkpoint in {checkpoints}; starting from scratch")
    if main:
        atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
        atomic_write_json(run_dir / "genotype.json", mcfg["genotype"])
        atomic_write_text(run_dir / "metrics.csv", csv_text(history) if history else "")
        steps_log = read_csv(run_dir / "steps.csv")[: step - len(last_steps)] if resume else []
        if resume and legacy:  # steps.csv of a run that numbered its epochs from 0
            steps_log = [{**row, "epoch": int(row["epoch"]) + 1} for row in steps_log]
        steps_log += last_steps if resume else []
        atomic_write_text(run_dir / "steps.csv", csv_text(steps_log) if steps_log else "step,epoch,lr,loss\n")
        params = inference_parameters(net)
        launch = launch_record(accelerator, cfg["batch_size"])
        record_launch(run_dir, launch, warn=log)
        if not quiet:
            log(f"retraining {mcfg['architecture']} ({params / 1e6:.3f}M params, {mcfg['layers']} cells, "
                f"C={mcfg['channels']}) on {data.spec['type']}: {len(data.train)} train / "
                f"{len(data.val) if data.val is not None else 0} val / {len(data.test)} test images, "
                f"{launch_line(launch, configured)} -> {run_dir}")
    if scheduler is not None:
        scheduler.step(start)
        scheduler.step_update(step)
    info = {
        "architecture": mcfg["architecture"], "model_args": model_args(cfg, data.splits.num_classes,
                                                                       data.splits.in_chans),
        "data": data.input_meta(),
    }
    began_run = time.perf_counter()

    def bar(batches: Iterable, desc: str, total: int | None = None) -> Iterable:
        return progress_bar(batches, desc, total, enabled=main and progress and not quiet)

    def measure(model: nn.Module, dataset: Dataset | None, prefix: str) -> dict[str, float]:
        return {} if dataset is None else validate(model, bar(eval_loader(dataset), prefix), runtime, prefix)

    command = shell_command("cdarts-train", "--output", run_dir, "--resume", *(["--init", init] if init else []))
    guard = RunGuard(accelerator, finish_epoch=cfg["checkpoint_on_signal"], dist_timeout_s=cfg["dist_timeout_s"],
                     command=command, total_epochs=cfg["epochs"],
                     checkpoint=found[0] if resume and found is not None else None)
    tracker = RunTracker(accelerator, trackers, run_dir, cfg)
    with guard, tracker:
        for epoch in range(start, cfg["epochs"]):
            guard.epoch = epoch
            began = time.perf_counter()
            net.drop_path_prob = mcfg["drop_path_rate"] * epoch / cfg["epochs"]
            batches = bar(train_loader(epoch), f"epoch {epoch + 1}/{cfg['epochs']}", updates_per_epoch)
            train_row, steps_rows, step = train_one_epoch(
                epoch + 1, wrapped, batches, optimizer, criterion, runtime, step=step, updates=updates_per_epoch,
                scheduler=scheduler, ema=ema, mixup=mixup, aux_weight=mcfg["auxiliary_weight"],
                before_step=guard.at_step)
            if scheduler is not None:
                scheduler.step(epoch + 1)
            row = {"epoch": epoch + 1, "step": step, "lr": steps_rows[-1]["lr"] if steps_rows else math.nan,
                   "drop_path": net.drop_path_prob, **train_row}
            row.update(measure(net, data.val, "val"))
            row.update(measure(net, data.test, "test"))
            if ema is not None:
                row.update(measure(ema.module, data.val, "ema_val"))
                row.update(measure(ema.module, data.test, "ema_test"))
            row["time_s"] = time.perf_counter() - began
            history.append(row)
            improved = best["epoch"] is None or data.val is None or row["val_top1"] > best["val_top1"]
            if improved:
                best = {"epoch": epoch + 1, "val_top1": row.get("val_top1"), "test_top1": row["test_top1"],
                        "test_top5": row["test_top5"]}
            if main:  # the checkpoint first: after a failed one the logs hold no epoch that does not exist
                logged = [{**r, "lr": f"{r['lr']:.8g}", "loss": f"{r['loss']:.6g}"} for r in steps_rows]
                state = {"step": step, "best": best, "history": history, "config_hash": config_hash(cfg),
                         "retrain": {**info, "metrics": row}, "epoch_steps": logged}
                if scaler is not None:
                    state["scaler"] = scaler.state_dict()
                saved = guard.checkpoint = save_checkpoint(checkpoints, epoch + 1, modules, {"model": optimizer},
                                                           state, keep=cfg["keep_checkpoints"])
                atomic_write_text(run_dir / "metrics.csv", csv_text(history))
                try:
                    with open(run_dir / "steps.csv", "a", newline="") as handle:
                        csv.DictWriter(handle, fieldnames=["step", "epoch", "lr", "loss"]).writerows(logged)
                except OSError as exc:
                    raise WriteError(run_dir / "steps.csv", exc) from exc
                if improved:
                    publish_best(run_dir, saved)
                for r in steps_rows:
                    tracker.on_step(r["step"], {"loss": r["loss"], "lr": r["lr"]})
                tracker.log(row)
                if cfg["plots"]:
                    plot_retrain_curves(history, run_dir / "curves.png")
                if not quiet:
                    eta = eta_text([("train", r["time_s"]) for r in history], ["train"] * (cfg["epochs"] - epoch - 1))
                    log(f"epoch {epoch + 1}/{cfg['epochs']} | lr {row['lr']:.4g} | train loss "
                        f"{row['train_loss']:.3f} top-1 {_fmt(row['train_top1'])} | val {_fmt(row.get('val_top1'))} | "
                        f"test {_fmt(row['test_top1'])}/{_fmt(row['test_top5'])}"
                        + (f" | ema test {_fmt(row['ema_test_top1'])}" if ema is not None else "")
                        + f" | {row['time_s']:.1f}s" + (f", {eta}" if eta else ""))
            accelerator.wait_for_everyone()
            guard.at_epoch_end()

    last = history[-1] if history else {}
    summary = {
        "run_dir": str(run_dir), "architecture": mcfg["architecture"], "params": inference_parameters(net),
        "epochs": cfg["epochs"], "steps": step, "best_epoch": best["epoch"], "best_val_top1": best["val_top1"],
        "test_top1_at_best": best.get("test_top1"), "test_top5_at_best": best.get("test_top5"),
        "final_test_top1": last.get("test_top1"), "final_test_top5": last.get("test_top5"),
        "time_s": time.perf_counter() - began_run,
    }
    if main:
        atomic_write_json(run_dir / "summary.json", summary)
        chosen = "best val top-1" if data.val is not None else "last epoch (no val split)"
        log(f"\ndone: {chosen} at epoch {best['epoch']}: val {_fmt(best['val_top1'])}, test top-1 "
            f"{_fmt(best.get('test_top1'))} top-5 {_fmt(best.get('test_top5'))} (final epoch test top-1 "
            f"{_fmt(last.get('test_top1'))})\nrun folder: {run_dir}\n  config.yaml, genotype.json, metrics.csv, "
            f"steps.csv, summary.json, launch.json, best/, checkpoints/\nexport: cdarts-export --model {run_dir} "
            "--output DIR")
    accelerator.wait_for_everyone()
    return TrainResult(run_dir, history, summary)
