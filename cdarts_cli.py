"""The console scripts (``cdarts``, ``cdarts-search``, ...): each parses its command line before the library loads.

``cdarts/__init__.py`` imports torch, timm and every built-in component, which takes seconds. A console script puts
the package in ``sys.modules`` without running it and imports only its command's module (argparse, no torch); the
command runs the package once its arguments parse (``CommandParser.parse`` in ``cdarts.cli.common``). So ``--help``,
``--version`` and a mistyped option answer at once. ``import cdarts`` and ``python -m cdarts.cli.<command>`` are
unchanged: they import the whole package first.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys

DEFERRED = "_import_deferred"
"""The attribute that tells ``cdarts.cli.common.load_library`` the package still has to run (same name there)."""


def run(command: str, argv: list[str] | None = None) -> int:
    """``cdarts.cli.<command>.main(argv)`` with the ``cdarts`` package's own code deferred until after parsing."""
    if "cdarts" not in sys.modules:
        spec = importlib.util.find_spec("cdarts")
        package = importlib.util.module_from_spec(spec)
        setattr(package, DEFERRED, True)
        sys.modules["cdarts"] = package
    return importlib.import_module(f"cdarts.cli.{command}").main(argv)


def cdarts() -> int:
    return run("main")


def search() -> int:
    return run("search")


def train() -> int:
    return run("train")


def export() -> int:
    return run("export")


def evaluate() -> int:
    return run("eval")


def inspect() -> int:
    return run("inspect")


def profile() -> int:
    return run("profile")


def seeds() -> int:
    return run("seeds")


def analyze() -> int:
    return run("analyze")
