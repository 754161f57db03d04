"""Resumable, per-process sharded data loading: exact data position, per-sample seeded augmentations.

Map-style datasets: each epoch is a permutation drawn from (seed, epoch); global batches of batch_size x processes
are cut from it and process r takes slice r, so every process gets the same number of batches (DDP/ZeRO need that).
Resuming at micro-batch k of an epoch starts the sampler there: consumed batches are skipped without loading them.
Augmentations are seeded per (seed, epoch, index), so a sample looks the same whichever worker builds it and
whether or not the run was resumed. Streams are either a factory `make(rank=, world_size=, epoch=) -> iterable` that
shards itself, or an iterable dataset sharded here by striding; resuming one replays and drops consumed batches.
"""
from __future__ import annotations

import contextlib
import itertools
import random
import time
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset


@contextlib.contextmanager
def preserve_rng():
    """Run a block without disturbing the python/numpy/torch CPU (and CUDA) global RNG streams of training."""
    py, npy = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(npy)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for one sample's augmentation, independent of worker and process layout."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class EpochIndexedDataset(Dataset):
    """Wraps a map-style dataset; items are addressed by (epoch, index) and `transform(sample, fs)` is seeded."""

    def __init__(self, dataset, transform: Callable | None = None, fs: float | None = None, seed: int = 0):
        self.dataset, self.transform, self.fs, self.seed = dataset, transform, fs, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        sample = self.dataset[index]
        if self.transform is None:
            return sample
        with preserve_rng():
            s = sample_seed(self.seed, epoch, index)
            random.seed(s)
            np.random.seed(s)
            torch.manual_seed(s)
            reseed = getattr(self.transform, "reseed", None)  # transforms with their own stream (e.g. STAR)
            if callable(reseed):
                reseed(s)
            return self.transform(sample, self.fs)


class ShardedBatchSampler:
    """Batches of (epoch, index) for one process, starting at micro-batch `start_batch` of epoch `start_epoch`."""

    def __init__(self, num_samples: int, batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0,
                 shuffle: bool = True, start_epoch: int = 0, start_batch: int = 0):
        self.num_samples, self.batch_size, self.rank, self.world_size = num_samples, batch_size, rank, world_size
        self.seed, self.shuffle, self.start_epoch, self.start_batch = seed, shuffle, start_epoch, start_batch
        self.batches_per_epoch = num_samples // (batch_size * world_size)
        if self.batches_per_epoch == 0:
            raise ValueError(f"{num_samples} samples cannot fill one global batch of {batch_size} x {world_size} "
                             "processes; lower train.batch_size or add data")

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The permutation of sample indices for `epoch` (same on every process)."""
        if not self.shuffle:
            return torch.arange(self.num_samples)
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return torch.randperm(self.num_samples, generator=g)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for epoch in itertools.count(self.start_epoch):
            order = self.epoch_order(epoch)
            first = self.start_batch if epoch == self.start_epoch else 0
            global_bs = self.batch_size * self.world_size
            for b in range(first, self.batches_per_epoch):
                chunk = order[b * global_bs + self.rank * self.batch_size:][: self.batch_size]
                yield [(epoch, int(i)) for i in chunk]

    def __len__(self) -> int:  # an endless stream; the trainer stops on max_steps
        return self.batches_per_epoch


class _StridedIterable(IterableDataset):
    """Every `world_size`-th sample of a stream, offset `rank` (used when the stream cannot shard itself)."""

    def __init__(self, dataset, rank: int, world_size: int):
        self.dataset, self.rank, self.world_size = dataset, rank, world_size

    def __iter__(self):
        return itertools.islice(iter(self.dataset), self.rank, None, self.world_size)


def shard_iterable(dataset, rank: int, world_size: int):
    """This process's part of a streaming dataset: the dataset's own `shard(rank, world_size)` if present."""
    if world_size == 1:
        return dataset
    shard = getattr(dataset, "shard", None)
    if callable(shard):
        try:
            return shard(rank=rank, world_size=world_size)
        except TypeError:
            pass  # e.g. datasets.IterableDataset.shard(num_shards, index): fall back to striding
    return _StridedIterable(dataset, rank, world_size)


def build_loader(dataset, batch_size: int, collate_fn: Callable, *, rank: int = 0, world_size: int = 1,
                 seed: int = 0, num_workers: int = 0, transform: Callable | None = None, fs: float | None = None,
                 start_epoch: int = 0, start_batch: int = 0, shuffle: bool = True) -> tuple[DataLoader, int | None]:
    """A DataLoader positioned at (start_epoch, start_batch) for this process -> (loader, batches per epoch or None).

    Worker processes get their base seed from the loader's own generator, so creating an iterator never draws
    from the global torch RNG that the model's masking uses (a resumed run stays bit-identical).
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + start_epoch)
    common = dict(collate_fn=collate_fn, num_workers=num_workers, generator=generator,
                  persistent_workers=False, prefetch_factor=2 if num_workers else None)
    if callable(dataset) and not hasattr(dataset, "__getitem__"):
        # a stream factory builds this process's shard itself, reshuffled per epoch
        dataset = dataset(rank=rank, world_size=world_size, epoch=start_epoch)
        rank, world_size = 0, 1
    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__getitem__"):
        if transform is not None:
            raise ValueError("apply augmentations inside the stream (the stream factory), not through transform=")
        stream = shard_iterable(dataset, rank, world_size)
        loader = DataLoader(stream, batch_size=batch_size, drop_last=True, **common)
        return loader, None
    sampler = ShardedBatchSampler(len(dataset), batch_size, rank, world_size, seed, shuffle, start_epoch,
                                  start_batch)
    loader = DataLoader(EpochIndexedDataset(dataset, transform, fs, seed), batch_sampler=sampler, **common)
    return loader, sampler.batches_per_epoch


class PositionedBatches:
    """Endless (batch, seconds waited) stream over epochs that keeps state['epoch'] / state['batch_in_epoch'] at the
    next batch (what a checkpoint saves, so a resumed run starts exactly there) and `position` at the current one.

    make_loader(state) -> (loader positioned at the state's epoch and micro-batch, batches per epoch or None)."""

    def __init__(self, make_loader: Callable[[dict], tuple[DataLoader, int | None]], state: dict):
        self.make_loader, self.state = make_loader, state
        self.position = (0, 0)  # (epoch, micro-batch index) of the batch being computed, for messages

    def __iter__(self) -> Iterator[tuple[dict, float]]:
        state = self.state
        while True:
            loader, per_epoch = self.make_loader(state)
            it = iter(loader)
            if per_epoch is None:  # a stream: replay and drop what this epoch already consumed
                for _ in range(state["batch_in_epoch"]):
                    next(it)
            while True:
                t0 = time.perf_counter()
                try:
                    batch = next(it)
                except StopIteration:
                    break
                waited = time.perf_counter() - t0
                self.position = (state["epoch"], state["batch_in_epoch"])
                state["batch_in_epoch"] += 1
                if per_epoch is not None and state["batch_in_epoch"] == per_epoch:
                    state["epoch"], state["batch_in_epoch"] = state["epoch"] + 1, 0
                yield batch, waited
            if per_epoch is None:
                if state["batch_in_epoch"] == 0:
                    raise ValueError("the training stream yielded no complete batch for this process")
                state["epoch"], state["batch_in_epoch"] = state["epoch"] + 1, 0
