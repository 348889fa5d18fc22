"""``cdarts-inspect GENOTYPE``: parameters and MACs of a genotype at the published evaluation sizes, and its cells.

GENOTYPE is a registered name (``DARTS_V2``), a ``genotype.json`` file or run folder, DARTS ``Genotype(...)`` text
or a NAS-Bench-201 arch string. ``--list [KIND]`` prints the registered components instead.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import cdarts  # noqa: F401 - registers every built-in component
from cdarts.cli.common import report_user_errors
from cdarts.errors import ConfigError
from cdarts.genotypes import Genotype, NB201Genotype, canonical_nb201, load_genotype
from cdarts.plotting import plot_format, plot_genotype
from cdarts.registry import REGISTRIES, registry, unknown_name_message
from cdarts.registry import genotypes as genotype_registry
from cdarts.stats import PRESETS, SPACES, genotype_space, genotype_stats, resolve_settings


def registered_lines(kind: str | None = None) -> list[str]:
    """``ops: sep_conv_3x3 (cdarts.ops.darts)`` for every component of ``kind`` (all kinds when None)."""
    kinds = [registry(kind).kind] if kind is not None else list(REGISTRIES)
    lines = []
    for name in kinds:
        items = REGISTRIES[name].items()
        lines += [f"{name}: {key} ({getattr(obj, '__module__', '?')})" for key, obj in items] or [f"{name}: (none)"]
    return lines


def canonical_arch(genotype: Genotype) -> str | None:
    """A NAS-Bench-201 cell's canonical arch string (one per class of cells computing the same function)."""
    return str(canonical_nb201(genotype)) if isinstance(genotype, NB201Genotype) else None


def resolve_genotype(ref: str) -> Genotype:
    """``load_genotype``, saying plainly when a path does not exist or a folder has no genotype.json."""
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
) -> dict[str, Any]:
    """Everything ``cdarts-inspect --json`` prints for ``ref`` (a genotype, or anything ``load_genotype`` takes);
    ``source`` names it in messages and the report (default: ``ref`` as given)."""
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
    canonical = canonical_arch(genotype)
    if canonical is not None:
        report["canonical"] = canonical
    return report


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
    width = max(len(key) for key, _ in rows)
    lines = [f"{key:<{width}}  {value}" for key, value in rows]
    if "plot" in report:
        lines.append(f"{'plot':<{width}}  {report['plot']}")
    text = [report["genotype_text"]]
    if report.get("canonical", report["genotype_text"]) != report["genotype_text"]:
        text.append(f"canonical: {report['canonical']}")
    return "\n".join(lines + [""] + text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdarts-inspect", description="Parameters, MACs and cell drawing of a genotype at evaluation size."
    )
    parser.add_argument("genotype", nargs="?", help="registered name, genotype.json, run folder, or genotype text")
    parser.add_argument("--preset", default="cifar10", help=f"evaluation setting: {', '.join(PRESETS['darts'])}")
    parser.add_argument("--space", help=f"expected search space: {', '.join(SPACES)} (default: from the genotype)")
    parser.add_argument("--channels", type=int, help="initial channels C (overrides the preset)")
    parser.add_argument("--layers", type=int, help="number of cells; NAS-Bench-201: cells per stage")
    parser.add_argument("--input-size", type=int, help="image side in pixels for the MAC count")
    parser.add_argument("--num-classes", type=int, help="classifier outputs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plot", metavar="OUT", help="draw the cells to OUT.png, OUT.svg or OUT.pdf")
    parser.add_argument("--list", nargs="?", const="", metavar="KIND", help="list registered components and exit")
    return parser


@report_user_errors
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list is not None:
        print("\n".join(registered_lines(args.list or None)))
        return 0
    if args.genotype is None:
        parser.error("the GENOTYPE argument is required (or --list)")
    if args.plot:
        plot_format(args.plot)
    genotype = resolve_genotype(args.genotype)
    report = inspect_genotype(
        genotype, args.preset, args.space, args.channels, args.layers, args.input_size, args.num_classes,
        source=args.genotype,
    )
    if args.plot:
        report["plot"] = str(plot_genotype(genotype, args.plot))
    print(json.dumps(report) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
