"""Reading a trained network: weights and genotype from a run folder, a checkpoint, a weights file or an export.

Nothing is unpickled beyond tensors and plain data (safetensors, ``torch.load(weights_only=True)``), and a file
may name only the ``cdarts_*`` architectures, never a remote source.
"""
from __future__ import annotations

import inspect
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cdarts.checkpoint import (
    CheckpointError,
    Shape,
    list_checkpoints,
    load_checkpoint,
    shape_problem,
)
from cdarts.config import (
    ConfigError,
)
from cdarts.errors import FileError
from cdarts.io import first_line
from cdarts.models.darts import ARCHITECTURES, CdartsNet
from cdarts.registry import shown

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".tar")

RETRAIN_INFO: dict[str, Shape] = {"architecture": str, "model_args": dict, "data": dict, "metrics": dict}
"""What a retrain checkpoint's state.json says of its network (its ``retrain`` field): how to rebuild it."""

def check_model_spec(source: Path | str, architecture: Any, model_args: Any, where: str = "") -> None:
    """Refuse a network description read from a file unless it names a ``cdarts_*`` model and its own arguments.

    timm builds whatever a name says: any of its architectures, or, for ``hf-hub:`` names, one downloaded from the
    Hugging Face Hub. A file is data, so it may name only the models this package registers; the network is reached
    only for a name the user types.
    """
    if not isinstance(architecture, str) or architecture not in ARCHITECTURES:
        raise FileError(f"{source}: {where}architecture {shown(architecture)} is not a cdarts model; available: "
                        f"{', '.join(ARCHITECTURES)} (a file may name no other timm model and no remote source)")
    if not isinstance(model_args, Mapping):
        raise FileError(f"{source}: {where}model_args: expected a mapping, got {type(model_args).__name__}")
    valid = list(inspect.signature(CdartsNet.__init__).parameters)[1:]
    unknown = [shown(key) for key in model_args if key not in valid]
    if unknown:
        raise FileError(f"{source}: {where}model_args: unknown {', '.join(unknown)}; valid: {', '.join(valid)}")


def safe_torch_load(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True``: tensors and plain containers only, never arbitrary objects."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise FileError(
            f"{path}: refused to load: the file holds Python objects other than tensors and plain data, and "
            f"unpickling them could run code (torch.load weights_only=True: {first_line(exc)})"
        ) from None
    except Exception as exc:  # the weights-only unpickler raises KeyError, IndexError... on content that is not torch's
        raise FileError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {first_line(exc)})") from None


def load_weights(path: str | Path) -> dict[str, Tensor]:
    """A state dict from a ``.safetensors`` file or a ``weights_only`` torch file (``{"state_dict": ...}`` too)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file '{path}' does not exist")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise FileError(f"{path}: not a readable safetensors file ({exc})") from None
    data = safe_torch_load(path)
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(data, Mapping) and isinstance(data.get(key), Mapping):
            data = data[key]
            break
    if not isinstance(data, Mapping) or not all(isinstance(v, Tensor) for v in data.values()):
        raise FileError(f"{path}: expected a state dict (names -> tensors), got {type(data).__name__}")
    return dict(data)


@dataclass
class TrainedModel:
    """A trained network read from a checkpoint: how to rebuild it, its weights, and what it was trained on."""

    path: Path
    architecture: str
    model_args: dict[str, Any]
    weights: dict[str, Tensor]
    ema_weights: dict[str, Tensor] | None = None
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    epoch: int | None = None

    def state_dict(self, ema: bool = False) -> dict[str, Tensor]:
        """The inference weights (auxiliary tower dropped), of the EMA if ``ema``."""
        if ema and self.ema_weights is None:
            raise FileError(f"{self.path}: holds no EMA weights (the run had `ema: null`); drop --ema")
        weights = self.ema_weights if ema else self.weights
        return {k: v for k, v in weights.items() if not k.startswith("auxiliary_head.")}

    def build(self, ema: bool = False) -> CdartsNet:
        """The network in eval mode with these weights."""
        import timm

        check_model_spec(self.path, self.architecture, self.model_args)
        try:
            model = timm.create_model(self.architecture, **self.model_args)
        except (RuntimeError, TypeError, ValueError) as exc:  # arguments the file got wrong (a bad genotype...)
            raise FileError(f"{self.path}: cannot rebuild architecture {self.architecture!r}: {first_line(exc)}") \
                from None
        load_into(model, self.state_dict(ema), self.path)
        return model.eval()


def load_into(model: nn.Module, weights: Mapping[str, Tensor], source: Path | str, strict_aux: bool = True) -> None:
    """Load ``weights`` strictly, except that auxiliary-tower weights may be absent or extra when not ``strict_aux``."""
    own = model.state_dict()
    skip = () if strict_aux else ("auxiliary_head.",)
    missing = [k for k in own if k not in weights and not k.startswith(skip)]
    unexpected = [k for k in weights if k not in own and not k.startswith(skip)]
    wrong = [f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
             if k in weights and weights[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = [f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong))
                 if keys]
        raise FileError(f"{source}: weights do not fit the model: {'; '.join(parts)}")
    model.load_state_dict({k: v for k, v in weights.items() if k in own}, strict=False)


def find_checkpoint(ref: str | Path) -> Path:
    """The checkpoint folder (or file) ``ref`` means: a run folder's best (else latest), a ``checkpoints/`` or
    ``best/`` folder's newest, a checkpoint folder, or a weights file."""
    path = Path(ref)
    if not path.exists():
        raise FileNotFoundError(f"model '{path}' does not exist: expected a run folder, a checkpoint (folder or file), "
                                f"local-dir:FOLDER or a registered architecture ({', '.join(ARCHITECTURES)})")
    if path.is_file() or (path / "manifest.json").is_file():
        return path
    for folder in (path / "best", path / "checkpoints", path):
        found = list_checkpoints(folder)
        if found:
            return found[0]
    raise FileNotFoundError(f"'{path}' holds no checkpoint (no best/epoch-*, checkpoints/epoch-* or manifest.json)")


def read_trained(ref: str | Path) -> TrainedModel:
    """A :class:`TrainedModel` from a run folder, checkpoint folder or a ``weights_only`` torch file holding
    ``{"architecture", "model_args", "state_dict"}``. Nothing is unpickled beyond tensors and plain data."""
    text = str(ref)
    if text.startswith("local-dir:") or is_export(Path(text)):
        raise FileError(f"{text} is an export (config.json and weights), which holds no training state; name the run "
                        "folder or checkpoint it came from")
    if text in ARCHITECTURES and not Path(text).exists():
        raise FileError(f"{text} is a registered architecture with fresh weights, not a trained network; name a run "
                        "folder or checkpoint")
    path = find_checkpoint(ref)
    if path.is_file():
        if path.suffix == ".safetensors":
            raise FileError(f"{path}: a bare weights file does not say which network it holds; pass the run "
                            "folder or checkpoint folder it came from")
        data = safe_torch_load(path)
        if not isinstance(data, Mapping) or not {"architecture", "model_args", "state_dict"} <= set(data):
            raise FileError(f"{path}: expected a dict with architecture, model_args and state_dict "
                            "(or pass a run folder / checkpoint folder)")
        check_model_spec(path, data["architecture"], data["model_args"])
        for key in ("state_dict", "state_dict_ema", "data", "metrics"):
            if not isinstance(data.get(key, {}), Mapping | None):
                raise FileError(f"{path}: {key}: expected a dict, got {type(data[key]).__name__}")
        return TrainedModel(path, data["architecture"], dict(data["model_args"]), dict(data["state_dict"]),
                            data.get("state_dict_ema"), dict(data.get("data", {})), dict(data.get("metrics", {})))
    tensors, _, state = load_checkpoint(path)
    if "retrain" not in state:
        raise CheckpointError(f"{path}: not a retrain checkpoint (no 'retrain' entry in state.json)")
    info = state["retrain"]
    problem = shape_problem(info, RETRAIN_INFO, "retrain")
    if problem:
        raise CheckpointError(f"{path / 'state.json'}: {problem}")
    check_model_spec(path / "state.json", info["architecture"], info["model_args"], "retrain.")

    def part(prefix: str) -> dict[str, Tensor] | None:
        found = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        return found or None

    return TrainedModel(path, info["architecture"], info["model_args"], part("model.") or {}, part("ema."),
                        info["data"], info.get("metrics", {}), state.get("epoch"))


def is_export(folder: Path) -> bool:
    """Whether ``folder`` is laid out as ``cdarts-export`` writes (``config.json`` beside the weights)."""
    return folder.is_dir() and (folder / "config.json").is_file()


def load_model(ref: str, ema: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """The network ``ref`` names, in eval mode, and what is known of its training data (``{}`` if nothing).

    ``ref`` is what ``--model`` takes in every command: ``local-dir:FOLDER`` (or a folder holding ``config.json``
    and weights, as ``cdarts-export`` writes), rebuilt by ``timm.create_model(..., pretrained=True)``; a registered
    architecture (``cdarts_cifar``: its published genotype with fresh weights, for speed); or a run folder or
    checkpoint.
    """
    folder = Path(ref.removeprefix("local-dir:"))
    if ref.startswith("local-dir:") or is_export(folder):
        if ema:
            raise ConfigError("--ema applies to run folders and checkpoints; an export holds one set of weights")
        return load_export(folder)
    if ref in ARCHITECTURES and not folder.exists():
        import timm

        if ema:
            raise ConfigError(f"--ema applies to run folders and checkpoints; {ref} has fresh weights only")
        return timm.create_model(ref).eval(), {}
    trained = read_trained(ref)
    return trained.build(ema), dict(trained.data)


def recorded_threads(ref: str) -> int | None:
    """The ``threads`` setting of the run a model comes from: its run folder's ``config.yaml`` (for a run folder, or
    a checkpoint in its ``best/`` or ``checkpoints/``) or an export's ``config.json`` (``cdarts.threads``); None where
    nothing records one. At small sizes the thread count decides the speed more than the network does."""
    import json

    from cdarts.config import read_yaml

    folder = Path(ref.removeprefix("local-dir:"))
    if ref.startswith("local-dir:") or is_export(folder):
        try:
            value = json.loads((folder / "config.json").read_text()).get("cdarts", {}).get("threads")
        except (OSError, ValueError, AttributeError):
            return None
    else:
        run = folder if (folder / "config.yaml").is_file() else folder.parent.parent
        if run != folder and folder.parent.name not in ("best", "checkpoints"):
            return None
        try:
            value = read_yaml(run / "config.yaml").get("threads")
        except (OSError, ValueError):
            return None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def load_export(folder: Path) -> tuple[nn.Module, dict[str, Any]]:
    """An export folder rebuilt by timm itself, plus the training data it records (``config.json``'s ``cdarts``)."""
    import json

    import timm
    from safetensors import SafetensorError

    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"'{folder}' is not a model folder: it has no config.json")
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise FileError(f"{config_file}: not valid JSON ({first_line(exc)})") from None
    if not isinstance(config, dict):
        raise FileError(f"{config_file}: expected a JSON object, got {type(config).__name__}")
    check_model_spec(config_file, config.get("architecture"), config.get("model_args", {}))
    pretrained_cfg = config.get("pretrained_cfg", {})
    remote = [key for key in REMOTE_KEYS if isinstance(pretrained_cfg, dict) and pretrained_cfg.get(key)]
    if remote:
        raise FileError(f"{config_file}: pretrained_cfg names a remote source ({', '.join(remote)}); an export "
                        "loads its weights from its own folder only")
    try:
        model = timm.create_model(f"local-dir:{folder}", pretrained=True)
    except SafetensorError as exc:
        raise FileError(f"{folder / 'model.safetensors'}: not a readable safetensors file ({first_line(exc)}; "
                        "truncated by an interrupted copy?)") from None
    except (pickle.UnpicklingError, RuntimeError, AssertionError, KeyError, TypeError, ValueError) as exc:
        first = first_line(exc)
        if isinstance(exc, pickle.UnpicklingError) or isinstance(exc.__cause__, pickle.UnpicklingError):
            raise FileError(
                f"{folder}: refused to load its weights: the file holds Python objects other than tensors, and "
                f"unpickling them could run code ({first})"
            ) from None
        raise FileError(f"{folder}: timm cannot rebuild this model ({first})") from None
    meta = config.get("cdarts", {}).get("data", {}) if isinstance(config.get("cdarts"), Mapping) else {}
    return model.eval(), dict(meta)


REMOTE_KEYS = ("url", "hf_hub_id", "hf_hub_filename")
"""``pretrained_cfg`` keys that would make timm download weights; an export folder may set none of them."""
