"""How many optimizer steps a job takes: `trainer.steps`, or `trainer.epochs` passes over the
training rows. (torch-free: the config check counts them before anything trains.)

An epoch is n_train rows drawn, so `trainer.epochs=E` is ceil(E * n_train / batch) steps of
`trainer.batch_size` rows (full batch: E steps). The sampler carries a pass's remainder into
the next (wdsweep.train.training.BatchSampler), so E epochs see every row E times, give or
take the last batch. When `trainer.epochs` is set, `trainer.steps` is not read: the job's log
line and metrics.json's `steps_planned` say how many steps it took.
"""
from __future__ import annotations

import math
from typing import Optional


def planned_steps(trainer, n_train: int) -> int:
    """The steps a job with this trainer config takes on `n_train` training rows."""
    epochs: Optional[int] = trainer.get("epochs")
    if epochs is None:
        return int(trainer.steps)
    batch = n_train if trainer.batch_size is None else min(int(trainer.batch_size), n_train)
    return math.ceil(int(epochs) * n_train / batch)
