"""One catalogue registry per component kind.

Third-party packages add components by decorator, or without touching this code through an entry-point group
``cdarts_<kind>`` in their own pyproject. catalogue silently overwrites a duplicate name, so registration here
refuses duplicates, and an unknown name raises an error that lists what is available.
"""
from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any

import catalogue

NAMESPACE = "cdarts"


class RegistryError(LookupError):
    """An unknown or duplicate component name."""


def close_match(name: str, choices: list[str]) -> str | None:
    """The most similar valid name, for "did you mean" hints."""
    matches = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.5)
    return matches[0] if matches else None


SHOWN_CHARS = 200
"""The most characters of a value an error message prints: a value may be a pasted file or a YAML alias bomb."""


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def unknown_name_message(what: str, name: Any, choices: list[str]) -> str:
    """``unknown op 'sep3'; available: a, b; did you mean 'b'?``"""
    message = f"unknown {what} {shown(name)}; available: {', '.join(sorted(choices)) or '(none)'}"
    match = close_match(str(name), choices)
    return f"{message}; did you mean {match!r}?" if match else message


BUILTINS: dict[str, str] = {
    "ops": "cdarts.ops", "spaces": "cdarts.spaces", "losses": "cdarts.losses", "heads": "cdarts.losses",
    "discretizers": "cdarts.discretizers", "strategies": "cdarts.strategies", "datasets": "cdarts.data",
    "genotypes": "cdarts.genotypes", "benchmarks": "cdarts.nasbench", "optimizers": "cdarts.optim",
    "schedulers": "cdarts.optim", "costs": "cdarts.costs", "trials": "cdarts.strategies.trials",
}
"""The module that registers each kind's built-in components, imported at the kind's first look-up: a command
that never looks up a strategy (``cdarts-export``, ``cdarts-eval``) never imports the training code."""


class Registry:
    """A catalogue registry (with entry points) that refuses duplicates and explains unknown names."""

    def __init__(self, kind: str, singular: str) -> None:
        self._builtins_loaded = False
        self.kind = kind
        self.singular = singular
        self.entry_point_group = f"{NAMESPACE}_{kind}"
        self._catalogue = catalogue.create(NAMESPACE, kind, entry_points=True)
        self.shares_names_with: list[Registry] = []
        """Registries whose names this one must not repeat (one config slot takes names from both)."""

    def register(self, name: str, func: Callable | None = None) -> Callable:
        """Register ``func`` under ``name``; usable as a decorator. Registering a name twice raises."""

        def do_register(f: Callable) -> Callable:
            if name in self._catalogue:
                existing = self._catalogue.get(name)
                raise RegistryError(
                    f"{self.singular} {name!r} is already registered (by {getattr(existing, '__module__', '?')})"
                )
            for other in self.shares_names_with:
                if other.has(name):
                    module = getattr(other.get(name), "__module__", "?")
                    raise RegistryError(f"{self.singular} {name!r}: the name is already a {other.singular} (by "
                                        f"{module}); {self.kind} and {other.kind} share one namespace")
            return self._catalogue.register(name, func=f)

        return do_register(func) if func is not None else do_register

    def get(self, name: str) -> Callable:
        """The component registered as ``name`` (loading entry points if needed)."""
        if not self.has(name):
            raise RegistryError(unknown_name_message(self.singular, name, self.names()))
        return self._catalogue.get(name)

    def has(self, name: str) -> bool:
        self._load_builtins()
        return isinstance(name, str) and name in self._catalogue

    def names(self) -> list[str]:
        """All registered names, entry points included, sorted."""
        self._load_builtins()
        return sorted(self._catalogue.get_all())

    def items(self) -> list[tuple[str, Callable]]:
        self._load_builtins()
        return sorted(self._catalogue.get_all().items())

    def _load_builtins(self) -> None:
        if not self._builtins_loaded:
            self._builtins_loaded = True
            if self.kind in BUILTINS:
                importlib.import_module(BUILTINS[self.kind])

    def __contains__(self, name: object) -> bool:
        return self.has(name)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self.names())} names)"


ops = Registry("ops", "op")
spaces = Registry("spaces", "search space")
losses = Registry("losses", "loss")
heads = Registry("heads", "distillation head")
discretizers = Registry("discretizers", "discretizer")
strategies = Registry("strategies", "strategy")
datasets = Registry("datasets", "dataset")
genotypes = Registry("genotypes", "genotype")
benchmarks = Registry("benchmarks", "benchmark")
optimizers = Registry("optimizers", "optimizer")
schedulers = Registry("schedulers", "scheduler")
costs = Registry("costs", "cost")

REGISTRIES: dict[str, Registry] = {
    r.kind: r for r in (
        ops, spaces, losses, heads, discretizers, strategies, datasets, genotypes, benchmarks, optimizers, schedulers,
        costs,
    )
}


def registry(kind: str) -> Registry:
    """The registry for a component kind, e.g. ``registry("ops")``."""
    if kind not in REGISTRIES:
        raise RegistryError(unknown_name_message("component kind", kind, list(REGISTRIES)))
    return REGISTRIES[kind]


# --- strategies and multi-trial methods: two registries, one namespace (``strategy.type`` takes either)

trials = Registry("trials", "multi-trial method")
"""Search methods that query a benchmark instead of training a supernet (``cdarts.strategies.trials``)."""
REGISTRIES[trials.kind] = trials
strategies.shares_names_with.append(trials)
trials.shares_names_with.append(strategies)


def strategy_registry(name: str) -> Registry:
    """The registry of strategy ``name``: ``strategies`` (weight sharing) or ``trials`` (multi-trial methods); an
    unknown name, or one that plugins registered in both, raises an error that lists both kinds."""
    found = [r for r in (strategies, trials) if r.has(name)]
    if len(found) == 1:
        return found[0]
    if found:
        modules = ", ".join(getattr(r.get(name), "__module__", "?") for r in found)
        raise RegistryError(f"strategy {name!r} is registered both as a strategy and as a multi-trial method "
                            f"({modules}); uninstall one of the plugins")
    raise RegistryError(unknown_name_message("strategy", name, strategies.names() + trials.names()))
