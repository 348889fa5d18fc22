"""The DARTS search space: the supernet S, the discrete network, and the weight-shared evaluation network E.

The discrete network is exactly the DARTS NetworkCIFAR / NetworkImageNet layout. The weight-shared E uses the
same cells, but each cell holds a pool with one module per (edge, op) candidate and *selects* the genotype's
ops from it: re-selecting a genotype reuses the very modules (weights and BN statistics) it had before, so
nothing is ever copied between networks.

Modules: ``macro`` (what S and E share: depth, reductions, stage ends, cell edges, stem, cell preprocessing),
``supernet`` (S: mixed ops, search cells), ``network`` (the discrete network and E), ``space`` (the registered
``darts`` factory). Their public names are importable from here.
"""
from cdarts.spaces.darts.macro import (
    DartsStem,
    Depth,
    Stem,
    cell_edges,
    preprocess,
    reduction_indices,
    stage_ends,
)
from cdarts.spaces.darts.network import DartsCell, DartsNetwork
from cdarts.spaces.darts.space import CompileMode, DartsSpace, darts
from cdarts.spaces.darts.supernet import DartsSupernet, MixedOp, SearchCell, replaying

__all__ = [
    "CompileMode",
    "DartsCell",
    "DartsNetwork",
    "DartsSpace",
    "DartsStem",
    "DartsSupernet",
    "Depth",
    "MixedOp",
    "SearchCell",
    "Stem",
    "cell_edges",
    "darts",
    "preprocess",
    "reduction_indices",
    "replaying",
    "stage_ends",
]
