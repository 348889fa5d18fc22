"""``cdarts``: one entry point for every command (``cdarts search ...`` = ``cdarts-search ...``) and ``cdarts list``."""
from __future__ import annotations

import argparse
import importlib
import sys

import cdarts  # noqa: F401 - registers every built-in component
from cdarts.cli.common import report_user_errors
from cdarts.cli.inspect import registered_lines
from cdarts.errors import ConfigError
from cdarts.registry import REGISTRIES

COMMANDS = {
    "search": "run an architecture search from a YAML config",
    "train": "retrain a genotype from scratch",
    "export": "export a trained network as a timm model folder",
    "eval": "evaluate a trained network",
    "inspect": "parameters, MACs and drawing of a genotype",
    "seeds": "searches over several seeds (and strategies), then a mean ± std report",
    "analyze": "analyses of finished runs (alpha/benchmark correlation)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdarts",
        description="Cyclic Differentiable Architecture Search.",
        epilog="Run 'cdarts COMMAND --help' for a command's options.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    listing = commands.add_parser("list", help="list registered components with their modules")
    listing.add_argument("kind", nargs="?", help=f"one of: {', '.join(REGISTRIES)} (default: all)")
    for name, help_text in COMMANDS.items():
        commands.add_parser(name, help=help_text, add_help=False)
    return parser


def run_command(name: str, argv: list[str]) -> int:
    """Hand ``argv`` to ``cdarts.cli.<name>.main``, imported only now so one command's dependencies stay its own."""
    module_name = f"cdarts.cli.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise ConfigError(f"command {name!r} is not implemented yet ({module_name} is missing)") from None
    return module.main(argv) or 0


@report_user_errors
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return run_command(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    print("\n".join(registered_lines(args.kind)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
