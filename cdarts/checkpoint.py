"""Crash-safe, unpickling-free checkpoints: one folder per checkpoint, written under a temporary name, fsynced,
then renamed, with a manifest of sizes and SHA-256 hashes that loading checks.

Layout of ``checkpoints/epoch-0007/`` (written after the 7th epoch: epochs count from 1 everywhere, pretraining
included): ``tensors.safetensors`` (module states, keys prefixed by module name), ``optim.pt`` (optimizer states and
the torch RNG: plain tensors and numbers, read with ``weights_only=True``), ``state.json`` (everything else: epoch,
history, Python/NumPy RNG) and ``manifest.json``.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.optim import Optimizer

from cdarts.errors import FileError
from cdarts.io import WriteError, file_mode, first_line, fsync_dir

PREFIX = "epoch-"
FILES = ("tensors.safetensors", "optim.pt", "state.json")
CORRUPT = "corrupt"
"""Where a resuming run moves the unusable checkpoints it falls back past (``checkpoints/corrupt/epoch-0003``)."""
NUMBERING = "epoch_numbering"
"""state.json's key saying its epochs count from 1 (its value). Checkpoints written before (cdarts 0.1.0) lack it:
their epochs counted from 0 (``epoch-0000`` held the first epoch), and loading one adds 1 to every ``epoch`` it holds,
so a run they began resumes numbered as a new one (see ``legacy_numbering``)."""


class CheckpointError(FileError):
    """A checkpoint that is missing, incomplete or corrupt; the message names the file and the problem."""


Shape = Union[type, tuple[type, ...], Mapping[str, "Shape"], list]  # noqa: UP007 - a runtime alias (forward ref)
"""What a JSON value must look like: a type (or types), an object with these keys (``{"epoch": int}``, extra keys
allowed), or a list whose every item has the one shape it holds (``[dict]``)."""

STATE_SHAPE: dict[str, Shape] = {"epoch": int, "rng": {"numpy": list, "python": list}}
"""What ``save_checkpoint`` writes to every state.json; a caller names the fields it reads besides."""

_JSON_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number",
               bool: "a boolean", type(None): "null"}


def _json_name(kind: type) -> str:
    return _JSON_NAMES.get(kind, kind.__name__)


def shape_problem(value: Any, shape: Shape, where: str = "") -> str | None:
    """The first way ``value`` (parsed JSON) differs from ``shape``, as ``where.field[3]: expected ..., got ...``."""
    at = f"{where}: " if where else ""
    if isinstance(shape, Mapping):
        if not isinstance(value, dict):
            return f"{at}expected an object, got {_json_name(type(value))}"
        for key, inner in shape.items():
            path = f"{where}.{key}" if where else key
            problem = shape_problem(value[key], inner, path) if key in value else f"{path}: missing"
            if problem:
                return problem
        return None
    if isinstance(shape, list):
        if not isinstance(value, list):
            return f"{at}expected a list, got {_json_name(type(value))}"
        problems = (shape_problem(item, shape[0], f"{where}[{index}]") for index, item in enumerate(value))
        return next((p for p in problems if p), None)
    kinds = shape if isinstance(shape, tuple) else (shape,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        return f"{at}expected {' or '.join(_json_name(k) for k in kinds)}, got {_json_name(type(value))}"
    return None


class NonFiniteStateError(FloatingPointError):
    """A checkpoint would hold NaN or inf values; it is refused, so a resumed run never starts from one."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensor part, JSON part) of every RNG a run draws from."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, state, gauss = random.getstate()
    return tensors, {
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": [version, list(state), gauss],
    }


def set_rng_state(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda{i}"] for i in range(torch.cuda.device_count()) if f"cuda{i}" in tensors]
    if cuda:
        torch.cuda.set_rng_state_all(cuda)
    kind, keys, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, state, gauss = plain["python"]
    random.setstate((version, tuple(state), gauss))


def module_tensors(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """Every module's state as ``name.key`` tensors on the CPU. A tensor that several modules hold (E runs S's stem)
    is copied for each further holder, since safetensors refuses tensors that share memory."""
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            value = value.detach().cpu().contiguous()
            storage = value.untyped_storage().data_ptr()
            tensors[f"{name}.{key}"] = value.clone() if storage in seen else value
            seen.add(storage)
    return tensors


def save_checkpoint(
    folder: Path,
    epoch: int,
    modules: dict[str, nn.Module],
    optimizers: dict[str, Optimizer],
    state: dict[str, Any],
    keep: int = 2,
    extra_tensors: dict[str, Any] | None = None,
) -> Path:
    """Write ``folder/epoch-NNNN`` (``epoch``: the number of epochs done, from 1) atomically and keep only the newest
    ``keep`` checkpoints up to this one: those numbered higher (left by a run this one fell back past) are neither
    counted nor removed, so pruning never removes the checkpoint just written.

    Raises:
        NonFiniteStateError: a module or optimizer tensor holds NaN or inf (nothing is written).
        WriteError: writing failed (e.g. the disk is full); no partial folder is left and older checkpoints stay.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    if epoch < 1:
        raise ValueError(f"epoch must be at least 1 (epochs count from 1), got {epoch}")
    final = folder / f"{PREFIX}{epoch:04d}"
    tensors = module_tensors(modules)
    optimizer_states = {name: opt.state_dict() for name, opt in optimizers.items()}
    bad = non_finite(tensors) + non_finite(
        {f"{name}.state.{index}.{key}": value for name, opt_state in optimizer_states.items()
         for index, entries in opt_state["state"].items() for key, value in entries.items()}
    )
    if bad:
        raise NonFiniteStateError(
            f"refusing to write checkpoint {final}: {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''} "
            "hold NaN or inf values; the previous checkpoints are kept"
        )
    rng_tensors, rng_plain = rng_state()
    optim = {"optimizers": optimizer_states, "rng": rng_tensors, "extra": extra_tensors or {}}
    state_text = json.dumps({"epoch": epoch, NUMBERING: 1, "rng": rng_plain, **state})
    writers = {
        "tensors.safetensors": lambda path: save_file(tensors, str(path)),
        "optim.pt": lambda path: torch.save(optim, path),
        "state.json": lambda path: path.write_text(state_text),
    }
    tmp = folder / f".tmp-{PREFIX}{epoch:04d}-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(".tmp-*"):  # left by a save that was killed; never a complete checkpoint
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
    except OSError as exc:
        raise WriteError(tmp, exc) from exc
    try:
        manifest, mode = {}, file_mode()
        for name in FILES:
            try:
                writers[name](tmp / name)
                os.chmod(tmp / name, mode)  # safetensors creates its file readable by the owner only
                _fsync(tmp / name)
            except (OSError, RuntimeError, SafetensorError) as exc:  # torch and safetensors wrap I/O errors
                raise WriteError(final / name, exc) from exc
            manifest[name] = {"size": (tmp / name).stat().st_size, "sha256": _sha256(tmp / name)}
        try:
            (tmp / "manifest.json").write_text(json.dumps({"epoch": epoch, "files": manifest}, indent=1))
            _fsync(tmp / "manifest.json")
            fsync_dir(tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            fsync_dir(folder)
        except OSError as exc:
            raise WriteError(final / "manifest.json", exc) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in [p for p in list_checkpoints(folder) if checkpoint_epoch(p) <= epoch][keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def non_finite(tensors: dict[str, Any]) -> list[str]:
    """The names of the floating-point tensors holding NaN or inf."""
    return [name for name, value in tensors.items()
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all())]


def checkpoint_epoch(path: Path) -> int:
    """The epoch number in a checkpoint folder's name (7 for ``epoch-0007``)."""
    return int(path.name[len(PREFIX):])


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete-looking checkpoint folders, newest first (temporary folders and ``corrupt/`` are ignored)."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX):].isdigit()]
    return sorted(found, key=checkpoint_epoch, reverse=True)


def verify(path: Path) -> dict[str, Any]:
    """Check a checkpoint against its manifest; return the manifest or raise CheckpointError naming the file."""
    manifest_path = path / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{manifest_path}: missing (the checkpoint was not completely written)") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{manifest_path}: not valid JSON ({first_line(exc)})") from None
    for name in FILES:
        entry = manifest.get("files", {}).get(name) if isinstance(manifest, dict) else None
        file = path / name
        if entry is None:
            raise CheckpointError(f"{manifest_path}: no entry for {name}")
        problem = shape_problem(entry, {"size": int, "sha256": str}, f"files.{name}")
        if problem:
            raise CheckpointError(f"{manifest_path}: {problem}")
        if not file.is_file():
            raise CheckpointError(f"{file}: missing")
        if file.stat().st_size != entry["size"]:
            size = file.stat().st_size
            raise CheckpointError(f"{file}: size {size} bytes, manifest says {entry['size']} (truncated?)")
        if _sha256(file) != entry["sha256"]:
            raise CheckpointError(f"{file}: SHA-256 does not match the manifest (corrupt)")
    return manifest


def load_checkpoint(
    path: Path, fields: Mapping[str, Shape] | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """(tensors, optimizer/RNG part, JSON state) of a verified checkpoint; nothing is unpickled.

    The manifest only shows that the files are those written; their content is checked too, so a resume never
    fails halfway on a forged or junk field: state.json must hold an ``epoch``, RNG states that can be set, and the
    ``fields`` (shapes) the caller reads; optim.pt its optimizer states and the torch RNG state.
    """
    verify(path)
    try:
        tensors = load_file(str(path / "tensors.safetensors"))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path / 'tensors.safetensors'}: cannot read ({exc})") from None
    try:
        optim = torch.load(path / "optim.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError or RuntimeError for refused or corrupt content
        raise CheckpointError(f"{path / 'optim.pt'}: refused or unreadable ({first_line(exc)})") from None
    problem = _optim_problem(optim)
    if problem:
        raise CheckpointError(f"{path / 'optim.pt'}: {problem}")
    try:
        state = json.loads((path / "state.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        message = "nested too deeply" if isinstance(exc, RecursionError) else first_line(exc)
        raise CheckpointError(f"{path / 'state.json'}: not valid JSON ({message})") from None
    problem = shape_problem(state, {**STATE_SHAPE, **(fields or {})}) or _state_problem(state)
    if problem:
        raise CheckpointError(f"{path / 'state.json'}: {problem}")
    return tensors, optim, (_renumbered(state) if legacy_numbering(state) else state)


def legacy_numbering(state: Mapping[str, Any]) -> bool:
    """Whether a state.json was written with epochs counted from 0 (before ``NUMBERING``); ``load_checkpoint`` has
    renumbered what it holds, and a caller renumbers the older logs it reads besides (the retrain's steps.csv)."""
    return state.get(NUMBERING) != 1


def _renumbered(value: Any) -> Any:
    """``value`` (parsed JSON) with 1 added to every integer under an ``epoch`` key: 0-based epochs made 1-based."""
    if isinstance(value, list):
        return [_renumbered(item) for item in value]
    if not isinstance(value, dict):
        return value
    return {key: item + 1 if key == "epoch" and type(item) is int else _renumbered(item) for key, item in value.items()}


def _optim_problem(optim: Any) -> str | None:
    """What in optim.pt's content ``set_rng_state`` and the optimizers' ``load_state_dict`` could not use."""
    if not isinstance(optim, dict):
        return f"expected a dict, got {type(optim).__name__}"
    for key in ("optimizers", "rng"):
        if key not in optim:
            return f"{key}: missing"
        if not isinstance(optim[key], dict):
            return f"{key}: expected a dict, got {type(optim[key]).__name__}"
    try:
        torch.Generator().set_state(optim["rng"]["torch"])
    except (KeyError, TypeError, RuntimeError) as exc:
        return f"rng.torch: not a torch RNG state ({first_line(exc)})"
    return None


def _state_problem(state: dict[str, Any]) -> str | None:
    """Values of a well-shaped state.json that cannot be used: an epoch before the first, RNG states that cannot be
    set (tried on fresh generators, as ``set_rng_state`` would set the global ones)."""
    first = 0 if legacy_numbering(state) else 1
    if state["epoch"] < first:
        return f"epoch: expected at least {first}, got {state['epoch']}"
    try:
        kind, keys, pos, has_gauss, cached = state["rng"]["numpy"]
        np.random.RandomState().set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    except (TypeError, ValueError, OverflowError) as exc:
        return f"rng.numpy: not a NumPy RNG state ({first_line(exc)})"
    try:
        version, keys, gauss = state["rng"]["python"]
        random.Random().setstate((version, tuple(keys), gauss))
    except (TypeError, ValueError, OverflowError) as exc:
        return f"rng.python: not a Python RNG state ({first_line(exc)})"
    return None


def latest_checkpoint(
    folder: Path, warn=print, move_aside: bool = False, fields: Mapping[str, Shape] | None = None
) -> tuple[Path, tuple] | None:
    """The newest checkpoint that verifies and loads (with the state ``fields``, see ``load_checkpoint``), falling
    back to older ones (and saying so).

    With ``move_aside`` (the run that is about to write to ``folder``) each unusable one is moved to
    ``folder/corrupt/``: kept for a look, but never again taken for the newest or counted among those pruning keeps.
    """
    for path in list_checkpoints(folder):
        try:
            return path, load_checkpoint(path, fields)
        except CheckpointError as exc:
            moved = f"; moved to {set_aside(path)}" if move_aside else ""
            warn(f"checkpoint {path.name} is unusable: {exc}{moved}; falling back to the previous one")
    return None


def set_aside(path: Path) -> Path:
    """Move checkpoint ``path`` into ``corrupt/`` beside it (``epoch-0003.1`` if an ``epoch-0003`` is there)."""
    aside = path.parent / CORRUPT
    aside.mkdir(exist_ok=True)
    target, count = aside / path.name, 0
    while target.exists():
        count += 1
        target = aside / f"{path.name}.{count}"
    os.replace(path, target)
    fsync_dir(path.parent)
    return target


def restore_modules(tensors: dict[str, torch.Tensor], modules: dict[str, nn.Module]) -> None:
    """Load each module's entries (``name.key``) strictly: a missing or unexpected key is an error."""
    for name, module in modules.items():
        prefix = f"{name}."
        own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(own, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint does not match module {name!r}: {first_line(exc)}") from None
