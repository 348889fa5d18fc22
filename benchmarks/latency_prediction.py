"""How well does a ``cdarts-profile`` latency table predict the latency of a whole network?

Profiles the DARTS space's ops for the CIFAR network ``cdarts_cifar`` at the given width, depth and image size (one
table per batch size, kept in ``--output`` and resumed when run again), then, for each genotype, compares the
table's prediction with the measured latency of the ``cdarts_cifar`` timm model built from it, timed the same way
(``cdarts.costs.latency.time_ms``: warm-up calls, then the median or the fastest call). The models are timed in
turns, round after round (A B C ... A B C ...), and each keeps its best round: a model's time on a CPU depends on
what ran just before it (by up to 50% at batch 1), which the turns spread over all of them. Prints a markdown table with
the error of each prediction and the mean absolute error per batch size. The table times ops one at a time; the
model runs a cell's edges through its grouped fast path, which the table does not model.

    .venv/bin/python benchmarks/latency_prediction.py --batch-sizes 1,64 --statistic min
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from cdarts.cli.common import positive, seconds

ROOT = Path(__file__).resolve().parents[1]
GENOTYPES = "CDARTS_CIFAR,DARTS_V1,DARTS_V2,PDARTS,PC_DARTS_CIFAR"
NUM_CLASSES = 10


def batch_sizes(text: str) -> list[int]:
    """``1,64``: positive batch sizes."""
    return [positive(size) for size in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genotypes", default=GENOTYPES, help="comma-separated registered DARTS-space genotypes")
    parser.add_argument("--batch-sizes", type=batch_sizes, default=[1, 64], help="comma-separated, e.g. 1,64")
    parser.add_argument("--channels", type=positive, default=8)
    parser.add_argument("--layers", type=positive, default=5)
    parser.add_argument("--input-size", type=positive, default=16)
    parser.add_argument("--threads", type=positive, default=1)
    parser.add_argument("--statistic", choices=["median", "min"], default="min")
    parser.add_argument("--min-time", type=seconds, default=0.5, help="seconds of timed calls per op and per network")
    parser.add_argument("--rounds", type=positive, default=3, help="turns of timing every model")
    parser.add_argument("--output", type=Path, default=ROOT / "runs" / "latency-prediction", help="the tables")
    args = parser.parse_args(argv)
    import timm
    import torch

    from cdarts.config import build
    from cdarts.costs.latency import genotype_latency, profile, time_ms
    from cdarts.costs.network import CostNetwork
    from cdarts.errors import UserInputError
    from cdarts.models.darts import resolve_genotype
    from cdarts.registry import RegistryError

    names = args.genotypes.split(",")
    try:
        genotypes = {name: resolve_genotype(name) for name in names}
    except (UserInputError, RegistryError) as exc:
        parser.error(f"--genotypes: {exc}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    space_config = {"type": "darts", "channels": args.channels, "layers": args.layers, "stem": "cifar"}
    shape = (3, args.input_size, args.input_size)
    space = build("spaces", space_config, NUM_CLASSES, 3)
    network = CostNetwork(space, shape, args.channels, args.layers)
    args.output.mkdir(parents=True, exist_ok=True)
    print("| genotype | batch | predicted ms | measured ms | error |\n|---|---|---|---|---|")
    for batch in args.batch_sizes:
        table = args.output / f"cpu-{args.threads}t-batch{batch}-{args.statistic}.json"
        profile(network, table, batch_size=batch, threads=args.threads, min_time=args.min_time,
                statistic=args.statistic, space_config=space_config)
        models = {name: timm.create_model("cdarts_cifar", genotype=name, channels=args.channels, layers=args.layers,
                                          num_classes=NUM_CLASSES).eval() for name in names}
        x = torch.randn(batch, *shape)
        rounds: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(args.rounds):
            for name in names:
                rounds[name].append(time_ms(models[name], x, 5, args.min_time, args.threads, args.statistic))
        measured = {name: min(times) for name, times in rounds.items()}
        errors = []
        for name in names:
            predicted, _ = genotype_latency(table, genotypes[name], args.channels, args.layers, shape,
                                            NUM_CLASSES, stem="cifar")
            errors.append(predicted / measured[name] - 1)
            print(f"| {name} | {batch} | {predicted:.2f} | {measured[name]:.2f} | {errors[-1]:+.0%} |")
        print(f"| mean absolute error | {batch} | | | {statistics.mean(abs(e) for e in errors):.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
