"""A batch's checkpoint: the vectorized launcher's K members, stopped and continued as one.

The state of a batched model (wdsweep.batched.vectorized._BatchedTrainer.state) is one file, in
the sweep folder's `.checkpoints/batch-<id>.pt`, where <id> is a digest of the members' config
hashes: running the same command again forms the same batch, finds its file, and continues
from it; a batch of other members never loads it. Each member's folder gets a `checkpoint.json`
naming the step and the batch file, so that the dry run says "resume at step N" for it too.

When, and what a signal does, is a job's (wdsweep.jobs.checkpoints, whose keys the batch's
members share: they are part of batch_signature): `trainer.checkpoint_every` steps,
`trainer.checkpoint_seconds`, and SIGTERM, SIGUSR1 and submitit's preemption signal finish the
step and write a checkpoint first. Once every member's files are written the batch file and the
members' checkpoint.json go, unless `trainer.keep_checkpoint`.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List, Sequence

from omegaconf import DictConfig

from wdsweep.jobs.checkpoints import STEP_FILE, JobCheckpoints
from wdsweep.tracking.results import atomic_write, config_hash

FOLDER = ".checkpoints"


class BatchCheckpoints(JobCheckpoints):
    """JobCheckpoints for a batch: its file in the sweep folder, a step file in each member's."""

    def __init__(self, cfgs: Sequence[DictConfig]) -> None:
        self.members: List[tuple] = [(Path(str(c.hydra.sweep.dir)) / str(c.hydra.sweep.subdir), config_hash(c))
                                     for c in cfgs]
        identity = hashlib.sha256(",".join(h for _, h in self.members).encode()).hexdigest()[:16]
        trainer = cfgs[0].trainer
        folder = Path(str(cfgs[0].hydra.sweep.dir)) / FOLDER
        super().__init__(folder, identity, trainer.get("checkpoint_every"), float(trainer.get("checkpoint_seconds", 0)))
        self.path, self.step_path = folder / f"batch-{identity}.pt", folder / f"batch-{identity}.json"
        self.keep = bool(trainer.get("keep_checkpoint", False))

    def save(self, step: int, state: Dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        super().save(step, state)
        for folder, member_hash in self.members:
            atomic_write(folder / STEP_FILE, lambda f, h=member_hash: json.dump(
                {"step": step, "config_hash": h, "batch_checkpoint": str(self.path)}, f))

    def finish(self) -> None:
        """Every member's files are written: the batch's checkpoint goes (unless kept)."""
        if self.keep:
            return
        for path in (self.path, self.step_path, *(folder / STEP_FILE for folder, _ in self.members)):
            path.unlink(missing_ok=True)
        for name in (self.path.name, self.step_path.name):  # a write a kill cut short (atomic_write's)
            for torn in self.path.parent.glob(f".{name}.*.tmp"):
                torn.unlink(missing_ok=True)
        try:
            self.path.parent.rmdir()  # the sweep folder's .checkpoints, once no batch has one
        except OSError:
            pass
