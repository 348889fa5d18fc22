"""Experiment trackers for search and retraining: accelerate's (TensorBoard, Weights & Biases, MLflow, ...).

``log_with: tensorboard`` (or a list) in a config sends every number of ``metrics.csv`` per epoch
(``epoch/<column>`` at step = the row's epoch; an empty or NaN cell is not sent), the losses of every optimisation
step (``step/<term>``) and, in a search, the softmax of every alpha row (``alpha/<cell>/edge<i>-<j>/<op>``, edges
numbered as in the genotype). Trackers that write files write them under ``<run>/trackers``. The names are
accelerate's; a name accelerate lacks is a config error, and a tracker whose package is not installed is refused
before the run folder exists.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

from cdarts.config import Parsed
from cdarts.errors import ConfigError
from cdarts.registry import unknown_name_message

PROJECT = "cdarts"
"""The project name trackers file runs under (TensorBoard: ``<run>/trackers/cdarts``; W&B: the project)."""


def accelerate_trackers() -> list[str]:
    """The tracker names accelerate knows, whether or not their packages are installed."""
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    return sorted(LOGGER_TYPE_TO_CLASS)


def tracker_names(value: Any) -> list[str]:
    """``log_with`` as a list of names: one name or a list of them, each one of accelerate's trackers.

    Raises:
        ValueError: naming the bad value and the valid names (the config validator reports it with its path).
    """
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError(f"expected a tracker name or a list of them, got {type(value).__name__} {value!r}")
    known = accelerate_trackers()
    for name in names:
        if name not in known:
            raise ValueError(unknown_name_message("tracker", name, known))
    return list(dict.fromkeys(names))


Trackers = Annotated[str | list[str], Parsed(tracker_names)]
"""The type of a config's ``log_with``: a tracker name of accelerate's, or a list of them."""


def check_installed(log_with: str | list[str] | None) -> list[str]:
    """The trackers ``log_with`` names; raise ConfigError (one line) for the first whose package is missing."""
    from accelerate.tracking import get_available_trackers

    names = tracker_names(log_with) if log_with is not None else []
    available = {str(tracker) for tracker in get_available_trackers()}
    for name in names:
        if name not in available:
            package = "cdarts[tensorboard]" if name == "tensorboard" else name
            raise ConfigError(f"log_with: the {name} tracker needs its package, which is not installed: "
                              f"pip install {package!r}")
    return names


def flat_config(tree: Mapping[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """A config as the flat ``{"space.layers": 3}`` scalars trackers store as hyperparameters (lists as text)."""
    flat: dict[str, bool | int | float | str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_config(value, f"{name}."))
        else:
            flat[name] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return flat


def _number(value: Any) -> float:
    """A loss term (a tensor, without its graph) or a number as a float."""
    return float(value.detach().item()) if hasattr(value, "detach") else float(value)


class RunTracker:
    """A run's trackers on the main process (on the others, and without ``log_with``, every call does nothing); as a
    context manager it ends them however the run stops (finished, interrupted by a signal, failed).

    Per-step losses are collected as the steps run and sent with their epoch's row, so a tracker sees a whole epoch
    or none of it, as ``metrics.csv`` does.
    """

    def __init__(self, accelerator: Any, names: Sequence[str], run_dir: Path, config: Mapping[str, Any]) -> None:
        self.accelerator = accelerator
        self.active = bool(names) and accelerator.is_main_process
        self.steps: list[tuple[int, dict[str, float]]] = []
        if not self.active:
            return
        from accelerate.tracking import filter_trackers

        folder = run_dir / "trackers"
        folder.mkdir(parents=True, exist_ok=True)
        accelerator.project_configuration.set_directories(folder)
        accelerator.log_with = filter_trackers(list(names), folder)  # the run folder exists only now
        init = {"wandb": {"dir": str(folder), "name": run_dir.name}, "mlflow": {"logging_dir": str(folder)},
                "dvclive": {"dir": str(folder / "dvclive")}}
        accelerator.init_trackers(PROJECT, config=flat_config(config), init_kwargs=init)

    def on_step(self, step: int, terms: Mapping[str, Any]) -> None:
        """Keep an optimisation step's loss terms (tensors or numbers) for the epoch's ``log``."""
        if self.active:
            self.steps.append((step, {f"step/{name}": _number(value) for name, value in terms.items()}))

    def log(self, row: Mapping[str, Any], alpha: Mapping[str, Sequence[Sequence[float]]] | None = None,
            edges: Sequence[tuple[int, int]] = (), primitives: Sequence[str] = ()) -> None:
        """Send the epoch's steps, its ``metrics.csv`` row (numbers only) and the alpha softmax (a search's)."""
        if not self.active:
            return
        for step, values in self.steps:
            self.accelerator.log(values, step=step)
        self.steps.clear()
        values = {f"epoch/{key}": float(value) for key, value in row.items()
                  if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "epoch"}
        for cell, rows in (alpha or {}).items():
            for (source, node), weights in zip(edges, rows, strict=True):
                values.update({f"alpha/{cell}/edge{source}-{node}/{op}": weight
                               for op, weight in zip(primitives, weights, strict=True)})
        self.accelerator.log({k: v for k, v in values.items() if not math.isnan(v)}, step=row["epoch"])

    def __enter__(self) -> RunTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()

    def end(self) -> None:
        """Close every tracker (flush and finish its run); the process group stays, unlike ``end_training``."""
        if not self.active:
            return
        for tracker in self.accelerator.trackers:
            tracker.finish()
        self.accelerator.trackers.clear()
        self.active = False
