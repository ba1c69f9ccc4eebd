"""A job's checkpoint on disk: when it is written, what a rerun does with it, and the signals
that write one before the job goes.

- `checkpoint.pt` in the job folder holds the run's state after a step (wdsweep.train.checkpoint),
  with the config hash of the job that wrote it; `checkpoint.json` beside it says the step in a
  form a dry run reads without torch. Both are written atomically, the .pt first: a kill at any
  moment leaves the previous checkpoint, or the new one, never half of one.
- It is written every `trainer.checkpoint_every` steps and whenever `trainer.checkpoint_seconds`
  of training passed since the last one (by default 600 s: short jobs write none).
- SIGTERM (what Slurm sends before a kill), SIGUSR1 (Slurm's warning before a time limit) and
  submitit's preemption signal (SIGUSR2) no longer end a training job at once: the step in
  progress finishes, a checkpoint is written, and then the signal does what it did before
  (wdsweep.app's one line and exit 143 for SIGTERM; under submitit, its handler requeues the
  job, which then continues from the checkpoint).
- Running the same command again continues the job from its checkpoint when its config hash is
  the job's: the finished numbers and model.pt are those of a run that never stopped, bit for
  bit. A checkpoint that cannot be read (torn, not ours) or belongs to another config is set
  aside with a one-line warning, and the job trains from step 0.
- Once metrics.json is written, the checkpoint is removed unless `trainer.keep_checkpoint`.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from wdsweep.tracking.results import atomic_write

# torch (and wdsweep.train.checkpoint, which imports it) only where a checkpoint is read or
# written: a dry run asks checkpoint_step without it.

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
STEP_FILE = "checkpoint.json"
# SIGTERM: Slurm's before a kill; SIGUSR1: Slurm's --signal warning before a time limit; and
# submitit's preemption signal (SIGUSR2 unless SUBMITIT_PREEMPT_SIGNAL says otherwise), whose
# handler, once the checkpoint is written, requeues the job (hydra-submitit-launcher's
# checkpoint(): the same job again, which continues from this checkpoint).
SIGNALS = tuple(dict.fromkeys((signal.SIGTERM, signal.SIGUSR1,
                               getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"),
                                       signal.SIGUSR2))))


def remove_checkpoint(job_dir: Path) -> None:
    for name in (CHECKPOINT_FILE, STEP_FILE):
        (Path(job_dir) / name).unlink(missing_ok=True)


def checkpoint_step(job_dir: Path, cfg_hash: str) -> Optional[int]:
    """The step a rerun of this job would continue from (checkpoint.json; no torch), or None."""
    try:
        saved = json.loads((Path(job_dir) / STEP_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("config_hash") != cfg_hash:
        return None
    # a member of a vectorized batch: the state is the batch's (wdsweep.batched.batch_checkpoints)
    state_file = Path(saved["batch_checkpoint"]) if saved.get("batch_checkpoint") else Path(job_dir) / CHECKPOINT_FILE
    if not state_file.is_file():
        return None
    return saved.get("step") if isinstance(saved.get("step"), int) else None


class JobCheckpoints:
    """The job's side of wdsweep.train.checkpoint.Checkpoints (see the module)."""

    def __init__(self, job_dir: Path, cfg_hash: str, every: Optional[int], seconds: float) -> None:
        self.path, self.step_path = Path(job_dir) / CHECKPOINT_FILE, Path(job_dir) / STEP_FILE
        self.cfg_hash, self.every, self.seconds = cfg_hash, every, seconds
        self.last_saved = time.monotonic()
        self.resumed_from: Optional[int] = None
        # The job's thread count, and whether its numbers depend on it (set once it is known):
        # a checkpoint of a thread-dependent job continues only at the count it was written with.
        self.threads: Optional[int] = None
        self.thread_independent = True
        self._failed_write = False
        self._signal: Optional[int] = None
        self._previous: Dict[int, Any] = {}

    # ------------------------------------------------------------------ reading
    def load(self) -> Optional[Dict[str, Any]]:
        if not self.path.exists():
            return None
        import torch

        from wdsweep.train.checkpoint import FORMAT

        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable file: torn, foreign, or not a checkpoint
            self.discard(f"cannot be read ({type(err).__name__})")
            return None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            self.discard("is not a wdsweep checkpoint of this version")
            return None
        if state.get("config_hash") != self.cfg_hash:
            self.discard("was written by another config of this job folder")
            return None
        if not self.thread_independent and state.get("torch_threads") != self.threads:
            self.discard(f"was written with {state.get('torch_threads')} torch threads, and this job's numbers "
                         f"depend on the count (it runs with {self.threads})")
            return None
        self.resumed_from = int(state["step"])
        log.info("continuing from the checkpoint at step %d (%s)", self.resumed_from, self.path)
        return state

    def discard(self, why: str) -> None:
        """Set the checkpoint aside (checkpoint.pt.unusable, for a look) and train from step 0."""
        log.warning("%s %s: set aside as %s.unusable; the job trains from step 0", self.path, why, self.path.name)
        self.resumed_from = None
        try:
            os.replace(self.path, self.path.with_name(self.path.name + ".unusable"))
            self.step_path.unlink(missing_ok=True)
        except OSError:
            pass

    # ------------------------------------------------------------------ writing
    def after_step(self, step: int, state: Callable[[], Dict[str, Any]]) -> None:
        due = (self.every is not None and step % self.every == 0) or \
              (self.seconds > 0 and time.monotonic() - self.last_saved >= self.seconds)
        if due or self._signal is not None:
            try:
                self.save(step, state())
            except (OSError, RuntimeError) as err:  # a full disk, say: the training goes on
                if not self._failed_write:
                    log.warning("could not write a checkpoint at step %d (%s: %s); training goes on, and a "
                                "kill before the next one loses the steps since the last", step,
                                type(err).__name__, " ".join(str(err).split())[:200])
                self._failed_write = True
        if self._signal is not None:
            self._deliver()

    def save(self, step: int, state: Dict[str, Any]) -> None:
        import torch

        state = {**state, "config_hash": self.cfg_hash, "torch_threads": self.threads}
        atomic_write(self.path, lambda f: torch.save(state, f), binary=True)
        atomic_write(self.step_path, lambda f: json.dump({"step": step, "config_hash": self.cfg_hash}, f))
        self.last_saved = time.monotonic()

    # ------------------------------------------------------------------ signals
    def __enter__(self) -> "JobCheckpoints":
        """While training: SIGTERM and SIGUSR1 wait for the step to end and a checkpoint."""
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._defer)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _defer(self, signum, frame) -> None:
        log.warning("%s: finishing this step and writing a checkpoint before stopping",
                    signal.Signals(signum).name)
        self._signal = signum

    def _deliver(self) -> None:
        """The deferred signal, to the handler it had before training (now restored)."""
        signum, self._signal = self._signal, None
        self.__exit__()
        os.kill(os.getpid(), signum)
        time.sleep(1)  # the handler runs on the next bytecode; a default action ends the process
