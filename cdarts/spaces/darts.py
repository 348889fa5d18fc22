"""The DARTS search space: the supernet S, the discrete network, and the weight-shared evaluation network E.

The discrete network is exactly the DARTS NetworkCIFAR / NetworkImageNet layout. The weight-shared E uses the
same cells, but each cell holds a pool with one module per (edge, op) candidate and *selects* the genotype's
ops from it: re-selecting a genotype reuses the very modules (weights and BN statistics) it had before, so
nothing is ever copied between networks.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from timm.layers import drop_path
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from cdarts.config import PositiveInt, Range, Registered
from cdarts.errors import ConfigError
from cdarts.genotypes import MAX_NODES, DartsGenotype, Edge
from cdarts.ops import DARTS_PRIMITIVES, build_op
from cdarts.ops.layers import AuxClassifierHead, FactorizedReduce, ReLUConvBN
from cdarts.registry import spaces
from cdarts.spaces.base import StageOutputs, StageTaps, check_stage_taps
from cdarts.spaces.fastpath.cells import cell_nodes, discrete_nodes
from cdarts.spaces.fastpath.edges import factorized_reduce
from cdarts.spaces.fastpath.inputs import EdgeInputs, NodeInputs
from cdarts.spaces.fastpath.layout import keep_layout
from cdarts.spaces.fastpath.plan import DiscreteEdge, Wave, plan_discrete, plan_sources

Stem = Literal["cifar", "imagenet"]
CompileMode = Literal["none", "default", "reduce-overhead", "max-autotune"]
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


class MixedOp(nn.Module):
    """``sum_k w_k op_k(x)`` over the primitives. ``skip_zero`` leaves out the ``none`` op: it adds zero, and its
    alpha still gets its gradient through the softmax of the others. ``pool_bn`` follows pooling ops with a
    non-affine BN, as DARTS does (NAS-Bench-201 does not)."""

    def __init__(
        self, primitives: Sequence[str], channels: int, stride: int, pool_bn: bool = True, skip_zero: bool = True
    ) -> None:
        super().__init__()
        self.ops = nn.ModuleList()
        self.computed: list[int] = []
        for index, name in enumerate(primitives):
            op = build_op(name, channels, stride, affine=False)
            if pool_bn and "pool" in name:
                op = nn.Sequential(op, nn.BatchNorm2d(channels, affine=False))
            self.ops.append(op)
            if name != "none" or not skip_zero:
                self.computed.append(index)

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        return sum(weights[i] * self.ops[i](x) for i in self.computed)


class SearchCell(nn.Module):
    """A supernet cell: every edge a MixedOp; node ``j`` sums its incoming edges; output concatenates the nodes.

    ``share_inputs`` computes the cell source by source (``cdarts.spaces.fastpath``): the ReLU, pools and skip of
    each node once for all edges that read it; ``batch_edges`` also runs each op of those edges as one grouped conv
    and one BatchNorm (implies ``share_inputs``). Both are exact regroupings of the plain edge-by-edge sum.
    """

    def __init__(
        self,
        primitives: Sequence[str],
        nodes: int,
        c_pp: int,
        c_p: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
        skip_zero: bool = True,
        share_inputs: bool = True,
        batch_edges: bool = True,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.nodes = nodes
        self.preprocess0, self.preprocess1 = preprocess(c_pp, c_p, c, reduction_prev, affine=False)
        self.edges = nn.ModuleList(
            MixedOp(primitives, c, 2 if reduction and i < 2 else 1, skip_zero=skip_zero) for i, _ in cell_edges(nodes)
        )
        self.batch_edges = batch_edges
        self.plans = None
        if share_inputs or batch_edges:
            self.plans = plan_sources(cell_edges(nodes), list(self.edges), skip_zero)

    def forward(self, s0: Tensor, s1: Tensor, weights: Tensor) -> Tensor:
        if self.plans is not None:
            pre0 = self.preprocess0
            if isinstance(pre0, FactorizedReduce):
                s0 = factorized_reduce(EdgeInputs([NodeInputs(s0)], [1]), [pre0])
            else:
                s0 = pre0(s0)
            states = [s0, self.preprocess1(s1)]
            return torch.cat(cell_nodes(states, self.plans, weights, self.nodes, self.batch_edges), dim=1)
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.nodes):
            states.append(sum(self.edges[offset + i](h, weights[offset + i]) for i, h in enumerate(states)))
            offset += len(states) - 1
        return torch.cat(states[2:], dim=1)


@contextlib.contextmanager
def replaying(module: nn.Module, requires_grad: list[bool]) -> Iterator[None]:
    """The recomputed pass of a checkpointed module: it must do what the first pass did, once more.

    BatchNorms leave their running statistics as they are: momentum 0 keeps every call the same as in the first
    pass (so the same tensors are saved for backward) while ``(1 - 0) * running + 0 * batch`` changes nothing; the
    batch counts are put back afterwards. Parameters require grad as they did in the first pass (a strategy that
    froze them for its forward pass has unfrozen them by the time backward recomputes).
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    for m in norms:
        m.momentum = 0.0
    for p, flag in zip(params, requires_grad, strict=True):
        p.requires_grad_(flag)
    try:
        yield
    finally:
        for m, (momentum, count) in zip(norms, saved, strict=True):
            m.momentum = momentum
            m.num_batches_tracked.copy_(count)
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


class DartsSupernet(nn.Module):
    """The search network S: mixed-op cells sharing one alpha per cell type.

    Architecture parameters (``alphas_normal``, ``alphas_reduce``) are kept apart from the weights:
    ``arch_parameters()`` and ``weight_parameters()`` are disjoint and together cover ``parameters()``.

    Speed switches, all exact (same outputs and gradients up to float rounding, same state dict): ``skip_zero``,
    ``share_inputs`` and ``batch_edges`` (see ``SearchCell``), ``channels_last`` memory format, and
    ``checkpoint_cells``, which recomputes each cell in the backward pass instead of keeping its activations
    (BatchNorm running statistics are updated once, in the forward pass).
    """

    def __init__(
        self,
        num_classes: int,
        in_chans: int = 3,
        channels: int = 16,
        layers: int = 8,
        nodes: int = 4,
        stem: Stem = "cifar",
        stem_multiplier: int = 3,
        primitives: Sequence[str] = DARTS_PRIMITIVES,
        skip_zero: bool = True,
        share_inputs: bool = True,
        batch_edges: bool = True,
        channels_last: bool = True,
        checkpoint_cells: bool = False,
        stage_taps: StageTaps = "after_reduction",
    ) -> None:
        super().__init__()
        self.primitives = tuple(primitives)
        self.edges = cell_edges(nodes)
        self.channels_last, self.checkpoint_cells = channels_last, checkpoint_cells
        self.stem = DartsStem(stem, in_chans, channels, stem_multiplier)
        c_pp, c_p = self.stem.out_channels
        reduction_prev, c_curr = self.stem.reduces, channels
        self.cells = nn.ModuleList()
        reductions = reduction_indices(layers)
        for i in range(layers):
            reduction = i in reductions
            c_curr = c_curr * 2 if reduction else c_curr
            self.cells.append(SearchCell(
                self.primitives, nodes, c_pp, c_p, c_curr, reduction, reduction_prev, skip_zero, share_inputs,
                batch_edges,
            ))
            reduction_prev = reduction
            c_pp, c_p = c_p, nodes * c_curr
        self.stage_ends = stage_ends(layers, stage_taps)
        self.num_features = c_p
        self.classifier = nn.Linear(c_p, num_classes)
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(len(self.edges), len(self.primitives)))
        self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(len(self.edges), len(self.primitives)))
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def alphas(self) -> dict[str, nn.Parameter]:
        """Architecture parameters by cell type, rows in ``cell_edges`` order, columns in ``primitives`` order."""
        return {"normal": self.alphas_normal, "reduce": self.alphas_reduce}

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas().values())

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def run_cell(self, cell: SearchCell, s0: Tensor, s1: Tensor, weights: Tensor) -> Tensor:
        if not (self.checkpoint_cells and torch.is_grad_enabled() and self.training):
            return cell(s0, s1, weights)
        first_pass: list[list[bool]] = []

        def forward(*inputs: Tensor) -> Tensor:
            if not first_pass:
                first_pass.append([p.requires_grad for p in cell.parameters()])
                return cell(*inputs)
            with replaying(cell, first_pass[0]):
                return cell(*inputs)

        return checkpoint(forward, s0, s1, weights, use_reentrant=False)

    def forward_stages(self, x: Tensor) -> StageOutputs:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        weights = {name: F.softmax(alpha, dim=-1) for name, alpha in self.alphas().items()}
        s0, s1 = self.stem(x)
        stages = []
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, self.run_cell(cell, s0, s1, weights["reduce" if cell.reduction else "normal"])
            stages += [keep_layout(s1)] * self.stage_ends.count(i)  # twice when the last cell reduces
        logits = self.classifier(F.adaptive_avg_pool2d(keep_layout(s1), 1).flatten(1))
        return StageOutputs(logits, stages)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_stages(x).logits


def _op_key(node: int, source: int, op: str) -> str:
    return f"n{node}_i{source}_{op}"


class DartsCell(nn.Module):
    """A discrete cell whose ops come from a pool of candidate modules keyed by (node, input, op).

    For the discrete network the pool holds exactly the genotype's ops; for the weight-shared evaluation network
    it holds every candidate, and ``select`` picks the genotype's. Either way the forward pass is the same.
    ``batch_edges`` runs the edges that read one node with the same primitive as one grouped conv (exact, as in
    ``SearchCell``; see ``fastpath.cells.discrete_nodes``).
    """

    def __init__(
        self,
        candidates: Sequence[Sequence[Edge]],
        c_pp: int,
        c_p: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
        batch_edges: bool = True,
    ) -> None:
        super().__init__()
        self.reduction, self.batch_edges = reduction, batch_edges
        self.preprocess0, self.preprocess1 = preprocess(c_pp, c_p, c, reduction_prev, affine=True)
        self.ops = nn.ModuleDict()
        for node, edges in enumerate(candidates, start=2):
            for op, source in edges:
                key = _op_key(node, source, op)
                if key in self.ops:
                    raise ConfigError(f"node {node} uses ({op!r}, {source}) twice; each (op, input) may appear once")
                self.ops[key] = build_op(op, c, 2 if reduction and source < 2 else 1, affine=True)
        self.selected: list[list[tuple[str, int]]] = []
        self.waves: list[Wave] = []
        self.concat: list[int] = []

    def select(self, nodes: Sequence[Sequence[Edge]], concat: Sequence[int]) -> None:
        """Use the given ``(op, input)`` pairs per node; every one must be in the pool."""
        selected = []
        for node, edges in enumerate(nodes, start=2):
            keys = []
            for op, source in edges:
                key = _op_key(node, source, op)
                if key not in self.ops:
                    raise ValueError(f"node {node} has no candidate ({op!r}, input {source}) in this cell's pool")
                keys.append((key, source))
            selected.append(keys)
        self.selected, self.concat = selected, list(concat)
        edges = [DiscreteEdge(source, node, key) for node, keys in enumerate(selected, start=2) for key, source in keys]
        self.waves = plan_discrete(edges, self.ops, len(selected))

    def forward(self, s0: Tensor, s1: Tensor, drop_prob: float = 0.0) -> Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]

        def finish(op: nn.Module, h: Tensor) -> Tensor:
            if drop_prob > 0.0 and not isinstance(op, nn.Identity):
                return drop_path(h, drop_prob, self.training)
            return h

        if self.batch_edges:
            discrete_nodes(states, self.waves, self.ops, finish)
        else:
            for keys in self.selected:
                total = 0
                for key, source in keys:
                    op = self.ops[key]
                    total = total + finish(op, op(states[source]))
                states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)


class DartsNetwork(nn.Module):
    """The DARTS evaluation network (NetworkCIFAR / NetworkImageNet) for a genotype.

    With ``shared=True`` every cell holds all candidate ops and ``select(genotype)`` switches architecture while
    keeping each (cell, edge, op)'s weights and BN statistics: the weight-shared evaluation network E of CDARTS.
    ``batch_edges`` (see ``DartsCell``) changes the arithmetic's grouping only: same outputs, gradients and state.
    """

    def __init__(
        self,
        genotype: DartsGenotype | None,
        num_classes: int,
        in_chans: int = 3,
        channels: int = 36,
        layers: int = 20,
        stem: Stem = "cifar",
        auxiliary: bool = False,
        drop_path_rate: float = 0.0,
        stem_multiplier: int = 3,
        shared: bool = False,
        nodes: int = 4,
        primitives: Sequence[str] = DARTS_PRIMITIVES,
        batch_edges: bool = True,
        stage_taps: StageTaps = "after_reduction",
    ) -> None:
        super().__init__()
        if genotype is None and not shared:
            raise ValueError("a discrete network needs a genotype (only a shared network can start without one)")
        self.genotype = genotype
        self.drop_path_prob = drop_path_rate
        self.stem = DartsStem(stem, in_chans, channels, stem_multiplier)
        c_pp, c_p = self.stem.out_channels
        reduction_prev, c_curr = self.stem.reduces, channels
        reductions = reduction_indices(layers)
        everything = [[(op, i) for i in range(node) for op in primitives] for node in range(2, 2 + nodes)]
        self.cells = nn.ModuleList()
        self.aux_index = 2 * layers // 3 if auxiliary else -1
        self.auxiliary_head: nn.Module | None = None
        for i in range(layers):
            reduction = i in reductions
            c_curr = c_curr * 2 if reduction else c_curr
            cell_type = "reduce" if reduction else "normal"
            candidates = everything if shared else genotype.nodes(cell_type)
            cell = DartsCell(candidates, c_pp, c_p, c_curr, reduction, reduction_prev, batch_edges)
            self.cells.append(cell)
            concat = len(genotype.nodes(cell_type)) if genotype is not None else nodes
            reduction_prev = reduction
            c_pp, c_p = c_p, concat * c_curr
            if i == self.aux_index:
                imagenet = stem == "imagenet"  # DARTS: pool stride 2 and no BN after the 768-channel conv on ImageNet
                self.auxiliary_head = AuxClassifierHead(
                    c_p, num_classes, pool_stride=2 if imagenet else 3, final_bn=not imagenet
                )
        self.stage_ends = stage_ends(layers, stage_taps)
        self.num_features = c_p
        self.classifier = nn.Linear(c_p, num_classes)
        if genotype is not None:
            self.select(genotype)

    def select(self, genotype: DartsGenotype) -> None:
        """Switch every cell to ``genotype`` (the discrete network accepts only its own)."""
        for cell in self.cells:
            cell_type = "reduce" if cell.reduction else "normal"
            cell.select(genotype.nodes(cell_type), getattr(genotype, f"{cell_type}_concat"))
        self.genotype = genotype

    def forward_cells(self, x: Tensor) -> tuple[Tensor, list[Tensor], Tensor | None]:
        """Stem and cells: the final feature map, the stage outputs and (training only) the auxiliary logits."""
        if self.genotype is None:
            raise RuntimeError("select a genotype before running the weight-shared network")
        s0, s1 = self.stem(x)
        stages, aux_logits = [], None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            stages += [s1] * self.stage_ends.count(i)
            if i == self.aux_index and self.training:
                aux_logits = self.auxiliary_head(s1)
        return s1, stages, aux_logits

    def forward_stages(self, x: Tensor) -> StageOutputs:
        features, stages, aux_logits = self.forward_cells(x)
        return StageOutputs(self.classifier(F.adaptive_avg_pool2d(features, 1).flatten(1)), stages, aux_logits)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_stages(x).logits


class DartsSpace:
    """Builds the three networks of the DARTS space at the configured sizes."""

    name = "darts"
    default_discretizer = {"type": "topk"}

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
