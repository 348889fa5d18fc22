"""The shared CLI wrapper: bad input (the ``cdarts.errors`` types) is one line on stderr and exit code 2, a run that
cannot go on one line and exit code 1, and anything else, a bare ValueError or KeyError included, is a bug that keeps
its traceback."""
import errno
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml
from conftest import ROOT, cli_env
from torch.utils.data import TensorDataset

from cdarts import config, errors, stats
from cdarts.checkpoint import CheckpointError
from cdarts.cli import inspect as inspect_cli
from cdarts.cli.common import report_user_errors
from cdarts.config import ConfigError
from cdarts.data import BadImageError, make_loader
from cdarts.errors import DataError, FileError, UserInputError
from cdarts.genotypes import load_genotype
from cdarts.models.load import load_weights
from cdarts.nasbench import UnknownArchError
from cdarts.registry import RegistryError
from cdarts.stats import resolve_settings


def command(exc: BaseException):
    def main() -> int:
        raise exc

    main.__module__ = "cdarts.cli.search"
    return report_user_errors(main)


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (FileError("bad \x1b[1mweights\x1b[0m file"), 2, "bad weights file"),
        (ConfigError(["strategy.epohcs: unknown key"]), 2, "strategy.epohcs: unknown key"),
        (ConfigError("--batch-size must be at least 1, got 0"), 2, "--batch-size must be at least 1, got 0"),
        (DataError("dataset of 8 images is smaller than one batch of 9"), 2,
         "dataset of 8 images is smaller than one batch of 9"),
        (BadImageError("cat/1.png: cannot read image"), 2, "cat/1.png: cannot read image"),
        (CheckpointError("epoch-1/manifest.json: missing"), 2, "epoch-1/manifest.json: missing"),
        (UnknownArchError("table 't.csv' has no cell '|none~0|'"), 2, "table 't.csv' has no cell '|none~0|'"),
        (RegistryError("unknown op 'sep3'"), 2, "unknown op 'sep3'"),
        (FileNotFoundError("run folder 'x' does not exist"), 2, "run folder 'x' does not exist"),
        (yaml.YAMLError("mapping values are not allowed here"), 2, "invalid YAML: mapping values are not allowed here"),
        (OSError(errno.ENOSPC, "disk full"), 1, "[Errno 28] disk full"),
        (FloatingPointError("joint.ce_s is nan"), 1, "joint.ce_s is nan"),
    ],
)
def test_errors_become_one_clean_line_and_an_exit_code(exc, code, line, capsys):
    with pytest.raises(SystemExit) as stop:
        command(exc)()
    assert stop.value.code == code
    assert capsys.readouterr().err == f"cdarts-search: error: {line}\n"


@pytest.mark.parametrize("exc", [RuntimeError("bug"), ValueError("bad value"), KeyError("weights")])
def test_a_bug_keeps_its_traceback(exc, capsys):
    """A bare ValueError or KeyError comes from a bug (ours or a library's), not from the user's input."""
    with pytest.raises(type(exc)) as info:
        command(exc)()
    assert info.value is exc and capsys.readouterr().err == ""


def test_a_library_bug_inside_a_command_propagates(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise KeyError("params")

    monkeypatch.setattr(stats, "genotype_stats", broken)
    with pytest.raises(KeyError, match="params"):
        inspect_cli.main(["DARTS_V2"])
    assert capsys.readouterr().err == ""


def test_a_library_bug_prints_its_traceback_and_exits_1():
    code = textwrap.dedent("""
        import sys
        import cdarts.cli.inspect as cli
        import cdarts.stats

        def broken(*args, **kwargs):
            raise ValueError("a bug in genotype_stats")

        cdarts.stats.genotype_stats = broken
        sys.exit(cli.main(["DARTS_V2"]))
    """)
    result = subprocess.run([sys.executable, "-c", code], env=cli_env(), cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert "in broken" in result.stderr and result.stderr.endswith("ValueError: a bug in genotype_stats\n")
    assert "cdarts-inspect: error:" not in result.stderr


def test_user_input_types_stay_value_errors_and_config_keeps_its_name():
    assert config.ConfigError is errors.ConfigError
    assert all(issubclass(kind, UserInputError) and issubclass(kind, ValueError)
               for kind in (ConfigError, DataError, FileError, BadImageError, CheckpointError, UnknownArchError))
    assert issubclass(UnknownArchError, KeyError)
    assert ConfigError("one problem").problems == ["one problem"]


def test_bad_input_raises_a_user_input_type(tmp_path):
    """A sample of the raise sites the commands reach with bad input, one per kind."""
    with pytest.raises(ConfigError, match="unknown genotype 'DARTS_V3'"):
        load_genotype("DARTS_V3")
    with pytest.raises(ConfigError, match="bad Genotype text"):
        load_genotype("Genotype(normal=")
    with pytest.raises(ConfigError, match="unknown preset 'cifar'"):
        resolve_settings("darts", "cifar")
    images = TensorDataset(torch.zeros(8, 1), torch.zeros(8))
    with pytest.raises(ConfigError, match="batch_size must be at least 1, got 0"):
        make_loader(images, 0, shuffle=False, seed=0)
    with pytest.raises(DataError, match="dataset of 8 images is smaller than one batch of 9"):
        make_loader(images, 9, shuffle=False, seed=0)
    junk = tmp_path / "genotype.json"
    junk.write_text("{not json")
    with pytest.raises(FileError, match="not a genotype JSON file"):
        load_genotype(junk)
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"junk")
    with pytest.raises(FileError, match="not a readable torch checkpoint"):
        load_weights(weights)


def test_success_returns_zero():
    assert report_user_errors(lambda: None)() == 0
