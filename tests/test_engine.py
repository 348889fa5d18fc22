"""The search engine end to end on the tiny config: what a run folder holds, and that it is reproducible."""
from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from conftest import launch_two_processes
from safetensors.torch import load_file

from cdarts.config import ConfigError, load_config
from cdarts.diagnostics import diagnostics
from cdarts.engine import SearchResult, search, search_config
from cdarts.genotypes import genotype_from_json, load_genotype
from cdarts.runs import resolve_run_dir

EPOCHS = 3  # 1 pretraining + 2 search epochs (see conftest.TINY_CONFIG)
COLUMNS = {"epoch", "phase", "s_val_acc", "s_test_acc", "e_val_acc", "e_test_acc", "lambda_reg", "time_s", "joint_kd",
           "param_free_ops", "alpha_entropy", "train_loss", "e_train_acc", "joint_loss"}


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_config) -> SearchResult:
    """One search from a config dict, shared by the tests that only read its folder."""
    return search(tiny_config(), output=tmp_path_factory.mktemp("dict") / "run")


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_folder_holds_the_documented_files(run):
    names = {p.name for p in run.run_dir.iterdir()}
    assert names == {"config.yaml", "launch.json", "genotype.json", "genotypes.jsonl", "metrics.csv", "checkpoints"}
    assert len(run.history) == EPOCHS


def test_config_yaml_is_the_filled_config_and_loads_back(run):
    saved = yaml.safe_load((run.run_dir / "config.yaml").read_text())
    assert saved["strategy"]["distill_weight"] == 4.0  # a default the tiny config leaves out
    assert saved["strategy"]["distill"]["type"] == "multi_level"
    assert saved["space"]["eval_layers"] == 3 and saved["space"]["nodes"] == 4
    assert saved["keep_checkpoints"] == 2 and saved["data"]["augment"] is True
    assert load_config(run.run_dir / "config.yaml", search_config) == saved


def test_genotype_json_is_the_final_genotype(run):
    genotype = load_genotype(run.run_dir / "genotype.json")
    assert genotype == run.genotype == load_genotype(run.run_dir)
    assert len(genotype.normal) == len(genotype.reduce) == 8


def test_genotypes_jsonl_has_one_line_per_epoch_with_softmax_alphas(run):
    lines = read_jsonl(run.run_dir / "genotypes.jsonl")
    assert [line["epoch"] for line in lines] == list(range(1, EPOCHS + 1))
    for line in lines:
        genotype_from_json(line["genotype"])
        assert set(line["alpha"]) == {"normal", "reduce"}
        for rows in line["alpha"].values():
            assert len(rows) == 14 and all(len(row) == 8 for row in rows)
            assert all(math.isclose(sum(row), 1.0, abs_tol=1e-6) for row in rows)
    assert genotype_from_json(lines[-1]["genotype"]) == run.genotype
    assert lines[0]["alpha"] != lines[-1]["alpha"], "alpha moves during the search epochs"


def test_metrics_csv_has_one_row_per_epoch(run):
    with open(run.run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert COLUMNS <= set(rows[0])
    assert [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1))
    assert [r["phase"] for r in rows] == ["pretrain", "search", "search"]
    assert rows[0]["e_val_acc"] == "" and rows[0]["lambda_reg"] == ""  # no value: one spelling, an empty cell
    assert [float(r["lambda_reg"]) for r in rows[1:]] == [5.0, 4.75]  # reg_weight 5 decaying to 0 at search epoch 20
    for row in rows[1:]:
        assert 0 <= float(row["e_val_acc"]) <= 100 and float(row["joint_kd"]) > 0
        assert float(row["time_s"]) > 0 and 0 < float(row["alpha_entropy"]) <= math.log(8) + 1e-6


def test_checkpoints_keep_the_newest_two_and_hold_the_final_alpha(run):
    folders = sorted((run.run_dir / "checkpoints").iterdir())
    assert [p.name for p in folders] == ["epoch-0002", "epoch-0003"]
    assert all((p / "manifest.json").is_file() for p in folders)
    tensors = load_file(folders[-1] / "tensors.safetensors")
    last = read_jsonl(run.run_dir / "genotypes.jsonl")[-1]["alpha"]
    for cell in ("normal", "reduce"):
        softmax = torch.softmax(tensors[f"search.alphas_{cell}"], dim=-1)
        torch.testing.assert_close(softmax, torch.tensor(last[cell]), rtol=0, atol=1e-6)


def test_path_config_gives_the_same_run_as_the_dict(run, tmp_path, tiny_config):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(keep_checkpoints=1)))
    again = search(config, output=tmp_path / "run")
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["epoch-0003"]
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["keep_checkpoints"] == 1
    assert again.genotype == run.genotype
    assert [h["alpha"] for h in again.history] == [h["alpha"] for h in run.history]


def test_resuming_a_finished_run_changes_nothing(run, tiny_config):
    metrics = (run.run_dir / "metrics.csv").read_bytes()
    again = search(tiny_config(), output=run.run_dir, resume=True)
    assert again.genotype == run.genotype and len(again.history) == EPOCHS
    assert (run.run_dir / "metrics.csv").read_bytes() == metrics


def test_overrides_apply_before_validation(tmp_path, tiny_config):
    with pytest.raises(Exception, match="strategy.epochs"):
        search(tiny_config(), overrides=["strategy.epochs=three"], output=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_resolve_run_dir_refuses_a_folder_holding_another_run(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch\n0\n")
    with pytest.raises(FileExistsError, match="--resume"):
        resolve_run_dir(tmp_path, "x", resume=False)
    assert resolve_run_dir(tmp_path, "x", resume=True) == tmp_path
    assert resolve_run_dir(tmp_path / "new", "x", resume=False) == tmp_path / "new"
    assert not (tmp_path / "new").exists()
    with pytest.raises(ValueError, match="--output"):
        resolve_run_dir(None, "x", resume=True)


def test_a_bad_dataset_folder_creates_no_run_folder(tmp_path, tiny_config):
    with pytest.raises(FileNotFoundError, match="nonexistent"):
        search(tiny_config(data={"type": "imagefolder", "root": "/nonexistent"}), output=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_diagnostics_count_parameter_free_ops_and_entropy():
    genotype = load_genotype({"normal": [["skip_connect", 0], ["max_pool_3x3", 1]] * 4, "normal_concat": [2, 3, 4, 5],
                              "reduce": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]] * 4, "reduce_concat": [2, 3, 4, 5]})
    uniform = {"normal": torch.zeros(14, 8), "reduce": torch.zeros(14, 8)}
    result = diagnostics(genotype, uniform)
    assert result["param_free_ops"] == 8.0 and result["skip_connects"] == 4.0 and result["collapse"] == 0.0
    assert result["alpha_entropy"] == pytest.approx(math.log(8))


def test_collapse_means_mostly_skip_connections_in_the_normal_cell():
    skips = load_genotype({"normal": [["skip_connect", 0], ["skip_connect", 1]] * 2 + [["sep_conv_3x3", 0]] * 3
                           + [["skip_connect", 2]], "normal_concat": [2, 3, 4, 5],
                           "reduce": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]] * 4, "reduce_concat": [2, 3, 4, 5]})
    uniform = {"normal": torch.zeros(14, 8), "reduce": torch.zeros(14, 8)}
    assert diagnostics(skips, uniform)["collapse"] == 1.0
    pools = load_genotype("|avg_pool_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
    assert diagnostics(pools, {"cell": torch.zeros(6, 5)})["collapse"] == 0.0


DRIVER = """
import json, os, sys
from accelerate import PartialState
from cdarts.engine import search
from cdarts.strategies.cdarts import CyclicSearch

trace = []


def recording(step):
    def run(self, *args, **kwargs):
        out = step(self, *args, **kwargs)
        alphas = {name: a.tolist() for name, a in self.alphas().items()}
        trace.append({"step": step.__name__, "alpha": alphas, "genotype": self.genotype().to_json()})
        return out
    return run


CyclicSearch.joint_step = recording(CyclicSearch.joint_step)
CyclicSearch.weight_step = recording(CyclicSearch.weight_step)
result = search(sys.argv[1], output=sys.argv[2])
rank = int(os.environ["RANK"])
record = {"world_size": PartialState().num_processes, "alpha": result.history[-1]["alpha"],
          "genotype": result.genotype.to_json(), "trace": trace}
with open(os.path.join(sys.argv[3], f"alpha_rank{rank}.json"), "w") as handle:
    json.dump(record, handle)
"""


def test_two_processes_search_as_one_and_keep_alpha_identical(tmp_path, tiny_config):
    result = launch_two_processes(DRIVER, tiny_config(), tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"alpha_rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2], "each process ran alone instead of in one process group"
    assert ranks[0]["alpha"] == ranks[1]["alpha"]
    assert ranks[0]["genotype"] == ranks[1]["genotype"]
    steps = [entry["step"] for entry in ranks[0]["trace"]]
    assert "joint_step" in steps and "weight_step" in steps
    assert ranks[0]["trace"] == ranks[1]["trace"], "alpha or genotype differ between ranks after some step"
    assert result.stdout.count("final genotype:") == 1, "only the main process logs"
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == list(range(1, EPOCHS + 1))


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_peak_memory_reset_forgets_an_earlier_larger_peak():
    from cdarts.timing import peak_memory, reset_peak_memory

    cpu = torch.device("cpu")
    big = torch.ones(512 * 2**20, dtype=torch.uint8)  # above glibc's mmap threshold: freed back to the system
    assert peak_memory(cpu) >= big.numel()
    del big
    reset_peak_memory(cpu)
    before = peak_memory(cpu)
    small = torch.ones(128 * 2**20, dtype=torch.uint8)
    grown = peak_memory(cpu) - before
    assert small.numel() * 0.9 <= grown < 256 * 2**20


def test_bf16_autocast_runs_the_cycle_with_float32_architecture_parameters(tiny_config):
    from tqdm.auto import tqdm

    from cdarts.engine import setup_search
    from cdarts.runs import make_accelerator

    cfg = load_config(tiny_config(mixed_precision="bf16"), search_config)
    ctx, strategy = setup_search(cfg, make_accelerator("bf16", True, cfg["dist_timeout_s"]))
    ctx.progress = lambda batches, desc, total=None: tqdm(batches, disable=True)
    ctx.max_steps = 1
    before = [alpha.detach().clone() for alpha in strategy.search_net.arch_parameters()]
    metrics = strategy.run_epoch(strategy.pretrain_epochs)
    assert math.isfinite(metrics["joint_loss"])
    for old, alpha in zip(before, strategy.search_net.arch_parameters(), strict=True):
        assert alpha.dtype == torch.float32
        assert not torch.equal(old, alpha.detach())
    x = torch.randn(2, 3, 8, 8)
    with ctx.runtime.autocast():
        assert strategy.search_net(x).dtype == torch.bfloat16
        assert strategy.eval_net(x).dtype == torch.bfloat16


PRESETS = Path(__file__).resolve().parents[1] / "configs"
SEARCH_PRESETS = sorted(p.name for p in PRESETS.glob("*.yaml") if "strategy" in yaml.safe_load(p.read_text()))


def documented_switch(preset: str, marker: str) -> list[str]:
    """The ``--set`` overrides that a preset's comments give for a switch: on the first comment line from the one
    naming ``marker`` that holds any."""
    lines = [line for line in (PRESETS / preset).read_text().splitlines() if line.startswith("#")]
    start = next((i for i, line in enumerate(lines) if marker in line), None)
    assert start is not None, f"{preset} documents no {marker!r} switch"
    return re.findall(r"--set (\S+)", next(line for line in lines[start:] if "--set" in line))


PAPER_BETAS = {"cdarts": [0.5, 0.99], "darts": [0.5, 0.999], "gdas": [0.5, 0.999], "setn": [0.5, 0.999],
               "rsps": None, "enas": None}
"""Alpha's Adam betas: CDARTS and DARTS Appendix A, the NAS-Bench-201 authors' GDAS and SETN; RSPS and ENAS have
no alpha."""


@pytest.mark.parametrize("preset", SEARCH_PRESETS)
def test_search_presets_use_the_papers_alpha_betas(preset):
    cfg = load_config(PRESETS / preset, search_config)
    betas = PAPER_BETAS[cfg["strategy"]["type"]]
    assert cfg["strategy"].get("alpha_optimizer", {}).get("betas") == betas


def test_clip_scope_defaults_to_one_global_norm_and_reaches_the_runtime(tiny_config):
    from cdarts.engine import make_runtime

    accelerator = SimpleNamespace(device=torch.device("cpu"), num_processes=1, print=print)
    cfg = load_config(tiny_config(), search_config)
    assert make_runtime(accelerator, cfg).clip_scope == "global"
    runtime = make_runtime(accelerator, load_config(tiny_config(clip_scope="per_optimizer", grad_clip=2.5),
                                                    search_config))
    assert (runtime.clip_scope, runtime.grad_clip) == ("per_optimizer", 2.5)
    with pytest.raises(ConfigError, match="clip_scope: invalid value 'both'; valid choices: 'global', 'per_optimizer'"):
        load_config(tiny_config(clip_scope="both"), search_config)


def test_imagenet_preset_is_fp32_with_the_public_hue_and_a_documented_bf16_switch():
    cfg = load_config(PRESETS / "imagenet.yaml", search_config)
    assert cfg["mixed_precision"] == "no"
    assert (cfg["data"]["color_jitter"], cfg["data"]["hue"]) == (True, 0.2)
    switch = documented_switch("imagenet.yaml", "bf16")
    assert load_config(PRESETS / "imagenet.yaml", search_config, switch)["mixed_precision"] == "bf16"


def test_imagenet_preset_switches_to_the_public_runs_kd_scale():
    """Eq. 7 (batch-mean KL, lambda 4) by default; the documented switch gives the public ImageNet run's element-mean
    KL with lambda 1, i.e. 1 / (4 * num_classes) of it on 1000 classes."""
    from cdarts.config import build

    generator = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(2, 8, 1000, generator=generator)

    def weighted_kd(overrides: list[str]) -> float:
        strategy = load_config(PRESETS / "imagenet.yaml", search_config, overrides)["strategy"]
        return strategy["distill_weight"] * float(build("losses", strategy["distill"]["kd"])(student, teacher))

    switch = documented_switch("imagenet.yaml", "KD scale")
    batchmean = float(build("losses", {"type": "kd_kl", "temperature": 2.0})(student, teacher))
    assert weighted_kd([]) == pytest.approx(4.0 * batchmean, rel=1e-6)
    assert weighted_kd(switch) == pytest.approx(1.0 * batchmean / 1000, rel=1e-6)


def test_search_on_imagenet_measures_val_accuracy_and_bn_on_unaugmented_images(tmp_path, tiny_config):
    from PIL import Image

    from cdarts.engine import setup_search
    from cdarts.runs import make_accelerator

    for split, count in (("train", 10), ("val", 2)):
        for label in range(2):
            folder = tmp_path / split / f"n0{label}"
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (20, 20), (100 * label + 20, 7 * i + 30, 50)).save(folder / f"{i}.png")
    data = {"type": "imagenet", "root": str(tmp_path), "image_size": 16, "train_fraction_per_class": 0.5,
            "val_fraction_per_class": 0.3}
    cfg = load_config(tiny_config(data=data, batch_size=2), search_config)
    ctx, _ = setup_search(cfg, make_accelerator("no", True, cfg["dist_timeout_s"]))
    plain, plain_again, augmented, augmented_again = [torch.cat([x for x, _ in ctx.loader(split, epoch, 0)])
                                                      for split in ("val_eval", "val") for epoch in (0, 1)]
    assert len(plain) == 6 and torch.equal(plain, plain_again), "val_eval: the same unaugmented images every epoch"
    assert not torch.equal(augmented, augmented_again)


UNEVEN_DRIVER = """
import json, os, sys
import torch
import torch.nn.functional as F
from accelerate import PartialState
from torch.utils.data import Subset
from cdarts.data import DatasetSplits, InMemoryImages
from cdarts.engine import search
from cdarts.registry import datasets
from cdarts.strategies.base import SearchStrategy


@datasets.register("one_image")
def one_image(*, augment: bool = True) -> DatasetSplits:
    image = torch.linspace(-1, 1, 3 * 64).reshape(1, 3, 8, 8)
    padded = F.pad(image, (1, 1, 1, 1)).expand(530, 3, 10, 10).contiguous()
    labels = torch.arange(530) % 2
    return DatasetSplits(Subset(InMemoryImages(padded, labels, 1, augment), range(510)),
                         Subset(InMemoryImages(padded, labels, 1, False), range(510, 530)), 2, 3, 8, (0.0,) * 3,
                         (1.0,) * 3, ["a", "b"])


rank = int(os.environ["RANK"])
record = {"first_train_batches": []}
batches = SearchStrategy.batches


def dump():
    with open(os.path.join(sys.argv[3], f"rank{rank}.json"), "w") as handle:
        json.dump(record, handle)


def recording(self, split, epoch, repeat=0):
    for index, (x, y) in enumerate(batches(self, split, epoch, repeat)):
        if split == "train" and index == 0:
            record["first_train_batches"].append(x[:8].tolist())
            dump()
        yield x, y


SearchStrategy.batches = recording
result = search(sys.argv[1], output=sys.argv[2])
record.update(world_size=PartialState().num_processes, alpha=result.history[-1]["alpha"])
dump()
"""


@pytest.fixture(scope="module")
def uneven_two_process_run(tmp_path_factory, tiny_config):
    """Two gloo processes search 510 copies of one image, split 255/255: 128 + 127 images per half at batch 64."""
    folder = tmp_path_factory.mktemp("uneven")
    config = tiny_config(data={"type": "one_image"}, batch_size=64, dist_timeout_s=30, strategy={"epochs": 1})
    result = launch_two_processes(UNEVEN_DRIVER, config, folder, timeout=240)
    ranks = [json.loads(path.read_text()) if path.is_file() else {} for path in (folder / "rank0.json",
                                                                                 folder / "rank1.json")]
    return result, ranks, folder / "run"


def test_two_processes_finish_a_search_whose_split_gives_the_ranks_unequal_shards(uneven_two_process_run):
    result, ranks, run_dir = uneven_two_process_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["alpha"] == ranks[1]["alpha"], "the networks started equal and stayed in step"
    with open(run_dir / "metrics.csv", newline="") as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == [1, 2]


def test_two_processes_crop_their_images_differently(uneven_two_process_run):
    _, ranks, _ = uneven_two_process_run
    draws = [torch.tensor(r["first_train_batches"][0]) for r in ranks]
    assert draws[0].shape == draws[1].shape == (8, 3, 8, 8)
    assert not torch.equal(draws[0], draws[1]), "the same image got the same crops on both ranks"
