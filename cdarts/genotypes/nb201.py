"""NAS-Bench-201 cells by edge: the edge order of alphas and benchmark tables, every cell of the space, and one
representative per class of cells that compute the same function."""
from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator, Sequence
from functools import lru_cache

from cdarts.errors import ConfigError
from cdarts.genotypes.types import NB201Genotype
from cdarts.ops.nb201 import NB201_PRIMITIVES

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
