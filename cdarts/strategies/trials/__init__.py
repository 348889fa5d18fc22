"""Multi-trial search methods over a benchmark: no supernet, no training; each query is a look-up.

``random`` (RS), ``evolution`` (REA), ``reinforce`` (RL) and ``bohb`` (BOHB-like: optuna TPE + Hyperband) propose
NAS-Bench-201 cells and "train" each by looking its (proxy) training up in a ``benchmarks`` entry, paying that
training's recorded seconds on a simulated clock until the budget (NAS-Bench-201's 12,000 s by default) is spent, as
NAS-Bench-201 benchmarks them. A run writes a run folder like a search's (``run.py``); ``cdarts-seeds --strategies``
takes these names with the weight-sharing strategies. They live in the ``trials`` registry (entry-point group
``cdarts_trials``), which shares its namespace with ``strategies``.
"""
from cdarts.strategies.trials import bohb, evolution, random_search, reinforce  # noqa: F401 - registration on import
