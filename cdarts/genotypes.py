"""Genotypes: the discrete architectures a search produces, typed, with JSON and text round trips.

DARTS-space genotypes print and parse as the DARTS ``Genotype(normal=[...], ...)`` text (parsed with ``ast``,
never ``eval``); NAS-Bench-201 cells as the standard arch string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.
The published genotypes of algorithm.md section 7 are registered by name in the ``genotypes`` registry.
"""
from __future__ import annotations

import ast
import itertools
import json
import operator
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

from cdarts.errors import ConfigError, FileError
from cdarts.ops.nb201 import NB201_PRIMITIVES
from cdarts.registry import genotypes as genotype_registry
from cdarts.registry import shown, unknown_name_message

Edge = tuple[str, int]
"""One chosen ``(op name, input node)`` pair."""

MAX_NODES = 16
"""The most intermediate nodes a cell may have (the DARTS space uses 4, NAS-Bench-201 3): a cell's cost grows with
the square of its nodes, so a larger genotype is refused when parsed, before anything is built from it."""

MAX_EDGES_PER_NODE = MAX_NODES + 1
"""The most ``(op, input)`` pairs one DARTS-cell node may take: as many as the last node of the largest cell has
inputs (DARTS's top-k picks 2)."""

MAX_GENOTYPE_FILE_BYTES = 1 << 20
"""The largest genotype JSON file read (a genotype of the largest cells is about 20 KB)."""


def _edges(pairs: Sequence[Sequence[Any]], where: str) -> tuple[Edge, ...]:
    if not isinstance(pairs, (list, tuple)):
        raise ConfigError(f"{where}: expected a list of (op name, input index) pairs, got {pairs!r}")
    result = []
    for pair in pairs:
        if (
            not isinstance(pair, (list, tuple))
            or len(pair) != 2
            or not isinstance(pair[0], str)
            or isinstance(pair[1], bool)
            or not isinstance(pair[1], int)
        ):
            raise ConfigError(f"{where}: expected (op name, input index) pairs, got {pair!r}")
        result.append((pair[0], pair[1]))
    return tuple(result)


def _concat(values: Sequence[int], edges: tuple[Edge, ...], where: str) -> tuple[int, ...]:
    """The concatenated node indices; their count is the node count, so ``edges`` must divide evenly over it."""
    if not isinstance(values, (list, tuple, range)):
        raise ConfigError(f"{where}_concat: expected a list of node indices, got {values!r}")
    if not values or not edges or len(edges) % len(values):
        raise ConfigError(f"{where}: {len(edges)} edges do not divide evenly over {len(values)} nodes")
    if len(values) > MAX_NODES:
        raise ConfigError(f"{where}: {len(values)} nodes; a cell has at most {MAX_NODES} intermediate nodes")
    if len(edges) // len(values) > MAX_EDGES_PER_NODE:
        raise ConfigError(f"{where}: {len(edges) // len(values)} edges per node; a node takes at most "
                          f"{MAX_EDGES_PER_NODE}")
    try:
        concat = tuple(operator.index(c) for c in values)
    except TypeError:
        raise ConfigError(f"{where}_concat: expected node indices, got {values!r}") from None
    bad = [c for c in concat if not 0 <= c < 2 + len(concat)]
    if bad:
        valid = f"0..{len(concat) + 1}"
        raise ConfigError(f"{where}_concat: no node {bad[0]} in a cell of {len(concat)} nodes (valid: {valid})")
    return concat


@dataclass(frozen=True)
class DartsGenotype:
    """A DARTS-space architecture: per cell type, ``k`` ``(op, input)`` pairs for each intermediate node.

    Inputs 0 and 1 are the outputs of the two previous cells, ``j >= 2`` the cell's node ``j``; the cell output is
    the concatenation of the ``concat`` nodes.
    """

    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]

    space = "darts"

    def __post_init__(self) -> None:
        for cell in ("normal", "reduce"):
            edges = _edges(getattr(self, cell), cell)
            concat = _concat(getattr(self, f"{cell}_concat"), edges, cell)
            object.__setattr__(self, cell, edges)
            object.__setattr__(self, f"{cell}_concat", concat)
            per_node = len(edges) // len(concat)
            for index, (_, source) in enumerate(edges):
                node = 2 + index // per_node
                if not 0 <= source < node:
                    raise ConfigError(f"{cell}: node {node} cannot take input {source} (valid: 0..{node - 1})")

    def nodes(self, cell: str) -> list[list[Edge]]:
        """The cell's edges grouped per intermediate node (node 2 first)."""
        edges, count = getattr(self, cell), len(getattr(self, f"{cell}_concat"))
        per_node = len(edges) // count
        return [list(edges[i * per_node : (i + 1) * per_node]) for i in range(count)]

    def ops(self) -> list[str]:
        """Every op of both cells, normal first."""
        return [op for op, _ in self.normal + self.reduce]

    def to_json(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "normal": [list(e) for e in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [list(e) for e in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    def __str__(self) -> str:
        def fmt(edges: tuple[Edge, ...]) -> str:
            return "[" + ", ".join(f"({op!r}, {i})" for op, i in edges) + "]"

        def rng(concat: tuple[int, ...]) -> str:
            contiguous = list(concat) == list(range(concat[0], concat[-1] + 1))
            return f"range({concat[0]}, {concat[-1] + 1})" if contiguous else str(list(concat))

        return (
            f"Genotype(normal={fmt(self.normal)}, normal_concat={rng(self.normal_concat)}, "
            f"reduce={fmt(self.reduce)}, reduce_concat={rng(self.reduce_concat)})"
        )


@dataclass(frozen=True)
class NB201Genotype:
    """A NAS-Bench-201 cell: for nodes 1..3, one op per incoming edge from every earlier node."""

    node_edges: tuple[tuple[Edge, ...], ...]

    space = "nas-bench-201"

    def __post_init__(self) -> None:
        if not isinstance(self.node_edges, (list, tuple)):
            raise ConfigError(f"expected one list of (op, input) pairs per node, got {self.node_edges!r}")
        if len(self.node_edges) > MAX_NODES:
            raise ConfigError(f"{len(self.node_edges)} nodes; a cell has at most {MAX_NODES}")
        nodes = tuple(_edges(node, f"node {j + 1}") for j, node in enumerate(self.node_edges))
        for j, node in enumerate(nodes, start=1):
            if sorted(i for _, i in node) != list(range(j)):
                raise ConfigError(f"node {j} must have exactly one edge from each of nodes 0..{j - 1}, got {node!r}")
        object.__setattr__(self, "node_edges", nodes)

    def nodes(self, cell: str = "cell") -> list[list[Edge]]:
        return [list(node) for node in self.node_edges]

    def ops(self) -> list[str]:
        return [op for node in self.node_edges for op, _ in node]

    def to_json(self) -> dict[str, Any]:
        return {"space": self.space, "arch": str(self)}

    def __str__(self) -> str:
        return "+".join("|" + "|".join(f"{op}~{i}" for op, i in node) + "|" for node in self.node_edges)


Genotype = Union[DartsGenotype, NB201Genotype]  # noqa: UP007 - a runtime alias, valid on Python 3.10 too


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


NB201_EDGES = tuple((i, node) for node in range(1, 4) for i in range(node))
"""``(input, node)`` of the six NAS-Bench-201 edges in alpha-row order: (0,1), (0,2), (1,2), (0,3), (1,3), (2,3)."""


def nb201_from_ops(ops: Sequence[str]) -> NB201Genotype:
    """The cell with ``ops[r]`` on edge ``NB201_EDGES[r]``."""
    if len(ops) != len(NB201_EDGES):
        raise ValueError(f"a NAS-Bench-201 cell has {len(NB201_EDGES)} edges, got {len(ops)} ops: {list(ops)!r}")
    rows = list(enumerate(NB201_EDGES))
    return NB201Genotype(tuple(tuple((ops[r], i) for r, (i, j) in rows if j == node) for node in (1, 2, 3)))


def nb201_ops(genotype: NB201Genotype) -> tuple[str, ...]:
    """The cell's op per edge in ``NB201_EDGES`` order, whatever order its nodes list their edges in."""
    if len(genotype.node_edges) != 3:
        raise ConfigError(f"a NAS-Bench-201 cell has 3 nodes; {genotype} has {len(genotype.node_edges)}")
    by_edge = {(i, node): op for node, edges in enumerate(genotype.node_edges, start=1) for op, i in edges}
    return tuple(by_edge[edge] for edge in NB201_EDGES)


def enumerate_nb201(primitives: Sequence[str] = NB201_PRIMITIVES) -> Iterator[NB201Genotype]:
    """Every cell of the space, ``len(primitives) ** 6`` of them (15,625 for the standard five ops), in
    ``itertools.product`` order over the edges (the last edge varies fastest, ops in ``primitives`` order)."""
    for ops in itertools.product(primitives, repeat=len(NB201_EDGES)):
        yield nb201_from_ops(ops)


_Labelled = tuple[tuple[tuple[str, tuple[tuple[int, int], ...]], ...], tuple[tuple[int, int], ...]]


def _nb201_function(ops: Sequence[str]) -> _Labelled:
    """A canonical encoding of what the cell computes, as the DAG of its live parameterised-op applications.

    Every edge whose op is neither ``none`` nor ``skip_connect`` and whose input is not zero is one application
    (one module, its own weights) of the op to its input node's value; a node's value is the multiset of
    applications (and of the cell input ``x``) it sums, expanded through skip connections. The encoding lists the
    applications the output depends on, each as ``(op, input multiset)`` with the inputs named by position in the
    list (``-1`` is ``x``), plus the output multiset; the labelling is the least over all that order the
    applications by their expression text, so two cells get the same encoding exactly when their DAGs are
    isomorphic.
    """
    applications: list[tuple[str, Counter]] = []
    values: list[Counter] = [Counter({-1: 1})]
    for node in (1, 2, 3):
        value: Counter = Counter()
        for (source, target), op in zip(NB201_EDGES, ops, strict=True):
            if target != node or op == "none" or not values[source]:
                continue
            if op == "skip_connect":
                value.update(values[source])
            else:
                applications.append((op, values[source]))
                value[len(applications) - 1] += 1
        values.append(value)
    output = values[3]

    live: set[int] = set()
    pending = [term for term in output if term >= 0]
    while pending:
        term = pending.pop()
        if term not in live:
            live.add(term)
            pending.extend(t for t in applications[term][1] if t >= 0)

    text: dict[int, str] = {-1: "x"}

    def expression(term: int) -> str:
        if term not in text:
            op, inputs = applications[term]
            text[term] = op + "(" + "+".join(sorted(f"{expression(t)}*{n}" for t, n in inputs.items())) + ")"
        return text[term]

    order = sorted(live, key=expression)
    groups = [list(group) for _, group in itertools.groupby(order, key=expression)]
    best = None
    for arrangement in itertools.product(*(itertools.permutations(group) for group in groups)):
        labels = {-1: -1}
        labels.update((term, index) for index, term in enumerate(t for group in arrangement for t in group))

        def named(multiset: Counter, labels: dict[int, int] = labels) -> tuple[tuple[int, int], ...]:
            return tuple(sorted((labels[t], n) for t, n in multiset.items()))

        encoding = (
            tuple((applications[t][0], named(applications[t][1])) for group in arrangement for t in group),
            named(output),
        )
        best = encoding if best is None or encoding < best else best
    return best


@lru_cache(maxsize=8)
def _nb201_representatives(primitives: tuple[str, ...]) -> dict[tuple[str, ...], tuple[str, ...]]:
    """Every cell over ``primitives`` (as ops in edge order) mapped to its class representative."""
    functions = {ops: _nb201_function(ops) for ops in itertools.product(primitives, repeat=len(NB201_EDGES))}
    best: dict[_Labelled, tuple[str, ...]] = {}
    for ops, function in functions.items():
        current = best.get(function)
        if current is None or (sum(op != "none" for op in ops), ops) < (sum(op != "none" for op in current), current):
            best[function] = ops
    return {ops: best[function] for ops, function in functions.items()}


def canonical_nb201(genotype: NB201Genotype) -> NB201Genotype:
    """One representative per class of cells that compute the same function, so isomorphic cells compare equal.

    Two cells are identified exactly when the DAGs of their live parameterised-op applications are isomorphic
    (see ``_nb201_function``), where ``none`` is zero, ``skip_connect`` the identity, addition commutative and
    associative, and an op on an all-zero node zero (NAS-Bench-201's convention: it drops the constant that an
    affine BN adds to a zero input). So edges that cannot reach the output, edges out of nodes that are always
    zero and any arrangement of skip connections with the same effect do not matter; a module used twice
    (reached through two skip paths) is told apart from two modules with independent weights, and the
    multiplicity of a term counts (``x + x`` is not ``x``). Algebraic facts about particular ops (``avg_pool_3x3``
    is linear, BN is scale-invariant in training) are not used: cells they would make equal stay apart.

    The representative is the class member with the fewest non-``none`` edges, then the least tuple of op names in
    edge order; it therefore has ``none`` on every edge that does not matter.
    """
    ops = nb201_ops(genotype)
    primitives = tuple(sorted(set(NB201_PRIMITIVES) | set(ops)))
    return nb201_from_ops(_nb201_representatives(primitives)[ops])


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


_ABBREVIATIONS = {
    "sep3": "sep_conv_3x3",
    "sep5": "sep_conv_5x5",
    "dil3": "dil_conv_3x3",
    "dil5": "dil_conv_5x5",
    "max": "max_pool_3x3",
    "avg": "avg_pool_3x3",
    "skip": "skip_connect",
}


def _published(normal: str, reduce: str) -> DartsGenotype:
    """A genotype from algorithm.md's compact ``sep3<-0 sep3<-1 | ...`` notation."""

    def cell(text: str) -> list[Edge]:
        return [(_ABBREVIATIONS[op], int(i)) for op, i in (t.split("<-") for t in text.replace("|", " ").split())]

    return DartsGenotype(cell(normal), range(2, 6), cell(reduce), range(2, 6))


PUBLISHED = {
    "CDARTS_CIFAR": _published(
        "sep3<-0 sep3<-1 | sep3<-1 sep3<-2 | sep3<-0 sep3<-1 | skip<-0 skip<-2",
        "sep5<-1 max<-0 | dil5<-2 skip<-0 | sep3<-0 sep5<-1 | sep3<-0 dil5<-2",
    ),
    "CDARTS_IMAGENET": _published(
        "sep3<-1 sep3<-0 | sep3<-0 sep5<-2 | sep5<-2 sep3<-1 | sep3<-1 sep5<-4",
        "sep5<-1 avg<-0 | max<-1 dil5<-2 | sep5<-1 dil5<-2 | sep3<-3 dil3<-4",
    ),
    "DARTS_V1": _published(
        "sep3<-1 sep3<-0 | skip<-0 sep3<-1 | skip<-0 sep3<-1 | sep3<-0 skip<-2",
        "max<-0 max<-1 | skip<-2 max<-0 | max<-0 skip<-2 | skip<-2 avg<-0",
    ),
    "DARTS_V2": _published(
        "sep3<-0 sep3<-1 | sep3<-0 sep3<-1 | sep3<-1 skip<-0 | skip<-0 dil3<-2",
        "max<-0 max<-1 | skip<-2 max<-1 | max<-0 skip<-2 | skip<-2 max<-1",
    ),
    "PDARTS": _published(
        "skip<-0 dil3<-1 | skip<-0 sep3<-1 | sep3<-1 sep3<-3 | sep3<-0 dil5<-4",
        "avg<-0 sep5<-1 | sep3<-0 dil5<-2 | max<-0 dil3<-1 | dil3<-1 dil5<-3",
    ),
    "PC_DARTS_CIFAR": _published(
        "sep3<-1 skip<-0 | sep3<-0 dil3<-1 | sep5<-0 sep3<-1 | avg<-0 dil3<-1",
        "sep5<-1 max<-0 | sep5<-1 sep5<-2 | sep3<-0 sep3<-3 | sep3<-1 sep3<-2",
    ),
    "PC_DARTS_IMAGENET": _published(
        "skip<-1 sep3<-0 | sep3<-0 skip<-1 | sep3<-1 sep3<-3 | sep3<-1 dil5<-4",
        "sep3<-0 skip<-1 | dil5<-2 max<-1 | sep3<-2 sep3<-1 | sep5<-0 sep3<-3",
    ),
}
for _name, _genotype in PUBLISHED.items():
    genotype_registry.register(_name, _genotype)
