"""wdsweep's regularizer as a Lightning callback: `pip install 'wdsweep[lightning]'`, then

    import lightning as L
    from wdsweep.lightning import WeightPenalty

    trainer = L.Trainer(callbacks=[WeightPenalty(lam=1e-2, p=2, scope="weights", mode="coupled")])
    trainer.fit(module)      # any LightningModule; its training_step is unchanged

The penalty, its lambda and its modes are wdsweep.penalty.WeightPenalty's (that module's
docstring has the math): when fitting starts, the callback builds one over the LightningModule's
parameters and attaches it to every optimizer `configure_optimizers` returned, so the decay runs
inside each optimizer.step() Lightning makes, with each parameter group's lr at that step (so
with any scheduler). Hence:

* gradient accumulation: Lightning steps once per `accumulate_grad_batches` batches, and the
  decay is applied once per step, to the accumulated gradient;
* mixed precision: under "16-mixed" Lightning unscales the gradients before it steps, so the
  coupled term is added to true gradients, and a step the GradScaler skips (an overflow) is
  skipped with its decay; "bf16-mixed" has no scaler; the coupled term comes after gradient
  clipping, as torch's own weight_decay does;
* manual optimization and several optimizers: each `opt.step()` decays the tensors that
  optimizer holds; together they must hold every tensor in scope;
* checkpoints: the callback's state (its settings) is saved in Lightning's checkpoint, and
  resuming under other settings is refused in one line, as is resuming (fit's ckpt_path) a
  checkpoint trained without the penalty, which holds no such state: either would change the
  run's objective halfway. To go on from such weights under the penalty, start a new run from
  them (LightningModule.load_from_checkpoint, then fit without ckpt_path);
* logging: `train/reg_loss`, `train/weight_norm` and `train/sparsity` go through the module's
  logger (LightningModule.log) after optimizer steps, at the Trainer's log_every_n_steps.

An optimizer it cannot follow (mode="decoupled" or "proximal" with anything but SGD, Adam or
AdamW) is refused in one line when fitting starts, before the first step.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

try:
    import lightning.pytorch as pl
except ImportError:  # the extra is not installed
    raise ImportError("wdsweep.lightning needs Lightning: pip install 'wdsweep[lightning]'") from None

from wdsweep.penalty import WeightPenalty as Penalty
from wdsweep.train.regularizers import check_settings


class WeightPenalty(pl.Callback):
    """wdsweep's regularizer for any LightningModule (module docstring). The arguments are
    wdsweep.WeightPenalty's, the model aside; `prefix` starts the logged metrics' names."""

    def __init__(self, *, lam: float, p: float = 2.0, scope: str = "weights", mode: str = "coupled",
                 l1_ratio: float = 0.0, eps: float = 1e-3, momentum_corrected: bool = False,
                 prefix: str = "train/") -> None:
        try:  # here, when the Trainer is built, not when fitting starts
            check_settings(lam=lam, p=p, mode=mode, scope=scope, l1_ratio=l1_ratio, eps=eps)
        except ValueError as err:
            raise ValueError(f"WeightPenalty: {err}") from None
        self.settings: Dict[str, Any] = {"lam": lam, "p": p, "scope": scope, "mode": mode, "l1_ratio": l1_ratio,
                                         "eps": eps, "momentum_corrected": momentum_corrected}
        self.prefix = prefix
        self.penalty: Optional[Penalty] = None  # built over the module when fitting starts
        self._logged_step = -1
        self._restored = False  # load_state_dict ran: the fit resumes a checkpoint holding our state

    def on_fit_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        # The optimizers exist by now (Lightning's strategy made them); a checkpoint's optimizer
        # state is loaded into these same objects after this hook, so the hooks stay on them.
        self.penalty = Penalty(pl_module, **self.settings)
        if not trainer.optimizers:
            raise ValueError("WeightPenalty: the LightningModule's configure_optimizers returned no optimizer")
        self.penalty.attach(*trainer.optimizers)

    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        # Here, not in on_fit_start: some strategies restore the checkpoint only after that hook.
        # Still before the first optimizer step.
        if trainer.ckpt_path is not None and not self._restored:
            raise ValueError(f"WeightPenalty: the checkpoint {str(trainer.ckpt_path)!r} was trained without "
                             "WeightPenalty (it holds no WeightPenalty state): resume it without the callback, "
                             "or load its weights alone (LightningModule.load_from_checkpoint, then fit "
                             "without ckpt_path) to start a new run under the penalty")

    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        step = trainer.global_step  # optimizer steps so far (the accumulated batches are one)
        if self.penalty is None or step == self._logged_step or step % trainer.log_every_n_steps:
            return
        self._logged_step = step
        for name, value in self.penalty.metrics().items():
            pl_module.log(self.prefix + name, value, on_step=True, on_epoch=False)

    def teardown(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if self.penalty is not None:  # however fitting ended: no decay in a later loop's steps
            self.penalty.detach()
        self._restored = False  # a later fit of this callback resumes, or not, on its own

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> Dict[str, Any]:
        return {"settings": dict(self.settings)}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Lightning calls this on resume, before fitting starts (only for a checkpoint that
        holds this callback's state: on_train_start refuses one that does not): other settings
        are refused."""
        Penalty.check_resumable(state_dict, self.settings)
        self._restored = True
