"""Seeded loaders: the same batches however often they are iterated, equal batch counts on every rank."""
from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from cdarts.errors import ConfigError, DataError


def epoch_seed(seed: int, epoch: int) -> int:
    """The loader seed of ``epoch``: a resumed run rebuilds epoch k's loader with it and replays the same batches."""
    return seed * 1_000_000 + epoch


def rank_seed(seed: int, rank: int) -> int:
    """The augmentation seed of ``rank`` in a loader seeded with ``seed``: distinct per rank, fixed per loader."""
    return int(np.random.SeedSequence([seed % 2**64, rank]).generate_state(1, np.uint64)[0] >> 1)


class SeededLoader(DataLoader):
    """A DataLoader that gives the same order every time it is iterated: its generator restarts from ``seed``.

    A plain seeded DataLoader draws a new order at each ``iter()``, so the batches a loop sees would depend on how
    many times a wrapper (a progress bar that opens an iterator in its constructor, as ``tqdm.auto``'s does) called
    ``iter()`` before the loop did.
    """

    def __init__(self, *args: Any, seed: int, **kwargs: Any) -> None:
        super().__init__(*args, generator=torch.Generator().manual_seed(seed), **kwargs)
        self.seed = seed

    def __iter__(self) -> Iterator[Any]:
        self.generator.manual_seed(self.seed)
        return super().__iter__()


class RankLoader(SeededLoader):
    """A DataLoader of one rank's shard whose augmentation draws from random streams of its own.

    ``generator`` (seeded with the rank's seed) seeds the worker processes. Without workers, the dataset's transforms
    would draw from the process's global RNGs, which every rank seeds alike; this loader swaps in torch, numpy and
    Python ``random`` streams seeded from ``generator`` around every batch, so the ranks draw differently, the
    global streams are left as they were, and a loader rebuilt with the same seed replays the same draws.
    """

    def __iter__(self) -> Iterator[Any]:
        batches = super().__iter__()
        return batches if self.num_workers > 0 else self._own_streams(batches)

    def _own_streams(self, batches: Iterator[Any]) -> Iterator[Any]:
        seed = int(torch.randint(2**62, (), generator=self.generator))
        streams = (torch.Generator().manual_seed(seed).get_state(),
                   np.random.RandomState(np.random.SeedSequence(seed).generate_state(4)).get_state(),
                   random.Random(seed).getstate())
        while True:
            outer = torch.get_rng_state(), np.random.get_state(), random.getstate()
            torch.set_rng_state(streams[0])
            np.random.set_state(streams[1])
            random.setstate(streams[2])
            try:
                batch = next(batches)
            except StopIteration:
                return
            finally:
                streams = torch.get_rng_state(), np.random.get_state(), random.getstate()
                torch.set_rng_state(outer[0])
                np.random.set_state(outer[1])
                random.setstate(outer[2])
            yield batch


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    drop_last: bool = True,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """A loader whose order is fixed by ``seed``; build one per epoch with ``seed=epoch_seed(run_seed, epoch)``.

    In one process the seeded generator also seeds the worker processes, so augmentation in workers replays too;
    with ``num_workers=0`` augmentation draws from torch's global RNG, which the engine seeds or checkpoints.

    With several processes, every rank draws the same seeded order and keeps every ``world_size``-th item from
    ``rank`` on, so the ranks see disjoint shards of one shuffle. A training loader (``drop_last``) first repeats
    the order's first few items until it divides by ``world_size``, as ``DistributedSampler`` pads: every rank then
    runs the same number of steps, whose collectives would otherwise mismatch. An evaluation loader (``drop_last``
    false) is not padded, so every image is counted exactly once; its ranks may differ by one batch and must not
    meet in a collective per batch. Augmentation, in workers or not, draws from the rank's own seed
    (:func:`rank_seed`, :class:`RankLoader`): the ranks crop and flip differently, while the global RNG, which
    initialises the networks, stays equal on all of them.
    """
    if world_size > 1:
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(dataset), generator=generator) if shuffle else torch.arange(len(dataset))
        short = -len(order) % world_size
        if drop_last and short:
            order = torch.cat([order, order.repeat(short // len(order) + 1)[:short]])
        dataset = Subset(dataset, order[rank::world_size].tolist())
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    if drop_last and len(dataset) < batch_size:
        raise DataError(
            f"dataset of {len(dataset)} images is smaller than one batch of {batch_size}; "
            "lower batch_size or use more data"
        )
    if world_size > 1:
        return RankLoader(dataset, batch_size=batch_size, drop_last=drop_last, num_workers=num_workers,
                          seed=rank_seed(seed, rank))
    return SeededLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, num_workers=num_workers,
                        seed=seed)
