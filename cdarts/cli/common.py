"""What every command shares: bad input becomes one line on stderr and exit code 2, never a traceback."""
from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps

from cdarts.config import ConfigError
from cdarts.registry import RegistryError

USER_ERRORS = (ConfigError, RegistryError, FileNotFoundError, FileExistsError, ValueError, KeyError)
"""Exceptions that mean "bad input" (config, names, paths, files); anything else is a bug and keeps its traceback."""


def report_user_errors(main: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a CLI ``main`` so bad input prints ``<prog>: error: ...`` and exits 2."""

    @wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs) or 0
        except USER_ERRORS as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            prog = main.__module__.rsplit(".", 1)[-1]
            print(f"cdarts-{prog}: error: {message}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper
