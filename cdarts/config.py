"""YAML configs assembled from registered components and validated against the factories' signatures.

A config is a tree of plain dicts. A *slot* is a dict with a ``type`` key naming a component in the registry
that the slot's position implies (``space: {type: darts, layers: 8}`` is a search space). A factory's
keyword-only parameters are its schema: their names are the valid keys, their type hints the valid values and
their defaults fill what the YAML leaves out. Parameters before ``*`` are not config: the engine passes them
(``num_classes`` from the dataset, ...). A parameter annotated ``Component("losses")`` holds a nested slot.

Every problem of a config is collected and raised together as one ``ConfigError``, each line naming the config
path, the bad value, the valid choices and a close match.
"""
from __future__ import annotations

import copy
import functools
import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union

import yaml

from cdarts.errors import ConfigError
from cdarts.registry import SHOWN_CHARS, close_match, registry, shown, unknown_name_message

_F = TypeVar("_F", bound=Callable)

MAX_ALIAS_VALUES = 10_000
"""How many values YAML aliases may add to a config: far above any real use, far below an alias bomb's billions."""


class _Loader(yaml.SafeLoader):
    """``safe_load`` with YAML 1.2 scalars: ``1e-3`` is a float (YAML 1.1 wants ``1.0e-3``) and only true/false are
    booleans (YAML 1.1 also reads ``no``, ``off``, ``y``..., which breaks ``mixed_precision: no``).

    A scalar its tag cannot hold (``2020-02-30``, ``!!int x``) is a ``ConstructorError`` with its position, not the
    ValueError or AttributeError that PyYAML's constructors let escape. A duplicate key is an error (PyYAML keeps
    the last silently), and so are aliases that expand to more than ``MAX_ALIAS_VALUES`` values or into themselves:
    a few hundred bytes of nested anchors would otherwise build billions of values.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}
        self._alias_values = 0
        self._open_anchors: list[str] = []

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if not self.check_event(yaml.AliasEvent):
            return super().compose_node(parent, index)
        event = self.peek_event()
        if event.anchor in self._open_anchors:
            raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor} is inside its own anchor",
                                              event.start_mark)
        node = super().compose_node(parent, index)
        self._alias_values += self._size(node)
        if self._alias_values > MAX_ALIAS_VALUES:
            raise yaml.composer.ComposerError(None, None, f"aliases expand to more than {MAX_ALIAS_VALUES} values",
                                              event.start_mark)
        return node

    def compose_sequence_node(self, anchor: str | None) -> yaml.Node:
        return self._compose_open(super().compose_sequence_node, anchor)

    def compose_mapping_node(self, anchor: str | None) -> yaml.Node:
        return self._compose_open(super().compose_mapping_node, anchor)

    def _compose_open(self, compose: Callable[[str | None], yaml.Node], anchor: str | None) -> yaml.Node:
        self._open_anchors.append(anchor)
        try:
            return compose(anchor)
        finally:
            self._open_anchors.pop()

    def _size(self, node: yaml.Node) -> int:
        """The values ``node`` expands to, each alias counted in full (memoised: linear in the distinct nodes)."""
        if id(node) not in self._sizes:
            if isinstance(node, yaml.MappingNode):
                children = [child for pair in node.value for child in pair]
            else:
                children = node.value if isinstance(node, yaml.SequenceNode) else []
            self._sizes[id(node)] = 1 + sum(self._size(child) for child in children)
        return self._sizes[id(node)]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                if not isinstance(key, Hashable):  # (`!!set` on a key) PyYAML itself reports the unhashable key
                    continue
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {shown(key)} (lines {seen[key]} and {line})", key_node.start_mark
                    )
                seen[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, AttributeError, LookupError, OverflowError) as exc:
            value = node.value if isinstance(node, yaml.ScalarNode) else node.id
            raise yaml.constructor.ConstructorError(
                None, None, f"invalid {node.tag.rsplit(':', 1)[-1]} value {shown(value)} ({str(exc)[:SHOWN_CHARS]})",
                node.start_mark,
            ) from None


class _Dumper(yaml.SafeDumper):
    """``safe_dump`` that quotes the strings ``_Loader`` would read as floats, so they stay strings."""


_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$")
_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+.0123456789"))


def load_yaml_text(text: str) -> Any:
    """Parse YAML like ``yaml.safe_load``, with ``1e-3`` a float; every failure is a ``yaml.YAMLError``."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise yaml.YAMLError("nested too deeply") from None


@dataclass(frozen=True)
class Kind:
    """Marks a parameter as a nested slot of the given registry kind."""

    kind: str


@dataclass(frozen=True)
class NameOf:
    """Marks a string parameter as the name of a registered component of the given kind."""

    kind: str


@dataclass(frozen=True)
class Fields:
    """Marks a mapping parameter as a config section whose keys are the keyword-only parameters of ``schema``."""

    schema: Callable


@dataclass(frozen=True)
class Parsed:
    """Marks a value that ``parse`` reads (``Annotated[str | float, Parsed(parse_target)]`` takes ``600M``): the
    validator calls ``parse`` and reports its ``ValueError`` as the problem; the config keeps the value as written."""

    parse: Callable[[Any], Any]


@dataclass(frozen=True)
class Range:
    """The valid values of a number, checked before anything is built: ``Annotated[float, Range(gt=0)]``.

    ``ge``/``gt``/``le``/``lt`` are inclusive/exclusive bounds, ``why`` a reason the message gives. A float must
    also be finite: no parameter takes NaN or inf. ``Range()`` declares a number that any finite value suits.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    why: str = ""

    def __contains__(self, value: float) -> bool:
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))

    def __str__(self) -> str:
        low = f"[{self.ge}" if self.ge is not None else None if self.gt is None else f"({self.gt}"
        high = f"{self.le}]" if self.le is not None else None if self.lt is None else f"{self.lt})"
        if low and high:
            text = f"in {low}, {high}"
        elif low:
            text = f"{'at least' if self.ge is not None else 'greater than'} {low[1:]}"
        elif high:
            text = f"{'at most' if self.le is not None else 'less than'} {high[:-1]}"
        else:
            text = ""
        return f"{text} ({self.why})" if self.why else text


PositiveInt = Annotated[int, Range(ge=1)]
NonNegativeInt = Annotated[int, Range(ge=0)]
PositiveFloat = Annotated[float, Range(gt=0)]
NonNegativeFloat = Annotated[float, Range(ge=0)]
Probability = Annotated[float, Range(ge=0, le=1)]
Fraction = Annotated[float, Range(ge=0, lt=1)]
Seed = Annotated[int, Range(ge=0, lt=2**32, why="numpy's seed range")]
Timeout = Annotated[float, Range(gt=0, le=604_800, why="a week")]
TrainBatch = Annotated[int, Range(ge=2, why="BatchNorm trains on two images or more")]


def Section(schema: Callable) -> Any:  # noqa: N802 - reads as a type in signatures
    """Type hint for a mapping whose keys are ``schema``'s keyword-only parameters, e.g. ``model: Section(f)``."""
    return Annotated[dict, Fields(schema)]


def Registered(kind: str) -> Any:  # noqa: N802 - reads as a type in signatures
    """Type hint for a string that must name a registered component, e.g. ``list[Registered("ops")]``."""
    return Annotated[str, NameOf(kind)]


def Component(kind: str) -> Any:  # noqa: N802 - reads as a type in signatures
    """Type hint for a parameter that holds a nested component spec, e.g. ``kd: Component("losses")``."""
    return Annotated[dict, Kind(kind)]


def cross_check(check: Callable[[dict[str, Any]], Iterable[tuple[str, str]]]) -> Callable[[_F], _F]:
    """Attach to a factory or schema a constraint between its keys (``train + val <= 1``): once every key is valid on
    its own, the validator calls ``check(filled_keys)`` and reports each ``(key, problem)`` it yields at that key's
    path, with the config's other problems. Ranges of one key belong in its type, not here."""

    def attach(factory: _F) -> _F:
        factory.__config_check__ = check
        return factory

    return attach


def build(kind: str, spec: Mapping[str, Any] | str, *args: Any, **kwargs: Any) -> Any:
    """Call the factory that ``spec["type"]`` names in registry ``kind`` with ``args``, the spec's keys, ``kwargs``."""
    spec = {"type": spec} if isinstance(spec, str) else spec
    factory = registry(kind).get(spec["type"])
    return factory(*args, **{k: v for k, v in spec.items() if k != "type"}, **kwargs)


def config_parameters(factory: Callable) -> dict[str, inspect.Parameter]:
    """The keyword-only parameters of a factory: its config keys."""
    return dict(_keyword_parameters(factory))


def describe_parameters(factory: Callable) -> list[tuple[str, str, str]]:
    """(key, type, default) of each config key of a factory, as ``cdarts list KIND NAME`` prints them: the type with
    its valid range (``int, at least 1``), the default as YAML (``required`` where there is none)."""
    hints = _type_hints(factory)
    rows = []
    for name, parameter in config_parameters(factory).items():
        annotation = hints.get(name, parameter.annotation)
        ranges = [str(marker) for marker in _markers(annotation) if isinstance(marker, Range) and str(marker)]
        kind = _type_name(annotation) if annotation is not inspect.Parameter.empty else "any"
        default = "required" if parameter.default is inspect.Parameter.empty else _yaml_value(parameter.default)
        rows.append((name, ", ".join([kind, *ranges]), default))
    return rows


def _markers(annotation: Any) -> list[Any]:
    """The ``Annotated`` markers anywhere in a type (``Annotated[int, Range(ge=1)] | None`` -> ``[Range(ge=1)]``)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Annotated:
        return [*args[1:], *_markers(args[0])]
    return [marker for arg in args for marker in _markers(arg)]


def _yaml_value(value: Any) -> str:
    """``value`` as one line of YAML flow style (``{type: digits}``, ``null``, ``0.5``); its repr if not plain data."""
    try:
        text = yaml.safe_dump(_plain(value), default_flow_style=True, sort_keys=False, width=10_000)
    except yaml.YAMLError:
        return repr(value)
    return text.strip().removesuffix("...").strip()


@functools.cache
def _keyword_parameters(factory: Callable) -> dict[str, inspect.Parameter]:
    return {
        name: p for name, p in inspect.signature(factory).parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


@functools.cache
def _type_hints(factory: Callable) -> dict[str, Any]:
    """A factory's resolved type hints, read once: resolving them is most of the cost of validating a config."""
    try:
        return typing.get_type_hints(factory.__init__ if inspect.isclass(factory) else factory, include_extras=True)
    except Exception:  # unresolvable forward references: validate those parameters loosely
        return {}


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {shown(value)}"


def _nonfinite(value: Any) -> bool:
    """A NaN or infinite float, or an int too large for a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return not math.isfinite(value)
    except OverflowError:
        return True


def _fits(value: Any, annotation: Any) -> bool:
    """Whether ``value`` has the shape of a union's option, whose own check then says best what is wrong with it: any
    value for a component, a section or a name, a list for a sequence, a mapping for a dict, a number for a number."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        base, marker = typing.get_args(annotation)[:2]
        return _fits(value, base) if isinstance(marker, Range) else True
    if origin in (list, tuple, Sequence, Iterable) or annotation in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        return isinstance(value, Mapping)
    if annotation in (int, float) and not isinstance(value, bool):
        return isinstance(value, int) or (annotation is float and isinstance(value, float))
    return False


def _type_name(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin is Annotated:
        base, marker = typing.get_args(annotation)[:2]
        if isinstance(marker, Kind):
            return f"{marker.kind} component"
        if isinstance(marker, NameOf):
            return f"{registry(marker.kind).singular} name"
        return "mapping" if isinstance(marker, Fields) else _type_name(base)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation) if a is not Ellipsis)
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(annotation, "__name__", str(annotation))


class _Validator:
    """Walks a config tree against the factories' signatures, filling defaults and collecting problems."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        path = path if len(path) <= SHOWN_CHARS else path[: SHOWN_CHARS - 3] + "..."
        self.problems.append(f"{path or '<config>'}: {message}")

    def component(self, kind: str, spec: Any, path: str) -> Any:
        reg = registry(kind)
        if isinstance(spec, str):
            spec = {"type": spec}
        if not isinstance(spec, Mapping):
            self.fail(path, f"expected a {reg.singular} spec (a mapping with 'type'), got {_describe(spec)}")
            return spec
        if "type" not in spec:
            self.fail(_join(path, "type"), f"missing; available {reg.kind}: {', '.join(reg.names())}")
            return dict(spec)
        name = spec["type"]
        if not reg.has(name):
            self.fail(_join(path, "type"), unknown_name_message(reg.singular, name, reg.names()))
            return dict(spec)
        args = {k: v for k, v in spec.items() if k != "type"}
        return {"type": name, **self.arguments(reg.get(name), args, path, f"{reg.singular} {name!r}")}

    def arguments(self, factory: Callable, args: Mapping[str, Any], path: str, owner: str) -> dict[str, Any]:
        before = len(self.problems)
        params = config_parameters(factory)
        hints = _type_hints(factory)
        for key in args:
            if key not in params:
                message = f"unknown key for {owner}; valid keys: {', '.join(params) or '(none)'}"
                match = close_match(str(key), list(params))
                self.fail(_join(path, key), f"{message}; did you mean {match!r}?" if match else message)
        filled: dict[str, Any] = {}
        for name, param in params.items():
            sub = _join(path, name)
            if name in args:
                value = _with_slot_default(args[name], param.default)
            elif param.default is inspect.Parameter.empty:
                self.fail(sub, f"missing required key for {owner}")
                continue
            else:
                value = copy.deepcopy(param.default)
            filled[name] = self.value(value, hints.get(name, Any), sub)
        check = getattr(factory, "__config_check__", None)
        if check is not None and len(self.problems) == before:
            for key, problem in check(filled):
                self.fail(_join(path, key), problem)
        return filled

    def value(self, value: Any, annotation: Any, path: str) -> Any:
        """Check ``value`` against a type hint; return it normalised (ints as floats, tuples as lists)."""
        if annotation is Any or annotation is inspect.Parameter.empty:
            return value
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is Annotated:
            marker = next((a for a in args[1:] if isinstance(a, (Kind, NameOf, Fields, Range, Parsed))), None)
            if isinstance(marker, Parsed):
                try:
                    marker.parse(value)
                except ValueError as exc:
                    self.fail(path, str(exc))
                return value
            if isinstance(marker, Kind):
                return self.component(marker.kind, value, path)
            if isinstance(marker, Fields):
                if not isinstance(value, Mapping):
                    self.fail(path, f"expected a mapping, got {_describe(value)}")
                    return value
                return self.arguments(marker.schema, value, path, f"section {path!r}")
            if isinstance(marker, Range):
                return self.number(value, args[0], marker, path)
            if isinstance(marker, NameOf) and isinstance(value, str) and not registry(marker.kind).has(value):
                reg = registry(marker.kind)
                self.fail(path, unknown_name_message(reg.singular, value, reg.names()))
                return value
            return self.value(value, args[0], path)
        if origin in (Union, types.UnionType):
            for option in args:
                trial = _Validator()
                result = trial.value(value, option, path)
                if not trial.problems:
                    return result
            fitting = [a for a in args if value is not None and _fits(value, a)]
            if len(fitting) == 1:
                return self.value(value, fitting[0], path)
            self.fail(path, f"expected {_type_name(annotation)}, got {_describe(value)}")
            return value
        if annotation is type(None):
            if value is not None:
                self.fail(path, f"expected null, got {_describe(value)}")
            return value
        if origin is Literal:
            if not any(type(value) is type(a) and value == a for a in args):
                choices = ", ".join(repr(a) for a in args)
                match = close_match(str(value), [str(a) for a in args])
                hint = f"; did you mean {match!r}?" if match else ""
                self.fail(path, f"invalid value {shown(value)}; valid choices: {choices}{hint}")
            return value
        if origin in (list, tuple, Sequence, Iterable) or annotation in (list, tuple):
            return self.sequence(value, annotation, path)
        if origin in (dict, Mapping) or annotation in (dict, Mapping):
            if not isinstance(value, Mapping):
                self.fail(path, f"expected a mapping, got {_describe(value)}")
                return value
            value_type = args[1] if len(args) == 2 else Any
            return {k: self.value(v, value_type, _join(path, k)) for k, v in value.items()}
        return self.scalar(value, annotation, path)

    def sequence(self, value: Any, annotation: Any, path: str) -> Any:
        if not isinstance(value, (list, tuple)):
            self.fail(path, f"expected {_type_name(annotation)} (a list), got {_describe(value)}")
            return value
        args = typing.get_args(annotation)
        if typing.get_origin(annotation) is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                self.fail(path, f"expected {len(args)} items ({_type_name(annotation)}), got {len(value)}")
                return list(value)
            return [self.value(v, a, _join(path, i)) for i, (v, a) in enumerate(zip(value, args, strict=True))]
        item_type = args[0] if args else Any
        return [self.value(v, item_type, _join(path, i)) for i, v in enumerate(value)]

    def number(self, value: Any, annotation: Any, bounds: Range, path: str) -> Any:
        """A number of type ``annotation`` that is finite and within ``bounds``."""
        trial = _Validator()
        result = trial.scalar(value, annotation, path)
        nonfinite = annotation is float and _nonfinite(value)
        if trial.problems and not nonfinite:
            self.problems += trial.problems
            return value
        if nonfinite or value not in bounds:
            expected = f"a finite number {bounds}".rstrip() if nonfinite else str(bounds)
            self.fail(path, f"expected {expected}, got {shown(value)}")
        return result

    def scalar(self, value: Any, annotation: Any, path: str) -> Any:
        if annotation is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if not _nonfinite(value):
                    return float(value)
                self.fail(path, f"expected a finite number, got {shown(value)}")
                return value
        elif annotation is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif annotation is Path:
            if isinstance(value, (str, Path)):
                return str(value)
        elif isinstance(annotation, type):
            if isinstance(value, annotation):
                return value
        else:
            return value
        self.fail(path, f"expected {_type_name(annotation)}, got {_describe(value)}")
        return value


class _Overridden(dict):
    """A mapping that ``--set`` created where the config had none: it fills in over the slot's default."""


def _with_slot_default(value: Any, default: Any) -> Any:
    """``value`` over a copy of ``default`` where ``--set`` created ``value`` inside a slot whose default names the
    same type (or ``value`` names none): ``--set strategy.w_optimizer.lr=0.5`` keeps the default optimizer."""
    if not (isinstance(value, _Overridden) and isinstance(default, Mapping)):
        return value
    if value.get("type", default.get("type")) != default.get("type"):
        return value
    merged = copy.deepcopy(dict(default))
    for key, item in value.items():
        merged[key] = _with_slot_default(item, merged.get(key))
    return merged


def validate(root: Callable, config: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    """Validate a config tree against the keyword-only signature of ``root``; return it with defaults filled.

    Raises:
        ConfigError: listing every problem found.
    """
    if not isinstance(config, Mapping):
        raise ConfigError([f"{path or '<config>'}: expected a mapping at the top level, got {_describe(config)}"])
    validator = _Validator()
    filled = validator.arguments(root, config, path, "this config")
    if validator.problems:
        raise ConfigError(validator.problems)
    return filled


def validate_component(kind: str, spec: Mapping[str, Any] | str, path: str = "") -> dict[str, Any]:
    """Validate one component spec (``{"type": ..., ...}``) against its registry; return it filled."""
    validator = _Validator()
    filled = validator.component(kind, spec, path)
    if validator.problems:
        raise ConfigError(validator.problems)
    return filled


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with ``safe_load``; every failure is a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{path}: config file does not exist"])
    try:
        data = load_yaml_text(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"{where}: YAML syntax error: {problem}"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read config: {exc}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: expected a mapping at the top level, got {_describe(data)}"])
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b.c=value"`` -> (``["a", "b", "c"]``, YAML-typed value)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise ConfigError([f"--set {text!r}: expected KEY.PATH=VALUE, e.g. strategy.epochs=3"])
    try:
        value = load_yaml_text(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(config: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``config`` with ``--set`` overrides applied; intermediate mappings are created as needed."""
    result = copy.deepcopy(dict(config))
    for text in overrides:
        keys, value = parse_override(text)
        node: Any = result
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if isinstance(child, str) and depth < len(keys) - 1:
                child = {"type": child}
            if child is None:
                child = _Overridden()
            if not isinstance(child, dict):
                where = ".".join(keys[: depth + 1])
                raise ConfigError([f"--set {text!r}: {where} is {_describe(child)}, not a mapping"])
            node[key] = child
            node = child
        node[keys[-1]] = value
    return result


def load_config(
    source: str | Path | Mapping[str, Any], root: Callable, overrides: Iterable[str] = ()
) -> dict[str, Any]:
    """Read (a path) or copy (a mapping) a config, apply overrides, validate against ``root`` and fill defaults.

    Raises:
        ConfigError: for anything wrong with the config, whatever it holds.
    """
    try:
        raw = read_yaml(source) if isinstance(source, (str, Path)) else copy.deepcopy(dict(source))
        return validate(root, apply_overrides(raw, overrides))
    except RecursionError:
        raise ConfigError(["<config>: nested too deeply"]) from None


def dump_yaml(config: Mapping[str, Any]) -> str:
    """The config as YAML text, keys in their given order, readable by ``safe_load``."""
    return yaml.dump(_plain(config), Dumper=_Dumper, sort_keys=False, default_flow_style=None)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value

