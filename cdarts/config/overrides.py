"""``--set KEY.PATH=VALUE`` overrides: parsed as YAML, applied to a config before it is validated."""
from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from cdarts.config.yamlio import describe, load_yaml_text
from cdarts.errors import ConfigError


class _Overridden(dict):
    """A mapping that ``--set`` created where the config had none: it fills in over the slot's default."""


def with_slot_default(value: Any, default: Any) -> Any:
    """``value`` over a copy of ``default`` where ``--set`` created ``value`` inside a slot whose default names the
    same type (or ``value`` names none): ``--set strategy.w_optimizer.lr=0.5`` keeps the default optimizer."""
    if not (isinstance(value, _Overridden) and isinstance(default, Mapping)):
        return value
    if value.get("type", default.get("type")) != default.get("type"):
        return value
    merged = copy.deepcopy(dict(default))
    for key, item in value.items():
        merged[key] = with_slot_default(item, merged.get(key))
    return merged


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
                raise ConfigError([f"--set {text!r}: {where} is {describe(child)}, not a mapping"])
            node[key] = child
            node = child
        node[keys[-1]] = value
    return result
