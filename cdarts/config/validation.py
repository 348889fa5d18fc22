"""Validating a config tree against the factories' signatures: a factory's keyword-only parameters are its keys,
their type hints the valid values, their defaults fill what the YAML leaves out. Every problem is collected and raised
together as one ``ConfigError``, a line each naming the config path, the bad value, the valid choices and a close
match."""
from __future__ import annotations

import copy
import functools
import inspect
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml

from cdarts.config.hints import Fields, Kind, NameOf, Parsed, Range
from cdarts.config.overrides import with_slot_default
from cdarts.config.yamlio import describe, plain
from cdarts.errors import ConfigError
from cdarts.registry import SHOWN_CHARS, close_match, registry, shown, unknown_name_message


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
        text = yaml.safe_dump(plain(value), default_flow_style=True, sort_keys=False, width=10_000)
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
            self.fail(path, f"expected a {reg.singular} spec (a mapping with 'type'), got {describe(spec)}")
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
                value = with_slot_default(args[name], param.default)
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
                    self.fail(path, f"expected a mapping, got {describe(value)}")
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
            self.fail(path, f"expected {_type_name(annotation)}, got {describe(value)}")
            return value
        if annotation is type(None):
            if value is not None:
                self.fail(path, f"expected null, got {describe(value)}")
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
                self.fail(path, f"expected a mapping, got {describe(value)}")
                return value
            value_type = args[1] if len(args) == 2 else Any
            return {k: self.value(v, value_type, _join(path, k)) for k, v in value.items()}
        return self.scalar(value, annotation, path)

    def sequence(self, value: Any, annotation: Any, path: str) -> Any:
        if not isinstance(value, (list, tuple)):
            self.fail(path, f"expected {_type_name(annotation)} (a list), got {describe(value)}")
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
        self.fail(path, f"expected {_type_name(annotation)}, got {describe(value)}")
        return value


def validate(root: Callable, config: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    """Validate a config tree against the keyword-only signature of ``root``; return it with defaults filled.

    Raises:
        ConfigError: listing every problem found.
    """
    if not isinstance(config, Mapping):
        raise ConfigError([f"{path or '<config>'}: expected a mapping at the top level, got {describe(config)}"])
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
