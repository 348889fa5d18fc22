"""What a search and a retrain run share: the Accelerator and the run folder."""
from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import torch

from cdarts.errors import ConfigError


def make_accelerator(mixed_precision: str, cpu: bool, dist_timeout_s: float | None = None, **kwargs: Any) -> Any:
    """One Accelerator for the run (created in the command, never at import).

    Without GPUs accelerate forms a (gloo) process group only when told to run on the CPU; otherwise each process
    of ``accelerate launch --multi_gpu --num_processes 2`` would run the whole job alone, as its own main process.
    ``dist_timeout_s`` bounds every collective: when a process dies or hangs, the others fail after that long
    instead of waiting forever. A single process (a notebook, a script running several searches) gets fresh
    accelerate state for each run, since accelerate otherwise refuses a second run with another precision.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if dist_timeout_s is not None:
        from accelerate.utils import InitProcessGroupKwargs

        handler = InitProcessGroupKwargs(timeout=timedelta(seconds=dist_timeout_s))
        kwargs["kwargs_handlers"] = [*kwargs.get("kwargs_handlers", []), handler]
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if not launched:
        AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(mixed_precision=mixed_precision, cpu=cpu or (launched and not torch.cuda.is_available()),
                       **kwargs)


def resolve_run_dir(output: str | Path | None, name: str, resume: bool) -> Path:
    """The run folder (created by the caller once the config has built); refuses one that holds another run unless
    resuming it. The default is ``runs/<name>-<timestamp>``."""
    if output is None:
        if resume:
            raise ConfigError("--resume needs --output pointing at the run folder to continue")
        output = Path("runs") / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(output)
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"output '{run_dir}' exists and is not a folder")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not resume:
        raise FileExistsError(
            f"output folder '{run_dir}' already holds files (another run?); pass --resume to continue it "
            "or choose another --output"
        )
    return run_dir


def shared_run_dir(accelerator: Any, output: str | Path | None, name: str, resume: bool) -> Path:
    """``resolve_run_dir`` on the main process, the same path broadcast to every process."""
    from accelerate.utils import broadcast_object_list

    run_dir = [str(resolve_run_dir(output, name, resume)) if accelerator.is_main_process else ""]
    if accelerator.num_processes > 1:
        broadcast_object_list(run_dir)
    return Path(run_dir[0])
