"""What every command shares (#11 item 6, #15 build 3): ``--version``; ``--help`` answered before torch loads; ``cdarts
X --help`` naming itself ``cdarts X``; ``--output``, ``--model``, ``--no-progress`` and ``--quiet``; old spellings that
still work with one warning line; ``cdarts list KIND NAME``; progress as plain lines when output is not a terminal."""
from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT, cli_env, make_tiny_config, make_tiny_retrain_config
from tqdm import tqdm

import cdarts
import cdarts.progress
import cdarts_cli
from cdarts.cli import eval as eval_cli
from cdarts.cli import export as export_cli
from cdarts.cli import inspect as inspect_cli
from cdarts.cli import listing
from cdarts.cli import main as main_cli
from cdarts.cli import search as search_cli
from cdarts.cli import seeds as seeds_cli
from cdarts.cli import train as train_cli
from cdarts.cli.common import version
from cdarts.progress import LineProgress, progress_bar

SCRIPTS = dict(re.findall(r'^(cdarts[\w-]*) = "([\w.:]+)"', (ROOT / "pyproject.toml").read_text()
                           .split("[project.scripts]")[1].split("\n[")[0], re.MULTILINE))
"""pyproject's console scripts: name -> module:function."""

HELP_WITHOUT_TORCH = """
import json, sys
import cdarts_cli

calls = [*((command, ["--help"]) for command in sys.argv[1:]), ("main", ["search", "--help"]), ("main", ["--version"])]
for command, argv in calls:
    try:
        cdarts_cli.run(command, argv)
    except SystemExit:
        pass
print(json.dumps({name: name in sys.modules for name in ("torch", "timm", "cdarts.engine", "cdarts.genotypes")}))
"""


def run(main, argv: list[str], capsys) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of a command's ``main``, whether it returns or exits."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_every_console_script_parses_its_arguments_before_importing_the_library():
    names = ["search", "train", "export", "eval", "inspect", "profile", "seeds", "analyze", "listing", "main"]
    done = subprocess.run([sys.executable, "-c", HELP_WITHOUT_TORCH, *names], env=cli_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    *_, loaded = done.stdout.splitlines()
    assert json.loads(loaded) == {"torch": False, "timm": False, "cdarts.engine": False, "cdarts.genotypes": False}
    assert "usage: cdarts search [-h] [--version] --config CONFIG" in done.stdout
    assert f"cdarts {version()}" in done.stdout


def test_every_script_has_a_launcher_and_every_cdarts_command_a_script():
    assert SCRIPTS["cdarts"] == "cdarts_cli:cdarts"
    assert {name.removeprefix("cdarts-") for name in SCRIPTS} - {"cdarts"} == set(main_cli.COMMANDS) - {"list"}
    for target in SCRIPTS.values():
        assert callable(getattr(cdarts_cli, target.split(":")[1]))


@pytest.mark.parametrize(
    ("main", "prog"),
    [(search_cli.main, "cdarts-search"), (train_cli.main, "cdarts-train"), (export_cli.main, "cdarts-export"),
     (eval_cli.main, "cdarts-eval"), (inspect_cli.main, "cdarts-inspect"), (seeds_cli.main, "cdarts-seeds"),
     (listing.main, "cdarts list"), (main_cli.main, "cdarts")],
)
def test_every_command_has_version(main, prog, capsys):
    assert version() == cdarts.__version__
    assert run(main, ["--version"], capsys) == (0, f"{prog} {cdarts.__version__}\n", "")


@pytest.mark.parametrize("command", ["search", "train", "export", "eval", "inspect", "profile", "seeds", "list"])
def test_a_command_under_cdarts_names_itself_so(command, capsys):
    code, out, _ = run(main_cli.main, [command, "--help"], capsys)
    assert code == 0 and out.startswith(f"usage: cdarts {command} ")
    code, _, err = run(main_cli.main, [command, "--bogus"], capsys)
    assert code == 2 and err.splitlines()[-1].startswith(f"cdarts {command}: error: ")


def test_errors_under_cdarts_carry_the_subcommand_name(tmp_path, capsys):
    missing = tmp_path / "missing.yaml"
    code, _, err = run(main_cli.main, ["search", "--config", str(missing)], capsys)
    assert (code, err) == (2, f"cdarts search: error: {missing}: config file does not exist\n")
    code, _, err = run(search_cli.main, ["--config", str(missing)], capsys)
    assert (code, err) == (2, f"cdarts-search: error: {missing}: config file does not exist\n")


@pytest.mark.parametrize("parser", [search_cli.parser, train_cli.parser, seeds_cli.parser, eval_cli.parser])
def test_long_commands_take_no_progress_and_quiet(parser):
    text = parser().format_help()
    assert "--no-progress" in text and "-q, --quiet" in text


@pytest.mark.parametrize(("parser", "option"), [(search_cli.parser, "--output DIR"), (train_cli.parser, "--output DIR"),
                                                (export_cli.parser, "--output DIR"), (eval_cli.parser, "--model MODEL"),
                                                (export_cli.parser, "--model MODEL")])
def test_one_vocabulary_for_folders_and_models(parser, option):
    assert option in parser().format_help()


def test_list_prints_a_components_keys_types_and_defaults(capsys):
    code, out, _ = run(main_cli.main, ["list", "strategies", "cdarts"], capsys)
    lines = out.splitlines()
    assert code == 0 and lines[:2] == ["strategies: cdarts (cdarts.strategies.cdarts)", "CDARTS (paper Algorithm 1)."]
    rows = {line.split()[0]: line.split(None, 1)[1] for line in lines[2:]}
    assert rows["key"].split() == ["type", "default"]
    assert rows["epochs"].split() == ["int,", "at", "least", "1", "30"]
    assert rows["distill_weight"].split() == ["float,", "at", "least", "0", "4.0"]
    assert rows["loss"].split() == ["losses", "component", "{type:", "ce}"]
    code, out, _ = run(main_cli.main, ["list", "datasets", "digits"], capsys)
    assert code == 0 and any(line.split()[:2] == ["image_size", "int,"] for line in out.splitlines())


def test_list_of_an_unknown_component_is_one_line(capsys):
    code, out, err = run(main_cli.main, ["list", "strategies", "cdartz"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("cdarts list: error: unknown strategy 'cdartz'") and "did you mean 'cdarts'?" in err


def test_line_progress_writes_whole_lines_with_the_postfix(capsys):
    bar = LineProgress(range(3), "search 1", total=3, interval=0)
    for step in bar:
        bar.set_postfix(loss=f"{step / 2:.3f}")
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line.split(" ") for line in err.splitlines()]
    assert [line[:4] for line in lines] == [["search", "1:", f"{n}/3", f"({100 * n / 3:.0f}%)"] for n in (1, 2, 3)]
    assert [line[-1] for line in lines] == ["loss=0.000", "loss=0.500", "loss=1.000"]


def test_progress_is_a_bar_only_on_a_terminal(monkeypatch):
    assert type(progress_bar(range(2), "x", 2)) is LineProgress  # pytest captures the output: not a terminal
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    bar = progress_bar(range(2), "x", 2)
    assert isinstance(bar, tqdm) and not bar.disable
    bar.close()
    assert list(progress_bar(range(2), "x", 2, enabled=False)) == [0, 1]


@pytest.fixture(scope="module")
def search_outputs(tmp_path_factory):
    """(stdout, stderr) of one tiny search per way of showing progress (none of them a terminal), progress lines
    allowed after every batch."""
    folder = tmp_path_factory.mktemp("progress")
    config = folder / "tiny.yaml"
    config.write_text(yaml.safe_dump(make_tiny_config(strategy={"epochs": 1, "pretrain_epochs": 0})))
    outputs = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cdarts.progress, "LINE_INTERVAL_S", 0.0)
        for flag in ("", "--no-progress", "--quiet"):
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                assert search_cli.main(["--config", str(config), "--output", str(folder / "run"),
                                        *filter(None, [flag])]) == 0
            outputs[flag] = (out.getvalue().replace(str(folder / "run"), "RUN"), err.getvalue())
            shutil.rmtree(folder / "run")
    return outputs


def test_progress_in_a_log_is_plain_lines(search_outputs):
    out, err = search_outputs[""]
    assert "\r" not in err + out
    lines = err.splitlines()
    assert lines and all(re.search(r": [12]/2 \((50|100)%\) \d+s, [\d.]+ it/s, loss=", line) for line in lines), err
    def untimed(text: str) -> str:
        return re.sub(r"\d+\.\d+s\b", "T", text)

    assert untimed(out) == untimed(search_outputs["--no-progress"][0])


def test_no_progress_and_quiet_print_no_progress_and_quiet_no_epoch_lines(search_outputs):
    (out, err), (quiet, quiet_err) = search_outputs["--no-progress"], search_outputs["--quiet"]
    assert err == quiet_err == ""
    assert quiet.strip().splitlines() == out.strip().splitlines()[-3:]
    assert [line.split(":")[0] for line in quiet.strip().splitlines()[:2]] == ["final genotype", "run folder"]
    assert len(out.splitlines()) > len(quiet.splitlines())


def test_quiet_retrain_prints_only_the_result(tmp_path, capsys):
    config = tmp_path / "retrain.yaml"
    config.write_text(yaml.safe_dump(make_tiny_retrain_config(model={"genotype": "DARTS_V2"}, max_steps_per_epoch=2)))
    code, out, err = run(train_cli.main, ["--config", str(config), "--output", str(tmp_path / "run"), "--quiet"],
                         capsys)
    assert (code, err) == (0, "")
    lines = out.strip().splitlines()
    assert lines[0].startswith("done: best val top-1 at epoch 1: ") and lines[1] == f"run folder: {tmp_path / 'run'}"
    assert lines[-1] == f"export: cdarts-export --model {tmp_path / 'run'} --output DIR"
