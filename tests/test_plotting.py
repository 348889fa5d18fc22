"""Cell drawings: the graphs, a layout whose labels and nodes do not collide, PNG/SVG/PDF files written atomically."""
from __future__ import annotations

import itertools
import shutil

import pytest
from matplotlib.transforms import Bbox

from cdarts.genotypes import PUBLISHED, load_genotype, nb201_from_ops
from cdarts.ops import NB201_PRIMITIVES
from cdarts.plotting import cell_graphs, cells, plot_format, plot_genotype, to_dot
from cdarts.plotting.cells import FONT_EDGE, genotype_figure

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"


def fake_measure(text: str, size: float) -> tuple[float, float]:
    """Text extents close to DejaVu Sans's, so layouts can be checked without a renderer."""
    return 0.075 * len(text) * size / 9, 0.15 * size / 9


def test_darts_cells_as_graphs():
    normal, reduce = cell_graphs(load_genotype("DARTS_V2"))
    assert (normal.title, reduce.title) == ("normal cell", "reduction cell")
    assert [label for _, label, _ in normal.nodes] == ["0: c_{k-2}", "1: c_{k-1}", "2", "3", "4", "5", "c_{k}"]
    assert [kind for _, _, kind in normal.nodes] == ["input", "input"] + ["node"] * 4 + ["output"]
    ops = [(s, t, op) for s, t, op in normal.edges if op is not None]
    assert ops[:2] == [("in0", "n2", "sep_conv_3x3"), ("in1", "n2", "sep_conv_3x3")]
    assert ops[-1] == ("n2", "n5", "dil_conv_3x3")
    assert [(s, t) for s, t, op in normal.edges if op is None] == [("n2", "out"), ("n3", "out"), ("n4", "out"),
                                                                   ("n5", "out")]
    assert [op for _, _, op in reduce.edges if op] == [op for op, _ in load_genotype("DARTS_V2").reduce]


def test_nb201_cell_has_all_six_edges():
    (graph,) = cell_graphs(load_genotype(ARCH))
    assert [kind for _, _, kind in graph.nodes] == ["input", "node", "node", "output"]
    assert graph.edges == (
        ("n0", "n1", "nor_conv_3x3"), ("n0", "n2", "nor_conv_3x3"), ("n1", "n2", "avg_pool_3x3"),
        ("n0", "n3", "skip_connect"), ("n1", "n3", "none"), ("n2", "n3", "nor_conv_3x3"),
    )


NB201_SAMPLE = [
    nb201_from_ops(ops) for ops in itertools.islice(itertools.product(NB201_PRIMITIVES, repeat=6), 0, None, 397)
]
"""40 cells spread over all 15625."""


@pytest.mark.parametrize("genotype", list(PUBLISHED.values()) + NB201_SAMPLE, ids=str)
def test_layout_keeps_labels_off_nodes_and_each_other(genotype):
    for graph in cell_graphs(genotype):
        drawing = cells._lay_out(graph, fake_measure)
        labels = []
        for (_, _, op), centre in zip(graph.edges, drawing.labels, strict=True):
            assert (centre is None) == (op is None)
            if centre is not None:
                width, height = fake_measure(op, FONT_EDGE)
                labels.append((centre[0] - width / 2, centre[1] - height / 2, centre[0] + width / 2,
                               centre[1] + height / 2))
        nodes = list(drawing.boxes.values())
        for a, b in itertools.combinations(labels + nodes, 2):
            assert cells._overlap(a, b) == 0, (graph.title, a, b)
        for route, (source, target, _) in zip(drawing.routes, graph.edges, strict=True):
            assert route[0][0] == drawing.boxes[source][2] and route[-1][0] == drawing.boxes[target][0]


def test_layout_places_inputs_left_and_output_right():
    drawing = cells._lay_out(cell_graphs(load_genotype("PDARTS"))[0], fake_measure)
    xs = {node: x for node, (x, _) in drawing.centres.items() if not node.startswith("v")}
    assert xs["in0"] == xs["in1"] == min(xs.values()) and xs["out"] == max(xs.values())
    assert drawing.centres["in0"][1] > drawing.centres["in1"][1]
    assert xs["n5"] > xs["n3"]  # PDARTS normal node 3 takes node 1's output, so it sits a layer further right


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_plot_writes_each_format(tmp_path, suffix):
    path = plot_genotype(load_genotype("CDARTS_CIFAR"), tmp_path / f"cells{suffix}", backend="matplotlib")
    data = path.read_bytes()
    assert path == tmp_path / f"cells{suffix}" and len(data) > 1000
    signature = {".png": b"\x89PNG\r\n\x1a\n", ".svg": b"<?xml", ".pdf": b"%PDF"}[suffix]
    assert data.startswith(signature)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_svg_keeps_op_names_as_text(tmp_path):
    svg = plot_genotype(load_genotype(ARCH), tmp_path / "cell.svg", backend="matplotlib").read_text()
    for op in ("nor_conv_3x3", "avg_pool_3x3", "skip_connect", "none"):
        assert f">{op}<" in svg
    assert svg.count(">nor_conv_3x3<") == 3


def test_failed_plot_leaves_existing_file(tmp_path, monkeypatch):
    path = tmp_path / "cells.png"
    path.write_bytes(b"old")

    def broken(*args):
        raise RuntimeError("renderer failed")

    monkeypatch.setattr(cells, "_draw_matplotlib", broken)
    with pytest.raises(RuntimeError, match="renderer failed"):
        plot_genotype(load_genotype("DARTS_V2"), path, backend="matplotlib")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["cells.png"]


def test_plot_rejects_unknown_format_and_backend(tmp_path):
    with pytest.raises(ValueError, match=r"unknown format '\.jpg'; use one of \.png, \.svg, \.pdf"):
        plot_format(tmp_path / "cells.jpg")
    with pytest.raises(ValueError, match=r"unknown format '\(no suffix\)'"):
        plot_format("cells")
    with pytest.raises(ValueError, match="unknown plot backend 'tikz'; available: auto, graphviz, matplotlib"):
        plot_genotype(load_genotype("DARTS_V2"), tmp_path / "cells.png", backend="tikz")
    assert plot_format("A.SVG") == "svg"


def test_dot_source_has_one_cluster_per_cell():
    source = to_dot(load_genotype("DARTS_V2"))
    assert source.count("subgraph cluster_") == 2
    assert 'c0_in0 -> c0_n2 [label="sep_conv_3x3"];' in source
    assert 'c1_n2 -> c1_n5 [label="skip_connect"];' in source
    assert source.count('-> c1_out [color="gray50"]') == 4
    nb201 = to_dot(load_genotype(ARCH))
    assert 'c0_n1 -> c0_n3 [label="none" style=dashed' in nb201


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")
def test_graphviz_backend_renders(tmp_path):
    path = plot_genotype(load_genotype("DARTS_V2"), tmp_path / "cells.svg", backend="graphviz")
    assert "sep_conv_3x3" in path.read_text()


def test_graphviz_backend_without_dot_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(cells.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="needs the 'dot' binary"):
        plot_genotype(load_genotype("DARTS_V2"), tmp_path / "cells.png", backend="graphviz")
    assert plot_genotype(load_genotype("DARTS_V2"), tmp_path / "cells.png").read_bytes()[:4] == b"\x89PNG"


def test_node_numbers_match_the_genotype_text():
    """``('sep_conv_3x3', 1)`` at node 2 of the genotype's text is an edge from the box labelled 1 to the box 2."""
    genotype = load_genotype("PDARTS")
    for graph, cell in zip(cell_graphs(genotype), ("normal", "reduce"), strict=True):
        number = {node: label.split(":")[0] for node, label, kind in graph.nodes if kind != "output"}
        drawn = sorted((op, number[source], number[target]) for source, target, op in graph.edges if op)
        text = sorted((op, str(source), str(node)) for node, pairs in enumerate(genotype.nodes(cell), 2)
                      for op, source in pairs)
        assert drawn == text
    (graph,) = cell_graphs(load_genotype(ARCH))
    labels = dict((node, label) for node, label, _ in graph.nodes)
    assert sorted((op, labels[s], labels[t]) for s, t, op in graph.edges) == sorted(
        (op, str(i), str(j)) for j, node in enumerate(load_genotype(ARCH).nodes(), 1) for op, i in node)


@pytest.mark.parametrize("genotype", [*PUBLISHED.values(), *NB201_SAMPLE[::20]], ids=str)
def test_rendered_labels_do_not_overlap(genotype):
    """In the drawn figure (matplotlib's own text extents), no two labels overlap and no op name covers a node."""
    fig = genotype_figure(cell_graphs(genotype))
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    texts = [t.get_window_extent(renderer) for t in ax.texts]
    assert len(texts) == sum(len(g.nodes) + sum(op is not None for *_, op in g.edges) + 1
                             for g in cell_graphs(genotype))
    for a, b in itertools.combinations(texts, 2):
        common = Bbox.intersection(a, b)
        assert common is None or common.width * common.height == 0, (a, b)
    node_boxes = [p.get_window_extent(renderer) for p in ax.patches if type(p).__name__ == "FancyBboxPatch"]
    ops = [t.get_window_extent(renderer) for t in ax.texts if t.get_text() in genotype.ops()]
    assert len(node_boxes) == sum(len(g.nodes) for g in cell_graphs(genotype))
    for op, node in itertools.product(ops, node_boxes):
        assert not op.overlaps(node), (op, node)
