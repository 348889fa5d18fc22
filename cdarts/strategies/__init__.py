"""Search strategies: ``cdarts`` (the cycle of paper Algorithm 1) and ``darts`` (first-order baseline)."""
from cdarts.strategies import cdarts, darts  # noqa: F401 - registration on import
