"""Configs: validation against factory signatures, one ConfigError listing every problem, overrides, YAML I/O."""
from __future__ import annotations

import inspect
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

import catalogue
import pytest
import yaml
from conftest import make_tiny_config

import cdarts  # noqa: F401 - registers the built-in components
from cdarts.config import (
    Component,
    ConfigError,
    Range,
    Registered,
    apply_overrides,
    build,
    config_parameters,
    cross_check,
    dump_yaml,
    load_config,
    parse_override,
    read_yaml,
    validate,
    validate_component,
)
from cdarts.discretizers import TopK
from cdarts.engine import search_config
from cdarts.ops import DARTS_PRIMITIVES
from cdarts.registry import registry
from cdarts.spaces.darts import darts


def root(
    *,
    seed: int = 0,
    lr: float = 0.1,
    name: str = "run",
    space: Component("spaces") = {"type": "darts"},  # noqa: B006 - schema default
    loss: Component("losses") = {"type": "ce"},  # noqa: B006 - schema default
    discretizer: Component("discretizers") | None = None,
    epochs: int | None = None,
    mode: Literal["search", "retrain"] = "search",
    size: tuple[int, int] = (8, 8),
    widths: list[float] = [],  # noqa: B006 - schema default
    weights: dict[str, int] = {},  # noqa: B006 - schema default
    op: Registered("ops") = "skip_connect",
    output: Path = "runs",
) -> None:
    """A test-only root schema covering every kind of annotation the validator handles."""


def required(*, depth: int, width: int = 4) -> None:
    """A schema with a key that has no default."""


class Widget:
    """A class registered as a factory: its ``__init__`` keyword-only parameters are its schema."""

    def __init__(self, *, size: int = 3, kind: Literal["a", "b"] = "a") -> None:
        self.size, self.kind = size, kind


def problems(config, schema=root) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(schema, config)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


SPACE_KEYS = (
    "channels, layers, eval_layers, nodes, stem, stem_multiplier, primitives, skip_zero, share_inputs, batch_edges, "
    "channels_last, checkpoint_cells, compile_mode, stage_taps"
)


def test_defaults_are_filled_for_a_component():
    filled = validate_component("spaces", {"type": "darts"})
    expected = {name: p.default for name, p in config_parameters(darts).items()}
    assert filled == {"type": "darts", **expected}
    assert filled == {
        "type": "darts",
        "channels": 16,
        "layers": 8,
        "eval_layers": 20,
        "nodes": 4,
        "stem": "cifar",
        "stem_multiplier": 3,
        "primitives": list(DARTS_PRIMITIVES),
        "skip_zero": True,
        "share_inputs": True,
        "batch_edges": True,
        "channels_last": True,
        "checkpoint_cells": False,
        "compile_mode": "none",
        "stage_taps": "after_reduction",
    }


def no_budget() -> dict:
    """The filled budget keys of a discretizer that has none."""
    return {"budget": None, "cost": validate_component("costs", "macs")}


def test_string_spec_is_a_type_name():
    assert validate_component("discretizers", "topk") == {"type": "topk", "k": 2, "exclude": ["none"], **no_budget()}


def test_defaults_are_filled_for_the_root_and_nested_slots():
    config = validate(root, {"space": {"type": "darts", "layers": 5}, "discretizer": {"type": "topk"}})
    assert config["seed"] == 0
    assert config["space"]["layers"] == 5
    assert config["space"]["channels"] == 16
    assert config["loss"] == {"type": "ce", "label_smoothing": 0.0}
    assert config["discretizer"] == {"type": "topk", "k": 2, "exclude": ["none"], **no_budget()}
    assert config["size"] == [8, 8]
    assert config["output"] == "runs"
    assert list(config) == list(inspect.signature(root).parameters)


def test_defaults_are_copied_not_shared():
    first = validate(root, {})
    first["space"]["layers"] = 99
    first["widths"].append(1.0)
    second = validate(root, {})
    assert second["space"]["layers"] == 8
    assert second["widths"] == []


def test_unknown_key_names_path_choices_and_close_match():
    assert problems({"space": {"type": "darts", "layres": 5}}) == [
        f"space.layres: unknown key for search space 'darts'; valid keys: {SPACE_KEYS}; did you mean 'layers'?"
    ]


def test_unknown_top_level_key():
    assert problems({"sede": 1}) == [
        "sede: unknown key for this config; valid keys: seed, lr, name, space, loss, discretizer, epochs, mode, "
        "size, widths, weights, op, output; did you mean 'seed'?"
    ]


def test_unknown_op_name_in_primitives():
    message = problems({"space": {"type": "darts", "primitives": ["none", "sep_conv_3x4"]}})
    available = ", ".join(registry("ops").names())
    assert message == [
        f"space.primitives[1]: unknown op 'sep_conv_3x4'; available: {available}; did you mean 'sep_conv_3x3'?"
    ]


def test_unknown_component_type():
    available = ", ".join(registry("losses").names())
    assert problems({"loss": {"type": "kd_kll"}}) == [
        f"loss.type: unknown loss 'kd_kll'; available: {available}; did you mean 'kd_kl'?"
    ]


def test_wrong_type_names_the_value():
    assert problems({"space": {"type": "darts", "layers": "eight"}}) == ["space.layers: expected int, got str 'eight'"]


def test_all_problems_are_collected():
    found = problems({"space": {"type": "darts", "layres": 5, "chanels": 4, "nodes": "x"}, "seed": "0"})
    assert len(found) == 4
    assert found[0] == "seed: expected int, got str '0'"
    assert found[1].startswith("space.layres: unknown key") and found[1].endswith("did you mean 'layers'?")
    assert found[2].startswith("space.chanels: unknown key") and found[2].endswith("did you mean 'channels'?")
    assert found[3] == "space.nodes: expected int, got str 'x'"


def test_missing_required_key():
    assert problems({"width": 2}, required) == ["depth: missing required key for this config"]


def test_component_spec_must_be_a_mapping_with_type():
    assert problems({"space": 5, "loss": {"label_smoothing": 0.1}}) == [
        "space: expected a search space spec (a mapping with 'type'), got int 5",
        f"loss.type: missing; available losses: {', '.join(registry('losses').names())}",
    ]


def test_top_level_must_be_a_mapping():
    with pytest.raises(ConfigError) as info:
        validate(root, [1, 2])
    assert info.value.problems == ["<config>: expected a mapping at the top level, got list [1, 2]"]


def test_optional_component_accepts_null_and_checks_a_spec():
    assert validate(root, {"discretizer": None})["discretizer"] is None
    assert validate(root, {"discretizer": "argmax"})["discretizer"] == {"type": "argmax", "exclude": [], **no_budget()}
    assert problems({"discretizer": {"type": "topkk"}}) == [
        "discretizer.type: unknown discretizer 'topkk'; available: argmax, topk; did you mean 'topk'?"
    ]
    assert problems({"discretizer": {"type": "topk", "k": "two"}}) == ["discretizer.k: expected int, got str 'two'"]


def test_optional_scalar():
    assert validate(root, {"epochs": None})["epochs"] is None
    assert validate(root, {"epochs": 3})["epochs"] == 3
    assert problems({"epochs": "3"}) == ["epochs: expected int | null, got str '3'"]


def test_literal_bad_value_lists_choices():
    assert problems({"mode": "serch"}) == [
        "mode: invalid value 'serch'; valid choices: 'search', 'retrain'; did you mean 'search'?"
    ]
    assert problems({"space": {"type": "darts", "stem": "imagenett"}}) == [
        "space.stem: invalid value 'imagenett'; valid choices: 'cifar', 'imagenet'; did you mean 'imagenet'?"
    ]


def literal_numbers(*, level: Literal[0, 1] = 0) -> None:
    """Literal choices compare by type too: YAML ``true`` is not the choice ``1``."""


def test_literal_does_not_accept_bool_for_int():
    assert validate(literal_numbers, {"level": 1}) == {"level": 1}
    assert problems({"level": True}, literal_numbers) == ["level: invalid value True; valid choices: 0, 1"]


def test_float_accepts_int_and_converts():
    lr = validate(root, {"lr": 1})["lr"]
    assert lr == 1.0 and type(lr) is float
    assert problems({"lr": "fast"}) == ["lr: expected float, got str 'fast'"]


def test_bool_is_not_an_int_or_float():
    assert problems({"seed": True, "lr": False}) == [
        "seed: expected int, got bool True",
        "lr: expected float, got bool False",
    ]


def test_sequences_tuples_and_mappings():
    config = validate(root, {"size": (4, 6), "widths": [1, 2.5], "weights": {"a": 1}})
    assert config["size"] == [4, 6]
    assert config["widths"] == [1.0, 2.5] and all(type(w) is float for w in config["widths"])
    assert config["weights"] == {"a": 1}
    assert problems({"size": [4], "widths": "wide", "weights": {"a": "x"}}) == [
        "size: expected 2 items (tuple[int, int]), got 1",
        "widths: expected list[float] (a list), got str 'wide'",
        "weights.a: expected int, got str 'x'",
    ]
    assert problems({"weights": [1]}) == ["weights: expected a mapping, got list [1]"]


def test_registered_name_and_path():
    assert validate(root, {"op": "sep_conv_5x5", "output": "out/dir"})["op"] == "sep_conv_5x5"
    assert problems({"op": "sep_conv_5x4"})[0].endswith("did you mean 'sep_conv_5x5'?")
    assert problems({"op": 3, "output": 3}) == ["op: expected str, got int 3", "output: expected Path, got int 3"]


def test_class_factory_schema_comes_from_init(monkeypatch):
    monkeypatch.setattr(catalogue, "REGISTRY", dict(catalogue.REGISTRY))
    registry("heads").register("test_widget", Widget)
    assert validate_component("heads", {"type": "test_widget"}) == {"type": "test_widget", "size": 3, "kind": "a"}
    with pytest.raises(ConfigError) as info:
        validate_component("heads", {"type": "test_widget", "size": "big", "kind": "c"}, "head")
    assert info.value.problems == [
        "head.size: expected int, got str 'big'",
        "head.kind: invalid value 'c'; valid choices: 'a', 'b'",
    ]


def test_build_calls_the_factory_with_positional_args():
    assert build("discretizers", {"type": "topk", "k": 1}) == TopK(1, ("none",), cost={"type": "macs"})
    assert build("discretizers", "argmax") == TopK(None, (), cost={"type": "macs"})
    space = build("spaces", {"type": "darts", "channels": 4, "layers": 5}, 10, 3)
    assert (space.num_classes, space.in_chans, space.channels, space.layers) == (10, 3, 4, 5)


# --- files, overrides, dumping -------------------------------------------------------------------------------------


def test_load_config_from_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\nlr: 1e-3\nspace:\n  type: darts\n  layers: 5\n")
    config = load_config(path, root)
    assert config["seed"] == 3
    assert config["lr"] == 0.001 and type(config["lr"]) is float
    assert config["space"]["layers"] == 5 and config["space"]["channels"] == 16


def test_load_config_errors_name_the_config_path(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("space:\n  type: darts\n  layres: 5\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, root)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("space.layres: unknown key for search space 'darts'")


def test_missing_file(tmp_path):
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path, root)
    assert info.value.problems == [f"{path}: config file does not exist"]


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("seed: 1\nspace: {type: darts\n")
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"{path}:3:1: YAML syntax error: ")


def test_yaml_top_level_must_be_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    assert info.value.problems == [f"{path}: expected a mapping at the top level, got list [1, 2]"]
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert read_yaml(empty) == {}
    assert load_config(empty, root)["seed"] == 0


@pytest.mark.parametrize(
    "text, keys, value",
    [
        ("a.b=3", ["a", "b"], 3),
        ("a=true", ["a"], True),
        ("a=[1,2]", ["a"], [1, 2]),
        ("loss.type=kd_kl", ["loss", "type"], "kd_kl"),
        ("lr=3e-4", ["lr"], 3e-4),
        ("lr=0.5", ["lr"], 0.5),
        ("x=null", ["x"], None),
        ("name=", ["name"], ""),
        ("name=a=b", ["name"], "a=b"),
        (" a.b =1", ["a", "b"], 1),
    ],
)
def test_parse_override_is_yaml_typed(text, keys, value):
    parsed_keys, parsed = parse_override(text)
    assert parsed_keys == keys
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize("text", ["novalue", "=3", "a..b=1", ".a=1", "a.=1", " =1"])
def test_bad_override_text(text):
    with pytest.raises(ConfigError) as info:
        parse_override(text)
    assert info.value.problems == [f"--set {text!r}: expected KEY.PATH=VALUE, e.g. strategy.epochs=3"]


def test_apply_overrides_creates_nested_mappings_and_copies():
    config = {"space": {"type": "darts", "layers": 8}, "seed": 1}
    result = apply_overrides(config, ["space.layers=5", "a.b.c=x", "seed=2"])
    assert result == {"space": {"type": "darts", "layers": 5}, "seed": 2, "a": {"b": {"c": "x"}}}
    assert config == {"space": {"type": "darts", "layers": 8}, "seed": 1}


def test_apply_overrides_expands_a_type_name_and_replaces_null():
    assert apply_overrides({"space": "darts", "discretizer": None}, ["space.layers=5", "discretizer.type=topk"]) == {
        "space": {"type": "darts", "layers": 5},
        "discretizer": {"type": "topk"},
    }


def test_apply_overrides_through_a_scalar_raises():
    with pytest.raises(ConfigError) as info:
        apply_overrides({"seed": 1}, ["seed.x=2"])
    assert info.value.problems == ["--set 'seed.x=2': seed is int 1, not a mapping"]


def test_load_config_applies_overrides_before_validating(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("space: {type: darts, layers: 8}\n")
    config = load_config(path, root, ["space.layers=5", "discretizer.type=topk", "discretizer.k=1"])
    assert config["space"]["layers"] == 5
    assert config["discretizer"] == {"type": "topk", "k": 1, "exclude": ["none"], **no_budget()}
    with pytest.raises(ConfigError) as info:
        load_config(path, root, ["space.layers=five"])
    assert info.value.problems == ["space.layers: expected int, got str 'five'"]


def test_load_config_from_a_mapping_does_not_modify_it():
    source = {"space": {"type": "darts"}}
    config = load_config(source, root)
    assert config["space"]["layers"] == 8
    assert source == {"space": {"type": "darts"}}


def test_dump_yaml_round_trips():
    config = validate(root, {"space": {"type": "darts", "layers": 5}, "discretizer": "topk", "lr": 1e-5, "name": "1e3"})
    text = dump_yaml(config)
    assert yaml.safe_load(text) == config
    assert list(yaml.safe_load(text)) == list(config)
    assert validate(root, yaml.safe_load(text)) == config


def test_dump_yaml_round_trips_through_load_config(tmp_path):
    config = validate(root, {"name": "2e5", "lr": 2e-5, "size": (3, 4)})
    path = tmp_path / "filled.yaml"
    path.write_text(dump_yaml(config))
    assert load_config(path, root) == config


# --- ranges, duplicate keys, slot defaults, alias bombs (issue 12) ------------------------------------------------


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ("grad_clip=-1", "grad_clip: expected greater than 0, got -1"),
        ("grad_clip=.nan", "grad_clip: expected a finite number greater than 0, got nan"),
        ("strategy.distill_weight=-4", "strategy.distill_weight: expected at least 0, got -4"),
        ("strategy.reg_weight=-5", "strategy.reg_weight: expected at least 0, got -5"),
        ("space.eval_layers=0", "space.eval_layers: expected at least 3 (two reduction cells), got 0"),
        ("strategy.w_scheduler={type: cosine, warmup_epochs: -5}",
         "strategy.w_scheduler.warmup_epochs: expected at least 0, got -5"),
        ("strategy.w_optimizer={type: sgd, lr: .nan}",
         "strategy.w_optimizer.lr: expected a finite number at least 0, got nan"),
        ("strategy.alpha_optimizer={type: adam, lr: .inf}",
         "strategy.alpha_optimizer.lr: expected a finite number at least 0, got inf"),
        ("threads=-1", "threads: expected at least 1, got -1"),
        ("dist_timeout_s=.inf", "dist_timeout_s: expected a finite number in (0, 604800] (a week), got inf"),
        ("space.nodes=0", "space.nodes: expected in [1, 16] (the most a genotype may have), got 0"),
        ("space.stem_multiplier=0", "space.stem_multiplier: expected at least 1, got 0"),
        ("space.channels=0", "space.channels: expected at least 1, got 0"),
        ("eval_bn_batches=-1", "eval_bn_batches: expected at least 0, got -1"),
        ("max_steps_per_epoch=-1", "max_steps_per_epoch: expected at least 1, got -1"),
        ("eval_batch_size=-1", "eval_batch_size: expected at least 1, got -1"),
        ("strategy.distill={type: multi_level, kd: {type: kd_kl, temperature: 0}}",
         "strategy.distill.kd.temperature: expected greater than 0, got 0"),
        ("seed=-1", "seed: expected in [0, 4294967296) (numpy's seed range), got -1"),
        ("train_fraction=1", "train_fraction: expected in (0, 1), got 1"),
        ("batch_size=1", "batch_size: expected at least 2 (BatchNorm trains on two images or more), got 1"),
    ],
)
def test_out_of_range_and_non_finite_values_name_path_value_and_range(override, problem):
    with pytest.raises(ConfigError) as info:
        load_config(make_tiny_config(), search_config, [override])
    assert info.value.problems == [problem]


def test_range_problems_are_all_reported_at_once_before_a_run_folder_exists(tmp_path, capsys):
    from cdarts.cli.search import main

    config = tmp_path / "c.yaml"
    config.write_text(dump_yaml(make_tiny_config(grad_clip=-1, threads=-1, space={"channels": 0})))
    with pytest.raises(SystemExit) as info:
        main(["--config", str(config), "--output", str(tmp_path / "run"), "--set", "strategy.reg_weight=-5"])
    err = capsys.readouterr().err
    assert info.value.code == 2
    for line in ("threads: expected at least 1, got -1",
                 "grad_clip: expected greater than 0, got -1", "space.channels: expected at least 1, got 0",
                 "strategy.reg_weight: expected at least 0, got -5"):
        assert line in err, err
    assert not (tmp_path / "run").exists()


def test_retrain_config_ranges_live_in_the_signatures():
    from cdarts.retrain import load_retrain_config

    with pytest.raises(ConfigError) as info:
        load_retrain_config({"model": {"channels": 4, "layers": 3}}, ["grad_clip=-1", "optimizer.lr=.nan",
                                                                     "augment.re_prob=2", "ema.decay=1"])
    assert info.value.problems == [
        "augment.re_prob: expected in [0, 1], got 2",
        "optimizer.lr: expected a finite number at least 0, got nan",
        "grad_clip: expected greater than 0, got -1",
        "ema.decay: expected in (0, 1), got 1",
    ]


def test_a_retrain_genotype_is_checked_with_the_other_keys():
    from cdarts.retrain import load_retrain_config

    with pytest.raises(ConfigError) as info:
        load_retrain_config({"model": {"channels": 4, "layers": 3}}, ["batch_size=1", "model.genotype=DARTS_V3"])
    assert len(info.value.problems) == 2
    assert info.value.problems[0].startswith("model.genotype: unknown genotype 'DARTS_V3'; available: CDARTS_CIFAR, ")
    assert "did you mean 'DARTS_V2'?" in info.value.problems[0]
    assert info.value.problems[1] == "batch_size: expected at least 2 (BatchNorm trains on two images or more), got 1"


def test_a_range_on_a_test_schema_checks_ints_floats_and_items():
    def ranged(
        *,
        count: Annotated[int, Range(ge=1)] = 1,
        rate: Annotated[float, Range(gt=0, le=1)] = 0.5,
        widths: list[Annotated[float, Range(gt=0)]] = [],  # noqa: B006 - schema default
        anything: Annotated[float, Range()] = 0.0,
    ) -> None:
        """Ranges on a scalar, an item type and an unbounded (finite) float."""

    assert validate(ranged, {"count": 3, "rate": 1, "widths": [2], "anything": -1e300}) == {
        "count": 3, "rate": 1.0, "widths": [2.0], "anything": -1e300}
    assert problems({"count": 0, "rate": 0, "widths": [1, -1], "anything": float("-inf")}, ranged) == [
        "count: expected at least 1, got 0",
        "rate: expected in (0, 1], got 0",
        "widths[1]: expected greater than 0, got -1",
        "anything: expected a finite number, got -inf",
    ]
    assert problems({"count": 1.5, "rate": "x"}, ranged) == ["count: expected int, got float 1.5",
                                                            "rate: expected float, got str 'x'"]


def ordered(keys: dict) -> Iterator[tuple[str, str]]:
    if keys["low"] > keys["high"]:
        yield "high", f"expected at least low ({keys['low']}), got {keys['high']}"


@cross_check(ordered)
def interval(*, low: Annotated[int, Range()] = 0, high: Annotated[int, Range()] = 1, name: str = "x") -> None:
    """A schema with a constraint between two keys."""


def test_a_cross_check_reports_at_its_keys_path_with_the_other_problems():
    assert validate(interval, {"low": 2, "high": 3}) == {"low": 2, "high": 3, "name": "x"}
    assert problems({"low": 2, "high": 1}, interval) == ["high: expected at least low (2), got 1"]
    assert problems({"low": 2, "high": 1, "name": 3}, interval) == ["name: expected str, got int 3"], (
        "the cross check waits until every key is valid on its own")


def test_duplicate_yaml_keys_are_refused_naming_the_key_and_both_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("seed: 1\nspace:\n  type: darts\n  layers: 3\n  channels: 4\n  layers: 5\n")
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    assert info.value.problems == [f"{path}:6:3: YAML syntax error: duplicate key 'layers' (lines 4 and 6)"]
    path.write_text("base: &b {layers: 3, channels: 4}\nspace:\n  <<: *b\n  layers: 5\n")
    assert read_yaml(path)["space"] == {"layers": 5, "channels": 4}, "a merge key's values may be overridden"


def test_set_into_a_slot_merges_with_the_slots_default():
    cfg = load_config(make_tiny_config(), search_config, ["strategy.w_optimizer.lr=0.5"])
    assert cfg["strategy"]["w_optimizer"] == {"type": "sgd", "lr": 0.5, "momentum": 0.9, "weight_decay": 3e-4,
                                              "nesterov": False}
    cfg = load_config(make_tiny_config(), search_config, ["strategy.distill.kd.temperature=4"])
    assert cfg["strategy"]["distill"]["type"] == "multi_level"
    assert cfg["strategy"]["distill"]["kd"] == {"type": "kd_kl", "temperature": 4.0, "reduction": "batchmean",
                                                "detach_teacher": False}
    adam = load_config(make_tiny_config(), search_config, ["strategy.w_optimizer.type=adam"])
    assert adam["strategy"]["w_optimizer"] == validate_component("optimizers", "adam"), "another type: its defaults"
    with pytest.raises(ConfigError, match="^discretizer.type: missing"):
        load_config(make_tiny_config(), search_config, ["discretizer.k=1"])  # no default to merge with


def test_set_into_a_retrain_slot_merges_with_the_slots_default():
    from cdarts.retrain import load_retrain_config

    cfg = load_retrain_config({"model": {"channels": 4, "layers": 3}}, ["optimizer.lr=0.1"])
    assert cfg["optimizer"] == {"type": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 3e-4, "nesterov": False}


def alias_bomb(depth: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, depth + 1)]
    return "\n".join(lines) + f"\nseed: *a{depth}\n"


def test_an_alias_bomb_is_refused_at_once(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(8))
    assert len(path.read_bytes()) < 600
    began = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_config(path, search_config)
    assert time.perf_counter() - began < 5
    assert info.value.problems == [f"{path}:5:10: YAML syntax error: aliases expand to more than 10000 values"]


def test_printed_values_are_capped(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(alias_bomb(2) + "data: {type: " + "x" * 100_000 + "}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, search_config)
    lines = {line.split(":")[0]: line for line in info.value.problems}
    assert all(len(line) < 600 for line in lines.values()), str(info.value)[:2000]
    assert lines["seed"].startswith("seed: expected int, got list [[['lol', ") and lines["seed"].endswith("...")
    assert lines["data.type"].startswith("data.type: unknown dataset 'xxxx")


def test_a_set_tag_on_a_key_is_a_config_error_not_a_type_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("!!set seed:\n")
    with pytest.raises(ConfigError, match="c.yaml:1:1: YAML syntax error"):
        load_config(path, search_config)
