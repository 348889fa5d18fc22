"""``cdarts list [KIND [NAME]]``: the registered components with the module of each, or one component's config keys
with their types (and valid ranges) and defaults: what a YAML slot ``{type: NAME, ...}`` accepts."""
from __future__ import annotations

import inspect
import re

from cdarts.cli.common import CommandParser, report_user_errors
from cdarts.registry import REGISTRIES, registry, strategies, strategy_registry, trials


def registered_lines(kind: str | None = None) -> list[str]:
    """``ops: sep_conv_3x3 (cdarts.ops.darts)`` for every component of ``kind`` (all kinds when None); the strategies
    come with the multi-trial methods, which ``strategy.type`` takes too."""
    kinds = [registry(kind).kind] if kind is not None else list(REGISTRIES)
    if kind is not None and registry(kind) is strategies:
        kinds.append(trials.kind)
    lines = []
    for name in kinds:
        items = REGISTRIES[name].items()
        lines += [f"{name}: {key} ({getattr(obj, '__module__', '?')})" for key, obj in items] or [f"{name}: (none)"]
    return lines


def component_lines(kind: str, name: str) -> list[str]:
    """A component's heading (kind, name, module, the first sentence of its docstring) and one aligned line per config
    key: ``  epochs  int, at least 1  30``."""
    from cdarts.config import describe_parameters

    found = strategy_registry(name) if registry(kind) is strategies else registry(kind)
    factory = found.get(name)
    paragraph = (inspect.getdoc(factory) or "").strip().split("\n\n")[0].replace("\n", " ")
    sentence = re.match(r"(.*?\.)(\s|$)", paragraph)
    doc = sentence.group(1) if sentence else paragraph
    lines = [f"{found.kind}: {name} ({getattr(factory, '__module__', '?')})"] + ([doc] if doc else [])
    rows = [("key", "type", "default"), *describe_parameters(factory)]
    if len(rows) == 1:
        return [*lines, "(no config keys)"]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return [*lines, *(f"  {key:<{widths[0]}}  {kind_:<{widths[1]}}  {default}" for key, kind_, default in rows)]


def parser(prog: str = "cdarts list") -> CommandParser:
    p = CommandParser(prog, "Registered components, or one component's config keys, types and defaults.")
    p.add_argument("kind", nargs="?", help=f"one of: {', '.join(REGISTRIES)} (default: all)")
    p.add_argument("name", nargs="?", help="a component of KIND: print its config keys, types and defaults")
    return p


@report_user_errors
def main(argv: list[str] | None = None, prog: str = "cdarts list") -> int:
    args = parser(prog).parse(argv)
    print("\n".join(component_lines(args.kind, args.name) if args.name else registered_lines(args.kind)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
