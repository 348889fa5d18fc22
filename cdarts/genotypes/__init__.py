"""Genotypes: the discrete architectures a search produces, typed, with JSON and text round trips.

DARTS-space genotypes print and parse as the DARTS ``Genotype(normal=[...], ...)`` text (parsed with ``ast``,
never ``eval``); NAS-Bench-201 cells as the standard arch string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.
The published genotypes (CDARTS, DARTS, P-DARTS, PC-DARTS) are registered by name in the ``genotypes`` registry.

Modules: ``types`` (the genotype classes and their size limits), ``parsing`` (text, JSON, files and registered
names to genotypes), ``nb201`` (NAS-Bench-201 cells by edge, enumeration, isomorphism classes), ``published``
(the papers' genotypes). Their public names are importable from here.
"""
from cdarts.genotypes.nb201 import NB201_EDGES, canonical_nb201, enumerate_nb201, nb201_from_ops, nb201_ops
from cdarts.genotypes.parsing import (
    MAX_GENOTYPE_FILE_BYTES,
    genotype_from_json,
    load_genotype,
    parse_arch_string,
    parse_darts_text,
    parse_genotype,
)
from cdarts.genotypes.published import PUBLISHED
from cdarts.genotypes.types import MAX_EDGES_PER_NODE, MAX_NODES, DartsGenotype, Edge, Genotype, NB201Genotype

for _cls in (DartsGenotype, NB201Genotype):
    _cls.__module__ = __name__  # their public home, as pickles, reprs and `cdarts list` name it

__all__ = [
    "MAX_EDGES_PER_NODE",
    "MAX_GENOTYPE_FILE_BYTES",
    "MAX_NODES",
    "NB201_EDGES",
    "PUBLISHED",
    "DartsGenotype",
    "Edge",
    "Genotype",
    "NB201Genotype",
    "canonical_nb201",
    "enumerate_nb201",
    "genotype_from_json",
    "load_genotype",
    "nb201_from_ops",
    "nb201_ops",
    "parse_arch_string",
    "parse_darts_text",
    "parse_genotype",
]
