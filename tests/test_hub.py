"""Hub-ready exports: the model card's front matter read back by huggingface_hub's own parsers, the folder as the Hub
expects it, and ``--push-to-hub`` without a network (nothing leaves the machine: the Hub endpoint is a closed port)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_tiny_retrain_config
from huggingface_hub import ModelCard, ModelCardData, constants, metadata_load

from cdarts.cli import export as export_cli
from cdarts.errors import ConfigError
from cdarts.models import hub
from cdarts.models.export import export
from cdarts.retrain import train

ROOT = Path(__file__).resolve().parents[1]
REPO = "someone/cdarts-digits"
CONFIG = make_tiny_retrain_config(model={"genotype": "DARTS_V2"}, max_steps_per_epoch=4,
                                  optimizer={"type": "sgd", "lr": 0.05})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train(CONFIG, output=tmp_path_factory.mktemp("run") / "r", progress=False)


@pytest.fixture(scope="module")
def folder(run, tmp_path_factory):
    return export(run.run_dir, tmp_path_factory.mktemp("export") / "model", hub_repo=REPO).folder


def closed_port() -> int:
    """A local port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_card_front_matter_is_what_the_hub_reads(run, folder):
    metadata = metadata_load(folder / constants.REPOCARD_NAME)
    assert (metadata["library_name"], metadata["license"], metadata["pipeline_tag"]) == (
        "timm", "mit", "image-classification")
    assert metadata["tags"] == hub.TAGS and metadata["metrics"] == ["accuracy"]
    assert "datasets" not in metadata  # the digits are no Hub dataset; the results name them
    card = ModelCard.load(folder / constants.REPOCARD_NAME)
    assert card.data.to_dict() == ModelCardData(**metadata).to_dict()
    results = {(r.dataset_split, r.metric_name): r for r in card.data.eval_results}
    test_top1 = results[("test", "top-1 accuracy (%)")]
    assert test_top1.metric_value == round(run.summary["test_top1_at_best"], 2)
    assert (test_top1.task_type, test_top1.metric_type, test_top1.dataset_type) == (
        "image-classification", "accuracy", "digits")
    assert set(results) == {(split, f"top-{k} accuracy (%)") for split in ("test", "validation") for k in (1, 5)}
    assert card.data.model_name == "cdarts-digits"
    assert card.text.startswith("\n# cdarts_cifar (digits)\n")
    assert f'timm.create_model("hf-hub:{REPO}", pretrained=True)' in card.text


def test_folder_holds_what_the_hub_and_timm_read(folder):
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [constants.REPOCARD_NAME, constants.CONFIG_NAME, constants.SAFETENSORS_SINGLE_FILE])
    config = json.loads((folder / constants.CONFIG_NAME).read_text())
    assert config["architecture"] == "cdarts_cifar" and config["pretrained_cfg"]["license"] == "mit"


@pytest.mark.parametrize(("dataset", "datasets"), [("cifar10", ["cifar10"]), ("cifar100", ["cifar100"]),
                                                   ("imagenet", ["imagenet-1k"]), ("imagefolder", None)])
def test_card_names_hub_datasets_and_leaves_out_missing_accuracies(dataset, datasets):
    config = {"pretrained_cfg": {"license": "mit"},
              "cdarts": {"ema": True, "data": {"dataset": {"type": dataset}},
                         "metrics": {"ema_test_top1": 97.123, "test_top1": 50.0, "ema_val_top1": float("nan")}}}
    data = hub.card_data(config, "net")
    assert data.datasets == datasets
    assert [(r.dataset_split, r.metric_name, r.metric_value) for r in data.eval_results] == [
        ("test", "top-1 accuracy (%)", 97.12)]  # the EMA weights' numbers; NaN and absent values left out
    assert hub.card_data({**config, "cdarts": {**config["cdarts"], "metrics": {}}}, "net").eval_results is None


@pytest.mark.parametrize("repo", ["cdarts-digits", "a/b/c", "bad repo/x", "someone/" + "x" * 97, "someone/a--b"])
def test_a_malformed_repository_id_is_refused_naming_it(repo):
    with pytest.raises(ConfigError) as info:
        hub.check_repo_id(repo)
    assert str(info.value) == (f"--push-to-hub: expected a Hub model repository id OWNER/NAME (letters, digits, '-', "
                               f"'_', '.'; a name of at most 96 characters), got {repo!r}")


def test_push_creates_the_repository_and_uploads_the_folder_unchanged(folder, monkeypatch):
    calls = []

    class FakeApi:
        def __init__(self, **kwargs):
            calls.append(("api", kwargs["library_name"]))

        def create_repo(self, repo_id, private, exist_ok):
            calls.append(("create_repo", repo_id, private, exist_ok))
            return type("RepoUrl", (str,), {"repo_id": repo_id})(f"https://hub.invalid/{repo_id}")

        def upload_folder(self, repo_id, folder_path, commit_message):
            calls.append(("upload_folder", repo_id, sorted(p.name for p in Path(folder_path).iterdir())))

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    assert hub.push_folder(folder, REPO, private=True) == f"https://hub.invalid/{REPO}"
    assert calls == [("api", "cdarts"), ("create_repo", REPO, True, True),
                     ("upload_folder", REPO, ["README.md", "config.json", "model.safetensors"])]


def test_push_without_network_is_one_line_exit_1_and_leaves_the_export(run, tmp_path):
    out = tmp_path / "export"
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}", "HF_TOKEN": "hf_fake_token_for_tests",
           "HF_HUB_DISABLE_TELEMETRY": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "cdarts.cli.export", "--model", str(run.run_dir), "--output",
                           str(out), "--push-to-hub", REPO], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(
        f"cdarts-export: error: could not push {out} to the Hugging Face Hub as {REPO}: ")
    assert done.stderr.endswith(f"; the export in {out} is complete: push it later with: hf upload {REPO} {out} .\n")
    assert f"to {out}\n" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert metadata_load(out / "README.md")["library_name"] == "timm"
    assert json.loads((out / "config.json").read_text())["architecture"] == "cdarts_cifar"


def test_private_without_push_is_refused(run, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        export_cli.main(["--model", str(run.run_dir), "--output", str(tmp_path / "x"), "--private"])
    assert info.value.code == 2 and not (tmp_path / "x").exists()
    assert capsys.readouterr().err.splitlines()[-1] == (
        "cdarts-export: error: --private applies to --push-to-hub REPO only")
