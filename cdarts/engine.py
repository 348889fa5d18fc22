"""The search engine: config in, run folder and genotype out. ``cdarts-search`` is a thin layer over ``search``.

One Accelerator handles processes, devices and mixed precision; the strategy does the learning. After every
epoch the engine derives the genotype, logs metrics, and writes an atomic checkpoint, so ``resume=True``
replays exactly the run an uninterrupted one would have made.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from torch.utils.data import Subset

from cdarts.checkpoint import latest_checkpoint, restore_modules, rng_state, save_checkpoint, set_rng_state
from cdarts.config import (
    Component,
    NonNegativeInt,
    PositiveInt,
    Range,
    Seed,
    Timeout,
    TrainBatch,
    build,
    config_parameters,
    dump_yaml,
    load_config,
)
from cdarts.data import epoch_seed, make_loader, search_split
from cdarts.diagnostics import diagnostics
from cdarts.epochs import epoch_line, run_eta, write_logs
from cdarts.epochs import phase as epoch_phase
from cdarts.errors import ConfigError, DataError
from cdarts.genotypes import Genotype
from cdarts.io import atomic_write_json, atomic_write_text
from cdarts.nasbench import benchmark_metrics
from cdarts.plotting import write_search_plots
from cdarts.progress import no_progress, progress_bar
from cdarts.registry import datasets
from cdarts.runs import (
    check_resume_config,
    claim_run_dir,
    guarded_run,
    launch_line,
    launch_record,
    make_accelerator,
    open_run,
    record_launch,
)
from cdarts.runtime import Runtime
from cdarts.signals import RunGuard, shell_command
from cdarts.strategies.base import SearchContext, alpha_weights
from cdarts.timing import (
    ESTIMATE_MIN_STEPS,
    ESTIMATE_WARN_S,
    long_run_warning,
    peak_memory,
    reset_peak_memory,
    run_estimate,
    timed,
)
from cdarts.tracking import RunTracker, Trackers, check_installed

SPLITS = ("train", "val", "test")

SEARCH_STATE = {
    "strategy": dict,
    "history": [{"epoch": int, "genotype": dict, "primitives": list, "alpha": dict, "metrics": dict}],
}
"""The state.json fields a resume reads (``write_logs`` rewrites the logs from the history): a checkpoint without
them is unusable and the resume falls back to the one before."""


def search_config(
    *,
    seed: Seed = 0,
    data: Component("datasets") = {"type": "digits"},  # noqa: B006 - schema default
    train_fraction: Annotated[float, Range(gt=0, lt=1)] = 0.5,
    batch_size: TrainBatch = 64,
    eval_batch_size: PositiveInt | None = None,
    num_workers: NonNegativeInt = 0,
    space: Component("spaces") = {"type": "darts"},  # noqa: B006
    discretizer: Component("discretizers") | None = None,
    strategy: Component("strategies") = {"type": "cdarts"},  # noqa: B006
    mixed_precision: Literal["no", "fp16", "bf16"] | None = None,
    cpu: bool = False,
    threads: PositiveInt | None = None,
    grad_clip: Annotated[float, Range(gt=0)] | None = 5.0,
    clip_scope: Literal["global", "per_optimizer"] = "global",
    max_steps_per_epoch: PositiveInt | None = None,
    eval_bn_batches: NonNegativeInt = 10,
    keep_checkpoints: PositiveInt = 2,
    plots: bool = True,
    log_with: Trackers | None = None,
    benchmark: Component("benchmarks") | None = None,
    nonfinite: Literal["stop", "skip"] = "stop",
    max_skipped_batches: NonNegativeInt = 10,
    dist_timeout_s: Timeout = 600.0,
    checkpoint_on_signal: bool = False,
) -> None:
    """The keys of a search config (its signature is the schema; it is never called).

    ``train_fraction`` splits the training set into S's train half and the val half (seeded shuffle);
    ``discretizer: null`` takes the space's own rule (top-2 for DARTS, argmax for NAS-Bench-201);
    ``threads`` sets torch's CPU threads (at tiny sizes one thread can beat two); ``max_steps_per_epoch``
    caps the batches per epoch (quick trials, benchmarks); ``grad_clip`` bounds the gradient norm of every step, one
    norm over all the step's parameters (``clip_scope: global``, the public code) or each optimizer's alone
    (``per_optimizer``: step A clips alpha and E separately); ``eval_bn_batches`` re-estimates BN statistics on that
    many val batches before each eval-mode accuracy (0: use the running statistics as they are); ``benchmark`` looks up
    every epoch's genotype (``bench_<metric>`` columns, e.g. ``{type: table, path: nb201.csv}``). ``mixed_precision:
    null`` takes the launcher's (``accelerate launch --mixed_precision``, or the ``accelerate config`` default it passes
    down), else ``no``; the run's config.yaml records the one that ran. A NaN or inf loss
    term or alpha ``nonfinite: stop``s the run naming the term, or with ``skip`` drops that step (warning, and
    counting ``skipped_batches``) until more than ``max_skipped_batches`` were dropped. ``dist_timeout_s`` bounds
    how long a process waits for the others in a collective: if one dies or hangs, the rest exit with one line naming
    its rank. On SIGTERM, SIGHUP or SIGINT the run stops at the next step, dropping the partial epoch, or with
    ``checkpoint_on_signal`` finishes the epoch and its checkpoint first; it prints the command that resumes it and
    exits with 128 + the signal (see :mod:`cdarts.signals`). ``plots`` redraws curves.png, alphas.png and genotype.png
    after every epoch; ``log_with`` names accelerate trackers (``tensorboard``, ``wandb``...: :mod:`cdarts.tracking`).
    """


@dataclass
class SearchResult:
    genotype: Genotype
    run_dir: Path
    history: list[dict[str, Any]]


@guarded_run
def search(
    config: str | Path | dict,
    overrides: Sequence[str] = (),
    output: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    quiet: bool = False,
) -> SearchResult:
    """Run a search from a YAML file or a config dict; return the final genotype and the run folder.

    ``progress`` shows the batches of each loop (a bar in a terminal, plain lines in a log: ``cdarts.progress``);
    ``quiet`` prints only warnings and the final result (no progress, no epoch lines).
    """
    from accelerate.utils import set_seed

    cfg = load_config(config, search_config, overrides)
    trackers = check_installed(cfg["log_with"])
    name = Path(config).stem if isinstance(config, (str, Path)) else "search"
    accelerator, run_dir, configured = open_run(cfg, output, name, resume)
    main = accelerator.is_main_process
    log = accelerator.print
    if resume and (run_dir / "config.yaml").is_file():
        check_resume_config(load_config(run_dir / "config.yaml", search_config), cfg, run_dir / "config.yaml")
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    set_seed(cfg["seed"])
    benchmark = build("benchmarks", cfg["benchmark"]) if cfg["benchmark"] else None

    ctx, strategy = setup_search(cfg, accelerator, benchmark)
    space, runtime = ctx.space, ctx.runtime
    if main:  # the lock is the main process's: the others write nothing of the run folder
        claim_run_dir(run_dir, resume, warn=log)

    history: list[dict[str, Any]] = []
    start = 0
    checkpoints = run_dir / "checkpoints"
    if resume:
        found = latest_checkpoint(checkpoints, warn=log, move_aside=main, fields=SEARCH_STATE)
        if found is not None:
            path, (tensors, optim, state) = found
            strategy.restore(state["strategy"])
            restore_modules(tensors, strategy.modules())
            for key, opt in strategy.optimizers().items():
                opt.load_state_dict(optim["optimizers"][key])
            if runtime.scaler is not None and "scaler" in state:
                runtime.scaler.load_state_dict(state["scaler"])
            set_rng_state(optim["rng"], state["rng"])
            history, start = state["history"], state["epoch"]  # the epochs done, numbered from 1
            runtime.skipped, runtime.steps = state.get("skipped_batches", 0), state.get("steps", 0)
            eta = run_eta(history, strategy.pretrain_epochs, strategy.total_epochs) or "nothing left to run"
            log(f"resuming from {path} after epoch {start} of {strategy.total_epochs} "
                f"({strategy.epoch_label(start - 1)}); {eta}")
        else:
            log(f"no checkpoint in {checkpoints}; starting from scratch")
    launch = launch_record(accelerator, cfg["batch_size"])
    if main:
        atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
        record_launch(run_dir, launch, warn=log)
        if not quiet:
            log(f"search: {cfg['strategy']['type']} on {cfg['data']['type']}, {launch_line(launch, configured)} "
                f"-> {run_dir}")
        if history:  # a crash between a checkpoint and its logs leaves them one epoch behind
            write_logs(run_dir, history)
        elif accelerator.device.type == "cpu" and accelerator.num_processes == 1:
            warning = long_run_estimate(cfg, accelerator, strategy)
            if warning:
                log(warning)

    tracker = RunTracker(accelerator, trackers, run_dir, cfg)
    runtime.on_step = tracker.on_step
    guard = RunGuard(accelerator, finish_epoch=cfg["checkpoint_on_signal"], dist_timeout_s=cfg["dist_timeout_s"],
                     command=resume_command(config, overrides, run_dir), total_epochs=strategy.total_epochs,
                     checkpoint=found[0] if resume and found is not None else None)
    if quiet or not progress:
        ctx.progress = no_progress
    ctx.progress = guard.watching(ctx.progress)  # every training loop's batches: the step boundaries
    with guard, tracker:
        for epoch in range(start, strategy.total_epochs):
            guard.epoch = epoch
            began = time.perf_counter()
            metrics = strategy.run_epoch(epoch)
            metrics.update(strategy.evaluate(epoch))
            genotype = strategy.genotype()
            metrics.update(diagnostics(genotype, strategy.alphas()))
            metrics.update(strategy.cost_metrics(genotype))
            if benchmark is not None:
                metrics.update(benchmark_metrics(benchmark, genotype, warn=log if main else None))
            phase = epoch_phase(epoch, strategy.pretrain_epochs)
            if runtime.nonfinite == "skip":
                metrics["skipped_batches"] = float(runtime.skipped)
            row = {"epoch": epoch + 1, "phase": phase, **metrics, "time_s": time.perf_counter() - began}
            history.append({"epoch": epoch + 1, "genotype": genotype.to_json(),
                            "alpha": alpha_weights(strategy.alphas()), "primitives": list(space.primitives),
                            "metrics": row})
            if main:  # the checkpoint first: the logs are rewritten from it on resume, so they may lag, never lead
                state = {"strategy": strategy.state(), "history": history, "skipped_batches": runtime.skipped,
                         "steps": runtime.steps}
                if runtime.scaler is not None:
                    state["scaler"] = runtime.scaler.state_dict()
                guard.checkpoint = save_checkpoint(checkpoints, epoch + 1, strategy.modules(), strategy.optimizers(),
                                                   state, keep=cfg["keep_checkpoints"])
                write_logs(run_dir, history)
                tracker.log(row, history[-1]["alpha"], space.edges, space.primitives)
                if cfg["plots"]:
                    write_search_plots(run_dir, history)
                if not quiet:
                    changed = len(history) < 2 or history[-2]["genotype"] != history[-1]["genotype"]
                    eta = run_eta(history, strategy.pretrain_epochs, strategy.total_epochs)
                    log(epoch_line(row, strategy.total_epochs, strategy.epoch_label(epoch), eta,
                                   genotype if changed else None))
                if metrics.get("collapse"):
                    log("warning: the genotype is collapsing to skip connections (more than half the normal cell's "
                        "ops)")
            accelerator.wait_for_everyone()
            guard.at_epoch_end()

    genotype = strategy.genotype()
    if main:
        atomic_write_json(run_dir / "genotype.json", genotype.to_json())
        report = budget_report(ctx.discretizer, strategy)
        if report:
            log(report)
        log(f"\nfinal genotype: {genotype}\nrun folder: {run_dir}\n  genotype.json, genotypes.jsonl, metrics.csv, "
            f"config.yaml, launch.json, checkpoints/" + (", plots" if cfg["plots"] else "")
            + (", trackers/" if trackers else ""))
    accelerator.wait_for_everyone()
    return SearchResult(genotype, run_dir, history)


def budget_report(discretizer: Any, strategy: Any) -> str:
    """What a discretizer with a budget changed to make the final genotype fit it (empty without a budget)."""
    if getattr(discretizer, "table", None) is None:
        return ""
    fit = discretizer.explain(strategy.alphas(), strategy.ctx.space.edges, strategy.ctx.space.primitives)
    unit = discretizer.table.unit
    lines = [f"budget {discretizer.limit:,.6g} {unit}: the genotype costs {fit.cost:,.6g} {unit} "
             f"({fit.unconstrained:,.6g} before {len(fit.changes)} change(s))"]
    return "\n".join(lines + [f"  {change}" for change in fit.changes])


def resume_command(config: str | Path | dict, overrides: Sequence[str], run_dir: Path) -> str:
    """The ``cdarts-search`` command that resumes this run: the same config and overrides (a config given as a dict
    is the run's own ``config.yaml``)."""
    source = config if isinstance(config, (str, Path)) else run_dir / "config.yaml"
    sets = [arg for override in overrides for arg in ("--set", override)]
    return shell_command("cdarts-search", "--config", source, *sets, "--output", run_dir, "--resume")


def setup_search(cfg: dict, accelerator: Any, benchmark: Any = None) -> tuple[SearchContext, Any]:
    """The data, space, discretizer and runtime of a search config, and its strategy set up on them."""
    main = accelerator.is_main_process
    data_spec = cfg["data"]
    splits = build("datasets", data_spec)
    if splits.search_val is not None:
        train, val = splits.train, splits.search_val
        val_eval = splits.search_val_eval if splits.search_val_eval is not None else plain_splits(data_spec).search_val
    else:
        train, val = search_split(splits.train, cfg["train_fraction"], cfg["seed"])
        val_eval = Subset(plain_splits(data_spec).train, val.indices)
    data = {"train": train, "val": val, "test": splits.test, "val_eval": val_eval}
    space = build("spaces", cfg["space"], splits.num_classes, splits.in_chans)
    if benchmark is not None and space.name != benchmark.space:
        raise ConfigError(f"benchmark {cfg['benchmark']['type']!r} looks up {benchmark.space} cells; this search's "
                          f"space is {space.name!r}")
    discretizer = build("discretizers", cfg["discretizer"] or space.default_discretizer)
    strategy = build("strategies", cfg["strategy"])
    runtime = make_runtime(accelerator, cfg)
    eval_batch = cfg["eval_batch_size"] or 2 * cfg["batch_size"]

    def loader(split: str, epoch: int, repeat: int = 0) -> Iterable:
        training = split in ("train", "val")
        return make_loader(
            data[split], cfg["batch_size"] if training else eval_batch, shuffle=training, drop_last=training,
            seed=epoch_seed(cfg["seed"], (epoch * 16 + repeat) * 4 + SPLITS.index(split.split("_")[0])),
            num_workers=cfg["num_workers"], rank=accelerator.process_index, world_size=accelerator.num_processes,
        )

    def progress(batches: Iterable, desc: str, total: int | None = None):
        return progress_bar(batches, desc, total, enabled=main)

    for split in ("train", "val"):  # a split smaller than one batch is an error now, not after the run folder exists
        try:
            loader(split, 0)
        except DataError as exc:
            raise DataError(f"search {split} split: {exc}") from None
    sample = splits.train[0][0].unsqueeze(0)
    if hasattr(discretizer, "bind"):  # a discretizer with a cost budget needs the space's costs
        discretizer = discretizer.bind(space, tuple(sample.shape[1:]))
    ctx = SearchContext(space, discretizer, runtime, splits.num_classes, sample, loader, progress,
                        cfg["max_steps_per_epoch"], cfg["eval_bn_batches"])
    strategy.setup(ctx)
    return ctx, strategy


def dry_run(config: str | Path | dict, overrides: Sequence[str] = (), repeats: int = 2) -> dict[str, float]:
    """Build everything a search builds and time it on one batch per loop, ``repeats`` times (the first warms up);
    write nothing. See ``measure_steps`` for what it returns."""
    from accelerate.utils import set_seed

    cfg = load_config(config, search_config, overrides)
    accelerator = make_accelerator(cfg["mixed_precision"], cfg["cpu"], cfg["dist_timeout_s"])
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    set_seed(cfg["seed"])
    return measure_steps(cfg, accelerator, repeats)


def measure_steps(cfg: dict, accelerator: Any, repeats: int = 2) -> dict[str, float]:
    """Seconds per step of each kind the strategy takes (``step_a``: the joint or alpha step, ``step_b``: the weight
    step, ``e_step``: E alone, ``select``: switching E's genotype), the ``batch_size`` (for images/s), the memory
    peaks in bytes (``peak_bytes``; on CPU the process's, ``peak_above_build_bytes`` from before the build), and the
    whole search at these speeds (``estimate_s``: ``epochs`` x ``steps_per_epoch``, see ``timing.run_estimate``), all
    from a fresh build of ``cfg`` on ``accelerator`` running one batch per loop."""
    device = accelerator.device
    reset_peak_memory(device)
    before = peak_memory(device)
    ctx, strategy = setup_search(cfg, accelerator)
    steps = strategy.steps("train")
    cap = ctx.max_steps or math.inf
    eval_steps = sum(min(len(ctx.loader(split, 0)), cap) for split in ("val_eval", "test")) / 2
    ctx.max_steps = 1
    ctx.progress = no_progress
    targets = {"step_a": (strategy, "joint_step" if hasattr(strategy, "joint_step") else "alpha_step"),
               "step_b": (strategy, "weight_step"), "e_step": (strategy, "eval_epoch")}
    if hasattr(strategy, "eval_net"):
        targets["select"] = (strategy.eval_net, "select")
    times: dict[str, list[float]] = {}
    for key, (owner, name) in targets.items():
        if hasattr(owner, name):
            setattr(owner, name, timed(getattr(owner, name), times.setdefault(key, []), device))
    for _ in range(repeats):
        timed(strategy.run_epoch, times.setdefault("search_epoch_s", []), device)(strategy.pretrain_epochs)
    for owner, name in targets.values():
        owner.__dict__.pop(name, None)
    bn_batches = ctx.bn_batches
    for _ in range(repeats):
        timed(strategy.evaluate, times.setdefault("evaluate_bn_s", []), device)(strategy.pretrain_epochs)
        ctx.bn_batches = 0
        timed(strategy.evaluate, times.setdefault("evaluate_s", []), device)(strategy.pretrain_epochs)
        ctx.bn_batches = bn_batches
        if strategy.pretrain_epochs:
            timed(strategy.run_epoch, times.setdefault("pretrain_epoch_s", []), device)(0)
    result = {key: sum(values[1:] or values) / len(values[1:] or values) for key, values in times.items() if values}
    result["calibrate_s"] = max(0.0, result.pop("evaluate_bn_s") - result["evaluate_s"])
    result["batch_size"] = float(cfg["batch_size"])
    result.update(epochs=float(strategy.total_epochs), steps_per_epoch=float(steps),
                  estimate_s=run_estimate(result, strategy.pretrain_epochs, strategy.epochs, steps, eval_steps))
    peak = peak_memory(device)
    result["peak_bytes"] = float(peak)
    if device.type != "cuda":
        result["peak_above_build_bytes"] = float(peak - before)
    return result


def long_run_estimate(cfg: dict, accelerator: Any, strategy: Any) -> str | None:
    """The warning a search about to start prints when ``measure_steps`` estimates it at over an hour; None without
    measuring when the run is too short for that to be worth it (``timing.ESTIMATE_MIN_STEPS``). The measurement
    builds its own networks and the RNGs are put back after it, so the run's numbers do not change."""
    steps = strategy.steps("train")
    if steps * strategy.total_epochs < ESTIMATE_MIN_STEPS:
        return None
    tensors, plain = rng_state()
    try:
        seconds = measure_steps(cfg, accelerator)["estimate_s"]
    finally:
        set_rng_state(tensors, plain)
    return long_run_warning(seconds, strategy.total_epochs, steps) if seconds > ESTIMATE_WARN_S else None


def plain_splits(data_spec: dict) -> Any:
    """The dataset's splits without augmentation, for measuring accuracy and re-estimating BN on the val split."""
    if "augment" not in config_parameters(datasets.get(data_spec["type"])):
        return build("datasets", data_spec)
    return build("datasets", {**data_spec, "augment": False})


def make_runtime(accelerator: Any, cfg: dict) -> Runtime:
    return Runtime(accelerator, cfg["grad_clip"], cfg["nonfinite"], cfg["max_skipped_batches"],
                   clip_scope=cfg["clip_scope"])
