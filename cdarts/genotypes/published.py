"""The published genotypes of CDARTS (CIFAR, ImageNet), DARTS (V1, V2), P-DARTS and PC-DARTS (CIFAR, ImageNet),
registered by name in the ``genotypes`` registry."""
from __future__ import annotations

from cdarts.genotypes.types import DartsGenotype, Edge
from cdarts.registry import genotypes as genotype_registry

_ABBREVIATIONS = {
    "sep3": "sep_conv_3x3",
    "sep5": "sep_conv_5x5",
    "dil3": "dil_conv_3x3",
    "dil5": "dil_conv_5x5",
    "max": "max_pool_3x3",
    "avg": "avg_pool_3x3",
    "skip": "skip_connect",
}


def _published(normal: str, reduce: str) -> DartsGenotype:
    """A genotype from the compact ``sep3<-0 sep3<-1 | ...`` notation: ``op<-input`` per edge, nodes split by ``|``."""

    def cell(text: str) -> list[Edge]:
        return [(_ABBREVIATIONS[op], int(i)) for op, i in (t.split("<-") for t in text.replace("|", " ").split())]

    return DartsGenotype(cell(normal), range(2, 6), cell(reduce), range(2, 6))


PUBLISHED = {
    "CDARTS_CIFAR": _published(
        "sep3<-0 sep3<-1 | sep3<-1 sep3<-2 | sep3<-0 sep3<-1 | skip<-0 skip<-2",
        "sep5<-1 max<-0 | dil5<-2 skip<-0 | sep3<-0 sep5<-1 | sep3<-0 dil5<-2",
    ),
    "CDARTS_IMAGENET": _published(
        "sep3<-1 sep3<-0 | sep3<-0 sep5<-2 | sep5<-2 sep3<-1 | sep3<-1 sep5<-4",
        "sep5<-1 avg<-0 | max<-1 dil5<-2 | sep5<-1 dil5<-2 | sep3<-3 dil3<-4",
    ),
    "DARTS_V1": _published(
        "sep3<-1 sep3<-0 | skip<-0 sep3<-1 | skip<-0 sep3<-1 | sep3<-0 skip<-2",
        "max<-0 max<-1 | skip<-2 max<-0 | max<-0 skip<-2 | skip<-2 avg<-0",
    ),
    "DARTS_V2": _published(
        "sep3<-0 sep3<-1 | sep3<-0 sep3<-1 | sep3<-1 skip<-0 | skip<-0 dil3<-2",
        "max<-0 max<-1 | skip<-2 max<-1 | max<-0 skip<-2 | skip<-2 max<-1",
    ),
    "PDARTS": _published(
        "skip<-0 dil3<-1 | skip<-0 sep3<-1 | sep3<-1 sep3<-3 | sep3<-0 dil5<-4",
        "avg<-0 sep5<-1 | sep3<-0 dil5<-2 | max<-0 dil3<-1 | dil3<-1 dil5<-3",
    ),
    "PC_DARTS_CIFAR": _published(
        "sep3<-1 skip<-0 | sep3<-0 dil3<-1 | sep5<-0 sep3<-1 | avg<-0 dil3<-1",
        "sep5<-1 max<-0 | sep5<-1 sep5<-2 | sep3<-0 sep3<-3 | sep3<-1 sep3<-2",
    ),
    "PC_DARTS_IMAGENET": _published(
        "skip<-1 sep3<-0 | sep3<-0 skip<-1 | sep3<-1 sep3<-3 | sep3<-1 dil5<-4",
        "sep3<-0 skip<-1 | dil5<-2 max<-1 | sep3<-2 sep3<-1 | sep5<-0 sep3<-3",
    ),
}
for _name, _genotype in PUBLISHED.items():
    genotype_registry.register(_name, _genotype)
