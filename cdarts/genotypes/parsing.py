"""Genotypes from text, JSON, files, run folders and registered names; parsing never runs ``eval``, and anything
too large for a cell is refused as it is read."""
from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from cdarts.errors import ConfigError, FileError
from cdarts.genotypes.types import MAX_NODES, DartsGenotype, Genotype, NB201Genotype
from cdarts.registry import genotypes as genotype_registry
from cdarts.registry import shown, unknown_name_message

MAX_GENOTYPE_FILE_BYTES = 1 << 20
"""The largest genotype JSON file read (a genotype of the largest cells is about 20 KB)."""


def parse_arch_string(text: str) -> NB201Genotype:
    """Parse ``|op~0|+|op~0|op~1|+...``."""
    parts = text.strip().split("+")
    if len(parts) > MAX_NODES:
        raise ConfigError(f"NAS-Bench-201 arch string of {len(parts)} nodes; a cell has at most {MAX_NODES}")
    nodes = []
    for j, part in enumerate(parts, start=1):
        if not (part.startswith("|") and part.endswith("|")) or len(part) < 3:
            raise ConfigError(f"bad NAS-Bench-201 arch string {text!r}: node {j} part {part!r} is not '|op~i|...|'")
        edges = []
        for item in part[1:-1].split("|"):
            op, sep, index = item.rpartition("~")
            if not sep or not op or not index.isdigit():
                raise ConfigError(f"bad NAS-Bench-201 arch string {text!r}: edge {item!r} is not 'op~input'")
            edges.append((op, int(index)))
        nodes.append(tuple(edges))
    return NB201Genotype(tuple(nodes))


def _literal(node: ast.expr, text: str) -> Any:
    """A literal, or ``range(...)`` of literals (kept lazy: its length is checked before it is listed)."""
    try:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
            if node.keywords:
                raise ValueError("range takes no keywords")
            return range(*(ast.literal_eval(a) for a in node.args))
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ConfigError(f"bad Genotype text {text!r}: {ast.unparse(node)!r} is not a literal") from None


def parse_darts_text(text: str) -> DartsGenotype:
    """Parse the DARTS ``Genotype(normal=[...], normal_concat=range(2, 6), ...)`` text without ``eval``."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ConfigError(f"bad Genotype text {text!r}: {exc.msg}") from None
    except (ValueError, MemoryError, RecursionError):
        raise ConfigError(f"bad Genotype text {text!r}: not parseable") from None
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "Genotype"):
        raise ConfigError(f"bad Genotype text {text!r}: expected Genotype(normal=..., reduce=...)")
    fields = ("normal", "normal_concat", "reduce", "reduce_concat")
    if len(tree.args) > len(fields):
        raise ConfigError(f"bad Genotype text: {len(tree.args)} positional fields; valid fields: {', '.join(fields)}")
    values = dict(zip(fields, (_literal(a, text) for a in tree.args), strict=False))
    for keyword in tree.keywords:
        if keyword.arg not in fields:
            raise ConfigError(f"bad Genotype text: unknown field {keyword.arg!r}; valid fields: {', '.join(fields)}")
        values[keyword.arg] = _literal(keyword.value, text)
    missing = [f for f in fields if f not in values]
    if missing:
        raise ConfigError(f"bad Genotype text: missing {', '.join(missing)}")
    return DartsGenotype(**values)


def genotype_from_json(data: Any) -> Genotype:
    """Rebuild a genotype from ``to_json()`` output (or a bare arch string / DARTS text)."""
    if isinstance(data, str):
        return parse_genotype(data)
    if not isinstance(data, dict):
        raise ConfigError(f"expected a genotype object, got {type(data).__name__}")
    space = data.get("space", "darts")
    if space == "nas-bench-201":
        if not isinstance(data.get("arch"), str):
            raise ConfigError(f"NAS-Bench-201 genotype JSON needs an 'arch' string, got {data.get('arch')!r}")
        return parse_arch_string(data["arch"])
    if space != "darts":
        raise ConfigError(unknown_name_message("genotype space", space, ["darts", "nas-bench-201"]))
    fields = ("normal", "normal_concat", "reduce", "reduce_concat")
    missing = [f for f in fields if f not in data]
    if missing:
        raise ConfigError(f"genotype JSON is missing {', '.join(missing)}")
    return DartsGenotype(**{f: data[f] for f in fields})


def _json(text: str) -> Any:
    """``json.loads``; a document nested deeper than Python's recursion limit is bad JSON, not a RecursionError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None


def parse_genotype(text: str) -> Genotype:
    """A genotype from DARTS text, an arch string, or JSON text."""
    stripped = text.strip()
    if stripped.startswith("Genotype("):
        return parse_darts_text(stripped)
    if stripped.startswith("|"):
        return parse_arch_string(stripped)
    if stripped.startswith("{"):
        try:
            data = _json(stripped)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"bad genotype JSON {shown(text)}: {exc}") from None
        return genotype_from_json(data)
    raise ConfigError(f"cannot parse genotype {text!r}: expected Genotype(...), an arch string '|op~0|+...' or JSON")


def load_genotype(ref: str | Path | dict | Genotype) -> Genotype:
    """Resolve a registered name, a JSON file (``genotype.json``), a run folder, or genotype text."""
    if isinstance(ref, (DartsGenotype, NB201Genotype)):
        return ref
    if isinstance(ref, dict):
        return genotype_from_json(ref)
    text = str(ref)
    if genotype_registry.has(text):
        return genotype_registry.get(text)
    if text.lstrip().startswith(("Genotype(", "|", "{")):
        return parse_genotype(text)
    path = Path(text)
    if path.is_dir() and (path / "genotype.json").is_file():
        path = path / "genotype.json"
    if path.is_file():
        size = path.stat().st_size
        if size > MAX_GENOTYPE_FILE_BYTES:
            raise FileError(f"{path}: not a genotype JSON file ({size} bytes; one holds at most "
                            f"{MAX_GENOTYPE_FILE_BYTES})")
        try:
            return genotype_from_json(_json(path.read_text()))
        except (json.JSONDecodeError, KeyError, ValueError) as exc:
            raise FileError(f"{path}: not a genotype JSON file ({exc})") from None
    raise ConfigError(
        unknown_name_message("genotype", text, genotype_registry.names()) + " (nor a genotype JSON file or text)"
    )
