"""The NAS-Bench-201 proxy: does distillation stay on without the search collapsing to skip-connects?

A small NAS-Bench-201 search on real CIFAR-10 images (a JPEG ImageFolder of CIFAR-10, e.g. 12k images; 5k/5k search
split, 32 px, channels 8, one cell per stage, 10 epochs, the paper's NB201 recipe otherwise): 15-30 minutes per run
on 2 CPU cores. Each distillation setting runs for each seed in its own process (``--jobs`` at a time, one thread
each); then a table per setting gives, per epoch, the skip-connects and parameter-free edges of the derived cell, the
alpha entropy and the KD term, and the final cell with S's and E's accuracy on the held-out test images.

    .venv/bin/python benchmarks/nb201_proxy.py --data PATH/TO/cifar10-jpeg --seeds 0,1 --jobs 2
    .venv/bin/python benchmarks/nb201_proxy.py --summarize runs/nb201-proxy     # print the tables again

Finished runs are skipped and interrupted ones resumed, so the command can simply be run again.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PRESET = ROOT / "configs" / "nb201-cifar10.yaml"
PROXY = ["space.channels=8", "space.cells_per_stage=1", "threads=1", "num_workers=0"]
"""The proxy's sizes on top of the NAS-Bench-201 preset (whose recipe, distillation included, it keeps)."""
NORMALISE = "image_size: 32, mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616]"

SETTINGS = {
    "default": [],
    "paper": ["strategy.distill.weighting=uniform"],
    "public": ["strategy.distill.combine=concat", "strategy.distill.kd={type: kd_smooth_l1, temperature: 2.0}"],
}
"""Each setting's changes to the preset's distillation: the preset's own, Eq. 7's uniform level weights, and the
public code's concatenated levels with SmoothL1 (see the README's proxy table)."""


def proxy_overrides(data: Path) -> list[str]:
    """The proxy's ``--set`` overrides: its sizes and the ImageFolder at ``data`` (train/ and test/ class folders)."""
    return [*PROXY, f"data={{type: imagefolder, root: {json.dumps(str(data.resolve()))}, {NORMALISE}}}"]


def run_one(output: Path, seed: int, overrides: list[str]) -> int:
    if (output / "genotype.json").exists():
        return 0
    command = [sys.executable, "-m", "cdarts.cli.search", "--config", str(PRESET), "--output", str(output),
               "--set", f"seed={seed}", *(arg for o in overrides for arg in ("--set", o))]
    if (output / "config.yaml").exists():
        command.append("--resume")
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output.parent / f"{output.name}.log", "w") as log:
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT).returncode


def epoch_cells(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return [row for row in csv.DictReader(f) if row.get("phase") != "pretrain"]


def number(text: str | None, digits: int) -> str:
    value = float(text) if text not in (None, "") else math.nan
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def table(study: Path) -> str:
    lines = []
    for setting in sorted(p for p in study.iterdir() if p.is_dir()):
        lines += [f"\n### {setting.name}\n",
                  "| seed | per epoch: skip-connects (param-free edges) | alpha entropy per epoch "
                  "| KD term per epoch | final cell | S / E test acc |", "|---|---|---|---|---|---|"]
        for run in sorted(setting.glob("seed-*")):
            if not (run / "metrics.csv").exists():
                continue
            rows = epoch_cells(run)
            skips = " ".join(f"{r['skip_connects']}({r['param_free_ops']})" for r in rows)
            kd = " ".join(number(r.get("joint_kd"), 3) for r in rows)
            entropy = " ".join(number(r["alpha_entropy"], 4) for r in rows)
            final = json.loads((run / "genotype.json").read_text())["arch"] if (run / "genotype.json").exists() else "-"
            final = final.replace("|", "\\|")  # a pipe inside a markdown table cell, even in code, must be escaped
            last = rows[-1]
            accuracy = f"{number(last['s_test_acc'], 1)} / {number(last['e_test_acc'], 1)}"
            lines.append(f"| {run.name[5:]} | {skips} | {entropy} | {kd} | `{final}` | {accuracy} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", help="an ImageFolder of CIFAR-10 images (train/ and test/ class folders)")
    p.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, of {', '.join(SETTINGS)}")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--output", default="runs/nb201-proxy")
    p.add_argument("--summarize", metavar="STUDY", help="only print the tables of a finished study folder")
    args = p.parse_args()
    if args.summarize:
        print(table(Path(args.summarize)))
        return 0
    if args.data is None or not Path(args.data).is_dir():
        p.error(f"--data: expected an ImageFolder of CIFAR-10 images (train/ and test/ class folders), got {args.data}")
    data = Path(args.data)
    unknown = sorted(set(args.settings.split(",")) - set(SETTINGS))
    if unknown:
        p.error(f"unknown settings {unknown}; available: {', '.join(SETTINGS)}")
    study = Path(args.output).resolve()
    study.mkdir(parents=True, exist_ok=True)
    sizes = [*proxy_overrides(data), f"strategy.epochs={args.epochs}"]
    jobs = [(study / setting / f"seed-{seed}", int(seed), [*sizes, *SETTINGS[setting]])
            for setting in args.settings.split(",") for seed in args.seeds.split(",")]
    with ThreadPoolExecutor(args.jobs) as pool:
        codes = list(pool.map(lambda job: run_one(*job), jobs))
    failed = [str(job[0]) for job, code in zip(jobs, codes, strict=True) if code]
    print(table(study))
    if failed:
        print(f"failed (see the .log next to each): {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
