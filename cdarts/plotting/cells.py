"""Cell drawings of a genotype, as in the DARTS and CDARTS papers: inputs on the left, ops on the edges.

``plot_genotype`` uses Graphviz's ``dot`` when the binary is installed and otherwise draws the same layered
picture with matplotlib, so a run folder always gets its figure. Nodes carry the numbers the genotype's text uses
(``('sep_conv_3x3', 1)`` leaves node 1). DARTS genotypes give two panels (normal and reduction cell, inputs
``0: c_{k-2}`` and ``1: c_{k-1}``, nodes 2..5, output ``c_{k}``); NAS-Bench-201 genotypes the 4-node cell (0..3)
with all 6 edges (``none`` edges dashed).
"""
from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

from cdarts.genotypes import DartsGenotype, Genotype, NB201Genotype
from cdarts.io import atomic_write
from cdarts.plotting.files import plot_format

COLORS = {"input": "#b4eeb4", "node": "#add8e6", "output": "#eee8aa"}
"""Graphviz's darkseagreen2, lightblue and palegoldenrod, as in the DARTS figures."""
Backend = Literal["auto", "graphviz", "matplotlib"]


@dataclass(frozen=True)
class CellGraph:
    """One cell as a drawable DAG; nodes in topological order, ``op`` None for the edges into the cell output."""

    title: str
    nodes: tuple[tuple[str, str, str], ...]
    """``(id, label, kind)``, kind one of ``input``, ``node``, ``output``."""
    edges: tuple[tuple[str, str, str | None], ...]
    """``(source id, target id, op)``."""


def cell_graphs(genotype: Genotype) -> list[CellGraph]:
    """The cells of ``genotype`` as graphs: DARTS normal then reduction cell, or the one NAS-Bench-201 cell."""
    if isinstance(genotype, NB201Genotype):
        count = len(genotype.node_edges) + 1
        kinds = ["input"] + ["node"] * (count - 2) + ["output"]
        nodes = tuple((f"n{j}", str(j), kinds[j]) for j in range(count))
        edges = tuple((f"n{i}", f"n{j}", op) for j, node in enumerate(genotype.node_edges, 1) for op, i in node)
        return [CellGraph("NAS-Bench-201 cell", nodes, edges)]
    if not isinstance(genotype, DartsGenotype):
        raise ValueError(f"cannot draw {type(genotype).__name__}; expected a DartsGenotype or NB201Genotype")
    graphs = []
    for cell, title in (("normal", "normal cell"), ("reduce", "reduction cell")):
        steps = genotype.nodes(cell)
        ids = ["in0", "in1"] + [f"n{j}" for j in range(2, 2 + len(steps))]
        nodes = [("in0", "0: c_{k-2}", "input"), ("in1", "1: c_{k-1}", "input")]
        nodes += [(f"n{j}", str(j), "node") for j in range(2, 2 + len(steps))]
        nodes.append(("out", "c_{k}", "output"))
        edges = [(ids[source], f"n{j}", op) for j, step in enumerate(steps, 2) for op, source in step]
        edges += [(ids[j], "out", None) for j in getattr(genotype, f"{cell}_concat")]
        graphs.append(CellGraph(title, tuple(nodes), tuple(edges)))
    return graphs


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(genotype: Genotype) -> str:
    """Graphviz source: one left-to-right cluster per cell."""
    lines = [
        "digraph genotype {",
        '  rankdir=LR; fontname="Helvetica"; nodesep=0.25; ranksep=0.6;',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=14, height=0.4, penwidth=1.5];',
        '  edge [fontname="Helvetica", fontsize=12, arrowsize=0.7];',
    ]
    for index, graph in enumerate(cell_graphs(genotype)):
        lines.append(f'  subgraph cluster_{index} {{ label="{graph.title}"; fontsize=16; color=white;')
        for node, label, kind in graph.nodes:
            lines.append(f'    c{index}_{node} [label={_quote(label)}, fillcolor="{COLORS[kind]}"];')
        for source, target, op in graph.edges:
            style = ' color="gray50"' if op is None else f" label={_quote(op)}"
            if op == "none":
                style += ' style=dashed fontcolor="gray40" color="gray60"'
            lines.append(f"    c{index}_{source} -> c{index}_{target} [{style.strip()}];")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def plot_genotype(genotype: Genotype, path: str | Path, backend: Backend = "auto") -> Path:
    """Draw ``genotype``'s cells to ``path`` (.png, .svg or .pdf), written atomically; returns the path."""
    fmt, path = plot_format(path), Path(path)
    if backend not in ("auto", "graphviz", "matplotlib"):
        raise ValueError(f"unknown plot backend {backend!r}; available: auto, graphviz, matplotlib")
    dot = shutil.which("dot")
    if backend == "graphviz" and dot is None:
        raise FileNotFoundError("the graphviz backend needs the 'dot' binary on PATH")
    graphs = cell_graphs(genotype)
    if backend == "matplotlib" or dot is None:
        return atomic_write(path, lambda tmp: _draw_matplotlib(graphs, tmp, fmt))
    source = to_dot(genotype)

    def render(tmp: Path) -> None:
        image = subprocess.run([dot, f"-T{fmt}"], input=source.encode(), capture_output=True, check=True).stdout
        tmp.write_bytes(image)

    return atomic_write(path, render)


# --- matplotlib drawing: dot's layered layout (long edges get virtual nodes), smooth edges, greedy label placement

LAYER_GAP = 2.6
"""Inches between layer centres: room for an op name between two node boxes."""
ROW_GAP = 0.8
NODE_HEIGHT = 0.38
PORT_GAP = 0.09
FONT_NODE, FONT_EDGE, FONT_TITLE = 12, 9, 12
LABEL_TS = tuple(sorted((k / 20 for k in range(3, 18)), key=lambda t: abs(t - 0.5)))
"""Where along an edge segment its label may sit, most preferred (the middle) first."""
Point = tuple[float, float]
Box = tuple[float, float, float, float]


def _math(label: str) -> str:
    """``0: c_{k-2}`` as mathtext after its number: ``0: $c_{k-2}$``."""
    if "_" not in label:
        return label
    number, _, name = label.rpartition(" ")
    return f"{number} ${name}$" if number else f"${name}$"


def _centred(row: list[str]) -> dict[str, float]:
    return {n: i - (len(row) - 1) / 2 for i, n in enumerate(row)}


def _sort_by_barycentre(row: list[str], neighbours: dict[str, list[str]], other: list[str]) -> None:
    place, current = _centred(other), _centred(row)

    def key(node: str) -> float:
        near = [place[m] for m in neighbours[node] if m in place]
        return sum(near) / len(near) if near else current[node]

    row.sort(key=key)


def _layers(graph: CellGraph) -> tuple[list[list[str]], list[list[str]]]:
    """Rows per layer (virtual nodes included) and each edge's chain of nodes, ordered to reduce crossings.

    Layer = longest path from an input, the output alone in the last layer; an edge spanning several layers
    passes through one virtual node per layer between; barycentre sweeps order the rows (inputs stay in order).
    """
    preds: dict[str, list[str]] = defaultdict(list)
    for source, target, _ in graph.edges:
        preds[target].append(source)
    layer: dict[str, int] = {}
    for node, _, kind in graph.nodes:
        if kind != "output":
            layer[node] = 0 if kind == "input" else 1 + max((layer[p] for p in preds[node]), default=0)
    last = max(layer.values()) + 1
    layer.update({node: last for node, _, kind in graph.nodes if kind == "output"})
    rows = [[n for n, _, _ in graph.nodes if layer[n] == depth] for depth in range(last + 1)]
    chains, up, down = [], defaultdict(list), defaultdict(list)
    for index, (source, target, _) in enumerate(graph.edges):
        chain = [source] + [f"v{index}_{d}" for d in range(layer[source] + 1, layer[target])] + [target]
        for depth, virtual in enumerate(chain[1:-1], layer[source] + 1):
            rows[depth].append(virtual)
        for a, b in pairwise(chain):
            down[a].append(b)
            up[b].append(a)
        chains.append(chain)
    for _ in range(3):
        for depth in range(1, last + 1):
            _sort_by_barycentre(rows[depth], up, rows[depth - 1])
        for depth in range(last - 1, 0, -1):
            _sort_by_barycentre(rows[depth], down, rows[depth + 1])
    for depth in range(1, last + 1):
        _sort_by_barycentre(rows[depth], up, rows[depth - 1])
    return rows, chains


def _heights(rows: list[list[str]], chains: list[list[str]]) -> dict[str, float]:
    """Row heights that keep each layer's order and spacing but pull every node towards its neighbours' mean,
    which straightens edges (dot's coordinate step, simplified). The inputs, where most edges start, sit wider."""
    neighbours: dict[str, list[str]] = defaultdict(list)
    for chain in chains:
        for a, b in pairwise(chain):
            neighbours[a].append(b)
            neighbours[b].append(a)
    y = {node: ((len(row) - 1) / 2 - i) * ROW_GAP for row in rows for i, node in enumerate(row)}
    for _ in range(8):
        for depth, row in enumerate(rows):
            gap = ROW_GAP * (1.75 if depth == 0 else 1.0)
            desired = [sum(y[m] for m in neighbours[n]) / len(neighbours[n]) if neighbours[n] else y[n] for n in row]
            placed = [desired[0]]
            for want in desired[1:]:
                placed.append(min(want, placed[-1] - gap))
            shift = (sum(desired) - sum(placed)) / len(row)
            y.update((n, h + shift) for n, h in zip(row, placed, strict=True))
    middle = (max(y.values()) + min(y.values())) / 2
    return {n: h - middle for n, h in y.items()}


def _cubic(p: Point, q: Point, t: float) -> Point:
    """A point of the S-curve from ``p`` to ``q`` that leaves and arrives horizontally."""
    (x1, y1), (x2, y2) = p, q
    c1, c2 = (x1 + (x2 - x1) / 2, y1), (x2 - (x2 - x1) / 2, y2)
    u = 1 - t
    return (
        u**3 * x1 + 3 * u * u * t * c1[0] + 3 * u * t * t * c2[0] + t**3 * x2,
        u**3 * y1 + 3 * u * u * t * c1[1] + 3 * u * t * t * c2[1] + t**3 * y2,
    )


def _overlap(a: Box, b: Box) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


@dataclass
class _Drawing:
    """One cell laid out in inches: node centres and boxes, each edge's points, each op label's centre."""

    centres: dict[str, Point]
    boxes: dict[str, Box]
    routes: list[list[Point]]
    labels: list[Point | None]

    def bounds(self) -> Box:
        xs = [v for b in self.boxes.values() for v in (b[0], b[2])] + [p[0] for r in self.routes for p in r]
        ys = [v for b in self.boxes.values() for v in (b[1], b[3])] + [p[1] for r in self.routes for p in r]
        ys += [p[1] + s for p in self.labels if p for s in (-0.12, 0.12)]
        return min(xs), min(ys), max(xs), max(ys)


def _ports(chains: list[list[str]], centres: dict[str, Point]) -> tuple[dict[int, float], dict[int, float]]:
    """Vertical offsets where each edge leaves its source and enters its target, ordered so edges do not cross."""
    leaving, entering = defaultdict(list), defaultdict(list)
    for index, chain in enumerate(chains):
        leaving[chain[0]].append((-centres[chain[1]][1], index))
        entering[chain[-1]].append((-centres[chain[-2]][1], index))
    offsets: tuple[dict[int, float], dict[int, float]] = ({}, {})
    for groups, offset in zip((leaving, entering), offsets, strict=True):
        for group in groups.values():
            for rank, (_, index) in enumerate(sorted(group)):
                offset[index] = ((len(group) - 1) / 2 - rank) * PORT_GAP
    return offsets


def _place_labels(
    ops: list[str | None], routes: list[list[Point]], obstacles: list[Box], measure
) -> list[Point | None]:
    """A centre on its own edge for every op label, clear of the nodes and of each other where possible.

    Each label takes the candidate point that overlaps nothing and covers the fewest other edges; a few rounds of
    re-placing every label given all the others settle what a single greedy pass would leave crowded.
    """
    samples = [[_cubic(p, q, k / 16) for p, q in pairwise(route) for k in range(17)] for route in routes]
    options: dict[int, list[tuple[Box, int]]] = {}
    for index, (op, route) in enumerate(zip(ops, routes, strict=True)):
        if op is None:
            continue
        width, height = measure(op, FONT_EDGE)
        width, height = width + 0.1, height + 0.08
        options[index] = []
        for p, q in pairwise(route):
            for t in LABEL_TS:
                x, y = _cubic(p, q, t)
                box = (x - width / 2, y - height / 2, x + width / 2, y + height / 2)
                crossings = sum(box[0] <= u <= box[2] and box[1] <= v <= box[3]
                                for j, curve in enumerate(samples) if j != index for u, v in curve)
                options[index].append((box, crossings))
    chosen: dict[int, Box] = {}
    for _ in range(4):
        moved = False
        for index, candidates in options.items():
            others = obstacles + [box for j, box in chosen.items() if j != index]

            def score(option: tuple[Box, int], others=others) -> float:
                overlaps = [_overlap(option[0], other) for other in others]
                return 1e3 * sum(a > 0 for a in overlaps) + 1e4 * sum(overlaps) + option[1]

            best = min(candidates, key=score)[0]
            moved = moved or chosen.get(index) != best
            chosen[index] = best
        if not moved:
            break
    return [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) if (b := chosen.get(i)) else None for i in range(len(ops))]


def _lay_out(graph: CellGraph, measure) -> _Drawing:
    rows, chains = _layers(graph)
    heights = _heights(rows, chains)
    centres = {node: (depth * LAYER_GAP, heights[node]) for depth, row in enumerate(rows) for node in row}
    boxes = {}
    for node, label, _ in graph.nodes:
        width = max(measure(_math(label), FONT_NODE)[0] + 0.3, 0.5)
        x, y = centres[node]
        boxes[node] = (x - width / 2, y - NODE_HEIGHT / 2, x + width / 2, y + NODE_HEIGHT / 2)
    out_port, in_port = _ports(chains, centres)
    routes = []
    for index, chain in enumerate(chains):
        start = (boxes[chain[0]][2], centres[chain[0]][1] + out_port[index])
        end = (boxes[chain[-1]][0], centres[chain[-1]][1] + in_port[index])
        routes.append([start] + [centres[v] for v in chain[1:-1]] + [end])
    labels = _place_labels([op for _, _, op in graph.edges], routes, list(boxes.values()), measure)
    return _Drawing(centres, boxes, routes, labels)


def _draw_matplotlib(graphs: list[CellGraph], path: Path, fmt: str) -> None:
    from matplotlib import rc_context

    fig = genotype_figure(graphs)
    with rc_context({"svg.fonttype": "none", "pdf.fonttype": 42}):
        fig.savefig(path, format=fmt)


def genotype_figure(graphs: list[CellGraph]) -> Any:
    """The matplotlib Figure of ``graphs`` (one panel each, stacked), sized in inches to its layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path as MplPath

    fig = Figure(dpi=150)
    renderer = FigureCanvasAgg(fig).get_renderer()

    def measure(text: str, size: float) -> tuple[float, float]:
        width, height, _ = renderer.get_text_width_height_descent(text, FontProperties(size=size), ismath="$" in text)
        return width / fig.dpi, height / fig.dpi

    title_height, gap, margin = 0.4, 0.3, 0.2
    panels, top = [], 0.0
    for graph in graphs:
        drawing = _lay_out(graph, measure)
        _, y0, _, y1 = drawing.bounds()
        shift = top - title_height - y1
        panels.append((graph, drawing, shift))
        top = shift + y0 - gap
    left = min(d.bounds()[0] for _, d, _ in panels) - margin
    right = max(d.bounds()[2] for _, d, _ in panels) + margin
    bottom = top + gap - margin
    fig.set_size_inches(right - left, margin / 2 - bottom)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, margin / 2)
    ax.set_axis_off()
    for graph, drawing, shift in panels:
        ax.text(left + margin, shift + drawing.bounds()[3] + title_height / 2, graph.title, fontsize=FONT_TITLE,
                fontweight="bold", va="center", ha="left")
        for node, label, kind in graph.nodes:
            x0, y0, x1, y1 = drawing.boxes[node]
            ax.add_patch(FancyBboxPatch((x0, y0 + shift), x1 - x0, y1 - y0, boxstyle="round,pad=0,rounding_size=0.08",
                                        facecolor=COLORS[kind], edgecolor="#333333", linewidth=1.2, zorder=3))
            x, y = drawing.centres[node]
            ax.text(x, y + shift, _math(label), fontsize=FONT_NODE, ha="center", va="center", zorder=4)
        for (_, _, op), route, label in zip(graph.edges, drawing.routes, drawing.labels, strict=True):
            vertices, codes = [(route[0][0], route[0][1] + shift)], [MplPath.MOVETO]
            for (x1, y1), (x2, y2) in pairwise(route):
                middle = (x1 + x2) / 2
                vertices += [(middle, y1 + shift), (middle, y2 + shift), (x2, y2 + shift)]
                codes += [MplPath.CURVE4] * 3
            color = "#888888" if op in (None, "none") else "#222222"
            ax.add_patch(FancyArrowPatch(path=MplPath(vertices, codes), arrowstyle="-|>", mutation_scale=11,
                                         linewidth=1.1, color=color, linestyle="--" if op == "none" else "-",
                                         zorder=1))
            if label is not None:
                ax.text(label[0], label[1] + shift, op, fontsize=FONT_EDGE, ha="center", va="center", color=color,
                        zorder=2, bbox=dict(boxstyle="round,pad=0.1", facecolor="white", edgecolor="none", alpha=0.9))
    return fig
