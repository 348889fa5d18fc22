"""Costs of architectures: MACs, parameters and measured latency per candidate op, registered as ``costs``.

Importing this package registers ``macs``, ``params`` and ``latency``; plugins add costs through the entry-point
group ``cdarts_costs``. (The ``latency`` factory stays in its module, ``cdarts.costs.latency``, whose name it would
shadow here.)
"""
from cdarts.costs.base import Amount, CostTable, Target, format_amount, parse_target
from cdarts.costs.counting import macs, params
from cdarts.costs.latency import genotype_latency, profile, read_table

__all__ = [
    "Amount", "CostTable", "Target", "format_amount", "genotype_latency", "macs", "params", "parse_target", "profile",
    "read_table",
]
