"""``cdarts-inspect GENOTYPE``: parameters and MACs of a genotype at the published evaluation sizes, and its cells.

GENOTYPE is a registered name (``DARTS_V2``), a ``genotype.json`` file or run folder, DARTS ``Genotype(...)`` text
or a NAS-Bench-201 arch string. (``cdarts list`` lists the registered components; ``--list`` is its deprecated
spelling here.) The library loads after the arguments parse, so ``--help`` answers at once.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cdarts.cli.common import CommandParser, deprecated, report_user_errors
from cdarts.errors import ConfigError

if TYPE_CHECKING:
    from cdarts.genotypes import Genotype


def canonical_arch(genotype: Genotype) -> str | None:
    """A NAS-Bench-201 cell's canonical arch string (one per class of cells computing the same function)."""
    from cdarts.genotypes import NB201Genotype, canonical_nb201

    return str(canonical_nb201(genotype)) if isinstance(genotype, NB201Genotype) else None


def resolve_genotype(ref: str) -> Genotype:
    """``load_genotype``, saying plainly when a path does not exist or a folder has no genotype.json."""
    from cdarts.genotypes import load_genotype
    from cdarts.registry import genotypes as genotype_registry

    text = ref.strip()
    if genotype_registry.has(text) or text.startswith(("Genotype(", "|", "{")):
        return load_genotype(text)
    path = Path(text)
    if path.is_dir() and not (path / "genotype.json").is_file():
        raise FileNotFoundError(f"folder {ref!r} has no genotype.json")
    if not path.exists() and (path.suffix == ".json" or "/" in text or os.sep in text):
        raise FileNotFoundError(
            f"no such genotype file or run folder: {ref!r}; give a genotype.json, a run folder, genotype text or a "
            f"registered genotype ({', '.join(genotype_registry.names())})"
        )
    return load_genotype(text)


def inspect_genotype(
    ref: str | Genotype,
    preset: str = "cifar10",
    space: str | None = None,
    channels: int | None = None,
    layers: int | None = None,
    input_size: int | None = None,
    num_classes: int | None = None,
    source: str | None = None,
    latency: str | None = None,
) -> dict[str, Any]:
    """Everything ``cdarts-inspect --json`` prints for ``ref`` (a genotype, or anything ``load_genotype`` takes);
    ``source`` names it in messages and the report (default: ``ref`` as given)."""
    from cdarts.registry import unknown_name_message
    from cdarts.stats import SPACES, genotype_space, genotype_stats, resolve_settings

    if space is not None and space not in SPACES:
        raise ConfigError(unknown_name_message("space", space, list(SPACES)))
    genotype = resolve_genotype(ref) if isinstance(ref, str) else ref
    source = source or (ref if isinstance(ref, str) else str(genotype))
    found = genotype_space(genotype)
    if space is not None and space != found:
        raise ConfigError(f"genotype {source!r} belongs to the {found!r} space, not {space!r}")
    settings = resolve_settings(
        found, preset, channels=channels, layers=layers, input_size=input_size, num_classes=num_classes
    )
    report = {"source": source, **genotype_stats(genotype, settings), "genotype": genotype.to_json()}
    report["genotype_text"] = str(genotype)
    if latency is not None:
        report["latency_ms"], report["latency_device"] = predicted_latency(latency, genotype, settings)
    canonical = canonical_arch(genotype)
    if canonical is not None:
        report["canonical"] = canonical
    return report


def predicted_latency(table: str, genotype: Genotype, settings: Any) -> tuple[float, dict[str, Any]]:
    """The latency of ``genotype``'s network at ``settings`` (``cdarts.stats.NetworkSettings``) from a latency table,
    and the device it was measured on; a table made for another network is refused."""
    from cdarts.costs.latency import genotype_latency

    options = {"stem": settings.stem} if settings.space == "darts" else {}
    shape = (3, settings.input_size, settings.input_size)
    return genotype_latency(table, genotype, settings.channels, settings.layers, shape, settings.num_classes, **options)


def format_report(report: dict[str, Any]) -> str:
    """The aligned table of ``cdarts-inspect`` without ``--json``."""
    layers = "cells per stage" if report["space"] == "nas-bench-201" else "cells"
    rows = [
        ("genotype", report["source"]),
        ("space", report["space"]),
        ("preset", f"{report['preset']} (stem: {report['stem']})"),
        ("channels", report["channels"]),
        (layers, report["layers"]),
        ("input size", f"{report['input_size']} px"),
        ("classes", report["num_classes"]),
        ("params", f"{report['params'] / 1e6:.2f} M"),
        ("params (aux)", f"{report['params_aux'] / 1e6:.2f} M"),
        ("MACs", f"{report['macs'] / 1e6:.1f} M"),
    ]
    if "latency_ms" in report:
        from cdarts.costs.latency import device_text

        rows.append(("latency", f"{report['latency_ms']:.3f} ms on {device_text(report['latency_device'])}"))
    width = max(len(key) for key, _ in rows)
    lines = [f"{key:<{width}}  {value}" for key, value in rows]
    if "plot" in report:
        lines.append(f"{'plot':<{width}}  {report['plot']}")
    text = [report["genotype_text"]]
    if report.get("canonical", report["genotype_text"]) != report["genotype_text"]:
        text.append(f"canonical: {report['canonical']}")
    return "\n".join(lines + [""] + text)


def build_parser(prog: str = "cdarts-inspect") -> CommandParser:
    parser = CommandParser(prog, "Parameters, MACs and cell drawing of a genotype at evaluation size.")
    parser.add_argument("genotype", nargs="?", help="registered name, genotype.json, run folder, or genotype text")
    parser.add_argument("--preset", default="cifar10",
                        help="evaluation setting, e.g. cifar10 or imagenet (a wrong name lists them; default cifar10)")
    parser.add_argument("--space", help="expected search space: darts or nas-bench-201 (default: from the genotype)")
    parser.add_argument("--channels", type=int, help="initial channels C (overrides the preset)")
    parser.add_argument("--layers", type=int, help="number of cells; NAS-Bench-201: cells per stage")
    parser.add_argument("--input-size", type=int, help="image side in pixels for the MAC count")
    parser.add_argument("--num-classes", type=int, help="classifier outputs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plot", metavar="OUT", help="draw the cells to OUT.png, OUT.svg or OUT.pdf")
    parser.add_argument("--latency", metavar="TABLE", help="predict the latency from a cdarts-profile table (made for "
                        "this network: the same sizes as --channels/--layers/--input-size/--num-classes)")
    parser.add_argument("--list", nargs="?", const="", metavar="KIND", help=argparse.SUPPRESS)  # deprecated
    return parser


@report_user_errors
def main(argv: list[str] | None = None, prog: str = "cdarts-inspect") -> int:
    parser = build_parser(prog)
    args = parser.parse(argv)
    if args.list is not None:
        from cdarts.cli.listing import registered_lines

        deprecated("--list", f"cdarts list{' ' + args.list if args.list else ''}")
        print("\n".join(registered_lines(args.list or None)))
        return 0
    if args.genotype is None:
        parser.error("the GENOTYPE argument is required")
    from cdarts.plotting import plot_format, plot_genotype

    if args.plot:
        plot_format(args.plot)
    genotype = resolve_genotype(args.genotype)
    report = inspect_genotype(
        genotype, args.preset, args.space, args.channels, args.layers, args.input_size, args.num_classes,
        source=args.genotype, latency=args.latency,
    )
    if args.plot:
        report["plot"] = str(plot_genotype(genotype, args.plot))
    print(json.dumps(report) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
