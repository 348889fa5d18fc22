"""The one training runtime: accelerate's pieces for autocast, backward and clipping, and why the search's gradients
are averaged by hand instead of through DDP."""
from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import cpu_runtime, free_port
from torch import nn

from cdarts.runs import make_accelerator
from cdarts.runtime import Runtime, average_gradients


def _average_on_two_ranks(rank: int, port: int, results: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    used, unused = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(2))
    (used * (rank + 1)).sum().backward()
    average_gradients([used, unused], 2)
    results[rank] = (used.grad.tolist(), unused.grad)
    dist.destroy_process_group()


def test_hand_average_means_the_gradients_that_exist_and_leaves_the_rest_none():
    results = mp.Manager().dict()
    mp.start_processes(_average_on_two_ranks, args=(free_port(), results), nprocs=2, start_method="fork")
    assert results[0] == results[1] == ([1.5, 1.5, 1.5], None)


def test_a_joint_step_gives_gradients_to_a_small_part_of_e_which_is_all_the_hand_average_sends():
    """Why the search's networks are not wrapped in DDP (measured): E holds every candidate op of every edge (weight
    sharing across re-derivations) and one step trains only the derived cell's, here 14% of E's weights. DDP with
    ``find_unused_parameters`` (required then) all-reduces every bucket, unused weights included, after an extra
    traversal of the graph each step; the hand average sends only the gradients that exist."""
    from test_strategies import batch, make_strategy

    from cdarts.strategies.loop import Meter

    strategy = make_strategy()
    strategy.joint_step(*batch(), 4.0, 1.0, Meter())
    params = list(strategy.eval_net.parameters())
    sent = sum(p.numel() for p in params if p.grad is not None)
    total = sum(p.numel() for p in params)
    assert (sent, total) == (7140, 49624)


def test_runtime_reads_device_precision_and_scaler_from_the_accelerator():
    runtime = Runtime(make_accelerator("bf16", True))
    assert runtime.device == torch.device("cpu") and runtime.world_size == 1 and runtime.scaler is None
    with runtime.autocast():
        assert torch.is_autocast_cpu_enabled() and torch.get_autocast_cpu_dtype() == torch.bfloat16
    with cpu_runtime().autocast():
        assert not torch.is_autocast_cpu_enabled()


def test_step_refuses_non_finite_gradients_of_a_finite_loss():
    weight = nn.Parameter(torch.zeros(3))
    loss = torch.sqrt(weight).sum()  # finite at 0, its gradient is inf
    from cdarts.runtime import NonFiniteLossError

    with pytest.raises(NonFiniteLossError, match="the gradients of loss terms 'loss' are not finite"):
        cpu_runtime(grad_clip=None).step(loss, [torch.optim.SGD([weight], lr=0.1)])
    assert torch.equal(weight.detach(), torch.zeros(3))
