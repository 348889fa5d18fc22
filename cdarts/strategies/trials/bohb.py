"""BOHB-like search: optuna's TPE sampler with its Hyperband pruner over the benchmark's per-epoch numbers.

BOHB (Falkner et al. 2018, "BOHB: Robust and Efficient Hyperparameter Optimization at Scale"; NAS-Bench-201's "BOHB"
baseline) pairs a multivariate kernel-density model of good configurations (TPE-like) with Hyperband's successive
halving over training budgets. optuna's ``TPESampler(multivariate=True)`` with ``HyperbandPruner`` is the closest
maintained equivalent, and what this method runs; it is not HpBandSter's BOHB, so reports name it "BOHB-like (optuna
TPE + Hyperband)". Each trial is a cell (one categorical per edge) trained epoch by epoch in simulation: every epoch
costs its share of the cell's training time and reports the metric after it, and Hyperband stops the trials whose
curves fall behind (NAS-Bench-201's BOHB budgets are 1 to 12 epochs with eta 3, as here). A pruned trial keeps what
its epochs cost. optuna is an optional dependency (``pip install 'cdarts[bohb]'``), imported only when the method is
built.
"""
from __future__ import annotations

import warnings
from typing import Annotated, Any

from cdarts.config import PositiveInt, Range
from cdarts.errors import ConfigError
from cdarts.genotypes import NB201_EDGES
from cdarts.registry import trials
from cdarts.strategies.trials.base import TrialMethod, Trials

INSTALL = "pip install 'cdarts[bohb]' (or pip install optuna)"


class Bohb(TrialMethod):
    def __init__(self, optuna: Any, min_epochs: int, reduction_factor: int, startup_trials: int) -> None:
        self.optuna, self.min_epochs, self.eta, self.startup = optuna, min_epochs, reduction_factor, startup_trials
        self.pruned = 0

    def run(self, trials: Trials) -> None:
        optuna = self.optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        first = trials.random_cell()  # only to read the training's length: looking is free
        epochs = trials.epochs(first)
        if epochs < 2:
            raise ConfigError(f"multi-trial method 'bohb' needs per-epoch numbers, and the benchmark's training of "
                              f"{trials.metric!r} has {epochs} epoch; a table needs {trials.metric}@1, "
                              f"{trials.metric}@2, ... columns")
        if self.min_epochs > epochs:
            raise ConfigError(f"strategy.min_epochs: {self.min_epochs} is more than the {epochs} epochs of the "
                              "benchmark's training")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(seed=trials.seed, n_startup_trials=self.startup, multivariate=True)
        pruner = optuna.pruners.HyperbandPruner(min_resource=self.min_epochs, max_resource=epochs,
                                                reduction_factor=self.eta)
        # a fixed study name: Hyperband assigns trials to brackets by a hash of it, and the default name is random
        study = optuna.create_study(study_name="cdarts-bohb", direction="maximize", sampler=sampler, pruner=pruner)
        while True:
            trial = study.ask()
            ops = tuple(trial.suggest_categorical(f"edge_{i}_{j}", list(trials.primitives)) for i, j in NB201_EDGES)
            self.train(study, trial, ops, trials, epochs)

    def train(self, study: Any, trial: Any, ops: tuple[str, ...], trials: Trials, epochs: int) -> None:
        """Train one trial's cell epoch by epoch until Hyperband prunes it or it completes."""
        states = self.optuna.trial.TrialState
        for epoch in range(1, epochs + 1):
            query = trials.query(ops, epochs=epoch, trained=epoch - 1)
            if query.score == float("-inf"):
                study.tell(trial, state=states.FAIL)
                return
            trial.report(query.value, epoch)
            if epoch < epochs and trial.should_prune():
                self.pruned += 1
                study.tell(trial, state=states.PRUNED)
                return
        study.tell(trial, query.value)

    def summary(self) -> dict:
        return {"name": "BOHB-like (optuna TPE + Hyperband)", "pruned_trials": self.pruned,
                "optuna": self.optuna.__version__}


@trials.register("bohb")
def bohb(
    *,
    min_epochs: PositiveInt = 1,
    reduction_factor: Annotated[int, Range(ge=2, le=100)] = 3,
    startup_trials: Annotated[int, Range(ge=1, le=10_000)] = 10,
) -> Bohb:
    """BOHB-like (optuna TPE + Hyperband): Hyperband from ``min_epochs`` to the full training with ``reduction_factor``
    (eta); TPE proposes cells after ``startup_trials`` random ones. Needs optuna."""
    try:
        import optuna
    except ImportError:
        raise ConfigError(f"multi-trial method 'bohb' needs the optional 'optuna' package: {INSTALL}") from None
    return Bohb(optuna, min_epochs, reduction_factor, startup_trials)
