"""The registered ``darts`` space: its config schema, and the object that builds S, E and discrete networks."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import torch

from cdarts.config import PositiveInt, Range, Registered
from cdarts.genotypes import MAX_NODES, DartsGenotype, Edge
from cdarts.ops import DARTS_PRIMITIVES
from cdarts.registry import spaces
from cdarts.spaces.base import StageTaps
from cdarts.spaces.darts.macro import Depth, Stem, cell_edges
from cdarts.spaces.darts.network import DartsNetwork
from cdarts.spaces.darts.supernet import DartsSupernet

CompileMode = Literal["none", "default", "reduce-overhead", "max-autotune"]


class DartsSpace:
    """Builds the three networks of the DARTS space at the configured sizes."""

    name = "darts"
    default_discretizer = {"type": "topk"}
    cell_types = ("normal", "reduce")

    def __init__(
        self,
        num_classes: int,
        in_chans: int,
        channels: int,
        layers: int,
        eval_layers: int,
        nodes: int,
        stem: Stem,
        stem_multiplier: int,
        primitives: Sequence[str],
        compile_mode: CompileMode = "none",
        stage_taps: StageTaps = "after_reduction",
        **supernet_options: bool,
    ) -> None:
        self.num_classes, self.in_chans = num_classes, in_chans
        self.channels, self.layers, self.eval_layers, self.nodes = channels, layers, eval_layers, nodes
        self.stem, self.stem_multiplier, self.primitives = stem, stem_multiplier, tuple(primitives)
        self.edges = cell_edges(nodes)
        self.compile_mode, self.supernet_options = compile_mode, supernet_options
        self.stage_taps = stage_taps

    def supernet(self) -> DartsSupernet:
        """S with the space's speed options (see ``DartsSupernet``); with ``compile_mode``, each cell is compiled."""
        net = DartsSupernet(
            self.num_classes, self.in_chans, self.channels, self.layers, self.nodes, self.stem, self.stem_multiplier,
            self.primitives, stage_taps=self.stage_taps, **self.supernet_options,
        )
        if self.compile_mode != "none":
            for cell in net.cells:
                cell.compile(mode=self.compile_mode)
        return net

    def eval_network(self, genotype: DartsGenotype | None = None) -> DartsNetwork:
        """The weight-shared evaluation network E (search width, ``eval_layers`` deep); channels-last with S."""
        net = DartsNetwork(
            genotype, self.num_classes, self.in_chans, self.channels, self.eval_layers, self.stem,
            stem_multiplier=self.stem_multiplier, shared=True, nodes=self.nodes, primitives=self.primitives,
            batch_edges=self.supernet_options.get("batch_edges", True), stage_taps=self.stage_taps,
        )
        return net.to(memory_format=torch.channels_last) if self.supernet_options.get("channels_last") else net

    def discrete(self, genotype: DartsGenotype, **overrides) -> DartsNetwork:
        """The stand-alone network for ``genotype`` (search sizes unless overridden: channels, layers, ...)."""
        settings = dict(
            num_classes=self.num_classes, in_chans=self.in_chans, channels=self.channels, layers=self.eval_layers,
            stem=self.stem, stem_multiplier=self.stem_multiplier,
        )
        return DartsNetwork(genotype, **{**settings, **overrides})

    def genotype(self, nodes: dict[str, list[list[Edge]]]) -> DartsGenotype:
        """Wrap a discretizer's per-cell node lists as a genotype."""
        concat = list(range(2, 2 + self.nodes))
        flat = {cell: [edge for node in nodes[cell] for edge in node] for cell in ("normal", "reduce")}
        return DartsGenotype(flat["normal"], concat, flat["reduce"], concat)


@spaces.register("darts")
def darts(
    num_classes: int,
    in_chans: int,
    *,
    channels: PositiveInt = 16,
    layers: Depth = 8,
    eval_layers: Depth = 20,
    nodes: Annotated[int, Range(ge=1, le=MAX_NODES, why="the most a genotype may have")] = 4,
    stem: Stem = "cifar",
    stem_multiplier: PositiveInt = 3,
    primitives: list[Registered("ops")] = list(DARTS_PRIMITIVES),  # noqa: B006 - schema default
    skip_zero: bool = True,
    share_inputs: bool = True,
    batch_edges: bool = True,
    channels_last: bool = True,
    checkpoint_cells: bool = False,
    compile_mode: CompileMode = "none",
    stage_taps: StageTaps = "after_reduction",
) -> DartsSpace:
    """The DARTS space. ``layers`` is the search network's depth, ``eval_layers`` the evaluation network's.

    ``stage_taps`` chooses the stage outputs that distillation heads read (see ``stage_ends``): after each reduction
    cell as the public CDARTS code (the paper says only "the outputs of each stage"), or the cell before it.

    The rest are speed switches of the supernet S, all exact (see ``DartsSupernet``; the defaults are the fastest
    exact path on CPU). ``compile_mode`` compiles S's cells with ``torch.compile`` (``reduce-overhead`` adds CUDA
    graphs; meant for GPUs).
    """
    return DartsSpace(
        num_classes, in_chans, channels, layers, eval_layers, nodes, stem, stem_multiplier, primitives, compile_mode,
        stage_taps, skip_zero=skip_zero, share_inputs=share_inputs, batch_edges=batch_edges,
        channels_last=channels_last, checkpoint_cells=checkpoint_cells,
    )
