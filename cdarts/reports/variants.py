"""The rows of a study: variants, each a label and the config overrides that make it (``--strategies``,
``--variant``, ``--variants FILE``, ``--sweep``)."""
from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdarts.config import read_yaml
from cdarts.errors import ConfigError


def strategy_variant(config: dict[str, Any], name: str) -> dict[str, Any]:
    """``config`` with its strategy replaced by strategy ``name`` at its defaults, keeping the epochs and pretraining
    epochs so the curves line up; ``config`` itself when its strategy already is ``name``. A multi-trial method's
    config keeps only the seed and benchmark of a search config (``trial_variant``)."""
    from cdarts.config import config_parameters, load_config
    from cdarts.engine import search_config
    from cdarts.registry import strategy_registry, trials
    from cdarts.strategies.trials.run import is_trial_config, trial_variant

    kind = strategy_registry(name)
    if kind is trials:
        return trial_variant(config, name)
    if is_trial_config(config):
        raise ConfigError(f"strategy {name!r} trains a supernet on data: --config must be a search config (data, "
                          "space, strategy, benchmark), not a multi-trial one")
    current = load_config(config, search_config)["strategy"]
    if current["type"] == name:
        return copy.deepcopy(config)
    params = config_parameters(kind.get(name))
    kept = {k: current[k] for k in ("epochs", "pretrain_epochs") if k in params and k in current}
    return {**copy.deepcopy(config), "strategy": {"type": name, **kept}}


LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+=-]*")
"""What a variant label may be: it names the variant's folder and its row in the report."""
_NEXT_OVERRIDE = re.compile(r",(?=\s*[A-Za-z_][\w.-]*\s*=)")
"""A comma that starts another ``KEY=VALUE``; commas inside a YAML value (``[0.5, 0.99]``) are not followed by one."""


@dataclass(frozen=True)
class Variant:
    """One row of a study: a label (its folder, ``OUTPUT/<label>/seed-N``) and the overrides it adds to the config.

    An override of ``strategy.type`` swaps the strategy as ``strategy_variant`` does (its defaults, the config's
    epochs) before the others apply; ``origin`` (the option or file it came from) prefixes its errors.
    """

    label: str
    overrides: tuple[str, ...] = ()
    origin: str = field(default="--variant", compare=False)


def _check_variant(variant: Variant) -> Variant:
    from cdarts.config import parse_override

    where = f"{variant.origin} {variant.label!r}"
    if not LABEL.fullmatch(variant.label):
        raise ConfigError(f"{where}: a label is letters, digits and _ . + = - (it names the variant's folder), "
                          "e.g. darts+reg")
    for text in variant.overrides:
        key = text.partition("=")[0].strip()
        if "=" not in text or not key or not all(key.split(".")):
            raise ConfigError(f"{where}: {text!r}: expected KEY.PATH=VALUE, e.g. strategy.epochs=3")
        if parse_override(text)[0] == ["seed"]:
            raise ConfigError(f"{where}: 'seed' is set by --seeds, not by a variant")
    return variant


def parse_variant(text: str) -> Variant:
    """``"LABEL:KEY=VALUE[,KEY=VALUE...]"`` (the ``--variant`` option) as a ``Variant``."""
    label, colon, rest = text.partition(":")
    overrides = tuple(part.strip() for part in _NEXT_OVERRIDE.split(rest) if part.strip())
    if not colon or not overrides or any("=" not in part for part in overrides):
        raise ConfigError(f"--variant {text!r}: expected LABEL:KEY=VALUE[,KEY=VALUE...], "
                          "e.g. darts+reg:strategy.type=darts,strategy.reg_weight=5")
    return _check_variant(Variant(label.strip(), overrides))


def _split_values(text: str) -> list[str]:
    """Comma-separated values, keeping the commas inside brackets and braces (``[1,2],[3,4]`` is two values)."""
    values, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += (char in "[{") - (char in "]}")
        if char == "," and depth == 0:
            values.append(text[start:index])
            start = index + 1
    return [v.strip() for v in [*values, text[start:]] if v.strip()]


def parse_sweep(text: str) -> list[Variant]:
    """``"KEY=V1,V2,..."`` (the ``--sweep`` option): one variant per value, labelled ``<last key>=<value>``."""
    key, equals, rest = text.partition("=")
    values = _split_values(rest)
    if not equals or not key.strip() or not values:
        raise ConfigError(f"--sweep {text!r}: expected KEY=VALUE1,VALUE2,..., e.g. space.eval_layers=3,5,8")
    name = key.strip().split(".")[-1]
    unnamed = [value for value in values if not LABEL.fullmatch(f"{name}={value}")]
    if unnamed:
        raise ConfigError(f"--sweep {text!r}: value {unnamed[0]!r} cannot name a folder; give it a label with "
                          f"--variant LABEL:{key.strip()}={unnamed[0]}")
    return [_check_variant(Variant(f"{name}={value}", (f"{key.strip()}={value}",), "--sweep")) for value in values]


def _inline(value: Any) -> str:
    """A YAML value as ``--set`` text that parses back to it."""
    from cdarts.config import load_yaml_text

    if isinstance(value, str) and value and load_yaml_text(value) == value:
        return value
    return json.dumps(value)


def read_variants(path: str | Path) -> list[Variant]:
    """The ``variants:`` of a YAML file: label -> mapping of dotted keys to values (empty: the config as it is)."""
    data = read_yaml(path)
    entries = data.get("variants") if isinstance(data, dict) else None
    if not isinstance(data, dict) or set(data) != {"variants"} or not isinstance(entries, dict) or not entries:
        raise ConfigError(f"{path}: expected one key 'variants' mapping labels to overrides, "
                          "e.g. variants: {darts: {strategy.type: darts}}")
    variants = []
    for label, settings in entries.items():
        if not isinstance(settings, (dict, type(None))):
            raise ConfigError(f"{path}: variant {label!r}: expected a mapping of KEY.PATH: VALUE, "
                              f"got {type(settings).__name__}")
        overrides = tuple(f"{key}={_inline(value)}" for key, value in (settings or {}).items())
        variants.append(_check_variant(Variant(str(label), overrides, str(path))))
    return variants


def strategy_variants(names: Sequence[str]) -> list[Variant]:
    """``--strategies a,b``: one variant per strategy, labelled with its name."""
    return [Variant(name, (f"strategy.type={name}",), "--strategies") for name in names]


def apply_variant(config: dict[str, Any], variant: Variant) -> dict[str, Any]:
    """``config`` with the variant's strategy swapped in (if it sets ``strategy.type``), then its other overrides."""
    from cdarts.config import apply_overrides, parse_override

    result, rest = config, []
    for text in variant.overrides:
        keys, value = parse_override(text)
        if keys == ["strategy", "type"] or (keys == ["strategy"] and isinstance(value, str)):
            result = strategy_variant(result, str(value))
        else:
            rest.append(text)
    return apply_overrides(result, rest)
