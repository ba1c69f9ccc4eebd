"""The training loop, in one readable function, plus evaluation and mini-batch sampling.

Per step: forward, loss (+ the penalty for impl=loss), backward, optimizer.step (with the
regularizer's before_step and after_step in its step hooks: Regularizer.attach), schedule. A
non-finite loss stops the run as `diverged`. Every `eval_every` steps (and at steps 0 and last)
all three splits are evaluated into the history; callbacks (progress bar, TensorBoard, a
pruner) see each step and each evaluation. With trainer.precision mixed, the forward pass and
the data loss run under autocast and nothing else does (wdsweep.train.precision); after each
step the run's state may go to a checkpoint (wdsweep.train.checkpoint), from which a later run
continues exactly.
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from wdsweep.train.checkpoint import FORMAT, Checkpoints, UnusableCheckpoint, random_states, set_random_states
from wdsweep.train.data import SPLITS, Splits
from wdsweep.train.precision import FLOAT32, Precision
from wdsweep.train.regularizers import Regularizer, weight_norm
from wdsweep.train.streaming import EVAL_ROWS, Batches, EvalChunks, Loading


class StopRun(Exception):
    """Raised by a callback to end a run early with a status of its own (a pruner's "pruned")."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class Callback:
    """Hooks the loop calls; every method is optional."""

    def on_step(self, step: int, loss: float, model: nn.Module) -> None:
        """After backward (gradients are present), before the optimizer step."""

    def on_eval(self, step: int, row: dict) -> None:
        """After each evaluation; may raise to stop the run (a pruner will)."""

    def close(self) -> None:
        pass


class Throughput:
    """Samples per second, the mean step time and the share of it spent waiting for data (drawing
    the batch's rows, reading them, augmenting them), over this execution of the run
    (`overall`) and over the steps since the last evaluation (`window`, then reset)."""

    def __init__(self, samples_per_step: int) -> None:
        self.samples_per_step = samples_per_step
        self.total = [0, 0.0, 0.0]  # steps, step seconds, data seconds
        self.recent = [0, 0.0, 0.0]

    def add(self, step_seconds: float, data_seconds: float) -> None:
        for acc in (self.total, self.recent):
            acc[0] += 1
            acc[1] += step_seconds
            acc[2] += data_seconds

    def _numbers(self, acc: list) -> dict:
        steps, seconds, data = acc
        if not steps or seconds <= 0:
            return {"samples_per_s": math.nan, "step_ms": math.nan, "data_wait": math.nan}
        return {"samples_per_s": steps * self.samples_per_step / seconds, "step_ms": 1000 * seconds / steps,
                "data_wait": data / seconds}

    def window(self) -> dict:
        numbers, self.recent = self._numbers(self.recent), [0, 0.0, 0.0]
        return numbers

    def overall(self) -> dict:
        n = self._numbers(self.total)
        return {"samples_per_second": n["samples_per_s"], "step_ms": n["step_ms"], "data_wait_share": n["data_wait"]}


@dataclass
class TrainResult:
    status: str  # "completed" | "diverged" | a StopRun's status ("pruned")
    steps: int  # optimizer steps taken
    steps_planned: int  # trainer.steps, or what trainer.epochs comes to (wdsweep.train.epochs)
    train_seconds: float  # the loop alone, evaluations included
    eval_seconds: float
    history: List[dict] = field(default_factory=list)
    diverged_at_step: Optional[int] = None
    stop_reason: Optional[str] = None
    skipped_steps: int = 0  # 16-mixed: steps skipped whole because the scaled gradients overflowed
    throughput: dict = field(default_factory=dict)  # Throughput.overall(): this execution's steps

    @property
    def final(self) -> dict:
        return self.history[-1]


def data_loss(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # The weight-decay article's MSELoss (mean) for regression; mean cross-entropy for classification.
    return F.mse_loss(out, y) if task == "regression" else F.cross_entropy(out, y)


@torch.no_grad()
def evaluate(model: nn.Module, splits: Splits, regularizer: Regularizer, precision: Precision = FLOAT32,
             chunks: Optional[EvalChunks] = None) -> dict:
    """Loss and error on every split, with the weight statistics. Error: MSE or 1 - accuracy.
    The forward passes run at the training's precision; a split of more than EVAL_ROWS rows in
    chunks (wdsweep.train.streaming). `chunks`: where the rows come from; None reads them here."""
    was_training = model.training
    model.eval()
    sums = {split: [0.0, 0.0] for split in SPLITS}  # loss and wrong predictions, summed over rows
    row = {}
    for split, start, stored in (chunks or EvalChunks(splits, Loading()))():
        y = splits.y[split]
        part = y[start:start + len(stored)]
        with precision.autocast():
            out = model(splits.model_inputs(stored))
            loss = data_loss(splits.task, out, part)
        if len(y) <= EVAL_ROWS:  # one pass, as the numbers have always been computed
            row[f"{split}_loss"] = float(loss)
            row[f"{split}_error"] = (float((out.argmax(dim=1) != part).float().mean())
                                     if splits.task != "regression" else float(loss))
            continue
        # a large split: the mean of per-row losses, weighted by chunk size
        sums[split][0] += float(loss) * len(part)
        if splits.task != "regression":
            sums[split][1] += float((out.argmax(dim=1) != part).sum())
        if start + len(stored) == len(y):
            row[f"{split}_loss"] = sums[split][0] / len(y)
            row[f"{split}_error"] = (row[f"{split}_loss"] if splits.task == "regression"
                                     else sums[split][1] / len(y))
    row = {key: row[key] for split in SPLITS for key in (f"{split}_loss", f"{split}_error")}
    row["reg_loss"] = regularizer.penalty()
    row["weight_norm"] = weight_norm(model)
    row["sparsity"] = regularizer.sparsity()
    model.train(was_training)
    return row


class BatchSampler:
    """Reshuffled passes over the training rows; every batch has exactly batch_size rows
    (a pass's remainder carries into the next), so steps are comparable across batch sizes."""

    def __init__(self, n: int, batch_size: Optional[int], generator: torch.Generator) -> None:
        self.n, self.generator = n, generator
        self.batch_size = None if batch_size is None or batch_size >= n else batch_size
        self._queue = torch.empty(0, dtype=torch.long)

    def next(self) -> Optional[torch.Tensor]:
        """Row indices of the next batch, or None for the full batch."""
        if self.batch_size is None:
            return None
        while len(self._queue) < self.batch_size:
            self._queue = torch.cat([self._queue, torch.randperm(self.n, generator=self.generator)])
        batch, self._queue = self._queue[: self.batch_size], self._queue[self.batch_size:]
        return batch

    def position(self) -> dict:
        """Where the sampler stands: its generator's state and the rows drawn but not yet used."""
        return {"batches": self.generator.get_state(), "sampler_queue": self._queue}

    def restore(self, position: dict) -> None:
        self.generator.set_state(position["batches"])
        self._queue = position["sampler_queue"]


@contextlib.contextmanager
def _detached_at_exit(regularizer: Regularizer):
    try:
        yield
    finally:
        regularizer.detach()


def _scaled_backward(scaler: "torch.amp.GradScaler", total: torch.Tensor,
                     optimizer: torch.optim.Optimizer) -> bool:
    """Backward through the scaled loss, then unscale the gradients in place, so that the
    callbacks, the regularizer and the optimizer see true float32 gradients. False if any
    overflowed (then nothing may step)."""
    scaler.scale(total).backward()
    scaler.unscale_(optimizer)
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    return all(bool(torch.isfinite(g).all()) for g in grads)


def train(model: nn.Module, splits: Splits, optimizer: torch.optim.Optimizer,
          scheduler: torch.optim.lr_scheduler.LRScheduler, regularizer: Regularizer, *,
          steps: int, batch_size: Optional[int], eval_every: int, generator: torch.Generator,
          augment_generator: Optional[torch.Generator] = None,
          callbacks: Sequence[Callback] = (), precision: Precision = FLOAT32,
          checkpoints: Optional[Checkpoints] = None, loading: Loading = Loading()) -> TrainResult:
    """`generator` draws the batches; `augment_generator` the augmentation of each (with
    splits.augment set, data.augment). `precision`: trainer.precision (wdsweep.train.precision).
    `checkpoints`: where the run continues from, and where its state goes after each step
    (wdsweep.train.checkpoint); None: from step 0, no checkpoint. `loading`: who reads the
    stored rows (wdsweep.train.streaming; data.num_workers)."""
    y_train = splits.y["train"]
    sampler = BatchSampler(len(y_train), batch_size, generator)
    result = TrainResult(status="completed", steps=0, steps_planned=steps, train_seconds=0.0, eval_seconds=0.0)
    scaler = precision.grad_scaler()  # 16-mixed only
    start = time.perf_counter()

    def state(step: int) -> dict:
        """Everything the run needs to go on after `step` exactly as it would have."""
        return {"format": FORMAT, "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                "random": random_states(), **batches.position(step),
                "augment": augment_generator.get_state() if augment_generator is not None else None,
                "history": result.history, "skipped_steps": result.skipped_steps,
                "train_seconds": time.perf_counter() - start, "eval_seconds": result.eval_seconds}

    saved = checkpoints.load() if checkpoints is not None else None
    if saved is not None:
        try:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            if scaler is not None:
                scaler.load_state_dict(saved["scaler"])
            sampler.restore(saved)
            if augment_generator is not None:
                augment_generator.set_state(saved["augment"])
            set_random_states(saved["random"])
            result.history, result.skipped_steps = list(saved["history"]), int(saved["skipped_steps"])
            result.steps, result.eval_seconds = int(saved["step"]), float(saved["eval_seconds"])
            start -= float(saved["train_seconds"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            raise UnusableCheckpoint.of(err) from err
    first = result.steps + 1
    throughput = Throughput(sampler.batch_size or len(y_train))
    batches, eval_chunks = Batches(splits, sampler, first, steps, loading), EvalChunks(splits, loading)

    def record(step: int, notify: bool = True) -> None:
        tic = time.perf_counter()
        row = {"step": step, "lr": optimizer.param_groups[0]["lr"],
               **evaluate(model, splits, regularizer, precision, eval_chunks)}
        result.eval_seconds += time.perf_counter() - tic
        row["seconds"] = time.perf_counter() - start
        row.update(throughput.window())  # wall-clock columns, after `seconds`
        result.history.append(row)
        for cb in callbacks if notify else ():
            cb.on_eval(step, row)

    # The decay runs inside optimizer.step(), from torch's step hooks: the same code a user's own
    # loop or Lightning gets from wdsweep.WeightPenalty. Removed when the run ends, however it ends.
    regularizer.attach(optimizer)
    with batches, eval_chunks, _detached_at_exit(regularizer):  # workers (data.num_workers) stop with the run
        model.train()
        try:  # a callback may end the run early (StopRun), e.g. when a pruner says so
            if first == 1:
                record(0)
            for step in range(first, steps + 1):
                began = time.perf_counter()
                rows, stored = next(batches)
                x, y = splits.model_inputs(stored), (y_train if rows is None else y_train[rows.to(y_train.device)])
                if splits.augment is not None:
                    x = splits.augment(x, augment_generator)
                data_ready = time.perf_counter()
                with precision.autocast():  # a no-op at 32
                    loss = data_loss(splits.task, model(x), y)
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    result.status, result.diverged_at_step = "diverged", step
                    break
                penalty = regularizer.loss_term(loss)  # float32, outside autocast
                total = loss if penalty is None else loss + penalty
                optimizer.zero_grad(set_to_none=True)
                if scaler is None:
                    total.backward()
                    stepped = True
                else:
                    # 16-mixed: when the scaled gradients overflowed, the step is skipped whole
                    # (decay included), as GradScaler skips optimizer.step, and the scale lowered
                    stepped = _scaled_backward(scaler, total, optimizer)
                if stepped:
                    for cb in callbacks:
                        cb.on_step(step, loss_value, model)
                    optimizer.step()  # the regularizer's decay runs in its step hooks (attached above)
                else:
                    result.skipped_steps += 1
                if scaler is not None:
                    scaler.update()
                if stepped:
                    scheduler.step()
                else:
                    with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": meant
                        warnings.simplefilter("ignore", UserWarning)
                        scheduler.step()
                result.steps = step
                throughput.add(time.perf_counter() - began, data_ready - began)
                if step % eval_every == 0 or step == steps:
                    record(step)
                if checkpoints is not None:
                    checkpoints.after_step(step, lambda: state(step))
        except StopRun as stop:
            result.status, result.stop_reason = stop.status, stop.reason

        if result.status == "completed" and not math.isfinite(result.final["train_loss"]):
            # The last update itself blew the weights up; no loss saw it yet.
            result.status, result.diverged_at_step = "diverged", result.steps
        if result.status == "diverged" and result.history[-1]["step"] != result.steps:
            record(result.steps, notify=False)  # the run is over: nothing (no pruner) may act on it
        result.train_seconds = time.perf_counter() - start
        result.throughput = throughput.overall()
    return result
