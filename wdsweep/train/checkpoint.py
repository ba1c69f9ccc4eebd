"""A training run's whole state at a step boundary, so that a run continued from it computes
exactly what the run would have computed had it never stopped.

What the state holds: the model's, the optimizer's, the schedule's and the loss scaler's state;
every random stream (torch's on the CPU and on each CUDA device, numpy's, Python's, the batch
sampler's and the augmentation's generators) and the sampler's queue of rows not yet drawn; the
history so far and the run's counters. Everything is a tensor or a plain value, so the file
loads with `torch.load(weights_only=True)`: a foreign file cannot run code.

Where the state is written, when, and what happens on a signal is the job's business
(wdsweep.jobs.checkpoints): the loop only asks `Checkpoints` whether one is due after each step.
"""
from __future__ import annotations

import random
from typing import Any, Dict, Optional, Protocol

import numpy as np
import torch

FORMAT = 1


class Checkpoints(Protocol):
    """What the training loop asks of whoever keeps its checkpoints."""

    def load(self) -> Optional[Dict[str, Any]]:
        """The state to continue from, or None to start at step 0."""

    def after_step(self, step: int, state) -> None:
        """Called after every step with a function that returns the state: save it if due (and
        stop the run, by raising, if a signal asked for that)."""


class UnusableCheckpoint(Exception):
    """A checkpoint that does not fit the run it was loaded for (its shapes, its keys): the
    run must start over, from freshly built parts."""

    @classmethod
    def of(cls, err: BaseException) -> "UnusableCheckpoint":
        """What loading it raised, in one short line."""
        return cls(f"{type(err).__name__}: {' '.join(str(err).split())[:200]}")


def random_states() -> Dict[str, Any]:
    np_state = np.random.get_state()
    version, keys, pos, has_gauss, cached = np_state
    return {
        "torch": torch.get_rng_state(),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
        "numpy": {"version": version, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": _listed(random.getstate()),
    }


def set_random_states(states: Dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    n = states["numpy"]
    np.random.set_state((n["version"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate(_tupled(states["python"]))


def _listed(value):
    return [_listed(v) for v in value] if isinstance(value, tuple) else value


def _tupled(value):
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value
