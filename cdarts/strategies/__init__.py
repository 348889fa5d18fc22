"""Search strategies: ``cdarts`` (the cycle of paper Algorithm 1), ``darts`` (first-order baseline) and the one-shot
baselines that train the supernet one sampled path at a time (``gdas``, ``rsps``, ``setn``, ``enas``; their shared
pieces in ``sampling``); ``trials`` holds the multi-trial methods over a benchmark (their own registry)."""
from cdarts.strategies import cdarts, darts, enas, gdas, rsps, setn, trials  # noqa: F401 - registration on import
