"""The macro-architecture that the DARTS supernet S and the evaluation networks share: depth and reduction
positions, the stage outputs that CDARTS distils, a cell's edges, the stem and the cells' input preprocessing."""
from __future__ import annotations

from typing import Annotated, Literal

from torch import Tensor, nn

from cdarts.config import Range
from cdarts.ops.layers import FactorizedReduce, ReLUConvBN
from cdarts.spaces.base import StageTaps, check_stage_taps

Stem = Literal["cifar", "imagenet"]
Depth = Annotated[int, Range(ge=3, why="two reduction cells")]
"""Cells in a DARTS network: at least one before, at and after each of the two reductions' thirds."""


def reduction_indices(layers: int) -> tuple[int, int]:
    """Cells that halve the resolution: at one and two thirds of the depth, as in DARTS."""
    return layers // 3, 2 * layers // 3


def stage_ends(layers: int, taps: StageTaps = "after_reduction") -> list[int]:
    """The cells whose outputs are the stage outputs that CDARTS distils, then the last cell.

    ``after_reduction`` taps each reduction cell's output (the public CDARTS code: 128 channels at 16 px and 256 at
    8 px for C=16 on CIFAR); ``before_reduction`` the cell before it (the last cell at the stage's resolution).
    """
    check_stage_taps(taps)
    offset = 0 if taps == "after_reduction" else -1
    return [i + offset for i in reduction_indices(layers)] + [layers - 1]


def cell_edges(nodes: int) -> list[tuple[int, int]]:
    """``(input, node)`` for every edge of a cell, in alpha-row order: node 2 from inputs 0, 1; node 3 from 0..2..."""
    return [(i, node) for node in range(2, 2 + nodes) for i in range(node)]


class DartsStem(nn.Module):
    """The CIFAR stem (one 3x3 conv to ``stem_multiplier * C``) or the ImageNet 3-conv stem (224 px -> 28 px).

    ``forward`` returns the two inputs of the first cell (``s0``, ``s1``).
    """

    def __init__(self, kind: Stem, in_chans: int, channels: int, stem_multiplier: int = 3) -> None:
        super().__init__()
        self.kind = kind
        if kind == "cifar":
            self.out_channels = (stem_multiplier * channels, stem_multiplier * channels)
            self.stem = nn.Sequential(
                nn.Conv2d(in_chans, self.out_channels[1], 3, padding=1, bias=False),
                nn.BatchNorm2d(self.out_channels[1]),
            )
        elif kind == "imagenet":
            self.out_channels = (channels, channels)
            self.stem0 = nn.Sequential(
                nn.Conv2d(in_chans, channels // 2, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(channels // 2),
                nn.ReLU(inplace=True),
                nn.Conv2d(channels // 2, channels, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(channels),
            )
            self.stem1 = nn.Sequential(
                nn.ReLU(inplace=False),
                nn.Conv2d(channels, channels, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(channels),
            )
        else:
            raise ValueError(f"unknown stem {kind!r}; available: cifar, imagenet")

    @property
    def reduces(self) -> bool:
        """Whether ``s0`` has twice the resolution of ``s1`` (the first cell then preprocesses with a reduction)."""
        return self.kind == "imagenet"

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.kind == "cifar":
            s = self.stem(x)
            return s, s
        s0 = self.stem0(x)
        return s0, self.stem1(s0)


def preprocess(c_pp: int, c_p: int, c: int, reduction_prev: bool, affine: bool) -> tuple[nn.Module, nn.Module]:
    """Map the two cell inputs to ``c`` channels at the same resolution."""
    pre0 = FactorizedReduce(c_pp, c, affine) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, affine)
    return pre0, ReLUConvBN(c_p, c, 1, 1, 0, affine)
