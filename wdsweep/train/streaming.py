"""Where a run's batches and evaluation chunks come from: read in the job's own process, or by
the worker processes of a torch DataLoader (`data.num_workers` > 0), for data whose reading is
the work: an image folder decoded file by file, a memory-mapped set on a slow disk.

The workers read stored rows (uint8 pixels, a memory map's pages) and do nothing else. Which
rows a batch holds is drawn in the job's process by its sampler
(wdsweep.train.training.BatchSampler), and the rows are scaled and augmented there, from the
job's own generators. So a job reads the same batches and computes the same numbers, bit for
bit, whatever `data.num_workers` is: the key is not part of a job's identity.

The loader draws a few batches ahead of the step that trains them. The sampler's position after
each drawn batch is kept until that batch has trained, so that a checkpoint holds the position
of the batches trained, not of those drawn: the same checkpoint as without workers.

On a CUDA device the workers' batches go through pinned (page-locked) memory with
`data.pin_memory`, and the copy to the GPU does not block. The evaluation loader keeps its
workers between evaluations with `data.persistent_workers`. The workers ignore the signals a
scheduler sends every process of a job before it stops it (SIGTERM, SIGUSR1, SIGUSR2): the job's
own process answers them, by writing a checkpoint (wdsweep.jobs.checkpoints), and then stops
its workers.
"""
from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Tuple

import torch
from torch.utils.data import DataLoader, Dataset

from wdsweep.train.rows import read_rows
from wdsweep.train.splits import SPLITS, Splits

# A split of up to EVAL_ROWS rows is evaluated in one pass (as the numbers have always been
# computed); a larger one EVAL_CHUNK rows at a time, so that a convnet's activations for a
# 10k-image split never have to fit at once (ResNet-20's for 2,048 images take about 1 GB).
EVAL_ROWS = 2048
EVAL_CHUNK = 256
_SCHEDULER_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


@dataclass(frozen=True)
class Loading:
    """How the stored rows are read: data.num_workers, data.pin_memory, data.persistent_workers."""
    num_workers: int = 0
    pin_memory: bool = True
    persistent_workers: bool = True

    @staticmethod
    def of(data_cfg) -> "Loading":
        return Loading(int(data_cfg.get("num_workers", 0) or 0), bool(data_cfg.get("pin_memory", True)),
                       bool(data_cfg.get("persistent_workers", True)))

    @property
    def streams(self) -> bool:
        return self.num_workers > 0


class _StoredRows(Dataset):
    """One item is a whole batch: (its row index, its stored rows), read in a worker."""

    def __init__(self, x) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, rows):
        return rows, read_rows(self.x, rows)


class _StoredChunks(Dataset):
    """One item is an evaluation chunk, (split, start, stop): its stored rows, read in a worker."""

    def __init__(self, x: Dict[str, object]) -> None:
        self.x = x

    def __len__(self) -> int:
        return sum(len(v) for v in self.x.values())

    def __getitem__(self, where):
        split, start, stop = where
        return split, start, read_rows(self.x[split], slice(start, stop))


class _EveryChunk:
    """The evaluation's chunks, in order: every split's, train, val, test. Iterated anew per
    evaluation (a loader with persistent workers iterates its sampler again)."""

    def __init__(self, sizes: Dict[str, int]) -> None:
        self.sizes = sizes

    def __iter__(self):
        for split in SPLITS:
            n = self.sizes[split]
            size = n if n <= EVAL_ROWS else EVAL_CHUNK
            yield from ((split, start, min(start + size, n)) for start in range(0, n, size))


def _quiet_worker(_: int) -> None:
    for sig in _SCHEDULER_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


class Batches:
    """The training batches of steps `first`..`last` as (rows, stored rows): `rows` is the
    sampler's index tensor (None for the full batch). `position(step)` is the sampler's state
    right after drawing that step's batch, for the step's checkpoint."""

    def __init__(self, splits: Splits, sampler, first: int, last: int, loading: Loading) -> None:
        self.sampler, self._positions, self._step = sampler, {}, first - 1
        drawn = self._drawn(first, last)
        if loading.streams:
            # numpy indices: a tensor would travel to the worker through shared memory
            indices = (slice(None) if rows is None else rows.numpy() for rows in drawn)
            loader = DataLoader(_StoredRows(splits.x["train"]), batch_size=None, sampler=indices,
                                num_workers=loading.num_workers, worker_init_fn=_quiet_worker,
                                pin_memory=loading.pin_memory and _on_cuda(splits), generator=_own_seed())
            self._rows = iter(loader)
        else:
            self._rows = ((rows, splits.raw("train", rows)) for rows in drawn)

    def _drawn(self, first: int, last: int) -> Iterator[Optional[torch.Tensor]]:
        full_batch = None  # the full batch draws nothing: one position serves every step
        for step in range(first, last + 1):
            rows = self.sampler.next()
            if rows is None:
                full_batch = full_batch or self.sampler.position()
            self._positions[step] = full_batch or self.sampler.position()
            yield rows

    def __next__(self) -> Tuple[Optional[torch.Tensor], torch.Tensor]:
        rows, stored = next(self._rows)
        self._step += 1
        self._positions.pop(self._step - 1, None)  # kept: the step in training and those drawn ahead
        if isinstance(rows, slice) or rows is None:
            return None, stored
        return torch.as_tensor(rows), stored

    def position(self, step: int) -> dict:
        return self._positions[step]

    def close(self) -> None:
        _stop_workers(self._rows)

    def __enter__(self) -> "Batches":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EvalChunks:
    """Every split's stored rows, chunk by chunk (split, start, stored rows), for an evaluation:
    read here, or by a loader whose workers outlive each evaluation."""

    def __init__(self, splits: Splits, loading: Loading) -> None:
        self.splits, self.loader = splits, None
        if loading.streams:
            self.loader = DataLoader(_StoredChunks(splits.x), batch_size=None,
                                     sampler=_EveryChunk(splits.sizes()), num_workers=loading.num_workers,
                                     worker_init_fn=_quiet_worker, persistent_workers=loading.persistent_workers,
                                     pin_memory=loading.pin_memory and _on_cuda(splits), generator=_own_seed())

    def __call__(self) -> Iterator[Tuple[str, int, torch.Tensor]]:
        if self.loader is not None:
            yield from self.loader
            return
        for split, start, stop in _EveryChunk(self.splits.sizes()):
            yield split, start, self.splits.raw(split, slice(start, stop))

    def close(self) -> None:
        _stop_workers(getattr(self.loader, "_iterator", None))  # persistent workers

    def __enter__(self) -> "EvalChunks":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _stop_workers(iterator) -> None:
    """Stop a loader iterator's workers now, not whenever it is collected (a job run in the
    sweep's process goes on to the next job)."""
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


def _own_seed() -> torch.Generator:
    """A loader seeds its workers from a draw of this generator, each time it is iterated; by
    default that is torch's global one, whose stream the model's dropout must keep to itself."""
    return torch.Generator().manual_seed(0)


def _on_cuda(splits: Splits) -> bool:
    return splits.device is not None and splits.device.type == "cuda"
