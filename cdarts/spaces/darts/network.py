"""The DARTS discrete network for a genotype, and the weight-shared evaluation network E: cells whose ops come from
a pool of candidate modules, so that E can switch genotype while keeping every op's weights."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.layers import drop_path
from torch import Tensor, nn

from cdarts.errors import ConfigError
from cdarts.genotypes import DartsGenotype, Edge
from cdarts.ops import DARTS_PRIMITIVES, build_op
from cdarts.ops.layers import AuxClassifierHead
from cdarts.spaces.base import StageOutputs, StageTaps
from cdarts.spaces.darts.macro import DartsStem, Stem, preprocess, reduction_indices, stage_ends
from cdarts.spaces.fastpath.cells import discrete_nodes
from cdarts.spaces.fastpath.plan import DiscreteEdge, Wave, plan_discrete


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
