"""Search speed against the textbook DARTS supernet, measured in one run.

Runs, alternating A B A B so that drift in machine load cancels: the textbook DARTS supernet (``textbook_darts.py``
beside this script, written from the DARTS paper: every op of every edge one module at a time) and our supernet's
training step at the same settings; one CDARTS joint step (step A + step B, via ``cdarts.engine.dry_run``); and one
CDARTS search epoch against one first-order DARTS epoch on the same data and network sizes (at the config's S_E, E's
epochs per cycle, and also at the paper's CIFAR S_E = 1 where the config differs). Every measurement runs in its own
process, so peak memory is per measurement. Prints markdown tables (the README's); ``--json FILE`` keeps the raw
measurements, ``--from-json FILE`` prints their tables again.

    python benchmarks/bench_search.py --preset demo
    python benchmarks/bench_search.py --preset cifar --rounds 2 --data PATH/TO/cifar10-jpeg
    python benchmarks/bench_search.py --preset cifar-gpu          # batch 64 and 256, fp32 and bf16, on cuda

Memory: on a GPU, peak allocated tensor memory. On the CPU, peak resident memory of the process (what the textbook
script reports), and the working set: that peak minus the process's memory after its imports (ours imports timm
and torchvision with cdarts, about 200 MiB more than torch alone).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TEXTBOOK = Path(__file__).resolve().parent / "textbook_darts.py"
MIB = 2**20
E_GENOTYPE = "CDARTS_CIFAR"
"""The genotype E trains on in the epoch comparison: the paper's CIFAR result, what a search converges to."""

PRESETS: dict[str, dict[str, Any]] = {
    # configs/demo.yaml: digits at 8 px, S 3 cells, E 5 cells, C 4, batch 64, one thread (the config's: at these
    # sizes oneDNN's per-call cost dominates and one thread beats two); the textbook also runs at its default.
    "demo": {"config": "configs/demo.yaml", "batch": 64, "size": 8, "channels": 4, "layers": 3, "eval_layers": 5,
             "steps": 10, "threads": 1, "epoch_steps": None, "runs": [("cpu", "fp32", 64)]},
    # The paper's CIFAR-10 search sizes (configs/cifar10.yaml), a few steps; both at torch's default threads.
    "cifar": {"config": "configs/cifar10.yaml", "batch": 64, "size": 32, "channels": 16, "layers": 8,
              "eval_layers": 20, "steps": 2, "threads": None, "epoch_steps": 2, "runs": [("cpu", "fp32", 64)]},
    "cifar-gpu": {"config": "configs/cifar10.yaml", "batch": 64, "size": 32, "channels": 16, "layers": 8,
                  "eval_layers": 20, "steps": 10, "threads": None, "epoch_steps": 20,
                  "runs": [("cuda", p, b) for b in (64, 256) for p in ("fp32", "bf16")]},
}


# --- workers: each runs in its own process and prints one JSON line ---------------------------------------------


def rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def search_config(
    preset: dict[str, Any], device: str, precision: str, batch: int, strategy: str, eval_epochs: int | None = None
) -> dict:
    """The preset's search config at the run's settings (``eval_epochs``: CDARTS' S_E, if not the config's); CIFAR
    data from the preset's ``data`` ImageFolder (``--data``), or random tensors of CIFAR's shape without one."""
    from cdarts.config import read_yaml

    cfg = read_yaml(ROOT / preset["config"])
    cfg.update(batch_size=batch, num_workers=0, threads=preset["threads"], cpu=device == "cpu",
               mixed_precision="bf16" if precision == "bf16" else "no", plots=False)
    cfg["space"] = {**cfg["space"], "channels": preset["channels"], "layers": preset["layers"],
                    "eval_layers": preset["eval_layers"]}
    if cfg["data"]["type"] in ("cifar10", "cifar100"):
        if preset.get("data"):
            cfg["data"] = {"type": "imagefolder", "root": preset["data"], "image_size": preset["size"]}
        else:
            cfg["data"] = {"type": "bench_random", "image_size": preset["size"]}
    if strategy == "darts":
        cfg["strategy"] = {"type": "darts", "epochs": 1, "pretrain_epochs": 0}
        cfg.pop("discretizer", None)
    elif eval_epochs is not None:
        cfg["strategy"] = {**cfg["strategy"], "eval_epochs": eval_epochs}
    return cfg


def config_eval_epochs(preset: dict[str, Any]) -> int:
    """The config's S_E. Read without importing torch: a child process's peak resident memory starts at its parent's
    (Linux carries the high-water mark over fork and exec), so the driver must stay small."""
    import yaml

    return yaml.safe_load((ROOT / preset["config"]).read_text())["strategy"].get("eval_epochs", 1)


def register_random_data() -> None:
    """``bench_random``: CIFAR-shaped random tensors, when no ``--data`` folder is given."""
    import torch
    from torch.utils.data import TensorDataset

    from cdarts.data import DatasetSplits
    from cdarts.registry import datasets

    if "bench_random" in datasets.names():
        return

    @datasets.register("bench_random")
    def bench_random(*, image_size: int = 32, images: int = 2048) -> DatasetSplits:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(images, 3, image_size, image_size, generator=generator)
        y = torch.randint(0, 10, (images,), generator=generator)
        data = TensorDataset(x, y)
        return DatasetSplits(data, data, 10, 3, image_size, (0.0,) * 3, (1.0,) * 3, [str(i) for i in range(10)])


def worker_supernet(task: dict[str, Any]) -> dict[str, Any]:
    """Our supernet's training step, in the textbook script's loop (2 warm-up steps, then ``steps`` timed), with our
    SGD (timm's, at the textbook's settings)."""
    import torch
    import torch.nn.functional as F

    from cdarts.config import build

    if task["threads"]:
        torch.set_num_threads(task["threads"])
    device = torch.device(task["device"])
    base = rss_bytes()
    torch.manual_seed(0)
    spec = {"type": "darts", "channels": task["channels"], "layers": task["layers"], **task.get("options", {})}
    space = build("spaces", spec, 10, 3)
    net = space.supernet().to(device)
    opt = build("optimizers", {"type": "sgd", "lr": 0.025, "momentum": 0.9, "weight_decay": 0.0},
                net.weight_parameters())
    x = torch.randn(task["batch"], 3, task["size"], task["size"], device=device)
    y = torch.randint(0, 10, (task["batch"],), device=device)
    bf16 = task["precision"] == "bf16"

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    for _ in range(task["steps"]):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - began
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else rss_bytes()
    return {"images_per_s": task["batch"] * task["steps"] / elapsed, "step_s": elapsed / task["steps"],
            "peak_bytes": peak, "base_bytes": base, "threads": torch.get_num_threads()}


def worker_joint(task: dict[str, Any]) -> dict[str, Any]:
    """Step A, step B, one E step and ``select``, timed by ``cdarts.engine.dry_run`` on the preset's config."""
    from cdarts.engine import dry_run

    register_random_data()
    base = rss_bytes()
    result = dry_run(search_config(task["preset"], task["device"], task["precision"], task["batch"], "cdarts"))
    return {**result, "base_bytes": base}


def worker_epoch(task: dict[str, Any]) -> dict[str, Any]:
    """One search epoch of the given strategy (after a one-step warm-up epoch), with the time spent training E alone
    and in the alpha (or joint) steps. E runs ``E_GENOTYPE``: its cost depends on the genotype (pools against
    convs: ~2x at the demo's sizes), and the genotype that one step's alpha picks is a matter of chance."""
    import torch
    from accelerate.utils import set_seed

    from cdarts.config import load_config
    from cdarts.engine import search_config as schema
    from cdarts.engine import setup_search
    from cdarts.genotypes import load_genotype
    from cdarts.runs import make_accelerator

    register_random_data()
    preset = task["preset"]
    cfg = load_config(search_config(preset, task["device"], task["precision"], task["batch"], task["strategy"],
                                    task.get("eval_epochs")), schema)
    accelerator = make_accelerator(cfg["mixed_precision"], cfg["cpu"])
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    set_seed(cfg["seed"])
    ctx, strategy = setup_search(cfg, accelerator)
    from tqdm.auto import tqdm

    ctx.progress = lambda batches, desc, total=None: tqdm(batches, disable=True)
    if hasattr(strategy, "eval_net"):
        fixed = load_genotype(E_GENOTYPE)
        strategy.genotype = lambda: fixed
    spent = {"eval_epoch": 0.0, "joint_step": 0.0, "alpha_step": 0.0}
    for name in spent:
        if hasattr(strategy, name):
            setattr(strategy, name, timed(getattr(strategy, name), spent, name, accelerator.device))
    ctx.max_steps = 1
    strategy.run_epoch(strategy.pretrain_epochs)
    ctx.max_steps = preset["epoch_steps"]
    spent.update(dict.fromkeys(spent, 0.0))
    sync(accelerator.device)
    began = time.perf_counter()
    strategy.run_epoch(strategy.pretrain_epochs)
    sync(accelerator.device)
    return {"epoch_s": time.perf_counter() - began, "steps": strategy.steps("train"), "e_alone_s": spent["eval_epoch"],
            "step_a_total_s": spent["joint_step"] + spent["alpha_step"],
            "eval_epochs": getattr(strategy, "eval_epochs", 0),
            "genotype": str(strategy.eval_net.genotype) if hasattr(strategy, "eval_net") else None}


def sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Any, spent: dict[str, float], name: str, device: Any) -> Any:
    def run(*args: Any, **kwargs: Any) -> Any:
        sync(device)
        began = time.perf_counter()
        out = fn(*args, **kwargs)
        sync(device)
        spent[name] += time.perf_counter() - began
        return out

    return run


def worker_import_baseline(task: dict[str, Any]) -> dict[str, Any]:
    """Resident memory after importing what the textbook script imports."""
    import torch  # noqa: F401
    import torch.nn  # noqa: F401
    import torch.nn.functional  # noqa: F401

    return {"base_bytes": rss_bytes()}


WORKERS = {"supernet": worker_supernet, "joint": worker_joint, "epoch": worker_epoch,
           "import_baseline": worker_import_baseline}


# --- the driver ---------------------------------------------------------------------------------------------------


def run_json(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})})
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def run_worker(kind: str, task: dict[str, Any]) -> dict[str, Any]:
    return run_json([sys.executable, __file__, "--worker", kind, json.dumps(task)],
                    env={"PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"})


def run_textbook(preset: dict[str, Any], device: str, precision: str, batch: int, threads: int | None):
    command = [sys.executable, str(TEXTBOOK), "--batch", str(batch), "--size", str(preset["size"]),
               "--channels", str(preset["channels"]), "--layers", str(preset["layers"]),
               "--steps", str(preset["steps"]), "--device", device]
    if precision == "bf16":
        command.append("--bf16")
    return run_json(command, env={"OMP_NUM_THREADS": str(threads)} if threads else None)


def measure(name: str, preset: dict[str, Any], device: str, precision: str, batch: int, rounds: int,
            epochs: bool) -> dict[str, Any]:
    """All measurements of one setting, alternating implementations within each round."""
    task = {"preset": preset, "device": device, "precision": precision, "batch": batch, "steps": preset["steps"],
            "size": preset["size"], "channels": preset["channels"], "layers": preset["layers"],
            "threads": preset["threads"]}
    samples: dict[str, list[dict[str, Any]]] = {}
    plan = [("textbook", lambda: run_textbook(preset, device, precision, batch, None)),
            ("ours", lambda: run_worker("supernet", task)),
            ("ours_checkpointed", lambda: run_worker("supernet", {**task, "options": {"checkpoint_cells": True}})),
            ("joint", lambda: run_worker("joint", task))]
    if device == "cpu" and preset["threads"]:
        plan.insert(1, ("textbook_same_threads", lambda: run_textbook(preset, device, precision, batch,
                                                                      preset["threads"])))
    if epochs:
        plan += [("epoch_cdarts", lambda: run_worker("epoch", {**task, "strategy": "cdarts"})),
                 ("epoch_darts", lambda: run_worker("epoch", {**task, "strategy": "darts"}))]
        if config_eval_epochs(preset) != 1:
            plan.append(("epoch_cdarts_se1",
                         lambda: run_worker("epoch", {**task, "strategy": "cdarts", "eval_epochs": 1})))
    for round_index in range(rounds):
        for key, run in plan:
            began = time.perf_counter()
            samples.setdefault(key, []).append(run())
            print(f"  [{name} {device} {precision} b{batch}] round {round_index + 1}/{rounds} {key}: "
                  f"{time.perf_counter() - began:.0f}s", file=sys.stderr, flush=True)
    baseline = run_worker("import_baseline", task)["base_bytes"] if device == "cpu" else 0
    return {"preset": name, "device": device, "precision": precision, "batch": batch, "samples": samples,
            "textbook_base_bytes": baseline}


def median(samples: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(s[key]) for s in samples)


def tables(results: list[dict[str, Any]]) -> str:
    """Markdown tables: supernet step, joint step, epochs."""
    step_rows, checkpoint_rows, joint_rows, epoch_rows = [], [], [], []
    for r in results:
        s, cpu = r["samples"], r["device"] == "cpu"
        setting = f"{r['preset']} | {r['device']} | {r['precision']} | {r['batch']}"
        text_step, our_step = median(s["textbook"], "step_s"), median(s["ours"], "step_s")

        def memory(key: str, base: float, s: dict = s, cpu: bool = cpu) -> str:
            peak = median(s[key], "peak_bytes")
            return f"{peak / MIB:.0f} ({(peak - base) / MIB:.0f})" if cpu else f"{peak / MIB:.0f}"

        if "textbook_same_threads" in s:
            t1 = median(s["textbook_same_threads"], "step_s")
            same = f"{r['batch'] / t1:.1f} | {t1 / our_step:.2f}x"
        else:
            same = "- | -"
        step_rows.append(
            f"| {setting} | {s['ours'][0]['threads']} | {r['batch'] / text_step:.1f} | {same} | "
            f"{r['batch'] / our_step:.1f} | **{text_step / our_step:.2f}x** | "
            f"{memory('textbook', r['textbook_base_bytes'])} | {memory('ours', median(s['ours'], 'base_bytes'))} |"
        )
        checkpointed = median(s["ours_checkpointed"], "step_s")
        checkpoint_rows.append(
            f"| {setting} | {r['batch'] / our_step:.1f} | {r['batch'] / checkpointed:.1f} | "
            f"{memory('ours', median(s['ours'], 'base_bytes'))} | "
            f"{memory('ours_checkpointed', median(s['ours_checkpointed'], 'base_bytes'))} |"
        )
        j = s["joint"]
        joint = median(j, "step_a") + median(j, "step_b")
        throughput = " / ".join(f"{r['batch'] / median(j, key):.0f}" for key in ("step_a", "step_b", "e_step"))
        reference = median(s["textbook_same_threads"] if "textbook_same_threads" in s else s["textbook"], "step_s")
        joint_rows.append(
            f"| {setting} | {reference:.3f} | {median(j, 'step_a'):.3f} | {median(j, 'step_b'):.3f} | "
            f"**{joint / reference:.2f}** | {median(j, 'e_step'):.3f} | "
            f"{throughput} | "
            f"{1000 * median(j, 'select'):.2f} | "
            f"{memory('textbook', r['textbook_base_bytes'])} | {memory('joint', median(j, 'base_bytes'))} |"
        )
        for key in ("epoch_cdarts", "epoch_cdarts_se1"):
            if key not in s:
                continue
            c, d = s[key], s["epoch_darts"]
            cd, dd = median(c, "epoch_s"), median(d, "epoch_s")
            e_alone = median(c, "e_alone_s")
            e_in_a = max(median(c, "step_a_total_s") - median(d, "step_a_total_s"), 0.0)
            epoch_rows.append(
                f"| {setting} | {int(c[0]['steps'])} | {int(c[0].get('eval_epochs', 1))} | {cd:.2f} | {dd:.2f} | "
                f"**{cd / dd:.2f}** | {100 * e_alone / cd:.0f}% | {100 * e_in_a / cd:.0f}% |"
            )
    note = "peak MiB (working set)" if any(r["device"] == "cpu" for r in results) else "peak MiB"
    out = [
        "Supernet training step (forward, cross-entropy, backward, SGD):",
        "",
        "| preset | device | precision | batch | threads | textbook img/s | textbook img/s, same threads | "
        f"ratio vs that | ours img/s | **ratio vs textbook** | textbook {note} | ours {note} |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *step_rows,
        "",
        "Gradient checkpointing per cell (``space.checkpoint_cells``; same results, less memory):",
        "",
        f"| preset | device | precision | batch | img/s | img/s, checkpointed | {note} | {note}, checkpointed |",
        "|---|---|---|---|---|---|---|---|",
        *checkpoint_rows,
        "",
        "One CDARTS joint step (step A + step B) against one textbook supernet step (same threads), seconds:",
        "",
        "| preset | device | precision | batch | textbook step | step A | step B | **(A+B) / textbook** | "
        f"E step (incl. its batch) | img/s A / B / E | select ms | textbook {note} | search {note} |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *joint_rows,
    ]
    if epoch_rows:
        out += [
            "",
            "One search epoch, CDARTS against first-order DARTS (same data, sizes, batches), seconds:",
            "",
            "| preset | device | precision | batch | steps | S_E | CDARTS epoch | DARTS epoch | **ratio** | E alone | "
            "E + KD in step A |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            *epoch_rows,
        ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    p.add_argument("--rounds", type=int, default=2, help="A B rounds (medians are reported)")
    p.add_argument("--threads", type=int, help="override the preset's CPU threads")
    p.add_argument("--steps", type=int, help="override the preset's timed steps")
    p.add_argument("--data", help="CIFAR presets: an ImageFolder of CIFAR-10 images (train/<class>/); "
                                  "default: random tensors of CIFAR's shape")
    p.add_argument("--no-epochs", action="store_true", help="skip the CDARTS / DARTS epoch comparison")
    p.add_argument("--json", help="also write the raw measurements here")
    p.add_argument("--from-json", help="print the tables of measurements written earlier with --json, measure nothing")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("task", nargs="?", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(WORKERS[args.worker](json.loads(args.task))))
        return 0
    if args.from_json:
        print(tables(json.loads(Path(args.from_json).read_text())))
        return 0
    preset = dict(PRESETS[args.preset])
    if args.data:
        if not Path(args.data).is_dir():
            p.error(f"--data: expected an ImageFolder of CIFAR-10 images, got {args.data!r} (not a folder)")
        preset["data"] = str(Path(args.data).resolve())
    if args.threads:
        preset["threads"] = args.threads
    if args.steps:
        preset["steps"] = args.steps
    results = [measure(args.preset, preset, device, precision, batch, args.rounds, not args.no_epochs)
               for device, precision, batch in preset["runs"]]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(tables(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
