"""What every command shares: bad input becomes one line on stderr and exit code 2, never a traceback; a run that
cannot go on (disk full, a NaN loss) stops with one line and exit code 1; a bug keeps its traceback (exit code 1).
And one vocabulary: ``--version``, ``--output`` for the folder a command writes, ``--model`` for a trained network,
``--no-progress`` and ``--quiet``; an old spelling works for one release with a warning.

Nothing here imports torch: a command parses its arguments (``--help`` answers at once) before the library loads.
"""
from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, NoReturn

import yaml

from cdarts.errors import UserInputError
from cdarts.registry import RegistryError

USER_ERRORS = (UserInputError, RegistryError, FileNotFoundError, FileExistsError)
"""Exceptions that mean "bad input" (config, data, files, names, paths). A bare ``ValueError`` or ``KeyError`` is
not among them: raised by the library or a library it calls, it is a bug and keeps its traceback."""

RUN_ERRORS = (OSError, FloatingPointError)
"""Exceptions that stop a run for a reason outside the code: writing outputs failed (``WriteError``: disk full...),
a loss or alpha went NaN/inf (``NonFiniteLossError``), a checkpoint would hold NaN (``NonFiniteStateError``)."""


def positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def non_negative(text: str) -> int:
    """An argparse type: an integer of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {text}")
    return value


def seconds(text: str) -> float:
    """An argparse type: seconds in (0, 60], for timing loops."""
    value = float(text)
    if not 0 < value <= 60:
        raise argparse.ArgumentTypeError(f"expected seconds in (0, 60], got {text}")
    return value


def program_name(module: str) -> str:
    """``cdarts-inspect`` for ``cdarts.cli.inspect`` (also when run as ``python -m``), ``cdarts`` for the main one."""
    if module == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        module = spec.name if spec is not None else module
    name = module.rsplit(".", 1)[-1]
    return "cdarts" if name == "main" else f"cdarts-{name}"


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
"""Terminal colour codes: some libraries' messages carry them (torch's unpickling error), a log file should not."""


def fail(prog: str, message: str, code: int) -> NoReturn:
    """Print ``<prog>: error: message`` on stderr, colour codes removed, and exit with ``code``."""
    print(f"{prog}: error: {ANSI_ESCAPE.sub('', message)}", file=sys.stderr)
    raise SystemExit(code) from None


def yaml_message(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: the problem and where (PyYAML's own text spans several lines)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["unreadable"])[0]
    return f"invalid YAML{where}: {problem}"


def deprecated(old: str, new: str) -> None:
    """Say once on stderr that ``old`` still works but goes away: ``warning: --out is deprecated; use --output ...``."""
    print(f"warning: {old} is deprecated; use {new} (removed in the next release)", file=sys.stderr)


class DeprecatedOption(argparse.Action):
    """An old spelling of an option: stores into the new option's ``dest`` and prints the deprecation line."""

    def __init__(self, option_strings: Sequence[str], dest: str, use: str, **kwargs: Any) -> None:
        self.use = use
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        deprecated(option_string or self.option_strings[0], self.use)
        setattr(namespace, self.dest, values)


MODEL_HELP = ("the trained network: a retrain run folder, a checkpoint (folder or weights-only .pt), local-dir:FOLDER "
              "(an export), or a registered architecture (cdarts_cifar, ...: fresh weights)")


def version() -> str:
    """The installed distribution's version (read from its metadata: importing cdarts would load torch)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("cdarts")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class CommandParser(argparse.ArgumentParser):
    """A command's parser with the shared options: ``--version`` always, and on request ``--output``, ``--model``,
    ``--no-progress``/``--quiet``, each optionally with an old spelling that still works."""

    def __init__(self, prog: str, description: str, **kwargs: Any) -> None:
        super().__init__(prog=prog, description=description, **kwargs)
        self.required_options: list[tuple[str, str]] = []
        """(dest, flag) of options that are required but have an old spelling too (argparse would demand the new)."""
        self.add_argument("--version", action="version", version=f"%(prog)s {version()}")

    def add_alias(self, old: str, dest: str, use: str, **kwargs: Any) -> None:
        """``old`` as a hidden, deprecated spelling of the option that stores into ``dest`` (``use`` names it)."""
        self.add_argument(old, dest=dest, action=DeprecatedOption, use=use, help=argparse.SUPPRESS, **kwargs)

    def add_output(self, help: str, required: bool = False, old: str | None = None) -> None:
        """``--output DIR``: the folder the command writes (``old``: a deprecated spelling, e.g. ``--out``)."""
        self.add_argument("--output", required=required and old is None, metavar="DIR", help=help)
        if old is not None:
            self.add_alias(old, "output", "--output", metavar="DIR")
            if required:
                self.required_options.append(("output", "--output"))

    def add_model(self, required: bool = True, help: str = MODEL_HELP) -> None:
        """``--model REF``: one way to name a trained network in every command (see ``cdarts.models.load``)."""
        self.add_argument("--model", required=required, metavar="MODEL", help=help)

    def add_progress(self) -> None:
        """``--no-progress`` and ``--quiet`` (``-q``), which a long command takes; ``args.progress`` after ``parse``."""
        self.add_argument("--no-progress", action="store_true",
                          help="no progress bars or progress lines (they are plain lines anyway when output is not a "
                               "terminal)")
        self.add_argument("-q", "--quiet", action="store_true",
                          help="print only warnings, errors and the final result (implies --no-progress)")

    def parse(self, argv: Sequence[str] | None = None) -> argparse.Namespace:
        """Parse ``argv``, then load the library (``load_library``): only valid arguments pay for importing torch."""
        args = self.parse_args(argv)
        for dest, flag in self.required_options:
            if getattr(args, dest) is None:
                self.error(f"the following arguments are required: {flag}")
        if hasattr(args, "quiet"):
            args.progress = not (args.quiet or args.no_progress)
        load_library()
        return args


DEFERRED = "_import_deferred"
"""Set on the ``cdarts`` package by a console script (``cdarts_cli``) that put it in ``sys.modules`` unexecuted."""


def load_library() -> None:
    """Run ``cdarts/__init__.py`` if a console script deferred it (registering every built-in component and the
    ``cdarts_*`` timm models); otherwise the package is already complete and nothing happens."""
    package = sys.modules["cdarts"]
    if vars(package).pop(DEFERRED, False):
        package.__spec__.loader.exec_module(package)


def report_user_errors(main: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a CLI ``main`` so bad input (``USER_ERRORS``) prints ``<prog>: error: ...`` and exits 2, and a run that
    cannot go on (``RUN_ERRORS``) prints the same one line and exits 1; anything else propagates with its traceback,
    which Python prints before exiting 1. ``<prog>`` is the ``prog`` keyword of the call (``cdarts search`` when the
    ``cdarts`` command dispatches), else its default in ``main``'s signature, else the command module's name."""
    default = inspect.signature(main).parameters.get("prog")
    own_name = default.default if default is not None and isinstance(default.default, str) else None

    @wraps(main)
    def wrapper(*args, **kwargs) -> int:
        prog = kwargs.get("prog") or own_name or program_name(main.__module__)
        try:
            return main(*args, **kwargs) or 0
        except USER_ERRORS as exc:
            fail(prog, str(exc), 2)
        except yaml.YAMLError as exc:
            fail(prog, yaml_message(exc), 2)
        except RUN_ERRORS as exc:
            fail(prog, str(exc), 1)
        except KeyboardInterrupt as exc:  # Ctrl-C, or a run stopped on a signal (cdarts.signals.Interrupted)
            message = str(exc) if exc.args else "interrupted"  # a stopped run's message: empty on all but rank 0
            if message:
                print(f"{prog}: {message}", file=sys.stderr)
            raise SystemExit(getattr(exc, "exit_code", 130)) from None

    return wrapper
