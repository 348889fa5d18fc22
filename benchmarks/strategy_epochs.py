"""Search time per epoch of every one-shot strategy against first-order DARTS on a NAS-Bench-201 search.

Each strategy's preset (``configs/<name>-nb201.yaml``; first-order ``darts`` and ``cdarts`` from
``configs/nb201-demo.yaml``, DARTS-V2 from ``configs/darts-v2-nb201.yaml``) is set up once, then the strategies run
one search epoch each in turn, round after round (A B C ... A B C ...), so drift in machine load spreads over all
of them. Per strategy: the median seconds of a search epoch (``run_epoch``: training, and for rsps/setn/enas the
candidates' scoring) and of the per-epoch evaluation the engine adds (val/test accuracy with BN re-estimation),
and the search time relative to first-order DARTS. Prints a markdown table; ``--paper`` uses the registered
(paper) candidate counts and controller updates instead of the presets' demo-sized ones.

On the digits demo by default; ``--data`` runs the NAS-Bench-201 proxy of ``benchmarks/nb201_proxy.py`` instead
(a CIFAR-10 ImageFolder, 32 px, channels 8, one cell per stage; ``cdarts`` with the proxy's own preset,
``configs/nb201-cifar10.yaml``), every strategy on the same data, split and batch size.

    .venv/bin/python benchmarks/strategy_epochs.py --rounds 3
    .venv/bin/python benchmarks/strategy_epochs.py --rounds 2 --paper
    .venv/bin/python benchmarks/strategy_epochs.py --rounds 2 --data PATH/TO/cifar10-jpeg
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from cdarts.cli.common import positive

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {
    "darts": ("nb201-demo.yaml", {"type": "darts", "epochs": 10}),
    "darts-v2": ("darts-v2-nb201.yaml", None),
    "cdarts": ("nb201-demo.yaml", None),
    "gdas": ("gdas-nb201.yaml", None),
    "rsps": ("rsps-nb201.yaml", None),
    "setn": ("setn-nb201.yaml", None),
    "enas": ("enas-nb201.yaml", None),
}
"""Strategy -> (preset, the strategy slot that replaces the preset's; None keeps it)."""
DEMO_SIZED = ("candidates", "controller_steps", "aggregate")
"""The presets' keys that scale selection and controller training down to the demo (``--paper`` drops them)."""


PROXY_CDARTS = "nb201-cifar10.yaml"
"""CDARTS's preset on the proxy (its heads and distillation differ from the digits demo's)."""


def setup(name: str, paper: bool, data: Path | None) -> Any:
    from accelerate.utils import set_seed
    from nb201_proxy import proxy_overrides

    from cdarts.config import apply_overrides, load_config, read_yaml
    from cdarts.engine import search_config, setup_search
    from cdarts.progress import no_progress
    from cdarts.runs import make_accelerator

    preset, slot = PRESETS[name]
    if data is not None and name == "cdarts":
        preset = PROXY_CDARTS
    raw = read_yaml(ROOT / "configs" / preset)
    if data is not None:
        raw = apply_overrides(raw, proxy_overrides(data))
    strategy = dict(slot or raw["strategy"])
    if paper:
        strategy = {key: value for key, value in strategy.items() if key not in DEMO_SIZED}
    cfg = load_config({**raw, "strategy": strategy, "plots": False}, search_config)
    set_seed(cfg["seed"])
    ctx, built = setup_search(cfg, make_accelerator("no", True, cfg["dist_timeout_s"]))
    ctx.progress = no_progress
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=positive, default=3, help="epochs per strategy (the first is a warm-up)")
    parser.add_argument("--paper", action="store_true", help="the paper's candidates and controller updates")
    parser.add_argument("--strategies", default=",".join(PRESETS), help="comma-separated, from: " + ", ".join(PRESETS))
    parser.add_argument("--data", type=Path, help="a CIFAR-10 ImageFolder (train/ and test/): the NB201 proxy")
    args = parser.parse_args(argv)
    if args.data is not None and not args.data.is_dir():
        parser.error(f"--data: expected an ImageFolder of CIFAR-10 images (train/ and test/ class folders), "
                     f"got {args.data}")
    unknown = sorted(set(args.strategies.split(",")) - set(PRESETS))
    if unknown:
        parser.error(f"unknown strategies {unknown}; available: {', '.join(PRESETS)}")
    import torch

    torch.set_num_threads(1)
    names = args.strategies.split(",")
    strategies = {name: setup(name, args.paper, args.data) for name in names}
    search: dict[str, list[float]] = {name: [] for name in names}
    evaluation: dict[str, list[float]] = {name: [] for name in names}
    for epoch in range(args.rounds):
        for name, strategy in strategies.items():
            began = time.perf_counter()
            strategy.run_epoch(epoch)
            middle = time.perf_counter()
            strategy.evaluate(epoch)
            strategy.genotype()
            search[name].append(middle - began)
            evaluation[name].append(time.perf_counter() - middle)
            print(f"round {epoch}: {name} search {search[name][-1]:.2f} s, eval {evaluation[name][-1]:.2f} s",
                  file=sys.stderr)
    kept = {name: times[1:] or times for name, times in search.items()}  # the first round warms up
    base = statistics.median(kept["darts"]) if "darts" in kept else None
    print("| strategy | search s/epoch | eval s/epoch | search vs first-order DARTS |")
    print("|---|---|---|---|")
    for name in names:
        median, evaluated = statistics.median(kept[name]), statistics.median(evaluation[name][1:] or evaluation[name])
        ratio = f"{median / base:.2f}x" if base else "-"
        print(f"| {name} | {median:.2f} | {evaluated:.2f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
