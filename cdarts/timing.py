"""How long a run takes: step timing and memory peaks (``--dry-run``), the whole-run estimate a search prints at the
start on a CPU when it would take over an hour, and the ETA of each epoch line, from the epochs done so far."""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

ESTIMATE_MIN_STEPS = 500
"""A search on a CPU estimates its time at the start only if it takes at least this many weight steps: the estimate
builds the networks again and times a few steps (seconds), which a shorter run would notice; a shorter run's first
epoch line gives its ETA soon enough."""
ESTIMATE_WARN_S = 3600.0
"""A search prints its estimate when it is longer than this (an hour)."""


def format_duration(seconds: float) -> str:
    """``45s``, ``12m 05s``, ``3h 07m``: to the second under an hour, to the minute above."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds // 60 % 60:02d}m"


def remaining_time(done: Sequence[tuple[str, float]], todo: Sequence[str]) -> tuple[float, bool]:
    """Seconds the epochs ``todo`` (their phases, e.g. ``search``) will take, from the ``(phase, seconds)`` of the
    epochs ``done``: each at the mean time of the done epochs of its phase. A phase not yet met is counted at the
    latest epoch's time, which a later phase (search after pretraining) only exceeds, so the result is then a lower
    bound (the flag)."""
    means: dict[str, float] = {}
    for phase in {p for p, _ in done}:
        times = [s for p, s in done if p == phase]
        means[phase] = sum(times) / len(times)
    latest = done[-1][1] if done else 0.0
    return sum(means.get(phase, latest) for phase in todo), any(phase not in means for phase in todo)


def eta_text(done: Sequence[tuple[str, float]], todo: Sequence[str]) -> str:
    """``ETA 3m 05s`` (``ETA >3m 05s`` when a phase still to come has not been timed); empty when nothing is left."""
    if not todo:
        return ""
    seconds, lower_bound = remaining_time(done, todo)
    return f"ETA {'>' if lower_bound else ''}{format_duration(seconds)}"


def run_estimate(measured: Mapping[str, float], pretrain_epochs: int, epochs: int, steps: int, eval_steps: float
                 ) -> float:
    """Seconds a whole search takes, from epochs of one batch per loop (``measure_steps``' ``pretrain_epoch_s``,
    ``search_epoch_s``, ``evaluate_s``): every loop scales with its batches, ``steps`` per training loop and
    ``eval_steps`` per accuracy pass; what an epoch does once (``select``: E's genotype, ``calibrate_s``: the BN
    re-estimation before its accuracies) does not."""
    select = measured.get("select", 0.0)
    search = (measured["search_epoch_s"] - select) * steps + select
    pretrain = measured.get("pretrain_epoch_s", 0.0) * steps
    evaluate = measured.get("calibrate_s", 0.0) + measured["evaluate_s"] * eval_steps
    return pretrain_epochs * pretrain + epochs * search + (pretrain_epochs + epochs) * evaluate


def estimate_text(seconds: float, epochs: int, steps: int) -> str:
    """``about 2.3 h (50 epochs x 14 steps)``."""
    amount = f"{seconds / 3600:.1f} h" if seconds >= 3600 else format_duration(seconds)
    return f"about {amount} ({epochs} epochs x {steps} steps)"


def long_run_warning(seconds: float, epochs: int, steps: int) -> str:
    """What a search prints at the start on a CPU when its estimate is over ``ESTIMATE_WARN_S``."""
    return (f"estimated time on this CPU: {estimate_text(seconds, epochs, steps)}; for a shorter run --set "
            "strategy.epochs=N or max_steps_per_epoch=N, or run on a GPU (--dry-run times each step)")


def timed(fn: Any, times: list[float], device: torch.device) -> Any:
    """``fn`` appending the seconds of each call to ``times`` (a GPU's queued work included)."""
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        began = time.perf_counter()
        out = fn(*args, **kwargs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - began)
        return out

    return wrapper


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
