"""The shared CLI wrapper: one line on stderr, the exit code by kind of error, no traceback."""
import errno

import pytest

from cdarts.cli.common import report_user_errors
from cdarts.config import ConfigError


def command(exc: BaseException):
    def main() -> int:
        raise exc

    main.__module__ = "cdarts.cli.search"
    return report_user_errors(main)


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (ValueError("bad \x1b[1mweights\x1b[0m file"), 2, "cdarts-search: error: bad weights file"),
        (KeyError("no such key"), 2, "cdarts-search: error: no such key"),
        (ConfigError(["strategy.epohcs: unknown key"]), 2, "cdarts-search: error: "),
        (OSError(errno.ENOSPC, "disk full"), 1, "cdarts-search: error: [Errno 28] disk full"),
        (FloatingPointError("joint.ce_s is nan"), 1, "cdarts-search: error: joint.ce_s is nan"),
    ],
)
def test_errors_become_one_clean_line_and_an_exit_code(exc, code, line, capsys):
    with pytest.raises(SystemExit) as stop:
        command(exc)()
    err = capsys.readouterr().err
    assert stop.value.code == code
    assert err.startswith(line) and "\x1b" not in err and "Traceback" not in err


def test_a_bug_keeps_its_traceback():
    with pytest.raises(RuntimeError, match="bug"):
        command(RuntimeError("bug"))()


def test_success_returns_zero():
    assert report_user_errors(lambda: None)() == 0
