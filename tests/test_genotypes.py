"""Genotypes: typed validation, DARTS text and arch-string parsing without eval, JSON, loading by name/file/folder."""
from __future__ import annotations

import json
import re

import pytest

import cdarts  # noqa: F401 - registers the spaces
from cdarts.config import validate_component
from cdarts.errors import ConfigError, FileError
from cdarts.genotypes import (
    MAX_EDGES_PER_NODE,
    MAX_NODES,
    PUBLISHED,
    DartsGenotype,
    NB201Genotype,
    genotype_from_json,
    load_genotype,
    parse_arch_string,
    parse_darts_text,
    parse_genotype,
)
from cdarts.ops import DARTS_PRIMITIVES
from cdarts.registry import genotypes as genotype_registry

DARTS_V2_TEXT = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)
"""DARTS_V2 exactly as the DARTS repository's genotypes.py writes it (explicit concat lists)."""

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
TINY = DartsGenotype([("sep_conv_3x3", 0), ("skip_connect", 1)], [2], [("max_pool_3x3", 1), ("none", 0)], [2])


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_genotypes_round_trip_through_text(name):
    genotype = PUBLISHED[name]
    text = str(genotype)
    assert text.startswith("Genotype(normal=[(")
    assert "normal_concat=range(2, 6)" in text and "reduce_concat=range(2, 6)" in text
    assert parse_darts_text(text) == genotype
    assert parse_genotype(text) == genotype
    assert load_genotype(text) == genotype


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_genotypes_round_trip_through_json(name):
    genotype = PUBLISHED[name]
    data = genotype.to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["space"] == "darts"
    assert genotype_from_json(json.loads(json.dumps(data))) == genotype
    assert parse_genotype(json.dumps(data)) == genotype


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_genotypes_are_registered_and_well_formed(name):
    genotype = PUBLISHED[name]
    assert genotype_registry.get(name) is genotype
    assert load_genotype(name) is genotype
    assert len(genotype.normal) == len(genotype.reduce) == 8
    assert genotype.normal_concat == genotype.reduce_concat == (2, 3, 4, 5)
    assert set(genotype.ops()) <= set(DARTS_PRIMITIVES) - {"none"}
    for cell in ("normal", "reduce"):
        nodes = genotype.nodes(cell)
        assert [len(edges) for edges in nodes] == [2, 2, 2, 2]
        for node, edges in enumerate(nodes, start=2):
            assert all(0 <= source < node for _, source in edges)


def test_published_values_match_the_papers():
    assert parse_darts_text(DARTS_V2_TEXT) == PUBLISHED["DARTS_V2"]
    assert PUBLISHED["CDARTS_CIFAR"].nodes("normal")[3] == [("skip_connect", 0), ("skip_connect", 2)]
    assert PUBLISHED["CDARTS_IMAGENET"].nodes("reduce")[3] == [("sep_conv_3x3", 3), ("dil_conv_3x3", 4)]
    assert PUBLISHED["PC_DARTS_IMAGENET"].reduce[0] == ("sep_conv_3x3", 0)


def test_parse_explicit_concat_list_and_range():
    genotype = parse_darts_text(DARTS_V2_TEXT)
    assert genotype.normal_concat == (2, 3, 4, 5)
    assert str(genotype) == str(PUBLISHED["DARTS_V2"])
    ranged = DARTS_V2_TEXT.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6)")
    assert parse_darts_text(ranged) == genotype


def test_parse_positional_fields():
    text = "Genotype([('sep_conv_3x3', 0), ('skip_connect', 1)], [2], [('max_pool_3x3', 1), ('none', 0)], range(2, 3))"
    assert parse_darts_text(text) == TINY


def test_non_contiguous_concat_prints_as_a_list():
    genotype = DartsGenotype([("skip_connect", 0)] * 2, [2, 3], [("skip_connect", 0)] * 2, [3, 2])
    assert "normal_concat=range(2, 4)" in str(genotype)
    assert "reduce_concat=[3, 2]" in str(genotype)
    assert parse_darts_text(str(genotype)) == genotype


@pytest.mark.parametrize(
    "text",
    [
        "Genotype(normal=__import__('os').system('echo hi'), normal_concat=[2], reduce=[('a', 0)], reduce_concat=[2])",
        "Genotype(normal=[('a', 0)], normal_concat=range(__import__('os').getpid()), reduce=[], reduce_concat=[2])",
        "Genotype(normal=[('a', 0)] * 2, normal_concat=[2], reduce=[('a', 0)], reduce_concat=[2])",
        "Genotype(normal=[(open('/etc/passwd').read(), 0)], normal_concat=[2], reduce=[('a', 0)], reduce_concat=[2])",
    ],
)
def test_parsing_never_evaluates_code(text, capfd):
    with pytest.raises(ValueError, match="is not a literal"):
        parse_darts_text(text)
    assert capfd.readouterr().out == ""


@pytest.mark.parametrize(
    "text, message",
    [
        ("Genotype(normal=[('a', 0)]", "bad Genotype text"),
        ("genotype(normal=[])", "expected Genotype\\(normal=..., reduce=...\\)"),
        ("Genotype(normal=[('a', 0)], normal_concat=[2], reduce=[('a', 0)])", "missing reduce_concat"),
        ("Genotype(normal=[('a', 0)], normal_concat=[2], reduce=[('a', 0)], reduce_concat=[2], x=1)",
         "unknown field 'x'"),
        ("Genotype([('a', 0)], [2], [('a', 0)], [2], [3])", "5 positional fields"),
        ("Genotype(normal=[1, 2], normal_concat=[2], reduce=[('a', 0)], reduce_concat=[2])",
         "normal: expected \\(op name, input index\\) pairs, got 1"),
        ("Genotype(normal=5, normal_concat=[2], reduce=[('a', 0)], reduce_concat=[2])", "normal: expected a list"),
        ("Genotype(normal=[('a', 0)], normal_concat=None, reduce=[('a', 0)], reduce_concat=[2])",
         "normal_concat: expected a list of node indices, got None"),
        ("Genotype(normal=[('a', 0)], normal_concat=['x'], reduce=[('a', 0)], reduce_concat=[2])",
         "normal_concat: expected node indices"),
        ("Genotype(normal=[('a', 0)], normal_concat=[2], reduce=[('a', 0)], reduce_concat=[9])",
         "reduce_concat: no node 9 in a cell of 1 nodes \\(valid: 0..2\\)"),
        ("Genotype(normal=[('a', 0)], normal_concat=range('x'), reduce=[('a', 0)], reduce_concat=[2])",
         "is not a literal"),
        ("Genotype(normal=[('a', 0)], normal_concat=range(10 ** 15), reduce=[('a', 0)], reduce_concat=[2])",
         "is not a literal"),
        ("Genotype(normal=[('a', 0)], normal_concat=range(1000000000000000), reduce=[('a', 0)], reduce_concat=[2])",
         "normal: 1 edges do not divide evenly over 1000000000000000 nodes"),
        ("Genotype(normal=[('a', 0), ('a', 1), ('a', 0)], normal_concat=[2, 3], reduce=[('a', 0)], reduce_concat=[2])",
         "normal: 3 edges do not divide evenly over 2 nodes"),
        ("Genotype(normal=[('a', 2)], normal_concat=[2], reduce=[('a', 0)], reduce_concat=[2])",
         "normal: node 2 cannot take input 2 \\(valid: 0..1\\)"),
        ("Genotype(normal=[('a', True)], normal_concat=[2], reduce=[('a', 0)], reduce_concat=[2])",
         "normal: expected \\(op name, input index\\) pairs"),
    ],
)
def test_bad_darts_text_raises_value_error(text, message):
    with pytest.raises(ValueError, match=message):
        parse_darts_text(text)


def test_genotype_is_frozen_and_normalised():
    genotype = DartsGenotype([["sep_conv_3x3", 0], ["skip_connect", 1]], range(2, 3), [("none", 0), ("none", 1)], [2])
    assert genotype.normal == (("sep_conv_3x3", 0), ("skip_connect", 1))
    assert genotype.normal_concat == (2,)
    assert hash(genotype) == hash(DartsGenotype(genotype.normal, (2,), genotype.reduce, (2,)))
    with pytest.raises(AttributeError):
        genotype.normal = ()


def test_nodes_and_ops():
    genotype = PUBLISHED["DARTS_V2"]
    assert genotype.nodes("normal")[2] == [("sep_conv_3x3", 1), ("skip_connect", 0)]
    assert genotype.ops()[:2] == ["sep_conv_3x3", "sep_conv_3x3"]
    assert genotype.ops()[8:10] == ["max_pool_3x3", "max_pool_3x3"]
    assert len(genotype.ops()) == 16


# --- NAS-Bench-201 arch strings ------------------------------------------------------------------------------------


def test_arch_string_round_trips():
    genotype = parse_arch_string(ARCH)
    assert isinstance(genotype, NB201Genotype)
    assert str(genotype) == ARCH
    assert genotype.ops() == [
        "nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "skip_connect"
    ]
    assert genotype.nodes()[1] == [("nor_conv_3x3", 0), ("avg_pool_3x3", 1)]
    assert genotype.to_json() == {"space": "nas-bench-201", "arch": ARCH}
    assert genotype_from_json(genotype.to_json()) == genotype
    assert parse_genotype(ARCH) == genotype
    assert load_genotype(ARCH) == genotype
    assert load_genotype(genotype.to_json()) == genotype


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "node 1 part '' is not"),
        ("|nor_conv_3x3~0|+", "node 2 part '' is not"),
        ("nor_conv_3x3~0", "node 1 part 'nor_conv_3x3~0' is not"),
        ("||", "node 1 part '||' is not"),
        ("|nor_conv_3x3|", "edge 'nor_conv_3x3' is not 'op~input'"),
        ("|~0|", "edge '~0' is not 'op~input'"),
        ("|nor_conv_3x3~-1|", "edge 'nor_conv_3x3~-1' is not 'op~input'"),
        ("|nor_conv_3x3~0||", "edge '' is not 'op~input'"),
        ("|nor_conv_3x3~1|", "node 1 must have exactly one edge from each of nodes 0..0"),
        ("|a~0|+|a~0|a~0|", "node 2 must have exactly one edge from each of nodes 0..1"),
    ],
)
def test_bad_arch_strings_raise_value_error(text, message):
    with pytest.raises(ValueError, match=message):
        parse_arch_string(text)


def test_bad_json_raises_value_error():
    with pytest.raises(ValueError, match="expected a genotype object, got list"):
        genotype_from_json([1])
    with pytest.raises(ValueError, match="unknown genotype space 'dartz'; available: darts, nas-bench-201"):
        genotype_from_json({"space": "dartz"})
    with pytest.raises(ValueError, match="genotype JSON is missing normal_concat, reduce_concat"):
        genotype_from_json({"normal": [], "reduce": []})
    with pytest.raises(ValueError, match="needs an 'arch' string, got None"):
        genotype_from_json({"space": "nas-bench-201"})
    with pytest.raises(ValueError, match="cannot parse genotype 'DARTS'"):
        parse_genotype("DARTS")


# --- load_genotype -------------------------------------------------------------------------------------------------


def test_load_genotype_from_name_object_and_dict():
    assert load_genotype("CDARTS_CIFAR") is PUBLISHED["CDARTS_CIFAR"]
    assert load_genotype(TINY) is TINY
    assert load_genotype(TINY.to_json()) == TINY


def test_load_genotype_from_json_file(tmp_path):
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(PUBLISHED["PDARTS"].to_json()))
    assert load_genotype(path) == PUBLISHED["PDARTS"]
    assert load_genotype(str(path)) == PUBLISHED["PDARTS"]


def test_load_genotype_from_run_folder(tmp_path):
    (tmp_path / "genotype.json").write_text(json.dumps(TINY.to_json()))
    assert load_genotype(tmp_path) == TINY


def test_load_genotype_bad_file_names_the_file(tmp_path):
    path = tmp_path / "genotype.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=re.escape(f"{path}: not a genotype JSON file")):
        load_genotype(tmp_path)
    path.write_text(json.dumps({"normal": 5, "normal_concat": [2], "reduce": [], "reduce_concat": [2]}))
    with pytest.raises(ValueError, match=re.escape(f"{path}: not a genotype JSON file (normal: expected a list")):
        load_genotype(path)


def test_load_genotype_unknown_name_lists_names():
    with pytest.raises(ValueError) as info:
        load_genotype("CDARTS_CIFAR10")
    message = str(info.value)
    assert message.startswith("unknown genotype 'CDARTS_CIFAR10'; available: ")
    assert ", ".join(genotype_registry.names()) in message
    assert "did you mean 'CDARTS_CIFAR'?" in message
    assert message.endswith("(nor a genotype JSON file or text)")


# --- bounds --------------------------------------------------------------------------------------------------------


def chain(nodes: int) -> list[list]:
    """``nodes`` intermediate nodes, each reading the two before it."""
    return [[op, j - back] for j in range(2, 2 + nodes) for op, back in (("sep_conv_3x3", 1), ("skip_connect", 2))]


def test_a_cell_of_the_most_nodes_and_edges_the_space_allows_parses():
    wide = [(f"op{e}", 0) for e in range(MAX_EDGES_PER_NODE)]
    genotype = DartsGenotype(chain(MAX_NODES), range(2, 2 + MAX_NODES), wide, [2])
    assert len(genotype.nodes("normal")) == MAX_NODES and len(genotype.nodes("reduce")[0]) == MAX_EDGES_PER_NODE


def test_a_thousand_node_genotype_file_is_refused_at_parse_time(tmp_path):
    path = tmp_path / "genotype.json"
    data = {"normal": chain(1000), "normal_concat": list(range(2, 1002)), "reduce": chain(4),
            "reduce_concat": [2, 3, 4, 5]}
    path.write_text(json.dumps(data))
    assert path.stat().st_size > 40_000
    message = (f"{path}: not a genotype JSON file (normal: 1000 nodes; a cell has at most {MAX_NODES} "
               f"intermediate nodes)")
    with pytest.raises(FileError, match=re.escape(message)):
        load_genotype(path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: DartsGenotype(chain(MAX_NODES + 1), range(2, 3 + MAX_NODES), chain(1), [2]),
         f"normal: {MAX_NODES + 1} nodes; a cell has at most {MAX_NODES} intermediate nodes"),
        (lambda: DartsGenotype(chain(1), [2], [(f"op{e}", 0) for e in range(MAX_EDGES_PER_NODE + 1)], [2]),
         f"reduce: {MAX_EDGES_PER_NODE + 1} edges per node; a node takes at most {MAX_EDGES_PER_NODE}"),
        (lambda: parse_arch_string("+".join("|" + "|".join(f"none~{i}" for i in range(j)) + "|"
                                            for j in range(1, 302))),
         f"NAS-Bench-201 arch string of 301 nodes; a cell has at most {MAX_NODES}"),
        (lambda: NB201Genotype(tuple(tuple(("none", i) for i in range(j)) for j in range(1, MAX_NODES + 2))),
         f"{MAX_NODES + 1} nodes; a cell has at most {MAX_NODES}"),
    ],
)
def test_cells_beyond_the_space_limits_are_refused(make, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        make()


def test_deeply_nested_genotype_json_is_an_error_not_a_recursion(tmp_path):
    nested = "[" * 100_000 + "]" * 100_000
    path = tmp_path / "genotype.json"
    path.write_text(nested)
    with pytest.raises(FileError, match=re.escape(f"{path}: not a genotype JSON file (nested too deeply")):
        load_genotype(path)
    with pytest.raises(ConfigError, match=r"bad genotype JSON '\{\"normal\": \[\[\[.*\.\.\.: nested too deeply"):
        load_genotype('{"normal": ' + nested + "}")


def test_a_space_cannot_have_more_nodes_than_a_genotype_may():
    """Else the search would fail at its first genotype, after the run folder exists."""
    assert validate_component("spaces", {"type": "darts", "nodes": MAX_NODES}, "space")["nodes"] == MAX_NODES
    with pytest.raises(ConfigError, match=re.escape(f"space.nodes: expected in [1, {MAX_NODES}]")):
        validate_component("spaces", {"type": "darts", "nodes": MAX_NODES + 1}, "space")
