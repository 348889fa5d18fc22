"""What the edges reading a node derive from it (``relu(h)``, stride-grid samples, pixel phases, pools), computed
once per node and shared by all of them."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cdarts.spaces.fastpath.layout import subsample, to_phases


class NodeInputs:
    """What the edges reading node ``h`` derive from it, each computed once: ``relu(h)``, its stride-grid samples,
    their copies repeated once per edge (for batched convs), and pooling outputs."""

    def __init__(self, h: Tensor) -> None:
        self.h = h
        self.cache: dict[tuple, Tensor] = {}

    def relu(self, repeat: int = 1) -> Tensor:
        return self.sampled(None, (1, 1), repeat)

    def sampled(self, offset: int | None, steps: tuple[int, int], repeat: int = 1) -> Tensor:
        """``relu(h)[..., offset::steps[0], offset::steps[1]]`` (``offset=None``: all of it), ``repeat`` times."""
        key = (offset, steps, repeat)
        if key not in self.cache:
            if repeat > 1:
                self.cache[key] = torch.cat([self.sampled(offset, steps)] * repeat, 1)
            elif offset is None:
                self.cache[key] = F.relu(self.h)
            else:
                self.cache[key] = subsample(self.relu(), offset, steps)
        return self.cache[key]

    def phases(self, d: int, repeat: int = 1) -> Tensor:
        """``to_phases(relu(h), d)``, ``repeat`` times along the channels."""
        key = ("phases", d, repeat)
        if key not in self.cache:
            base = to_phases(self.relu(), d) if repeat == 1 else self.phases(d)
            self.cache[key] = base if repeat == 1 else torch.cat([base] * repeat, 1)
        return self.cache[key]

    def pooled(self, pool: nn.Module) -> Tensor:
        key = ("pool", repr(pool))
        if key not in self.cache:
            self.cache[key] = pool(self.h)
        return self.cache[key]


class EdgeInputs:
    """The inputs of a batch of edges reading one or more nodes: each node's derived tensors (``NodeInputs``),
    repeated once per edge reading it, the nodes one after the other along the channels."""

    def __init__(self, nodes: list[NodeInputs], counts: list[int]) -> None:
        self.nodes, self.counts = nodes, counts
        self.edges = sum(counts)
        self.h = nodes[0].h
        self.cache: dict[tuple, Tensor] = {}

    def _joined(self, key: tuple, derive: str, *args: object) -> Tensor:
        if len(self.nodes) == 1:
            return getattr(self.nodes[0], derive)(*args, self.counts[0])
        if key not in self.cache:
            parts = [getattr(node, derive)(*args, count) for node, count in zip(self.nodes, self.counts, strict=True)]
            self.cache[key] = torch.cat(parts, 1)
        return self.cache[key]

    def relu(self) -> Tensor:
        return self._joined(("relu",), "relu")

    def sampled(self, offset: int, steps: tuple[int, int]) -> Tensor:
        return self._joined(("sampled", offset, steps), "sampled", offset, steps)

    def phases(self, d: int) -> Tensor:
        return self._joined(("phases", d), "phases", d)

    def edge_nodes(self) -> list[Tensor]:
        """Each edge's input node."""
        return [node.h for node, count in zip(self.nodes, self.counts, strict=True) for _ in range(count)]
