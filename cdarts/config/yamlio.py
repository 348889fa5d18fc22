"""Reading and writing config YAML: a safe loader with YAML 1.2 scalars that refuses duplicate keys and alias
bombs, every failure a ``ConfigError`` naming the file and position; the dumper that writes a filled config back."""
from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any

import yaml

from cdarts.errors import ConfigError
from cdarts.registry import SHOWN_CHARS, shown

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
        raise ConfigError([f"{path}: expected a mapping at the top level, got {describe(data)}"])
    return data


def dump_yaml(config: Mapping[str, Any]) -> str:
    """The config as YAML text, keys in their given order, readable by ``safe_load``."""
    return yaml.dump(plain(config), Dumper=_Dumper, sort_keys=False, default_flow_style=None)


def plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def describe(value: Any) -> str:
    """A value for a message: its type and its (capped) text, ``int 3``, ``str 'x'``."""
    return f"{type(value).__name__} {shown(value)}"
