"""Search spaces: each registered factory returns a space object that builds the supernet S, the discrete
network for a genotype and the weight-shared evaluation network E."""
from cdarts.spaces import darts, nb201
from cdarts.spaces.base import StageOutputs

__all__ = ["StageOutputs", "darts", "nb201"]
