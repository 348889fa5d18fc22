"""The exact costs: multiply-accumulates and parameters of each candidate op, counted on its module.

Both count what ``cdarts-inspect`` counts on a discrete network (``cdarts.stats``: torch's FlopCounterMode halved,
the parameters without the auxiliary tower), op by op: a genotype's cost from the table equals the count of its
discrete network to the unit.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from cdarts.config import PositiveInt
from cdarts.costs.base import CostTable
from cdarts.costs.network import CostNetwork, Slot, table_rows
from cdarts.registry import costs
from cdarts.stats import count_macs, inference_parameters


def op_macs(slot: Slot) -> int:
    """MACs of one eval-mode forward of the slot's op on one input of its shape."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        slot.module(torch.zeros(1, *slot.shape))
    return counter.get_total_flops() // 2


def op_params(slot: Slot) -> int:
    return sum(p.numel() for p in slot.module.parameters())


def counted_table(network: CostNetwork, name: str) -> CostTable:
    """The ``macs`` or ``params`` table of ``network`` (each distinct op signature counted once)."""
    count = op_macs if name == "macs" else op_params
    per_signature = {signature: count(slot) for signature, slot in network.signatures.items()}
    rows = table_rows(network, lambda slot: per_signature[slot.signature])
    if name == "macs":
        probe = network.probes[0]
        network.network.select(probe)
        ops = sum(per_signature[s.signature] for s in network.probe_slots(probe))
        fixed = count_macs(network.network, network.input_shape) - ops
    else:
        fixed = inference_parameters(network.network) - sum(per_signature[s.signature] for s in network.slots)
    unit = "MACs" if name == "macs" else "params"
    return CostTable(name, unit, "count", rows, float(fixed), network.primitives, network.edges,
                     network.description())


def _network(space: Any, input_shape: tuple[int, ...], channels: int | None, layers: int | None,
             input_size: int | None) -> CostNetwork:
    if input_size is not None:
        input_shape = (input_shape[0], input_size, input_size)
    return CostNetwork(space, input_shape, channels, layers)


@costs.register("macs")
def macs(
    space: Any,
    input_shape: tuple[int, ...],
    *,
    channels: PositiveInt | None = None,
    layers: PositiveInt | None = None,
    input_size: PositiveInt | None = None,
) -> CostTable:
    """Multiply-accumulates of the discrete network for one image. By default the network is the space's discrete
    network (search width, evaluation depth; NAS-Bench-201: cells per stage) at the data's image size;
    ``channels``, ``layers`` and ``input_size`` cost another size instead (e.g. the retraining network's)."""
    return counted_table(_network(space, input_shape, channels, layers, input_size), "macs")


@costs.register("params")
def params(
    space: Any,
    input_shape: tuple[int, ...],
    *,
    channels: PositiveInt | None = None,
    layers: PositiveInt | None = None,
    input_size: PositiveInt | None = None,
) -> CostTable:
    """Parameters of the discrete network without the auxiliary tower; sizes as for ``macs``."""
    return counted_table(_network(space, input_shape, channels, layers, input_size), "params")
