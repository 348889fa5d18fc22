"""Export to a timm ``local-dir:`` folder, evaluation, and refusing anything that would unpickle code."""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import timm
import torch
from conftest import Evil, make_tiny_retrain_config
from safetensors.torch import load_file
from torch import nn

from cdarts.cli import eval as eval_cli
from cdarts.cli import export as export_cli
from cdarts.errors import ConfigError
from cdarts.evaluate import WARMUP_PASSES, evaluate, evaluate_model, resolve_device, topk_correct
from cdarts.genotypes import load_genotype
from cdarts.models.export import export
from cdarts.models.load import read_trained
from cdarts.retrain import train
from cdarts.stats import count_macs

ROOT = Path(__file__).resolve().parents[1]

CONFIG = make_tiny_retrain_config(model={"genotype": "DARTS_V2"}, epochs=2, max_steps_per_epoch=4,
                                  optimizer={"type": "sgd", "lr": 0.05}, ema={"decay": 0.5})

FRESH_PROCESS = """
import sys
import cdarts, timm
import torch
from safetensors.torch import save_file

model = timm.create_model("local-dir:" + sys.argv[1], pretrained=True).eval()
x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    save_file({"logits": model(x)}, sys.argv[2])
print(type(model).__name__, tuple(model.pretrained_cfg["input_size"]))
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train(CONFIG, output=tmp_path_factory.mktemp("run") / "r", progress=False)


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    return export(run.run_dir, tmp_path_factory.mktemp("export") / "model")


def fixed_input():
    return torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def fresh_process_logits(folder, tmp_path):
    out = tmp_path / "logits.safetensors"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(folder), str(out)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["CdartsNet", "(1,", "8,", "8)"]
    return load_file(str(out))["logits"]


def test_export_writes_the_timm_layout(run, exported):
    folder = exported.folder
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "cdarts_cifar"
    assert (config["num_classes"], config["num_features"]) == (10, exported.config["num_features"])
    assert config["model_args"] == {
        "genotype": load_genotype("DARTS_V2").to_json(), "channels": 4, "layers": 3, "stem_multiplier": 3,
        "num_classes": 10, "in_chans": 1, "auxiliary": False,
    }
    cfg = config["pretrained_cfg"]
    assert cfg["input_size"] == [1, 8, 8] and cfg["crop_pct"] == 1.0 and cfg["pool_size"] == [2, 2]
    assert (cfg["first_conv"], cfg["classifier"], cfg["num_classes"]) == ("stem.stem.0", "classifier", 10)
    assert len(cfg["mean"]) == len(cfg["std"]) == 1
    assert config["label_names"] == [str(i) for i in range(10)]
    weights = load_file(str(folder / "model.safetensors"))
    assert not any(k.startswith("auxiliary_head.") for k in weights)


def test_local_dir_in_a_fresh_process_equals_the_trained_model(run, exported, tmp_path):
    trained = read_trained(run.run_dir).build()
    with torch.no_grad():
        expected = trained(fixed_input())
    logits = fresh_process_logits(exported.folder, tmp_path)
    assert (logits - expected).abs().max().item() <= 1e-5


def test_ema_export_holds_the_ema_weights(run, tmp_path):
    result = export(run.run_dir, tmp_path / "ema", ema=True)
    model = timm.create_model(f"local-dir:{result.folder}", pretrained=True).eval()
    ema = read_trained(run.run_dir).build(ema=True)
    raw = read_trained(run.run_dir).build()
    with torch.no_grad():
        assert (model(fixed_input()) - ema(fixed_input())).abs().max().item() <= 1e-5
        assert (model(fixed_input()) - raw(fixed_input())).abs().max().item() > 1e-4
    assert json.loads((result.folder / "config.json").read_text())["cdarts"]["ema"] is True


def test_export_refuses_a_non_empty_folder_unless_forced(run, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit) as info:
        export_cli.main(["--model", str(run.run_dir), "--output", str(out)])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"cdarts-export: error: --output folder '{out}' is not empty; pass --force to replace its contents"
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert export_cli.main(["--model", str(run.run_dir), "--output", str(out), "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert "exported cdarts_cifar" in capsys.readouterr().out


def test_eval_of_the_export_reproduces_the_run_accuracy(run, exported):
    best = run.summary
    from_export = evaluate_model(f"local-dir:{exported.folder}")
    from_run = evaluate_model(str(run.run_dir))
    assert from_export["top1"] == pytest.approx(best["test_top1_at_best"], abs=1e-9)
    assert from_export["top5"] == pytest.approx(best["test_top5_at_best"], abs=1e-9)
    assert (from_run["top1"], from_run["images"]) == (from_export["top1"], 359)
    assert from_export["images_per_s"] > 0


def test_eval_cli_prints_accuracy_and_throughput(exported, capsys):
    assert eval_cli.main(["--model", f"local-dir:{exported.folder}", "--data", "{type: digits, image_size: 8, "
                          "channels: 1}", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "test" and result["images"] == 359 and 0 <= result["top1"] <= result["top5"] <= 100


def test_model_card_names_genotype_size_accuracy_and_loading(run, exported):
    card = (exported.folder / "README.md").read_text()
    assert str(load_genotype("DARTS_V2")) in card
    assert f"parameters: {exported.params:,}" in card and f"MACs: {exported.macs:,}" in card
    assert f"timm.create_model(\"local-dir:{exported.folder}\", pretrained=True)" in card
    assert f"| test | {run.summary['test_top1_at_best']:.2f}% |" in card


def test_macs_of_the_published_cifar_network():
    model = timm.create_model("cdarts_cifar").eval()
    assert count_macs(model, (3, 32, 32)) == 590_069_376


def test_weights_only_torch_file_with_architecture_exports(run, exported, tmp_path):
    trained = read_trained(run.run_dir)
    path = tmp_path / "plain.pt"
    torch.save({"architecture": trained.architecture, "model_args": trained.model_args,
                "state_dict": trained.weights, "data": trained.data}, path)
    result = export(path, tmp_path / "from-pt")
    a = load_file(str(result.folder / "model.safetensors"))
    b = load_file(str(exported.folder / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_topk_correct_caps_k_at_the_class_count():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
    assert topk_correct(logits, torch.tensor([0, 2])) == [0, 2]
    assert topk_correct(logits, torch.tensor([1, 0]), ks=(1, 2)) == [2, 2]


@pytest.fixture
def evil_file(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"architecture": "cdarts_cifar", "model_args": {}, "state_dict": {}, "payload": Evil(marker)}, path)
    return path, marker


@pytest.mark.parametrize("tool", ["export", "eval"])
def test_malicious_pickle_is_refused_and_runs_nothing(tool, evil_file, tmp_path, capsys):
    path, marker = evil_file
    with pytest.raises(SystemExit) as info:
        if tool == "export":
            export_cli.main(["--model", str(path), "--output", str(tmp_path / "out")])
        else:
            eval_cli.main(["--model", str(path), "--data", "digits"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"cdarts-{tool}: error: {path}: refused to load") and len(err.splitlines()) == 1
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_malicious_weights_in_an_export_folder_are_refused(exported, tmp_path, capsys):
    folder = tmp_path / "evil-export"
    folder.mkdir()
    (folder / "config.json").write_text((exported.folder / "config.json").read_text())
    marker = tmp_path / "pwned"
    torch.save({"payload": Evil(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(SystemExit) as info:
        eval_cli.main(["--model", f"local-dir:{folder}"])
    assert info.value.code == 2
    assert "refused to load its weights" in capsys.readouterr().err
    assert not marker.exists()


def test_malicious_optimizer_state_in_a_checkpoint_folder_is_refused(run, tmp_path):
    import hashlib
    import shutil

    folder = tmp_path / "epoch-0001"
    shutil.copytree(run.run_dir / "checkpoints" / "epoch-0001", folder)
    marker = tmp_path / "pwned"
    torch.save({"payload": Evil(marker)}, folder / "optim.pt")
    manifest = json.loads((folder / "manifest.json").read_text())
    data = (folder / "optim.pt").read_bytes()
    manifest["files"]["optim.pt"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="optim.pt: refused or unreadable"):
        export(folder, tmp_path / "out")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "no/such/run"], "model 'no/such/run' does not exist: expected a run folder, a checkpoint"),
        (["--model", "RUN", "--data", "digitz"], "data.type: unknown dataset 'digitz'"),
        (["--model", "RUN", "--data", "{type: digits, image_size: 8}"], "the model takes 1-channel images but digits"),
        (["--model", "RUN", "--data", "cifar10"], "dataset folder 'data/cifar-10-batches-py' does not exist"),
    ],
)
def test_eval_cli_bad_input_exits_2_with_one_line(args, message, run, capsys):
    args = [str(run.run_dir) if a == "RUN" else a for a in args]
    with pytest.raises(SystemExit) as info:
        eval_cli.main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_export_to_a_symlink_writes_through_to_its_target_and_leaves_nothing_behind(run, exported, tmp_path, capsys):
    target = tmp_path / "real" / "model"
    target.mkdir(parents=True)
    (target / "stale.txt").write_text("an older export")
    link = tmp_path / "links" / "model"
    link.parent.mkdir()
    link.symlink_to(target)
    assert export_cli.main(["--model", str(run.run_dir), "--output", str(link), "--force"]) == 0
    assert f"to {link}\n" in capsys.readouterr().out
    assert link.is_symlink() and link.resolve() == target.resolve(), "the link is kept"
    assert sorted(p.name for p in target.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert [p.name for p in link.parent.iterdir()] == ["model"], "no .model.old-<pid> or lock left beside the link"
    assert [p.name for p in target.parent.iterdir()] == ["model"], "nor beside the target"
    written = load_file(str(link / "model.safetensors"))
    expected = load_file(str(exported.folder / "model.safetensors"))
    assert written.keys() == expected.keys() and all(torch.equal(written[k], expected[k]) for k in expected)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threads", "-1"], "--threads must be at least 1, got -1"),
        (["--threads", "0"], "--threads must be at least 1, got 0"),
        (["--device", "bogus"], "--device 'bogus' is not a torch device; use cpu, cuda, cuda:N or mps"),
        (["--device", "cuda"], "--device 'cuda': this machine has no CUDA device; use --device cpu"),
        (["--device", "cuda:1"], "--device 'cuda:1': this machine has no CUDA device; use --device cpu"),
    ],
)
def test_eval_cli_bad_threads_or_device_is_one_line(args, message, exported, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on a machine with a GPU
    threads = torch.get_num_threads()
    with pytest.raises(SystemExit) as info:
        eval_cli.main(["--model", f"local-dir:{exported.folder}", *args])
    assert info.value.code == 2 and torch.get_num_threads() == threads
    assert capsys.readouterr().err == f"cdarts-eval: error: {message}\n"


def test_eval_device_beyond_the_gpus_there_are_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(ConfigError) as info:
        resolve_device("cuda:2")
    assert str(info.value) == "--device 'cuda:2': this machine has 2 CUDA device(s), cuda:0 to cuda:1"


def test_export_old_spellings_still_work_with_one_warning_each(run, tmp_path, capsys):
    out = tmp_path / "old"
    assert export_cli.main([str(run.run_dir), "--out", str(out)]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "warning: --out is deprecated; use --output (removed in the next release)",
        f"warning: the positional model argument is deprecated; use --model {run.run_dir} (removed in the next "
        "release)",
    ]
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]


EXPORT_IS_NOT_A_RUN = "{} is an export (config.json and weights), which holds no training state; name the run " \
                      "folder or checkpoint it came from"


@pytest.mark.parametrize(
    ("model", "message"),
    [("cdarts_cifar", "cdarts_cifar is a registered architecture with fresh weights, not a trained network; name a "
                      "run folder or checkpoint"),
     ("local-dir:EXPORT", EXPORT_IS_NOT_A_RUN.format("local-dir:EXPORT")),
     ("EXPORT", EXPORT_IS_NOT_A_RUN.format("EXPORT"))],
)
def test_export_says_what_a_model_that_is_not_a_run_is(model, message, exported, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        export_cli.main(["--model", model.replace("EXPORT", str(exported.folder)), "--output", str(tmp_path / "out")])
    assert info.value.code == 2
    assert capsys.readouterr().err == f"cdarts-export: error: {message.replace('EXPORT', str(exported.folder))}\n"
    assert not (tmp_path / "out").exists()


class SlowFirstCall(nn.Module):
    """A classifier whose first forward pass takes half a second longer, as a cold allocator or thread pool does."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 10)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 1:
            time.sleep(0.5)
        return self.linear(x.flatten(1))


def test_throughput_is_timed_after_the_warmup():
    batches = [(torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long))] * 2
    model = SlowFirstCall()
    result = evaluate(model, batches, warmup=WARMUP_PASSES)
    assert model.calls == WARMUP_PASSES + 2 and result["images"] == 8
    assert result["seconds"] < 0.25, "the slow first call is not timed"


def test_eval_measures_with_the_runs_threads_and_reports_them(run, exported, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    torch.set_num_threads(2)
    try:
        for model in (str(run.run_dir), f"local-dir:{exported.folder}"):
            assert evaluate_model(model, max_batches=1)["threads"] == CONFIG["threads"] == 1
            assert torch.get_num_threads() == 2, "the caller's thread count is restored"
        assert evaluate_model(str(run.run_dir), max_batches=1, threads=2)["threads"] == 2
        assert json.loads((exported.folder / "config.json").read_text())["cdarts"]["threads"] == 1
        assert eval_cli.main(["--model", str(run.run_dir), "--batch-size", "64"]) == 0
    finally:
        torch.set_num_threads(1)
    line = capsys.readouterr().out
    assert re.search(r" throughput \d+ img/s \(batch 64, 1 thread, cpu\)\n$", line), line


def test_eval_of_a_registered_architecture_measures_fresh_weights(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = evaluate_model("cdarts_cifar", "{type: digits, image_size: 8, channels: 3}", batch_size=4, max_batches=1)
    assert (result["images"], result["batch_size"], result["threads"]) == (4, 4, torch.get_num_threads())
    assert result["images_per_s"] > 0
