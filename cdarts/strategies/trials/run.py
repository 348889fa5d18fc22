"""A multi-trial run: config in, run folder out, like a search's (``config.yaml``, ``metrics.csv``, ``genotype.json``)
plus ``summary.json``.

``metrics.csv`` has one row per query (a simulated training, or for ``bohb`` one simulated epoch of a trial):
``epoch`` is the query's number (from 1), so reports and curve plots read it as a search's epochs; ``value`` is the
search metric the query saw, ``cost_s`` and ``clock_s`` the simulated seconds it cost and spent so far, and
``bench_<metric>`` the benchmark's numbers for the incumbent (the best cell so far), as a search logs its current
genotype's. The run is not resumable: it costs seconds, so an interrupted one simply starts over, and a seed gives
the same queries.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from cdarts.config import Component, Range, Seed, build, dump_yaml, load_config
from cdarts.errors import ConfigError
from cdarts.genotypes import NB201Genotype, nb201_from_ops
from cdarts.io import atomic_write_json, atomic_write_text, csv_text
from cdarts.nasbench import benchmark_metrics
from cdarts.registry import trials
from cdarts.runs import claim_run_dir, guarded_run, resolve_run_dir
from cdarts.strategies.trials.base import BudgetSpent, Query, Trials, search_metric

Budget = Annotated[float, Range(gt=0, le=1e7, why="about 116 days of simulated training")]


def trial_config(
    *,
    seed: Seed = 0,
    benchmark: Component("benchmarks"),
    strategy: Component("trials") = {"type": "random"},  # noqa: B006 - schema default
    metric: str | None = None,
    budget_s: Budget = 12_000.0,
) -> None:
    """The keys of a multi-trial run's config (its signature is the schema; it is never called).

    ``benchmark`` answers every query (it needs training times: a table with ``train_time_s``, or ``nats-bench``);
    ``strategy`` is the multi-trial method; ``metric`` the benchmark metric it maximises (default: the first
    validation one); ``budget_s`` the simulated seconds of training it may spend (NAS-Bench-201's 12,000 s).
    """


def is_trial_config(config: Mapping[str, Any]) -> bool:
    """Whether a config's ``strategy`` names a multi-trial method."""
    spec = config.get("strategy")
    name = spec.get("type") if isinstance(spec, Mapping) else spec
    return isinstance(name, str) and trials.has(name)


def config_root(config: Mapping[str, Any]) -> Any:
    """The schema a config follows: ``trial_config`` for a multi-trial method, else the search's."""
    from cdarts.engine import search_config

    return trial_config if is_trial_config(config) else search_config


def trial_variant(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The config of multi-trial method ``name`` made from ``config``: another multi-trial config with its method
    swapped (at its defaults), or a search config's seed and benchmark."""
    if is_trial_config(config):
        spec = config["strategy"]
        same = (spec.get("type") if isinstance(spec, Mapping) else spec) == name
        return copy.deepcopy(dict(config)) if same else {**copy.deepcopy(dict(config)), "strategy": {"type": name}}
    if not config.get("benchmark"):
        raise ConfigError(f"multi-trial method {name!r} queries a benchmark and the config has none; add one, e.g. "
                          "--set benchmark.type=table --set benchmark.path=FILE (a table with a train_time_s column)")
    return {"seed": config.get("seed", 0), "benchmark": copy.deepcopy(config["benchmark"]), "strategy": {"type": name}}


@dataclass
class TrialResult:
    genotype: NB201Genotype
    run_dir: Path
    history: list[Query]
    summary: dict[str, Any]


@guarded_run
def run_trials(
    config: str | Path | dict, overrides: Sequence[str] = (), output: str | Path | None = None, restart: bool = False
) -> TrialResult:
    """Run a multi-trial method against its benchmark until the simulated budget is spent; write the run folder.
    ``restart`` reuses a folder an interrupted run left (it starts over)."""
    cfg = load_config(config, trial_config, overrides)
    benchmark = build("benchmarks", cfg["benchmark"])
    method = build("trials", cfg["strategy"])
    metric = search_metric(benchmark, cfg["metric"])
    run_dir = resolve_run_dir(output, Path(config).stem if isinstance(config, (str, Path)) else "trials", restart)
    claim_run_dir(run_dir, restart)
    atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
    state = Trials(benchmark, metric, cfg["budget_s"], cfg["seed"])
    began = time.perf_counter()
    try:
        method.run(state)
    except BudgetSpent:
        pass
    wall_s = time.perf_counter() - began
    best = state.best()
    if best is None:
        raise ConfigError(f"budget_s: {cfg['budget_s']} s does not pay for one query (the first costs "
                          f"{state.refused_s} s)")
    atomic_write_text(run_dir / "metrics.csv", csv_text(metric_rows(state, benchmark)))
    genotype = nb201_from_ops(best.ops)
    summary = {
        "method": cfg["strategy"]["type"], "metric": metric, "budget_s": cfg["budget_s"], "spent_s": state.clock_s,
        "queries": len(state.history), "cells": len({q.ops for q in state.history}), "wall_s": wall_s,
        "best": {"arch": str(genotype), "query": best.index, "epochs": best.epochs, metric: best.value},
        "benchmark": benchmark.query(genotype), **method.summary(),
    }
    atomic_write_json(run_dir / "summary.json", summary)
    atomic_write_json(run_dir / "genotype.json", genotype.to_json())  # last: a folder with it is a finished run
    epochs = f"{best.epochs} epoch{'s' * (best.epochs != 1)}"
    print(f"{summary['method']}: {summary['queries']} queries, {state.clock_s:.0f} of {cfg['budget_s']:.0f} simulated "
          f"s in {wall_s:.2f} s; best {genotype} ({metric} {best.value:.2f} after {epochs})\nrun folder: {run_dir}")
    return TrialResult(genotype, run_dir, state.history, summary)


def metric_rows(state: Trials, benchmark: Any) -> list[dict[str, Any]]:
    """``metrics.csv``: one row per query, with the incumbent's benchmark numbers after it."""
    rows, looked_up, best = [], {}, None
    for query in state.history:
        if best is None or (query.epochs, query.score) > (best.epochs, best.score):  # as ``Trials.best`` ranks
            best = query
        if best.ops not in looked_up:
            looked_up[best.ops] = benchmark_metrics(benchmark, best.arch)
        rows.append({"epoch": query.index + 1, "phase": "trial", "arch": query.arch, "train_epochs": query.epochs,
                     "value": query.value, "cost_s": query.cost_s, "clock_s": query.clock_s,
                     "parent": "" if query.parent is None else query.parent, "best_value": best.value,
                     **looked_up[best.ops]})
    return rows
