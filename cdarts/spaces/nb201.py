"""The NAS-Bench-201 search space: the supernet S, the discrete network, and the weight-shared evaluation network E.

The skeleton is NAS-Bench-201's (xautodl ``TinyNetwork``): a 3x3 conv stem, three stages of ``N`` cells at
widths C, 2C, 4C with a stride-2 ResNet basic block between stages, then BN, ReLU, global pooling and a linear
classifier. A cell is a 4-node DAG: node 0 is the cell input, node ``j`` sums one op per edge from every earlier
node, the output is node 3. As in the DARTS space, the weight-shared E holds one module per (cell, edge, op) and
*selects* the genotype's, so re-selecting a genotype reuses its weights and BN statistics.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cdarts.config import PositiveInt, Registered
from cdarts.genotypes import NB201_EDGES, Edge, NB201Genotype, nb201_ops
from cdarts.ops import NB201_PRIMITIVES, build_op
from cdarts.ops.layers import ReLUConvBN
from cdarts.registry import spaces
from cdarts.spaces.base import StageOutputs, StageTaps, check_stage_taps
from cdarts.spaces.darts.supernet import MixedOp
from cdarts.spaces.paths import OnePath

NODES = 3
"""Computed nodes per cell (node 0 is the input)."""


class ResNetBasicBlock(nn.Module):
    """The block between stages: two ReLU-conv-BNs (the first strided) plus an avg-pool + 1x1-conv shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 2) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride, 1, affine=True)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1, affine=True)
        self.downsample = nn.Sequential(nn.AvgPool2d(stride, stride), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Skeleton(nn.Module):
    """Stem, ``3 * cells_per_stage`` cells (built by ``make_cell(channels)``), the two blocks, BN-ReLU and classifier:
    the layout that S and the discrete networks share.

    ``run_stages`` returns one feature map per stage, so S and E of the same sizes give stage outputs of the same
    shapes: with ``stage_taps="after_reduction"`` (the public CDARTS code) the output of each residual block, with
    ``"before_reduction"`` the output of the stage's last cell before it; the last stage's is its last cell's output
    (before the final BN-ReLU).
    """

    def __init__(
        self,
        num_classes: int,
        in_chans: int,
        channels: int,
        cells_per_stage: int,
        make_cell: Callable[[int], nn.Module],
        stage_taps: StageTaps = "after_reduction",
    ) -> None:
        super().__init__()
        check_stage_taps(stage_taps)
        self.stem = nn.Sequential(nn.Conv2d(in_chans, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        widths = (channels, 2 * channels, 4 * channels)
        self.cells = nn.ModuleList(make_cell(width) for width in widths for _ in range(cells_per_stage))
        self.reductions = nn.ModuleList(ResNetBasicBlock(widths[s], widths[s + 1]) for s in range(len(widths) - 1))
        self.stage_ends = [(stage + 1) * cells_per_stage - 1 for stage in range(len(widths))]
        self.stage_taps = stage_taps
        self.num_features = widths[-1]
        self.lastact = nn.Sequential(nn.BatchNorm2d(widths[-1]), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(widths[-1], num_classes)

    def run_stages(self, x: Tensor, run_cell: Callable[[nn.Module, Tensor], Tensor]) -> StageOutputs:
        blocks = {end + 1: block for end, block in zip(self.stage_ends, self.reductions, strict=False)}
        x = self.stem(x)
        stages: list[Tensor] = []
        after = self.stage_taps == "after_reduction"
        for i, cell in enumerate(self.cells):
            if i in blocks:
                x = blocks[i](x)
                if after:
                    stages.append(x)
            x = run_cell(cell, x)
            if i == self.stage_ends[-1] or (i in self.stage_ends and not after):
                stages.append(x)
        logits = self.classifier(F.adaptive_avg_pool2d(self.lastact(x), 1).flatten(1))
        return StageOutputs(logits, stages)


def _node_rows(node: int) -> list[tuple[int, int]]:
    """``(alpha row, input)`` of node ``node``'s incoming edges."""
    return [(row, i) for row, (i, j) in enumerate(NB201_EDGES) if j == node]


class NB201SearchCell(nn.Module):
    """A supernet cell: every edge a MixedOp (non-affine ops, no BN after pooling)."""

    def __init__(self, primitives: Sequence[str], channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(MixedOp(primitives, channels, 1, pool_bn=False) for _ in NB201_EDGES)

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        states = [x]
        for node in range(1, NODES + 1):
            total = sum(self.edges[row](states[i], weights[row]) for row, i in _node_rows(node))
            states.append(total if isinstance(total, Tensor) else torch.zeros_like(x))
        return states[-1]

    def forward_path(self, x: Tensor, index: Sequence[int], weights: Tensor | None = None) -> Tensor:
        """Only the ops of a path (``cdarts.spaces.paths``): one per edge, scaled as in ``MixedOp.forward_one``."""
        states = [x]
        for node in range(1, NODES + 1):
            edges = [(self.edges[row], states[i], index[row], None if weights is None else weights[row])
                     for row, i in _node_rows(node)]
            states.append(sum(edge.forward_one(h, op, w) for edge, h, op, w in edges))
        return states[-1]


class NB201Supernet(OnePath, NB201Skeleton):
    """The search network S: every cell shares one alpha, ``alphas_cell`` (rows in ``NB201_EDGES`` order); inside
    ``one_path`` only a path's ops run (``cdarts.spaces.paths``).

    ``arch_parameters()`` and ``weight_parameters()`` are disjoint and together cover ``parameters()``.
    """

    def __init__(
        self,
        num_classes: int,
        in_chans: int = 3,
        channels: int = 16,
        cells_per_stage: int = 5,
        primitives: Sequence[str] = NB201_PRIMITIVES,
        stage_taps: StageTaps = "after_reduction",
    ) -> None:
        primitives = tuple(primitives)
        super().__init__(
            num_classes, in_chans, channels, cells_per_stage, lambda width: NB201SearchCell(primitives, width),
            stage_taps,
        )
        self.primitives = primitives
        self.edges = list(NB201_EDGES)
        self.alphas_cell = nn.Parameter(1e-3 * torch.randn(len(self.edges), len(self.primitives)))

    def alphas(self) -> dict[str, nn.Parameter]:
        """The architecture parameters by cell type (NAS-Bench-201 has one), columns in ``primitives`` order."""
        return {"cell": self.alphas_cell}

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas().values())

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def forward_stages(self, x: Tensor) -> StageOutputs:
        if self.path is not None:
            index, weights = self.path["cell"], self.edge_weights("cell")
            return self.run_stages(x, lambda cell, h: cell.forward_path(h, index, weights))
        weights = F.softmax(self.alphas_cell, dim=-1)
        return self.run_stages(x, lambda cell, h: cell(h, weights))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_stages(x).logits


def _op_key(node: int, source: int, op: str) -> str:
    return f"n{node}_i{source}_{op}"


class NB201Cell(nn.Module):
    """A discrete cell whose ops come from a pool keyed by (node, input, op), as ``DartsCell``.

    ``none`` has no module: its edges are skipped, and a node without a computed edge is a zero tensor.
    """

    def __init__(self, candidates: Iterable[tuple[int, int, str]], channels: int) -> None:
        super().__init__()
        self.ops = nn.ModuleDict()
        for source, node, op in candidates:
            if op != "none":
                self.ops[_op_key(node, source, op)] = build_op(op, channels, 1, affine=True)
        self.selected: list[list[tuple[str, int]]] = []

    def select(self, nodes: Sequence[Sequence[Edge]]) -> None:
        """Use the given ``(op, input)`` pairs per node (node 1 first); every op but ``none`` must be in the pool."""
        selected = []
        for node, edges in enumerate(nodes, start=1):
            keys = []
            for op, source in edges:
                if op == "none":
                    continue
                key = _op_key(node, source, op)
                if key not in self.ops:
                    raise ValueError(f"node {node} has no candidate ({op!r}, input {source}) in this cell's pool")
                keys.append((key, source))
            selected.append(keys)
        self.selected = selected

    def forward(self, x: Tensor) -> Tensor:
        states = [x]
        for keys in self.selected:
            total = None
            for key, source in keys:
                h = self.ops[key](states[source])
                total = h if total is None else total + h
            states.append(torch.zeros_like(x) if total is None else total)
        return states[-1]


class NB201Network(NB201Skeleton):
    """The NAS-Bench-201 network for a genotype (affine ops, every cell the same).

    With ``shared=True`` every cell holds all candidate ops and ``select(genotype)`` switches architecture while
    keeping each (cell, edge, op)'s weights and BN statistics: the weight-shared evaluation network E of CDARTS.
    """

    def __init__(
        self,
        genotype: NB201Genotype | None,
        num_classes: int,
        in_chans: int = 3,
        channels: int = 16,
        cells_per_stage: int = 5,
        shared: bool = False,
        primitives: Sequence[str] = NB201_PRIMITIVES,
        stage_taps: StageTaps = "after_reduction",
    ) -> None:
        if genotype is None and not shared:
            raise ValueError("a discrete network needs a genotype (only a shared network can start without one)")
        primitives = tuple(primitives)
        if shared:
            candidates = [(i, j, op) for i, j in NB201_EDGES for op in primitives]
        else:
            candidates = [(i, j, op) for (i, j), op in zip(NB201_EDGES, nb201_ops(genotype), strict=True)]
        super().__init__(
            num_classes, in_chans, channels, cells_per_stage, lambda width: NB201Cell(candidates, width), stage_taps
        )
        self.primitives = primitives
        self.genotype: NB201Genotype | None = None
        if genotype is not None:
            self.select(genotype)

    def select(self, genotype: NB201Genotype) -> None:
        """Switch every cell to ``genotype`` (the discrete network accepts only its own ops)."""
        if not isinstance(genotype, NB201Genotype):
            raise ValueError(f"expected a NAS-Bench-201 genotype (arch string '|op~0|+...'), got {genotype}")
        nb201_ops(genotype)  # raises unless the cell has its 3 nodes
        for cell in self.cells:
            cell.select(genotype.nodes())
        self.genotype = genotype

    def forward_stages(self, x: Tensor) -> StageOutputs:
        if self.genotype is None:
            raise RuntimeError("select a genotype before running the weight-shared network")
        return self.run_stages(x, lambda cell, h: cell(h))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_stages(x).logits


class NB201Space:
    """Builds the three networks of the NAS-Bench-201 space; E has the same depth and width as S."""

    name = "nas-bench-201"
    default_discretizer = {"type": "argmax"}
    cell_types = ("cell",)

    def __init__(
        self,
        num_classes: int,
        in_chans: int,
        channels: int,
        cells_per_stage: int,
        primitives: Sequence[str],
        stage_taps: StageTaps = "after_reduction",
    ) -> None:
        self.num_classes, self.in_chans = num_classes, in_chans
        self.channels, self.cells_per_stage, self.primitives = channels, cells_per_stage, tuple(primitives)
        self.stage_taps = stage_taps
        self.edges = list(NB201_EDGES)

    def supernet(self) -> NB201Supernet:
        return NB201Supernet(
            self.num_classes, self.in_chans, self.channels, self.cells_per_stage, self.primitives, self.stage_taps
        )

    def eval_network(self, genotype: NB201Genotype | None = None) -> NB201Network:
        """The weight-shared evaluation network E (the search sizes)."""
        return NB201Network(
            genotype, self.num_classes, self.in_chans, self.channels, self.cells_per_stage, shared=True,
            primitives=self.primitives, stage_taps=self.stage_taps,
        )

    def discrete(self, genotype: NB201Genotype, **overrides) -> NB201Network:
        """The stand-alone network for ``genotype`` (search sizes unless overridden: channels, cells_per_stage...)."""
        settings = dict(
            num_classes=self.num_classes, in_chans=self.in_chans, channels=self.channels,
            cells_per_stage=self.cells_per_stage,
        )
        return NB201Network(genotype, **{**settings, **overrides})

    def genotype(self, nodes: dict[str, list[list[Edge]]]) -> NB201Genotype:
        """Wrap a discretizer's node lists (key ``"cell"``) as a genotype."""
        return NB201Genotype(tuple(tuple(node) for node in nodes["cell"]))


@spaces.register("nas-bench-201")
def nas_bench_201(
    num_classes: int,
    in_chans: int,
    *,
    channels: PositiveInt = 16,
    cells_per_stage: PositiveInt = 5,
    primitives: list[Registered("ops")] = list(NB201_PRIMITIVES),  # noqa: B006 - schema default
    stage_taps: StageTaps = "after_reduction",
) -> NB201Space:
    """The NAS-Bench-201 space: ``cells_per_stage`` cells in each of three stages of width C, 2C, 4C.

    ``stage_taps``: the distilled stage outputs are read after each residual block (public CDARTS code) or before it.
    """
    return NB201Space(num_classes, in_chans, channels, cells_per_stage, primitives, stage_taps)
