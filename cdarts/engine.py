"""The search engine: config in, run folder and genotype out. ``cdarts-search`` is a thin layer over ``search``.

One Accelerator handles processes, devices and mixed precision; the strategy does the learning. After every
epoch the engine derives the genotype, logs metrics, and writes an atomic checkpoint, so ``resume=True``
replays exactly the run an uninterrupted one would have made.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from torch.utils.data import Subset

from cdarts.checkpoint import latest_checkpoint, restore_modules, save_checkpoint, set_rng_state
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
from cdarts.errors import ConfigError, DataError
from cdarts.genotypes import DartsGenotype, Genotype
from cdarts.io import atomic_write_json, atomic_write_text, csv_text
from cdarts.nasbench import benchmark_metrics
from cdarts.plotting import write_search_plots
from cdarts.progress import progress_bar
from cdarts.registry import datasets
from cdarts.runs import check_resume_config, claim_run_dir, guarded_run, make_accelerator, shared_run_dir
from cdarts.runtime import Runtime
from cdarts.signals import RunGuard, shell_command
from cdarts.strategies.base import SearchContext, alpha_weights
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
    mixed_precision: Literal["no", "fp16", "bf16"] = "no",
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
    every epoch's genotype (``bench_<metric>`` columns, e.g. ``{type: table, path: nb201.csv}``). A NaN or inf loss
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
    accelerator = make_accelerator(cfg["mixed_precision"], cfg["cpu"], cfg["dist_timeout_s"])
    main = accelerator.is_main_process
    log = accelerator.print
    run_dir = shared_run_dir(accelerator, output, name, resume)
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
            history, start = state["history"], state["epoch"] + 1
            runtime.skipped, runtime.steps = state.get("skipped_batches", 0), state.get("steps", 0)
            log(f"resuming from {path} (epoch {start} of {strategy.total_epochs})")
        else:
            log(f"no checkpoint in {checkpoints}; starting from scratch")
    if main:
        atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
        if history:  # a crash between a checkpoint and its logs leaves them one epoch behind
            write_logs(run_dir, history)

    tracker = RunTracker(accelerator, trackers, run_dir, cfg)
    runtime.on_step = tracker.on_step
    guard = RunGuard(accelerator, finish_epoch=cfg["checkpoint_on_signal"], dist_timeout_s=cfg["dist_timeout_s"],
                     command=resume_command(config, overrides, run_dir), total_epochs=strategy.total_epochs,
                     checkpoint=found[0] if resume and found is not None else None)
    if quiet or not progress:
        ctx.progress = _quiet
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
            phase = "pretrain" if epoch < strategy.pretrain_epochs else "search"
            if runtime.nonfinite == "skip":
                metrics["skipped_batches"] = float(runtime.skipped)
            row = {"epoch": epoch, "phase": phase, **metrics, "time_s": time.perf_counter() - began}
            history.append({"epoch": epoch, "genotype": genotype.to_json(),
                            "alpha": alpha_weights(strategy.alphas()), "primitives": list(space.primitives),
                            "metrics": row})
            if main:  # the checkpoint first: the logs are rewritten from it on resume, so they may lag, never lead
                state = {"strategy": strategy.state(), "history": history, "skipped_batches": runtime.skipped,
                         "steps": runtime.steps}
                if runtime.scaler is not None:
                    state["scaler"] = runtime.scaler.state_dict()
                guard.checkpoint = save_checkpoint(checkpoints, epoch, strategy.modules(), strategy.optimizers(),
                                                   state, keep=cfg["keep_checkpoints"])
                write_logs(run_dir, history)
                tracker.log(row, history[-1]["alpha"], space.edges, space.primitives)
                if cfg["plots"]:
                    write_search_plots(run_dir, history)
                if not quiet:
                    log(epoch_line(row, strategy.total_epochs, genotype))
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
            f"config.yaml, checkpoints/" + (", plots" if cfg["plots"] else "") + (", trackers/" if trackers else ""))
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
    """Build everything a search builds and run one search epoch of one batch per step, ``repeats`` times (the first
    warms up); write nothing. Returns seconds per step of each kind the strategy takes (``step_a``: the joint or
    alpha step, ``step_b``: the weight step, ``e_step``: E alone, ``select``: switching E's genotype), the
    ``batch_size`` (for images/s) and the memory peaks in bytes (``peak_bytes``; on CPU the process's,
    ``peak_above_build_bytes`` from before the build).
    """
    from accelerate.utils import set_seed

    cfg = load_config(config, search_config, overrides)
    accelerator = make_accelerator(cfg["mixed_precision"], cfg["cpu"], cfg["dist_timeout_s"])
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    set_seed(cfg["seed"])
    device = accelerator.device
    reset_peak_memory(device)
    before = peak_memory(device)
    ctx, strategy = setup_search(cfg, accelerator)
    ctx.max_steps = 1
    ctx.progress = _quiet
    targets = {"step_a": (strategy, "joint_step" if hasattr(strategy, "joint_step") else "alpha_step"),
               "step_b": (strategy, "weight_step"), "e_step": (strategy, "eval_epoch")}
    if hasattr(strategy, "eval_net"):
        targets["select"] = (strategy.eval_net, "select")
    times: dict[str, list[float]] = {}
    for key, (owner, name) in targets.items():
        if hasattr(owner, name):
            setattr(owner, name, _timed(getattr(owner, name), times.setdefault(key, []), device))
    for _ in range(repeats):
        strategy.run_epoch(strategy.pretrain_epochs)
    for owner, name in targets.values():
        owner.__dict__.pop(name, None)
    result = {key: sum(values[1:] or values) / len(values[1:] or values) for key, values in times.items() if values}
    result["batch_size"] = float(cfg["batch_size"])
    peak = peak_memory(device)
    result["peak_bytes"] = float(peak)
    if device.type != "cuda":
        result["peak_above_build_bytes"] = float(peak - before)
    return result


def _quiet(batches: Iterable, desc: str, total: int | None = None) -> Any:
    from tqdm.auto import tqdm

    return tqdm(batches, disable=True)


def _timed(fn: Any, times: list[float], device: torch.device) -> Any:
    def timed(*args: Any, **kwargs: Any) -> Any:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        began = time.perf_counter()
        out = fn(*args, **kwargs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - began)
        return out

    return timed


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak, so that a measurement is not hidden under an earlier, larger one in the same process (on the
    CPU, Linux resets the resident high-water mark through ``/proc/self/clear_refs``; elsewhere nothing is reset)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory(device: torch.device) -> int:
    """Peak bytes since the last reset: allocated tensor memory on a GPU, the process's peak resident memory on the
    CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) * 1024


def plain_splits(data_spec: dict) -> Any:
    """The dataset's splits without augmentation, for measuring accuracy and re-estimating BN on the val split."""
    if "augment" not in config_parameters(datasets.get(data_spec["type"])):
        return build("datasets", data_spec)
    return build("datasets", {**data_spec, "augment": False})


def make_runtime(accelerator: Any, cfg: dict) -> Runtime:
    return Runtime(accelerator, cfg["grad_clip"], cfg["nonfinite"], cfg["max_skipped_batches"],
                   clip_scope=cfg["clip_scope"])


@cache
def parameter_free(op: str) -> bool:
    """Whether an op has no learnable parameters (skip, pools, none): what a collapsing search piles up.

    The probe op is built under a forked RNG: its initialisation must not shift the run's random stream, or a
    resumed process (whose cache starts empty) would diverge from the uninterrupted run.
    """
    from cdarts.ops import build_op

    with torch.random.fork_rng(devices=[]):
        return not any(True for _ in build_op(op, 4, 1, True).parameters())


def diagnostics(genotype: Genotype, alphas: dict[str, torch.Tensor]) -> dict[str, float]:
    """Stability signals: parameter-free ops in the genotype, skip-connects, mean alpha entropy, and the collapse
    flag: more than half the ops of the normal cell (NAS-Bench-201: of the cell) are skip connections."""
    ops = genotype.ops()
    cell = "normal" if isinstance(genotype, DartsGenotype) else "cell"
    normal = [op for node in genotype.nodes(cell) for op, _ in node]
    free = sum(parameter_free(op) for op in ops)
    entropies = [-(p * p.clamp_min(1e-12).log()).sum(-1).mean() for p in
                 (torch.softmax(a.detach().float(), -1) for a in alphas.values())]
    return {
        "param_free_ops": float(free),
        "skip_connects": float(sum(op == "skip_connect" for op in ops)),
        "alpha_entropy": float(torch.stack(entropies).mean()),
        "collapse": float(2 * normal.count("skip_connect") > len(normal)),
    }


def write_logs(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite ``metrics.csv`` and ``genotypes.jsonl`` from the history (atomic, so they match the checkpoint)."""
    atomic_write_text(run_dir / "metrics.csv", csv_text([h["metrics"] for h in history]))
    lines = [json.dumps({k: h[k] for k in ("epoch", "genotype", "primitives", "alpha")}) for h in history]
    atomic_write_text(run_dir / "genotypes.jsonl", "\n".join(lines) + "\n")


def _fmt(value: Any) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1f}"


def epoch_line(row: dict[str, Any], total: int, genotype: Genotype) -> str:
    parts = [f"epoch {row['epoch'] + 1}/{total} [{row['phase']}]"]
    if "s_val_acc" in row:
        parts.append(f"S val {_fmt(row['s_val_acc'])} test {_fmt(row.get('s_test_acc'))}")
    if "e_val_acc" in row:
        parts.append(f"E val {_fmt(row['e_val_acc'])} test {_fmt(row.get('e_test_acc'))}")
    if "lambda_reg" in row:
        parts.append(f"lambda' {row['lambda_reg']:.2f}")
    bench = [f"{key.removeprefix('bench_')} {_fmt(value)}" for key, value in row.items() if key.startswith("bench_")]
    if bench:
        parts.append("bench " + " ".join(bench))
    parts.append(f"free ops {row['param_free_ops']:.0f}")
    parts.append(f"{row['time_s']:.1f}s")
    return " | ".join(parts) + f"\n  {genotype}"


