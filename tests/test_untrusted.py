"""Untrusted files: nothing the project loads can run code. Files crafted to run code when unpickled (or YAML
tags that would) are handed to every command that reads files, and planted in run folders before ``--resume``:
nothing runs, and the error is one clear line. A source scan pins the rule for code not written yet."""
from __future__ import annotations

import ast
import hashlib
import io
import json
import pickle
import shutil
import socket
from pathlib import Path

import pytest
import torch
import yaml
from conftest import make_tiny_retrain_config

import cdarts
from cdarts.cli import eval as eval_cli
from cdarts.cli import export as export_cli
from cdarts.cli import search as search_cli
from cdarts.cli import train as train_cli
from cdarts.config import _Loader
from cdarts.engine import search
from cdarts.models.export import export
from cdarts.retrain import train

PACKAGE = Path(cdarts.__file__).parent
RETRAIN = make_tiny_retrain_config(val_fraction=0.0)


class Payload:
    """Unpickling this creates ``marker``: what a malicious file would do instead (run a command...)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


# --------------------------------------------------------------------------------------------------- source scan


def unsafe_calls(source: str, name: str = "<source>") -> list[str]:
    """``file:line: what`` for every call that could run code from data: unpickling, unsafe YAML, torch.load
    without ``weights_only=True``, numpy pickles, eval/exec, accelerate's pickled state."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = ast.unparse(node.func)
        keywords = {k.arg: k.value for k in node.keywords}
        where = f"{name}:{node.lineno}: {func}"
        if func in ("eval", "exec", "compile", "__import__") or func.startswith(("marshal.", "shelve.", "dill.")):
            found.append(f"{where}: runs code")
        elif func in ("pickle.load", "pickle.loads", "pickle.Unpickler", "joblib.load", "cloudpickle.load"):
            found.append(f"{where}: unpickles")
        elif func in ("yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "yaml.unsafe_load_all"):
            found.append(f"{where}: unsafe YAML")
        elif func == "yaml.load" and ast.unparse(keywords.get("Loader", ast.Constant(None))) not in ("_Loader",
                                                                                                   "yaml.SafeLoader"):
            found.append(f"{where}: YAML loader is not a SafeLoader")
        elif func == "torch.load" and not (isinstance(keywords.get("weights_only"), ast.Constant)
                                           and keywords["weights_only"].value is True):
            found.append(f"{where}: without weights_only=True")
        elif func in ("np.load", "numpy.load") and ast.unparse(keywords.get("allow_pickle", ast.Constant(False))) \
                != "False":
            found.append(f"{where}: allow_pickle")
        elif func.endswith((".load_state", ".save_state")):
            found.append(f"{where}: accelerate's pickled checkpoint")
    return found


def test_source_scan_finds_each_kind_of_unsafe_call():
    snippet = """
pickle.loads(b)
yaml.load(text)
yaml.load(text, Loader=yaml.Loader)
yaml.unsafe_load(text)
torch.load(path)
torch.load(path, weights_only=False)
np.load(path, allow_pickle=True)
eval(text)
accelerator.load_state(folder)
torch.load(path, map_location="cpu", weights_only=True)
yaml.load(text, Loader=_Loader)
model.eval()
"""
    found = unsafe_calls(snippet)
    assert [line.split(":")[1] for line in found] == [str(n) for n in range(2, 11)], found


def test_package_source_never_unpickles_or_evaluates_data():
    problems = [p for path in sorted(PACKAGE.rglob("*.py"))
                for p in unsafe_calls(path.read_text(), str(path.relative_to(PACKAGE.parent)))]
    assert problems == []
    assert issubclass(_Loader, yaml.SafeLoader) and not issubclass(_Loader, yaml.FullLoader)


# ------------------------------------------------------------------------------------------- files given to tools


@pytest.fixture(scope="module")
def retrained(tmp_path_factory) -> Path:
    """A finished one-step retrain run, whose checkpoint folder is copied and doctored below."""
    return train(RETRAIN, output=tmp_path_factory.mktemp("retrain") / "run", progress=False).run_dir


def forge_manifest(checkpoint: Path, name: str) -> None:
    """Make the manifest agree with a replaced file, as anyone who can write the folder can."""
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    data = (checkpoint / name).read_bytes()
    manifest["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (checkpoint / "manifest.json").write_text(json.dumps(manifest))


def craft(kind: str, folder: Path, marker: Path, retrained: Path) -> Path:
    """A file (or checkpoint folder) that would create ``marker`` if anything unpickled it."""
    state = {"architecture": "cdarts_cifar", "model_args": {}, "state_dict": {"w": torch.zeros(1)},
             "payload": Payload(marker)}
    if kind == "legacy_pt":  # torch's pre-zip format
        path = folder / "weights.pt"
        torch.save(state, path, _use_new_zipfile_serialization=False)
    elif kind == "zip_pth":
        path = folder / "weights.pth"
        torch.save(state, path)
    elif kind == "raw_pickle_bin":  # a plain pickle, not a torch file at all
        path = folder / "pytorch_model.bin"
        path.write_bytes(pickle.dumps(state))
    elif kind == "pickle_as_safetensors":
        path = folder / "model.safetensors"
        torch.save(state, path)
    else:  # a checkpoint folder whose optimizer state carries the payload, manifest forged to match
        path = folder / "epoch-0001"
        shutil.copytree(retrained / "checkpoints" / "epoch-0001", path)
        torch.save({"optimizers": {}, "rng": {}, "extra": {"payload": Payload(marker)}}, path / "optim.pt")
        forge_manifest(path, "optim.pt")
    data = (path if path.is_file() else path / "optim.pt").read_bytes()
    pickle.loads(data) if kind == "raw_pickle_bin" else torch.load(io.BytesIO(data), weights_only=False)
    assert marker.exists(), "the payload is live..."
    marker.unlink()  # ...so an unsafe load below would recreate it
    return path


TOOLS = {
    "train": lambda path, tmp: (train_cli.main, ["--config", str(tmp / "c.yaml"), "--output", str(tmp / "out"),
                                                 "--no-progress", "--init", str(path)]),
    "export": lambda path, tmp: (export_cli.main, ["--model", str(path), "--output", str(tmp / "out")]),
    "eval": lambda path, tmp: (eval_cli.main, ["--model", str(path), "--data", "digits"]),
}


def refusal(tool: str, path: Path, tmp_path: Path, capsys) -> str:
    """Run ``tool`` on ``path``: it must exit 2 with one ``cdarts-<tool>: error:`` line and write nothing."""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(RETRAIN))
    main, argv = TOOLS[tool](path, tmp_path)
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert err.startswith(f"cdarts-{tool}: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists(), "a refused input writes nothing"
    return err


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on the raw pickle, before refusing it
@pytest.mark.parametrize("kind", ["legacy_pt", "zip_pth", "raw_pickle_bin", "pickle_as_safetensors", "checkpoint"])
@pytest.mark.parametrize("tool", list(TOOLS))
def test_crafted_file_given_to_a_command_runs_nothing_and_is_one_clear_line(tool, kind, retrained, tmp_path,
                                                                            capsys):
    marker = tmp_path / "pwned"
    path = craft(kind, tmp_path, marker, retrained)
    assert str(path) in refusal(tool, path, tmp_path, capsys)
    assert not marker.exists(), "the payload ran"


JUNK = {"text.pt": b"hello\n", "yaml.pt": b"epochs: [1,\n", "empty.pth": b"", "bytes.bin": bytes(range(256)) * 4}


@pytest.mark.parametrize("name", list(JUNK))
@pytest.mark.parametrize("tool", list(TOOLS))
def test_junk_file_given_to_a_command_is_one_clear_line(tool, name, tmp_path, capsys):
    path = tmp_path / name
    path.write_bytes(JUNK[name])
    assert refusal(tool, path, tmp_path, capsys).startswith(f"cdarts-{tool}: error: {path}: ")


def test_yaml_tags_that_would_run_code_are_refused(tmp_path, capsys):
    marker = tmp_path / "pwned"
    config = tmp_path / "evil.yaml"
    config.write_text(f"seed: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(SystemExit) as info:
        search_cli.main(["--config", str(config), "--output", str(tmp_path / "out")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cdarts-search: error: {config}:1:7: YAML syntax error: could not determine a constructor")
    assert not marker.exists() and not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------- files planted in a run folder


def plant_accelerate_state(folder: Path, marker: Path) -> None:
    """The pickles ``accelerator.save_state`` writes: a project that called ``load_state`` would run them."""
    names = ("random_states_0.pkl", "optimizer.bin", "pytorch_model.bin", "scheduler.bin", "custom_checkpoint_0.pkl")
    for name in names:
        (folder / name).write_bytes(pickle.dumps(Payload(marker)))


def test_search_resume_ignores_or_refuses_planted_files_and_runs_none(tmp_path, tiny_config, capsys):
    config = tiny_config(strategy={"epochs": 1}, eval_bn_batches=1)
    original = search(config, output=tmp_path / "run")
    run, checkpoints, marker = original.run_dir, original.run_dir / "checkpoints", tmp_path / "pwned"
    plant_accelerate_state(run, marker)
    plant_accelerate_state(checkpoints, marker)
    forged = checkpoints / "epoch-0005"  # numbered past the real ones, so it is tried first
    shutil.copytree(checkpoints / "epoch-0002", forged)
    for checkpoint in (forged, checkpoints / "epoch-0002"):
        torch.save({"optimizers": {}, "rng": {"torch": Payload(marker)}}, checkpoint / "optim.pt")
        forge_manifest(checkpoint, "optim.pt")
    stale = checkpoints / ".tmp-epoch-0003-1"
    stale.mkdir()
    (stale / "optim.pt").write_bytes(pickle.dumps(Payload(marker)))
    capsys.readouterr()

    resumed = search(config, output=run, resume=True)
    out = capsys.readouterr().out
    assert not marker.exists(), "a planted file ran"
    for name in ("epoch-0005", "epoch-0002"):
        assert f"checkpoint {name} is unusable: {checkpoints / name / 'optim.pt'}: refused or unreadable" in out
    assert f"resuming from {checkpoints / 'epoch-0001'}" in out
    assert resumed.genotype == original.genotype, "the resumed run redoes epoch 1 exactly"
    assert [h["alpha"] for h in resumed.history] == [h["alpha"] for h in original.history]


def test_retrain_resume_with_a_planted_code_running_config_is_one_line(retrained, tmp_path, capsys):
    run, marker = tmp_path / "run", tmp_path / "pwned"
    shutil.copytree(retrained, run)
    config = run / "config.yaml"
    config.write_text(config.read_text() + f"extra: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(SystemExit) as info:
        train_cli.main(["--resume", "--output", str(run), "--no-progress"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cdarts-train: error: {config}:") and "could not determine a constructor" in err
    assert err.count("\n") == 1 and not marker.exists()


# --------------------------------------------------------------------------- what a file may name: no network


@pytest.fixture
def offline(monkeypatch) -> list[str]:
    """HF_HUB_OFFLINE=1, and every way timm reaches the network (Hub configs and weights, URLs, any socket) recorded
    and refused: the list of attempts must stay empty."""
    import timm.models._builder as builder
    import timm.models._factory as factory
    import timm.models._hub as hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    attempts: list[str] = []

    def refuse(name: str):
        def call(*args, **kwargs):
            attempts.append(name)
            raise ConnectionRefusedError(f"test: no network ({name})")
        return call

    for module, name in [(factory, "load_model_config_from_hf"), (builder, "load_state_dict_from_url"),
                         (builder, "download_cached_file"), (builder, "load_state_dict_from_hf"),
                         (hub, "hf_hub_download"), (hub, "download_cached_file")]:
        monkeypatch.setattr(module, name, refuse(f"{module.__name__}.{name}"))
    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    return attempts


@pytest.fixture(scope="module")
def exported(retrained, tmp_path_factory) -> Path:
    return export(retrained, tmp_path_factory.mktemp("export") / "model").folder


ARCHITECTURES = ["hf-hub:attacker/evil", "resnet18", "local-dir:/tmp", ["cdarts_cifar"]]
NOT_CDARTS = "is not a cdarts model; available: cdarts_cifar, cdarts_imagenet"


@pytest.mark.parametrize("architecture", ARCHITECTURES[:3])  # a non-string is refused by the state.json check
@pytest.mark.parametrize("tool", list(TOOLS))
def test_a_checkpoint_naming_another_model_is_refused_before_any_network_access(tool, architecture, retrained,
                                                                                 tmp_path, capsys, offline):
    path = tmp_path / "epoch-0001"
    shutil.copytree(retrained / "checkpoints" / "epoch-0001", path)
    state = json.loads((path / "state.json").read_text())
    state["retrain"]["architecture"] = architecture
    (path / "state.json").write_text(json.dumps(state))
    forge_manifest(path, "state.json")
    err = refusal(tool, path, tmp_path, capsys)
    assert f"{path / 'state.json'}: retrain.architecture {architecture!r} {NOT_CDARTS}" in err
    assert offline == []


@pytest.mark.parametrize("architecture", ARCHITECTURES, ids=str)
@pytest.mark.parametrize("tool", ["export", "eval"])  # train --init takes the weights alone, whatever they name
def test_a_weights_file_naming_another_model_is_refused_before_any_network_access(tool, architecture, tmp_path,
                                                                                  capsys, offline):
    path = tmp_path / "weights.pt"
    torch.save({"architecture": architecture, "model_args": {}, "state_dict": {"w": torch.zeros(1)}}, path)
    assert f"{path}: architecture {architecture!r} {NOT_CDARTS}" in refusal(tool, path, tmp_path, capsys)
    assert offline == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        *[(lambda c, a=a: {**c, "architecture": a}, f"architecture {a!r} {NOT_CDARTS}") for a in ARCHITECTURES],
        (lambda c: {**c, "model_args": {**c["model_args"], "custom_load": True}},
         "model_args: unknown 'custom_load'; valid: genotype, num_classes, in_chans, channels, layers"),
        (lambda c: {**c, "model_args": {**c["model_args"], "pretrained_cfg": {"hf_hub_id": "attacker/evil"}}},
         "model_args: unknown 'pretrained_cfg'; valid: genotype"),
        (lambda c: {**c, "pretrained_cfg": {**c["pretrained_cfg"], "hf_hub_id": "attacker/evil"}},
         "pretrained_cfg names a remote source (hf_hub_id)"),
        (lambda c: {**c, "pretrained_cfg": {**c["pretrained_cfg"], "url": "https://example.com/w.pth"}},
         "pretrained_cfg names a remote source (url)"),
    ],
    ids=[*map(str, ARCHITECTURES), "custom_load", "model_args_hub", "hf_hub_id", "url"],
)
def test_an_export_naming_another_model_or_a_remote_source_is_refused_before_any_network_access(
        change, problem, exported, tmp_path, capsys, offline):
    folder = tmp_path / "export"
    shutil.copytree(exported, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(change(config)))
    err = refusal("eval", folder, tmp_path, capsys)
    assert err.startswith(f"cdarts-eval: error: {folder / 'config.json'}: {problem}"), err
    assert offline == []


@pytest.mark.parametrize("cut", ["header", "tail"])
@pytest.mark.parametrize("tool", list(TOOLS))
def test_a_truncated_export_weights_file_is_one_line_naming_it(tool, cut, exported, tmp_path, capsys):
    """What an interrupted copy leaves: safetensors' "incomplete metadata" or "invalid header length"."""
    folder = tmp_path / "export"
    shutil.copytree(exported, folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:100] if cut == "header" else data[:-100])
    err = refusal(tool, folder if tool == "eval" else weights, tmp_path, capsys)
    assert err.startswith(f"cdarts-{tool}: error: {weights}: "), err
    if tool != "export":  # export names it as a bare weights file, which says nothing of the network it holds
        assert "not a readable safetensors file" in err


def test_a_recorded_dataset_never_starts_a_download(retrained, tmp_path, capsys, offline):
    """The data a checkpoint says it was trained on is evaluated from disk; only --data may ask for a download."""
    path = tmp_path / "epoch-0001"
    shutil.copytree(retrained / "checkpoints" / "epoch-0001", path)
    state = json.loads((path / "state.json").read_text())
    state["retrain"]["data"]["dataset"] = {"type": "cifar10", "root": str(tmp_path / "data"), "download": True}
    (path / "state.json").write_text(json.dumps(state))
    forge_manifest(path, "state.json")
    with pytest.raises(SystemExit) as info:
        eval_cli.main(["--model", str(path)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"cdarts-eval: error: dataset folder '{tmp_path / 'data' / 'cifar-10-batches-py'}' "
                          "does not exist; pass `download: true`"), err
    assert offline == [] and not (tmp_path / "data").exists()
