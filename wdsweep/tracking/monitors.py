"""Training callbacks that watch a run: a progress bar for single runs, TensorBoard scalars and
weight/gradient histograms (the weight-decay article's view) for logger=tensorboard, and the Optuna reporter
that lets a pruner stop a trial's job."""
from __future__ import annotations

import math
from pathlib import Path

from torch import nn
from tqdm import tqdm

from wdsweep.tracking.trial_link import TrialHeartbeat, TrialLink
from wdsweep.train.training import Callback, StopRun


class ProgressBar(Callback):
    def __init__(self, steps: int, samples_per_step: int = 1) -> None:
        # disable=None: no bar when stderr is not a terminal (CI logs, sweeps piped to files).
        # Counted in steps, shown in samples (unit_scale): its rate is samples per second.
        self.bar = tqdm(total=steps, unit="sample", unit_scale=samples_per_step, dynamic_ncols=True,
                        disable=None, leave=False)

    def on_step(self, step: int, loss: float, model: nn.Module) -> None:
        self.bar.update(1)

    def on_eval(self, step: int, row: dict) -> None:
        self.bar.set_postfix(train=f"{row['train_loss']:.4g}", val_err=f"{row['val_error']:.4g}")

    def close(self) -> None:
        self.bar.close()


class TensorBoardLogger(Callback):
    def __init__(self, log_dir: Path, histogram_every: int) -> None:
        from torch.utils.tensorboard import SummaryWriter  # optional extra: wdsweep[tensorboard]

        self.writer = SummaryWriter(log_dir=str(log_dir))
        self.histogram_every = histogram_every

    def on_step(self, step: int, loss: float, model: nn.Module) -> None:
        if step % self.histogram_every:
            return
        for name, param in model.named_parameters():
            self.writer.add_histogram(f"weights/{name}", param.detach(), step)
            if param.grad is not None:
                self.writer.add_histogram(f"grads/{name}", param.grad, step)

    def on_eval(self, step: int, row: dict) -> None:
        for key, value in row.items():
            if key != "step":
                self.writer.add_scalar(key.replace("_", "/", 1), value, step)

    def close(self) -> None:
        self.writer.close()


class PruningReporter(Callback):
    """Reports the objective at every evaluation; stops the run when the pruner says so."""

    def __init__(self, link: TrialLink, objective: str) -> None:
        self.study, self.trial = link.connect()
        self.objective = objective
        # Optuna prunes single-objective studies only.
        self.enabled = len(self.study.directions) == 1

    def on_eval(self, step: int, row: dict) -> None:
        import optuna

        value = row[self.objective]
        if not self.enabled or step == 0 or not math.isfinite(value):
            return
        try:
            self.trial.report(value, step)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another sweep told this trial while the job ran (its own sweep was killed and the
            # trial went stale): the study has moved on, and the rest of the training is waste.
            raise StopRun("failed", f"its Optuna trial {self.trial.number} was finished by another "
                                    f"sweep while this job ran (at step {step})") from None
        if self.trial.should_prune():
            raise StopRun("pruned", f"pruned by {type(self.study.pruner).__name__} at step {step}")


class TrialWatch(Callback):
    """Stops a job, at an evaluation, once its trial's heartbeat (trial_link.TrialHeartbeat)
    found the trial told by another sweep: see wdsweep.tracking.trial_link. `heartbeat` is shared by
    the members of a vectorized batch; the owner closes it."""

    def __init__(self, heartbeat: TrialHeartbeat, link: TrialLink) -> None:
        self.heartbeat, self.link = heartbeat, link

    def on_eval(self, step: int, row: dict) -> None:
        reason = self.heartbeat.gone.get(self.link.trial_id)
        if reason:
            raise StopRun("failed", f"{reason}; stopped at step {step}")


class Callbacks(Callback):
    """Several callbacks as one (a vectorized member has one slot)."""

    def __init__(self, callbacks) -> None:
        self.callbacks = list(callbacks)

    def on_step(self, step: int, loss: float, model: nn.Module) -> None:
        for cb in self.callbacks:
            cb.on_step(step, loss, model)

    def on_eval(self, step: int, row: dict) -> None:
        for cb in self.callbacks:
            cb.on_eval(step, row)

    def close(self) -> None:
        for cb in self.callbacks:
            cb.close()
