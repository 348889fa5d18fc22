"""What every command shares: bad input becomes one line on stderr and exit code 2, never a traceback; a run that
cannot go on (disk full, a NaN loss) stops with one line and exit code 1; a bug keeps its traceback (exit code 1)."""
from __future__ import annotations

import re
import sys
from collections.abc import Callable
from functools import wraps
from typing import NoReturn

import yaml

from cdarts.errors import UserInputError
from cdarts.registry import RegistryError

USER_ERRORS = (UserInputError, RegistryError, FileNotFoundError, FileExistsError)
"""Exceptions that mean "bad input" (config, data, files, names, paths). A bare ``ValueError`` or ``KeyError`` is
not among them: raised by the library or a library it calls, it is a bug and keeps its traceback."""

RUN_ERRORS = (OSError, FloatingPointError)
"""Exceptions that stop a run for a reason outside the code: writing outputs failed (``WriteError``: disk full...),
a loss or alpha went NaN/inf (``NonFiniteLossError``), a checkpoint would hold NaN (``NonFiniteStateError``)."""


def program_name(module: str) -> str:
    """``cdarts-inspect`` for ``cdarts.cli.inspect`` (also when run as ``python -m``), ``cdarts`` for the main one."""
    if module == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        module = spec.name if spec is not None else module
    name = module.rsplit(".", 1)[-1]
    return "cdarts" if name == "main" else f"cdarts-{name}"


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
"""Terminal colour codes: some libraries' messages carry them (torch's unpickling error), a log file should not."""


def fail(main: Callable, message: str, code: int) -> NoReturn:
    """Print ``<prog>: error: message`` on stderr, colour codes removed, and exit with ``code``."""
    print(f"{program_name(main.__module__)}: error: {ANSI_ESCAPE.sub('', message)}", file=sys.stderr)
    raise SystemExit(code) from None


def yaml_message(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: the problem and where (PyYAML's own text spans several lines)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["unreadable"])[0]
    return f"invalid YAML{where}: {problem}"


def report_user_errors(main: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a CLI ``main`` so bad input (``USER_ERRORS``) prints ``<prog>: error: ...`` and exits 2, and a run that
    cannot go on (``RUN_ERRORS``) prints the same one line and exits 1; anything else propagates with its traceback,
    which Python prints before exiting 1."""

    @wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs) or 0
        except USER_ERRORS as exc:
            fail(main, str(exc), 2)
        except yaml.YAMLError as exc:
            fail(main, yaml_message(exc), 2)
        except RUN_ERRORS as exc:
            fail(main, str(exc), 1)
        except KeyboardInterrupt as exc:  # Ctrl-C, or a run stopped on a signal (cdarts.signals.Interrupted)
            message = str(exc) if exc.args else "interrupted"  # a stopped run's message: empty on all but rank 0
            if message:
                print(f"{program_name(main.__module__)}: {message}", file=sys.stderr)
            raise SystemExit(getattr(exc, "exit_code", 130)) from None

    return wrapper
