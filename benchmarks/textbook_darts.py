"""The textbook DARTS search supernet (Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019), the
baseline ``bench_search.py`` measures our supernet against.

Written from the paper's definition, with none of our fast paths: on every edge of every cell, every one of the
eight candidate operations runs, the ``zero`` op included, one module at a time, and the edge returns their sum
weighted by the softmax of its alpha row (the continuous relaxation, Eq. 2). From the paper (Sec. 2.1, App. A.1.1):

- candidate ops: 3x3 and 5x5 separable convolutions (applied twice), 3x3 and 5x5 dilated separable convolutions
  (dilation 2), 3x3 max and average pooling, identity (skip), zero; ReLU-Conv-BN order, padding that keeps the size;
- a cell: two input nodes (the outputs of the two previous cells, brought to the cell's width by 1x1 convolutions,
  or by a factorized reduction after a reduction cell), four intermediate nodes, each the sum of its edges from
  all earlier nodes, and an output that concatenates the four intermediate nodes along channels;
- reduction cells at 1/3 and 2/3 of the depth: their ops on edges from the input nodes have stride 2, and the
  channels double;
- batch normalisation without learnable affine parameters in the cells (so no op can rescale its output), alphas
  initialised at 1e-3 times a standard normal, one alpha matrix shared by all normal cells and one by all
  reduction cells; CIFAR search network: a 3x3 convolution stem to 3C channels, 8 cells, C = 16, global average
  pooling and a linear classifier.

Where the paper is silent, the authors' public code: the pools are followed by a non-affine batch norm, the stem's
batch norm is affine, and zero on a stride-2 edge returns zeros of the reduced size.

One training step is forward, cross-entropy, backward and SGD (lr 0.025, momentum 0.9; the weights only, never the
alphas). Run as a script, it times ``--steps`` steps after two warm-up steps and prints one JSON line (images/s,
seconds per step, peak memory: CUDA's peak allocated bytes, or the process's peak resident memory on the CPU):

    python benchmarks/textbook_darts.py --batch 64 --size 32 --channels 16 --layers 8 --steps 10 [--device cuda]
    python benchmarks/textbook_darts.py --device cuda --bf16          # autocast to bfloat16
"""
from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

PRIMITIVES = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
              "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
NODES = 4
"""Intermediate nodes per cell."""


def relu_conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                 depthwise: bool = False) -> list[nn.Module]:
    """ReLU, then a convolution (``depthwise``: one filter per channel followed by a 1x1 convolution), then BN."""
    if depthwise:
        convs = [nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation, groups=c_in, bias=False),
                 nn.Conv2d(c_in, c_out, 1, bias=False)]
    else:
        convs = [nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, bias=False)]
    return [nn.ReLU(), *convs, nn.BatchNorm2d(c_out, affine=False)]


class DilatedSeparable(nn.Sequential):
    """ReLU, depthwise (dilated) convolution, 1x1 convolution, BN: ``dil_conv_*`` and half of ``sep_conv_*``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, dilation: int) -> None:
        super().__init__(*relu_conv_bn(c_in, c_out, kernel, stride, dilation * (kernel - 1) // 2, dilation, True))


class Separable(nn.Sequential):
    """A separable convolution applied twice; only the first one strides."""

    def __init__(self, channels: int, kernel: int, stride: int) -> None:
        super().__init__(DilatedSeparable(channels, channels, kernel, stride, 1),
                         DilatedSeparable(channels, channels, kernel, 1, 1))


class Zero(nn.Module):
    """The ``none`` op: zeros of the output's size, still computed (the textbook supernet runs every op)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halves the resolution without losing every other pixel: two stride-2 1x1 convolutions, the second shifted
    by one pixel, concatenated, then BN. Used by skip-connect on a reduction edge and after a reduction cell."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.even = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.odd = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return self.bn(torch.cat([self.even(x), self.odd(x[:, :, 1:, 1:])], dim=1))


def pool(kind: str, channels: int, stride: int) -> nn.Module:
    layer = (nn.MaxPool2d(3, stride, 1) if kind == "max"
             else nn.AvgPool2d(3, stride, 1, count_include_pad=False))
    return nn.Sequential(layer, nn.BatchNorm2d(channels, affine=False))


OPS: dict[str, Callable[[int, int], nn.Module]] = {
    "none": lambda c, stride: Zero(stride),
    "max_pool_3x3": lambda c, stride: pool("max", c, stride),
    "avg_pool_3x3": lambda c, stride: pool("avg", c, stride),
    "skip_connect": lambda c, stride: nn.Identity() if stride == 1 else FactorizedReduce(c, c),
    "sep_conv_3x3": lambda c, stride: Separable(c, 3, stride),
    "sep_conv_5x5": lambda c, stride: Separable(c, 5, stride),
    "dil_conv_3x3": lambda c, stride: DilatedSeparable(c, c, 3, stride, 2),
    "dil_conv_5x5": lambda c, stride: DilatedSeparable(c, c, 5, stride, 2),
}


class MixedOp(nn.Module):
    """One edge: every candidate op, summed with the weights of the edge's softmax(alpha) row."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        self.ops = nn.ModuleList(OPS[name](channels, stride) for name in PRIMITIVES)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = weights[0] * self.ops[0](x)
        for weight, op in zip(weights[1:], self.ops[1:], strict=True):
            out = out + weight * op(x)
        return out


class SearchCell(nn.Module):
    """Two input nodes, ``NODES`` intermediate nodes fed by every earlier node, output = their concatenation."""

    def __init__(self, c_prev_prev: int, c_prev: int, channels: int, reduction: bool, reduction_prev: bool) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = (FactorizedReduce(c_prev_prev, channels) if reduction_prev
                            else nn.Sequential(*relu_conv_bn(c_prev_prev, channels, 1)))
        self.preprocess1 = nn.Sequential(*relu_conv_bn(c_prev, channels, 1))
        self.edges = nn.ModuleList()
        for node in range(NODES):
            for source in range(2 + node):
                self.edges.append(MixedOp(channels, 2 if reduction and source < 2 else 1))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        edge = 0
        for _ in range(NODES):
            node = self.edges[edge](states[0], weights[edge])
            for source in range(1, len(states)):
                node = node + self.edges[edge + source](states[source], weights[edge + source])
            edge += len(states)
            states.append(node)
        return torch.cat(states[2:], dim=1)


class SearchCNN(nn.Module):
    """The CIFAR search network: stem, ``layers`` cells (reduction at 1/3 and 2/3 of the depth), classifier."""

    def __init__(self, channels: int = 16, num_classes: int = 10, layers: int = 8, stem_multiplier: int = 3) -> None:
        super().__init__()
        c_stem = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(3, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_prev_prev, c_prev, c = c_stem, c_stem, channels
        self.cells = nn.ModuleList()
        reduction_prev = False
        for index in range(layers):
            reduction = index in (layers // 3, 2 * layers // 3)
            c = 2 * c if reduction else c
            self.cells.append(SearchCell(c_prev_prev, c_prev, c, reduction, reduction_prev))
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, NODES * c
        self.classifier = nn.Linear(c_prev, num_classes)
        edges = sum(2 + node for node in range(NODES))
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(edges, len(PRIMITIVES)))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(edges, len(PRIMITIVES)))

    def weight_parameters(self) -> list[nn.Parameter]:
        """Everything the weight optimizer trains: all parameters but the two alpha matrices."""
        return [p for name, p in self.named_parameters() if not name.startswith("alpha_")]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normal, reduce = self.alpha_normal.softmax(dim=-1), self.alpha_reduce.softmax(dim=-1)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, reduce if cell.reduction else normal)
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))


def training_step(net: SearchCNN, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                  bf16: bool = False) -> torch.Tensor:
    """One weight step on a batch; returns the loss (before the step)."""
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = F.cross_entropy(net(x), y)
    loss.backward()
    optimizer.step()
    return loss.detach()


def weight_optimizer(net: SearchCNN) -> torch.optim.SGD:
    """SGD at the paper's search settings, without weight decay (as ``bench_search.py`` runs ours)."""
    return torch.optim.SGD(net.weight_parameters(), lr=0.025, momentum=0.9)


def peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=32, help="image side in pixels")
    p.add_argument("--channels", type=int, default=16, help="C, the first cells' width")
    p.add_argument("--layers", type=int, default=8, help="cells")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--steps", type=int, default=10, help="timed training steps (after 2 warm-up steps)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true", help="autocast to bfloat16")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    net = SearchCNN(args.channels, args.classes, args.layers).to(device)
    optimizer = weight_optimizer(net)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    y = torch.randint(0, args.classes, (args.batch,), device=device)
    for _ in range(2):
        training_step(net, optimizer, x, y, args.bf16)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    began = time.perf_counter()
    for _ in range(args.steps):
        training_step(net, optimizer, x, y, args.bf16)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - began
    print(json.dumps({"impl": "textbook_darts", "images_per_s": args.batch * args.steps / elapsed,
                      "step_s": elapsed / args.steps, "peak_bytes": peak_bytes(device), "device": str(device),
                      "bf16": args.bf16, "batch": args.batch, "size": args.size, "channels": args.channels,
                      "layers": args.layers}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
