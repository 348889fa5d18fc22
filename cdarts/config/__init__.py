"""YAML configs assembled from registered components and validated against the factories' signatures.

A config is a tree of plain dicts. A *slot* is a dict with a ``type`` key naming a component in the registry
that the slot's position implies (``space: {type: darts, layers: 8}`` is a search space). A factory's
keyword-only parameters are its schema: their names are the valid keys, their type hints the valid values and
their defaults fill what the YAML leaves out. Parameters before ``*`` are not config: the engine passes them
(``num_classes`` from the dataset, ...). A parameter annotated ``Component("losses")`` holds a nested slot.

Every problem of a config is collected and raised together as one ``ConfigError``, each line naming the config
path, the bad value, the valid choices and a close match.

The package: ``hints`` (the types a schema is written in), ``validation`` (checking a tree against the signatures),
``yamlio`` (reading and writing YAML), ``overrides`` (``--set``); here, ``load_config`` joins them and ``build``
calls a validated spec's factory.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from cdarts.config.hints import (
    Component,
    Fields,
    Fraction,
    Kind,
    NameOf,
    NonNegativeFloat,
    NonNegativeInt,
    Parsed,
    PositiveFloat,
    PositiveInt,
    Probability,
    Range,
    Registered,
    Section,
    Seed,
    Timeout,
    TrainBatch,
    cross_check,
)
from cdarts.config.overrides import apply_overrides, parse_override
from cdarts.config.validation import config_parameters, describe_parameters, validate, validate_component
from cdarts.config.yamlio import _Loader, dump_yaml, load_yaml_text, read_yaml
from cdarts.errors import ConfigError
from cdarts.registry import registry

__all__ = [
    "Component", "ConfigError", "Fields", "Fraction", "Kind", "NameOf", "NonNegativeFloat", "NonNegativeInt", "Parsed",
    "PositiveFloat", "PositiveInt", "Probability", "Range", "Registered", "Section", "Seed", "Timeout", "TrainBatch",
    "_Loader", "apply_overrides", "build", "config_parameters", "cross_check", "describe_parameters", "dump_yaml",
    "load_config", "load_yaml_text", "parse_override", "read_yaml", "validate", "validate_component",
]


def build(kind: str, spec: Mapping[str, Any] | str, *args: Any, **kwargs: Any) -> Any:
    """Call the factory that ``spec["type"]`` names in registry ``kind`` with ``args``, the spec's keys, ``kwargs``."""
    spec = {"type": spec} if isinstance(spec, str) else spec
    factory = registry(kind).get(spec["type"])
    return factory(*args, **{k: v for k, v in spec.items() if k != "type"}, **kwargs)


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
