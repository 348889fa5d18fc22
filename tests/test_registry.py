"""Registries: duplicate names refused, unknown names explained, every kind present, entry-point plugins usable."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import catalogue
import pytest

import cdarts  # noqa: F401 - registers the built-in components
from cdarts.registry import REGISTRIES, Registry, RegistryError, close_match, ops, registry, unknown_name_message

ROOT = Path(__file__).resolve().parents[1]
KINDS = ["ops", "spaces", "losses", "heads", "discretizers", "strategies", "datasets", "genotypes", "benchmarks",
         "costs"]


@pytest.fixture
def scratch_registry(monkeypatch):
    """Whatever a test registers disappears with it: catalogue keeps every registry in one module-level dict."""
    monkeypatch.setattr(catalogue, "REGISTRY", dict(catalogue.REGISTRY))


def first_factory(channels, stride, affine):
    return None


def test_every_kind_has_a_registry():
    assert set(KINDS) <= set(REGISTRIES)
    for kind in KINDS:
        reg = registry(kind)
        assert isinstance(reg, Registry)
        assert reg.kind == kind
        assert reg.entry_point_group == f"cdarts_{kind}"


def test_unknown_kind_lists_the_kinds():
    with pytest.raises(RegistryError) as info:
        registry("opz")
    message = str(info.value)
    assert message.startswith("unknown component kind 'opz'; available: ")
    assert "benchmarks, costs, datasets, discretizers" in message
    assert message.endswith("did you mean 'ops'?")


def test_builtin_components_are_registered():
    assert {"none", "skip_connect", "sep_conv_3x3", "dil_conv_5x5", "nor_conv_3x3"} <= set(ops.names())
    assert "darts" in registry("spaces")
    assert {"topk", "argmax"} <= set(registry("discretizers").names())
    assert {"CDARTS_CIFAR", "DARTS_V2", "PC_DARTS_IMAGENET"} <= set(registry("genotypes").names())


def test_names_are_sorted_and_items_match():
    names = ops.names()
    assert names == sorted(names)
    assert [name for name, _ in ops.items()] == names
    assert dict(ops.items())["sep_conv_3x3"] is ops.get("sep_conv_3x3")


def test_register_twice_names_the_first_module(scratch_registry):
    ops.register("test_twice", first_factory)

    def second(channels, stride, affine):
        return None

    second.__module__ = "some_plugin"
    with pytest.raises(RegistryError) as info:
        ops.register("test_twice", second)
    assert str(info.value) == f"op 'test_twice' is already registered (by {__name__})"
    assert ops.get("test_twice") is first_factory


def test_register_a_builtin_name_again_raises(scratch_registry):
    with pytest.raises(RegistryError, match=r"op 'sep_conv_3x3' is already registered \(by cdarts\.ops\.darts\)"):
        ops.register("sep_conv_3x3")(first_factory)
    assert ops.get("sep_conv_3x3").__module__ == "cdarts.ops.darts"


def test_register_as_decorator_returns_the_function(scratch_registry):
    decorated = ops.register("test_decorated")(first_factory)
    assert decorated is first_factory
    assert "test_decorated" in ops
    assert ops.has("test_decorated")


def test_unknown_name_lists_names_and_close_match():
    with pytest.raises(RegistryError) as info:
        ops.get("sep_conv_3x4")
    message = str(info.value)
    assert message.startswith("unknown op 'sep_conv_3x4'; available: ")
    assert ", ".join(ops.names()) in message
    assert message.endswith("; did you mean 'sep_conv_3x3'?")


def test_unknown_name_without_close_match_has_no_hint():
    with pytest.raises(RegistryError) as info:
        registry("discretizers").get("zzzzzz")
    assert str(info.value) == "unknown discretizer 'zzzzzz'; available: argmax, topk"


def test_non_string_names_are_not_registered():
    assert not ops.has(3)
    assert [1] not in ops
    with pytest.raises(RegistryError, match="unknown op 3;"):
        ops.get(3)


def test_close_match_and_message_helpers():
    assert close_match("layres", ["layers", "nodes"]) == "layers"
    assert close_match("q", ["layers", "nodes"]) is None
    assert unknown_name_message("loss", "kd_kll", ["kd_kl", "ce"]) == (
        "unknown loss 'kd_kll'; available: ce, kd_kl; did you mean 'kd_kl'?"
    )
    assert unknown_name_message("loss", "x", []) == "unknown loss 'x'; available: (none)"


PLUGIN_SCRIPT = textwrap.dedent(
    """
    import json
    import sys

    import torch
    import yaml

    import cdarts
    from cdarts.config import build, validate_component
    from cdarts.registry import ops

    imported_before = "myops" in sys.modules
    config = yaml.safe_load(open(sys.argv[1]))
    spec = validate_component("spaces", config["space"], "space")
    space = build("spaces", spec, 10, 3)
    net = space.supernet()
    out = net.forward_stages(torch.randn(2, 3, 8, 8))
    out.logits.sum().backward()
    print(json.dumps({
        "imported_before": imported_before,
        "imported_after": "myops" in sys.modules,
        "primitives": list(spec["primitives"]),
        "factory_module": ops.get("wide_skip").__module__,
        "logits": list(out.logits.shape),
        "stages": [list(s.shape) for s in out.stages],
    }))
    """
)


def test_entry_point_op_is_usable_by_name_from_yaml(tmp_path):
    package = tmp_path / "myops"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import torch\n\n\n"
        "def wide_skip(channels, stride, affine):\n"
        "    return torch.nn.Identity() if stride == 1 else torch.nn.AvgPool2d(1, stride)\n"
    )
    dist_info = tmp_path / "myops-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: myops\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[cdarts_ops]\nwide_skip = myops:wide_skip\n")
    config = tmp_path / "config.yaml"
    config.write_text("space: {type: darts, channels: 4, layers: 3, primitives: [none, skip_connect, wide_skip]}\n")
    script = tmp_path / "run.py"
    script.write_text(PLUGIN_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(script), str(config)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {
        "imported_before": False,
        "imported_after": True,
        "primitives": ["none", "skip_connect", "wide_skip"],
        "factory_module": "myops",
        "logits": [2, 10],
        "stages": [[2, 32, 4, 4], [2, 64, 2, 2], [2, 64, 2, 2]],
    }


def test_entry_point_op_unknown_without_the_distribution():
    assert "wide_skip" not in ops
