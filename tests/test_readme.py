"""The README's code blocks run as a reader would run them: a README command that no longer works fails here.

README.md is read when the tests are collected. Every ```bash and ```python block runs, in README order, in one
temporary folder holding a copy of ``configs/`` (a later block may use what an earlier one wrote, as a reader's
would), with this environment's console scripts first on PATH and the Hugging Face Hub offline. An HTML comment on
the lines right above a block's opening fence changes how it runs; several directives are separated by ``;`` (outside
parentheses):

- ``<!-- readme-test: skip (why) -->``: the block is not run (it needs data, GPUs or hours); the reason is required;
- ``<!-- readme-test: only 1,6 (why) -->``: only these commands of a bash block run (numbered from 1, after
  joining ``\\``-continued lines and leaving out comment-only lines); the reason is required;
- ``<!-- readme-test: set strategy.epochs=1 max_steps_per_epoch=2 -->``: shrinks long runs: each value is added as
  ``--set KEY=VALUE`` to every ``cdarts-search``, ``cdarts-train`` and ``cdarts-seeds`` command of the block, and to
  the ``overrides`` of every ``cdarts.search`` call of a python block.

A bracketed option in a command (``[--ema]``) is optional, and the command runs without it. Blocks of other languages
(yaml, toml, unlabelled output) are text and never run.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RUNNABLE = ("bash", "python")
MARKER = re.compile(r"^\s*<!--\s*readme-test:\s*(?P<body>.*?)\s*-->\s*$")
FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")
SET_COMMANDS = ("cdarts-search", "cdarts-train", "cdarts-seeds", "cdarts.cli.search", "cdarts.cli.train",
                "cdarts.cli.seeds")
OPTIONAL = re.compile(r"^\[--[^\]]*\]$")
TIMEOUT_S = 300
PYTHON_SET = """\
import cdarts as _cdarts

_readme_search = _cdarts.search


def _readme_shrunk_search(config, overrides=(), *args, **kwargs):
    return _readme_search(config, [*overrides, *{sets!r}], *args, **kwargs)


_cdarts.search = _readme_shrunk_search
"""
"""Put before a python block with ``set``: ``cdarts.search`` gets the marker's overrides after the block's own."""


@dataclass
class Block:
    line: int
    """The line of the opening fence (1-based)."""
    lang: str
    code: str
    skip: str | None = None
    only: list[int] | None = None
    sets: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        first = next((line.strip() for line in self.code.splitlines() if line.strip()), "")
        return f"line {self.line} ({self.lang}): {first[:60]}"

    def commands(self) -> list[str]:
        """A bash block's commands: continuation lines joined, comment-only and blank lines left out."""
        joined, parts = [], []
        for line in self.code.splitlines():
            text = line.strip()
            if not parts and (not text or text.startswith("#")):
                continue
            parts.append(text[:-1].strip() if text.endswith("\\") else text)
            if not text.endswith("\\"):
                joined.append(" ".join(parts))
                parts = []
        return joined + ([" ".join(parts)] if parts else [])


def parse_directives(body: str, where: str) -> dict:
    """``skip (why)``, ``only N,M (why)`` and ``set K=V ...``; anything else is an error naming the marker."""
    directives: dict = {}
    for part in filter(None, (p.strip() for p in re.split(r";(?![^(]*\))", body))):
        if match := re.fullmatch(r"skip\s*\((?P<why>.+)\)", part):
            directives["skip"] = match["why"]
        elif match := re.fullmatch(r"only\s+(?P<numbers>\d+(?:\s*,\s*\d+)*)\s*\((?P<why>.+)\)", part):
            directives["only"] = [int(n) for n in match["numbers"].split(",")]
        elif match := re.fullmatch(r"set\s+(?P<values>\S+=\S*(?:\s+\S+=\S*)*)", part):
            directives["sets"] = match["values"].split()
        else:
            raise ValueError(f"{where}: unknown readme-test directive {part!r}; valid: 'skip (why)', "
                             "'only N,M (why)', 'set KEY=VALUE ...'")
    return directives


def read_blocks(text: str) -> list[Block]:
    """Every fenced block with the directives of the markers right above it; a marker anywhere else is an error."""
    lines, blocks, pending, index = text.splitlines(), [], {}, 0
    marker_lines: list[int] = []
    while index < len(lines):
        line = lines[index]
        if match := MARKER.match(line):
            pending.update(parse_directives(match["body"], f"README.md:{index + 1}"))
            marker_lines.append(index + 1)
        elif match := FENCE.match(line):
            end = next((j for j in range(index + 1, len(lines)) if lines[j].startswith("```")), None)
            if end is None:
                raise ValueError(f"README.md:{index + 1}: code block never closed")
            blocks.append(Block(index + 1, match["lang"], "\n".join(lines[index + 1:end]) + "\n", **pending))
            pending, marker_lines, index = {}, [], end
        elif line.strip() and pending:
            raise ValueError(f"README.md:{marker_lines[0]}: a readme-test marker must be right above a code block")
        index += 1
    if pending:
        raise ValueError(f"README.md:{marker_lines[0]}: a readme-test marker must be right above a code block")
    return blocks


def with_sets(command: str, sets: list[str]) -> str:
    """The command without its bracketed optional options and, for a command that takes them, with the sets."""
    tokens = [t for t in shlex.split(command, comments=True) if not OPTIONAL.match(t)]
    if sets and any(t in SET_COMMANDS for t in tokens):
        tokens += [arg for value in sets for arg in ("--set", value)]
    return shlex.join(tokens) if tokens != shlex.split(command, comments=True) else command


BLOCKS = [b for b in read_blocks(README.read_text()) if b.lang in RUNNABLE]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A reader's folder: the repository's configs, this environment's commands, no network for the Hub."""
    folder = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "configs", folder / "configs")
    if sys.prefix != sys.base_prefix:
        (folder / ".venv").symlink_to(sys.prefix)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    return folder, env


def run(argv: list[str], folder: Path, env: dict, what: str) -> None:
    done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, f"{what} exited {done.returncode}:\n{(done.stdout + done.stderr)[-3000:]}"


def test_markers_name_commands_the_blocks_have():
    for block in read_blocks(README.read_text()):
        if block.only is not None:
            assert block.lang == "bash", f"{block.name}: 'only' numbers the commands of a bash block"
            count = len(block.commands())
            assert all(1 <= n <= count for n in block.only), f"{block.name}: 'only {block.only}' of {count} commands"
        if block.skip is not None or block.only is not None or block.sets:
            assert block.lang in RUNNABLE, f"{block.name}: a readme-test marker on a block that never runs"


def test_the_marker_grammar_is_checked():
    assert read_blocks("<!-- readme-test: skip (needs CIFAR-10) -->\n```bash\nx\n```\n")[0].skip == "needs CIFAR-10"
    text = "<!-- readme-test: only 2 (GPUs; CIFAR); set a=1 b.c=2 -->\n\n```bash\nx \\\n y\n# c\nz # d\n```\n"
    block = read_blocks(text)[0]
    assert (block.only, block.sets, block.commands()) == ([2], ["a=1", "b.c=2"], ["x y", "z # d"])
    with pytest.raises(ValueError, match=r"README.md:1: unknown readme-test directive 'skip'"):
        read_blocks("<!-- readme-test: skip -->\n```bash\nx\n```\n")
    with pytest.raises(ValueError, match=r"README.md:1: a readme-test marker must be right above a code block"):
        read_blocks("<!-- readme-test: skip (x) -->\ntext\n```bash\nx\n```\n")
    assert with_sets("cdarts-export --model r --output e [--ema]   # c", []) == "cdarts-export --model r --output e"
    assert with_sets("accelerate launch --no_python cdarts-search --config c.yaml  # c", ["a=1"]) == (
        "accelerate launch --no_python cdarts-search --config c.yaml --set a=1")
    assert with_sets("printf 'a: 1\\n' > c.yaml", ["a=1"]) == "printf 'a: 1\\n' > c.yaml"


@pytest.mark.parametrize("block", BLOCKS, ids=[f"line{b.line}-{b.lang}" for b in BLOCKS])
def test_readme_block_runs(block, workspace):
    if block.skip is not None:
        pytest.skip(block.skip)
    folder, env = workspace
    if block.lang == "python":
        script = folder / f"readme_line{block.line}.py"
        prelude = PYTHON_SET.format(sets=block.sets) if block.sets else ""
        script.write_text(prelude + textwrap.dedent(block.code))
        run([sys.executable, str(script)], folder, env, block.name)
        return
    commands = block.commands()
    for number, command in enumerate(commands, start=1):
        if block.only is None or number in block.only:
            run(["bash", "-e", "-o", "pipefail", "-c", with_sets(command, block.sets)], folder, env,
                f"{block.name}, command {number}: {command.strip()}")
