"""``cdarts``: one entry point for every command (``cdarts search ...`` = ``cdarts-search ...``) and ``cdarts list``."""
from __future__ import annotations

import argparse
import importlib
import sys

from cdarts.cli.common import CommandParser, report_user_errors
from cdarts.errors import ConfigError

COMMANDS = {
    "list": "registered components, or one component's config keys, types and defaults",
    "search": "run an architecture search from a YAML config",
    "train": "retrain a genotype from scratch",
    "export": "export a trained network as a timm model folder",
    "eval": "evaluate a trained network",
    "inspect": "parameters, MACs and drawing of a genotype",
    "profile": "time every candidate op of a space into a latency table",
    "seeds": "searches over several seeds (and strategies), then a mean ± std report",
    "analyze": "analyses of finished runs (alpha/benchmark correlation)",
}

MODULES = {"list": "listing"}
"""Commands whose module has another name (a module ``list`` would read as the builtin)."""


def build_parser(prog: str = "cdarts") -> CommandParser:
    parser = CommandParser(prog, "Cyclic Differentiable Architecture Search.",
                           epilog="Run 'cdarts COMMAND --help' for a command's options.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                     parser_class=argparse.ArgumentParser)  # placeholders: each command parses itself
    for name, help_text in COMMANDS.items():
        commands.add_parser(name, help=help_text, add_help=False)
    return parser


def run_command(name: str, argv: list[str]) -> int:
    """Hand ``argv`` to ``cdarts.cli.<module>.main`` as ``cdarts NAME``, imported only now so that one command's
    dependencies stay its own."""
    module_name = f"cdarts.cli.{MODULES.get(name, name)}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise ConfigError(f"command {name!r} is not implemented yet ({module_name} is missing)") from None
    return module.main(argv, prog=f"cdarts {name}") or 0


@report_user_errors
def main(argv: list[str] | None = None, prog: str = "cdarts") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return run_command(argv[0], argv[1:])
    parser = build_parser(prog)
    parser.parse_args(argv)  # --help, --version, no command or an unknown one: argparse answers and exits
    parser.error("give a COMMAND")


if __name__ == "__main__":
    sys.exit(main())
