"""Multi-seed studies: one independent search per (variant, seed), planned and validated up front, resumable."""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdarts.config import read_yaml
from cdarts.errors import ConfigError
from cdarts.reports.records import RunRecord, load_run
from cdarts.reports.variants import Variant, apply_variant, strategy_variants


@dataclass
class PlannedRun:
    """One search of a study: its label, seed, config (as given) and filled config, and its folder."""

    label: str
    seed: int
    config: dict[str, Any]
    filled: dict[str, Any]
    run_dir: Path
    trials: bool = False
    """A multi-trial method's run (``cdarts.strategies.trials``), not a search."""


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """The dotted paths at which two config trees differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in list(a) + [k for k in b if k not in a]:
            found += differences(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
        return found
    return [] if a == b else [path or "<config>"]


def plan_study(
    config: str | Path | dict[str, Any],
    seeds: Sequence[int],
    output: str | Path,
    strategies: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
    variants: Sequence[Variant] = (),
) -> list[PlannedRun]:
    """Every (variant, seed) run of a study, validated up front so a bad config fails before any run.

    ``overrides`` apply to every run, then each variant's own (``strategies`` are variants that swap the strategy;
    a multi-trial method's run takes the seed and benchmark of a search config). Runs go to ``output/seed-N``, or
    ``output/<label>/seed-N`` when there are strategies or variants.
    """
    from cdarts.config import apply_overrides, build, load_config
    from cdarts.registry import RegistryError
    from cdarts.runs import resolve_precision
    from cdarts.strategies.trials.run import config_root, trial_config

    if not seeds:
        raise ConfigError("no seeds given")
    if len(set(seeds)) != len(seeds) or (strategies and len(set(strategies)) != len(strategies)):
        raise ConfigError(
            f"seeds and strategies must not repeat: seeds {list(seeds)}, strategies {list(strategies or [])}"
        )
    rows = [*strategy_variants(strategies or []), *variants]
    labels = [variant.label for variant in rows]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigError(f"variant labels must not repeat: {', '.join(map(repr, repeated))} given twice; "
                          f"labels: {', '.join(labels)}")
    raw = read_yaml(config) if isinstance(config, (str, Path)) else copy.deepcopy(dict(config))
    base = apply_overrides(raw, overrides)
    load_config(base, config_root(base))  # a bad config or --set is reported as such, not as one variant's problem
    output = Path(output)
    plans = []
    for variant in rows or [None]:
        for seed in seeds:
            try:
                run_config = {**(base if variant is None else apply_variant(base, variant)), "seed": seed}
                root = config_root(run_config)
                filled = load_config(run_config, root)
                if "mixed_precision" in filled:  # as the run's config.yaml will record it
                    filled["mixed_precision"] = resolve_precision(filled["mixed_precision"])
                if root is trial_config:  # a method's missing optional package is found now, not after other runs
                    build("trials", filled["strategy"])
            except ConfigError as exc:
                if variant is None:
                    raise
                raise ConfigError([f"{variant.origin} {variant.label!r}: {p}" for p in exc.problems]) from None
            except RegistryError as exc:
                raise ConfigError(f"{variant.origin} {variant.label!r}: {exc}") from None
            label = filled["strategy"]["type"] if variant is None else variant.label
            folder = output if variant is None else output / variant.label
            plans.append(PlannedRun(label, seed, run_config, filled, folder / f"seed-{seed}", root is trial_config))
    return plans


def run_study(plans: Sequence[PlannedRun], log: Callable[[str], Any] = print, progress: bool = True,
              quiet: bool = False) -> list[RunRecord]:
    """Run every planned run that has not finished (a folder with ``genotype.json`` is skipped; a started search is
    resumed from its last checkpoint, a started multi-trial run starts over); refuses a folder that holds a run of
    another config. ``progress`` and ``quiet`` go to each search (``cdarts.engine.search``)."""
    from cdarts.config import load_config
    from cdarts.engine import search, search_config
    from cdarts.strategies.trials.run import run_trials, trial_config

    for index, plan in enumerate(plans, start=1):
        saved = plan.run_dir / "config.yaml"
        if saved.is_file():
            changed = differences(load_config(saved, trial_config if plan.trials else search_config), plan.filled)
            if changed:
                raise ConfigError(f"{plan.run_dir} holds a run of another config (differs at "
                                  f"{', '.join(changed[:5])}); choose another --output or remove that folder")
        where = f"[{index}/{len(plans)}] {plan.label} seed {plan.seed}"
        if (plan.run_dir / "genotype.json").is_file():
            log(f"{where}: finished in {plan.run_dir}, skipping")
            continue
        started = plan.run_dir.is_dir() and any(plan.run_dir.iterdir())
        if plan.trials:
            log(f"{where}: {'starting over' if started else 'querying the benchmark'} in {plan.run_dir}")
            run_trials(plan.config, output=plan.run_dir, restart=started)
            continue
        log(f"{where}: {'resuming' if started else 'searching'} in {plan.run_dir}")
        search(plan.config, output=plan.run_dir, resume=started, progress=progress, quiet=quiet)
    return [load_run(plan.run_dir, plan.label) for plan in plans]
