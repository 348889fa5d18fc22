"""Search strategies: ``cdarts`` (the cycle of paper Algorithm 1) and ``darts`` (first-order baseline); ``trials``
holds the multi-trial methods over a benchmark (their own registry)."""
from cdarts.strategies import cdarts, darts, trials  # noqa: F401 - registration on import
