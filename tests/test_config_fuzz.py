"""Config fuzzing: any config, random or a mutation of a valid one, and any YAML text either loads or raises
``ConfigError``, never anything else; what loads writes back to YAML that loads to the same config; and the CLI
answers bad configs with ``error:`` lines, never a traceback."""
from __future__ import annotations

import copy
import inspect
import math
import subprocess
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pytest
import yaml
from conftest import ROOT, cli_env, make_tiny_config
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from cdarts.config import (
    ConfigError,
    Range,
    config_parameters,
    dump_yaml,
    load_config,
    load_yaml_text,
    validate,
    validate_component,
)
from cdarts.engine import search_config
from cdarts.registry import REGISTRIES, shown
from cdarts.retrain import load_retrain_config

FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = ["darts", "nb201", "cdarts", "digits", "imagefolder", "cifar10", "ce", "kd_kl", "multi_level", "alpha_l1",
         "sgd", "adam", "cosine", "constant", "topk", "argmax", "stop", "skip", "no", "fp16", "bf16", "type"]
KEYS = st.one_of(st.sampled_from([*config_parameters(search_config), "type", "channels", "layers", "epochs", "lr",
                                  "root", "image_size", "primitives", "mean", "model", "genotype"]),
                 st.text(max_size=8), st.integers(-3, 3), st.none(), st.booleans())
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=12),
                    st.sampled_from(NAMES))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(KEYS, inner, max_size=4)), max_leaves=10)
YAML_TOKENS = st.sampled_from(
    ["seed:", "data:", "space:", "strategy:", "type:", " ", "  ", "\n", "\n  ", ": ", "- ", "{", "}", "[", "]", ",",
     "darts", "digits", "cdarts", "1", "-3", "0x1F", "1e-3", ".inf", ".nan", "~", "null", "true", "no", "'quoted'",
     '"dq\\x"', "2020-02-30", "2020-01-01 25:00:00", "1:2:3", "!!int ", "!!float ", "!!str ", "!!binary ",
     "!!timestamp ", "!!set ", "!!omap ", "!!python/object/apply:os.system ", "&a ", "*a", "<<: ", "? ", "|\n  x",
     ">", "#", "%YAML 1.1\n---\n", "---", "...", "\t", "@", "`", "\x00", "\ufeff", "é"]
)
FILLED = load_config(make_tiny_config(), search_config)


def tree_paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a nested dict/list tree, the root's ``()`` included."""
    found = [prefix]
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += tree_paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            found += tree_paths(value, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, base: dict) -> dict:
    """``base`` with one to three random edits: a value replaced, a key deleted, or a key added."""
    config = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(tree_paths(config)[1:]))
        parent = config
        for key in path[:-1]:
            parent = parent[key]
        edit = draw(st.sampled_from(["replace", "delete", "add"]))
        if edit == "replace":
            parent[path[-1]] = draw(VALUES)
        elif edit == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(KEYS)] = draw(VALUES)
        else:
            parent.append(draw(VALUES))
    return config


def same(a: Any, b: Any) -> bool:
    """Equality that counts NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def loads_or_config_error(source: Any, tmp_dir: Path, overrides: list[str] = ()) -> dict | None:
    """The filled config, or None after a ConfigError; anything else propagates and fails the test. A config that
    loads must survive the round trip through config.yaml that a resumed run relies on."""
    try:
        filled = load_config(source, search_config, overrides)
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        return None
    written = tmp_dir / "config.yaml"
    written.write_text(dump_yaml(filled))
    assert same(load_config(written, search_config), filled)
    return filled


@FUZZ
@given(config=mutated(FILLED))
def test_mutated_config_loads_or_raises_config_error(config, tmp_path_factory):
    loads_or_config_error(config, tmp_path_factory.mktemp("m"))


@FUZZ
@given(config=st.dictionaries(KEYS, VALUES, max_size=6))
def test_random_config_loads_or_raises_config_error(config, tmp_path_factory):
    loads_or_config_error(config, tmp_path_factory.mktemp("r"))


@FUZZ
@given(config=mutated(FILLED))
def test_mutated_config_as_yaml_text_loads_or_raises_config_error(config, tmp_path_factory):
    folder = tmp_path_factory.mktemp("y")
    path = folder / "fuzz.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    loads_or_config_error(path, folder)


@FUZZ
@given(text=st.lists(YAML_TOKENS, max_size=30).map("".join))
def test_random_yaml_text_loads_or_raises_config_error(text, tmp_path_factory):
    folder = tmp_path_factory.mktemp("t")
    path = folder / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    loads_or_config_error(path, folder)


@FUZZ
@given(overrides=st.lists(st.tuples(st.sampled_from(["seed", "strategy.epochs", "space", "space.type", "data.x",
                                                     "a.b.c", "", "strategy..lr", "batch_size"]),
                                    st.sampled_from(["=", "", "=="]),
                                    st.lists(YAML_TOKENS, max_size=6).map("".join)).map("".join), max_size=3))
def test_random_overrides_apply_or_raise_config_error(overrides, tmp_path_factory):
    loads_or_config_error(make_tiny_config(), tmp_path_factory.mktemp("o"), overrides)


RETRAIN = {"data": {"type": "digits", "image_size": 8}, "model": {"channels": 4, "layers": 3}, "epochs": 2}


@settings(FUZZ, max_examples=60)
@given(config=mutated(RETRAIN))
def test_mutated_retrain_config_loads_or_raises_config_error(config):
    try:
        load_retrain_config(config)
    except ConfigError as exc:
        assert exc.problems


def test_yaml_values_the_constructors_reject_are_config_errors_with_a_position(tmp_path):
    """Found by fuzzing: PyYAML's constructors let ValueError/AttributeError escape for these, and deep nesting
    overflowed the stack."""
    cases = {"seed: 2020-02-30": ":1:7: ", "seed: !!int x": ":1:7: ", "x: !!timestamp x": ":1:4: ",
             "seed: !!float 1:2:x": ":1:7: ", "seed: !!int ''": ":1:7: ",
             "x: " + "[" * 3000: ": YAML syntax error: nested too deeply"}
    for text, where in cases.items():
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError) as info:
            load_config(path, search_config)
        assert str(info.value).startswith(f"{path}{where}"), str(info.value)
    with pytest.raises(yaml.YAMLError, match="invalid int value 'x'"):
        load_yaml_text("a: !!int x")


def _collect_bad_configs(count: int) -> list[str]:
    """``count`` YAML texts of mutated configs that fail validation, drawn deterministically by hypothesis."""
    found: list[str] = []

    @settings(max_examples=200, derandomize=True, phases=[Phase.generate], deadline=None, database=None)
    @given(config=mutated(make_tiny_config()))
    def collect(config):
        text = yaml.safe_dump(config, allow_unicode=True)
        if len(found) < count and text not in found:
            try:
                load_config(load_yaml_text(text), search_config)
            except ConfigError:
                found.append(text)

    collect()
    return found


@pytest.fixture(scope="module")
def bad_configs(tmp_path_factory) -> list[Path]:
    """Bad config files: generated ones, and YAML that PyYAML's constructors used to choke on."""
    folder = tmp_path_factory.mktemp("bad")
    texts = _collect_bad_configs(12) + ["strategy: {type: cdarts, epochs: 2020-02-30}\n", "seed: [1,\n"]
    paths = [folder / f"bad{index}.yaml" for index in range(len(texts))]
    for path, text in zip(paths, texts, strict=True):
        path.write_text(text, encoding="utf-8")
    return paths


def test_cli_main_answers_bad_configs_with_error_lines_only(bad_configs, tmp_path, capsys):
    from cdarts.cli.search import main

    for index, config in enumerate(bad_configs):
        output = tmp_path / f"out{index}"
        with pytest.raises(SystemExit) as info:
            main(["--config", str(config), "--output", str(output)])
        err = capsys.readouterr().err
        assert info.value.code == 2, (config.read_text(), err)
        assert err.startswith("cdarts-search: error: ") and "Traceback" not in err, (config.read_text(), err)
        assert not output.exists(), "a config error is reported before anything is written"


def test_cli_process_answers_bad_configs_without_a_traceback(bad_configs, tmp_path):
    runs = []
    for index, config in enumerate([bad_configs[0], bad_configs[-2]]):  # one generated, one YAML value error
        output = tmp_path / f"out{index}"
        runs.append((subprocess.Popen([sys.executable, "-m", "cdarts.cli.search", "--config", str(config), "--output",
                                       str(output)], env=cli_env(), cwd=ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True), output))
    for process, output in runs:
        try:
            out, err = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 2, err
        assert "Traceback" not in err + out and err.startswith("cdarts-search: error: "), err
        assert not output.exists()


# --- every numeric parameter declares its range, and the validator holds it (issue 12) ------------------------------


@dataclass(frozen=True)
class Numeric:
    """One int or float config parameter (or the items of a list/tuple one) and its declared range."""

    where: str
    name: str
    base: type
    bounds: Any
    optional: bool
    items: int | None
    fill: tuple
    check: Callable[[dict], dict]
    cross: Callable[[dict], Any] | None = None

    def wrap(self, value: Any) -> Any:
        return value if self.items is None else [value] * self.items


def schemas() -> list[tuple[str, Callable, Callable[[dict], dict]]]:
    """(label, signature, validate the keyword arguments and return them filled) for the search and retrain roots,
    the retrain sections and every registered component (genotypes are objects, not factories)."""
    from cdarts.retrain.config import augment_section, ema_section, model_section, retrain_config

    found = [("search_config", search_config, lambda args: validate(search_config, args)),
             ("retrain_config", retrain_config, lambda args: validate(retrain_config, args))]
    for section, schema in (("model", model_section), ("augment", augment_section), ("ema", ema_section)):
        found.append((section, schema, lambda args, s=section: validate(retrain_config, {s: args})[s]))
    for kind, reg in REGISTRIES.items():
        for name, factory in reg.items():
            if callable(factory) and kind != "genotypes":
                found.append((f"{kind}/{name}", factory, lambda args, k=kind, n=name: {
                    key: value for key, value in validate_component(k, {"type": n, **args}).items() if key != "type"}))
    return found


def numeric_parameters() -> list[Numeric]:
    found = []
    for label, factory, check in schemas():
        hints = typing.get_type_hints(factory.__init__ if inspect.isclass(factory) else factory, include_extras=True)
        params = config_parameters(factory)
        assert set(params) <= set(hints), f"{label}: parameters without a type hint: {set(params) - set(hints)}"
        fill = tuple((k, "x") for k, p in params.items() if p.default is inspect.Parameter.empty)
        assert all(hints[k] is str for k, _ in fill), f"{label}: a required key that is not a string"
        for name in params:
            hint, optional, items = hints[name], False, None
            if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint):
                rest = [a for a in typing.get_args(hint) if a is not type(None)]
                hint, optional = (rest[0] if len(rest) == 1 else hint), True
            if typing.get_origin(hint) in (list, tuple):
                args = [a for a in typing.get_args(hint) if a is not Ellipsis]
                hint, items = args[0], (len(args) if typing.get_origin(hint) is tuple else 1)
            bounds = None
            if typing.get_origin(hint) is Annotated:
                hint, *extras = typing.get_args(hint)
                bounds = next((e for e in extras if isinstance(e, Range)), None)
            if hint in (int, float):
                found.append(Numeric(label, name, hint, bounds, optional and items is None, items, fill, check,
                                     getattr(factory, "__config_check__", None)))
    return found


NUMERIC = numeric_parameters()


def test_every_numeric_parameter_declares_its_range():
    assert len(NUMERIC) > 60 and {("search_config", "grad_clip"), ("strategies/cdarts", "distill_weight"),
                                  ("optimizers/adam", "betas"), ("model", "layers")} <= {(p.where, p.name)
                                                                                         for p in NUMERIC}
    undeclared = [f"{p.where}: {p.name}" for p in NUMERIC if p.bounds is None]
    assert not undeclared, "numeric parameters without a Range:\n" + "\n".join(undeclared)


def valid(p: Numeric, value: Any) -> bool:
    """The oracle: what the declared type and range admit (floats finite, bools never numbers)."""
    if value is None:
        return p.optional
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (p.base is int and isinstance(value, float)):
        return False
    if p.base is float and (abs(value) >= 2**1024 or not math.isfinite(value)):
        return False
    b = p.bounds
    return ((b.ge is None or value >= b.ge) and (b.gt is None or value > b.gt) and (b.le is None or value <= b.le)
            and (b.lt is None or value < b.lt))


def boundary_values(p: Numeric) -> list[Any]:
    """Each bound, its neighbours on both sides (the next float, 1e-9 and 1 away), and the usual suspects."""
    values: list[Any] = [0, 1, -1, 0.5, math.nan, math.inf, -math.inf, 2**70, -(10**400), 1e308, "1", True, [1],
                         None]
    for bound in (p.bounds.ge, p.bounds.gt, p.bounds.le, p.bounds.lt):
        if bound is not None:
            values += [bound, bound - 1, bound + 1]
            if p.base is float:
                values += [float(bound), math.nextafter(bound, -math.inf), math.nextafter(bound, math.inf),
                           bound - 1e-9, bound + 1e-9]
    return values


def crossed(p: Numeric, value: Any) -> bool:
    """Whether a value its range admits breaks a constraint with the other keys at their defaults (``cross_check``)."""
    if p.cross is None or not valid(p, value):
        return False
    keys = {**p.check(dict(p.fill)), p.name: p.wrap(value)}
    return any(True for _ in p.cross(keys))


def validates_as_declared(p: Numeric, value: Any) -> None:
    """A valid value comes back filled (ints as floats for a float); anything else is a ConfigError naming the path
    and the value, never another exception."""
    args = {**dict(p.fill), p.name: p.wrap(value)}
    try:
        filled = p.check(args)
    except ConfigError as exc:
        if crossed(p, value):
            return
        assert not valid(p, value), f"{p.where}: {p.name}={value!r} refused: {exc}"
        ours = [line for line in exc.problems if line.split(": ", 1)[0].split(".")[-1].startswith(p.name)]
        assert ours and shown(value) in ours[0], (p, value, exc.problems)
        return
    assert valid(p, value) and not crossed(p, value), f"{p.where}: {p.name}={shown(value)} accepted"
    got = filled[p.name] if p.items is None else filled[p.name][0]
    assert value is None or (type(got) is p.base and got == p.base(value)), (p, value, got)


def test_boundary_values_of_every_numeric_parameter():
    for p in NUMERIC:
        for value in boundary_values(p):
            validates_as_declared(p, value)


@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_random_values_of_every_numeric_parameter(data):
    p = data.draw(st.sampled_from(NUMERIC))
    value = data.draw(st.one_of(st.integers(), st.floats(), st.sampled_from(boundary_values(p)),
                                st.text(max_size=3), st.booleans(), st.none()))
    validates_as_declared(p, value)
