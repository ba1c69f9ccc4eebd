"""wdsweep's regularizer for any PyTorch training loop: the public `WeightPenalty`.

It is the harness's own Regularizer (wdsweep.train.regularizers), whose updates run from
torch's optimizer step hooks; nothing here recomputes them. Three lines give a plain loop the
regularizer a sweep applies, with the same lambda and the same metrics:

    from wdsweep import WeightPenalty
    penalty = WeightPenalty(model, lam=1e-2, p=2, scope="weights", mode="coupled")
    penalty.attach(optimizer)          # the loop below is unchanged

    for x, y in loader:
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()               # the decay happens inside this call
    print(penalty.metrics())           # {'reg_loss': ..., 'weight_norm': ..., 'sparsity': ...}

The math (the docs' "regularizer math" page has the derivations). Over the tensors in scope,

    penalty(W) = lam * sum_w [ l1_ratio * |w| + (1 - l1_ratio) * |w|^p / p ]

so at p = 2, l1_ratio = 0 the gradient is lam * w: lam is torch's `weight_decay`. The modes:

* coupled: grad += d penalty / dw before the step (any optimizer): the run minimizes
  loss + penalty. Added after your gradient clipping, as torch's own weight_decay is; under an
  optimizer's maximize=True it is subtracted, so that, as torch's weight_decay there, it still
  shrinks the weights (the run maximizes loss - penalty).
* decoupled: w -= lr * lam * dP/dw before the step, outside the optimizer's state (AdamW's
  and SGDW's convention; under SGD momentum mu it minimizes loss + (1 - mu) * penalty, or
  loss + penalty with momentum_corrected=True). SGD, Adam or AdamW.
* proximal: after the step, the closed-form prox step in the optimizer's own metric
  (soft-threshold for L1: exact zeros; rescale for L2), which minimizes loss + penalty
  under SGD (any momentum, Nesterov) and Adam/AdamW. p = 1 or 2; SGD, Adam or AdamW.
* elastic net: l1_ratio in (0, 1] mixes an L1 term in (with mode="proximal", scikit-learn's
  ElasticNet(alpha = lam / 2, l1_ratio) against a mean squared error).

scope="weights" decays the tensors with dim >= 2 (weight matrices, kernels; no biases, no norm
gains); scope="all" every trainable tensor. For 0 < p < 1, |w| is smoothed to
sqrt(w^2 + eps^2) so that the gradient stays finite at 0. The lr of the decoupled and proximal
steps is each parameter group's own at that step, so lr schedulers need nothing more.

Decisions where torch leaves a choice: a tensor without a gradient in a step is neither stepped
nor decayed (torch's optimizers skip it); an optimizer's own weight_decay is left in place but
warned about (it would decay the same tensors a second time); the optimizer must hold every
tensor in scope (else the penalty would decay weights nothing trains); an optimizer that
unscales its gradients inside its own step (fused=True under a GradScaler) is refused, as no
decay can follow it there.
"""
from __future__ import annotations

import warnings
from typing import Dict

import torch
from torch import nn

from wdsweep.train.regularizers import Regularizer, check_settings, weight_norm

# What a checkpoint's penalty must agree with to be resumed under this one.
SETTINGS = ("lam", "p", "mode", "scope", "l1_ratio", "eps", "momentum_corrected")


class WeightPenalty(Regularizer):
    """The regularizer of `model`'s parameters, for an optimizer you build yourself.

    `WeightPenalty(model, lam=..., p=2, scope="weights", mode="coupled")`, then
    `attach(optimizer)` once: every `optimizer.step()` from then on applies the decay (the
    module docstring has the math and an example). Bad settings are refused in one line
    (ValueError) when it is built; an optimizer it cannot follow when attached.

    >>> import torch
    >>> from wdsweep import WeightPenalty
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    >>> penalty = WeightPenalty(model, lam=1e-3, p=1, mode="proximal").attach(optimizer)
    >>> x, y = torch.randn(32, 3), torch.randn(32, 1)
    >>> for _ in range(50):
    ...     optimizer.zero_grad()
    ...     torch.nn.functional.mse_loss(model(x), y).backward()
    ...     optimizer.step()
    >>> sorted(penalty.metrics())
    ['reg_loss', 'sparsity', 'weight_norm']
    """

    def __init__(self, model: nn.Module, *, lam: float, p: float = 2.0, scope: str = "weights",
                 mode: str = "coupled", l1_ratio: float = 0.0, eps: float = 1e-3,
                 momentum_corrected: bool = False) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"WeightPenalty: model={type(model).__name__} is not allowed: a torch.nn.Module")
        try:
            check_settings(lam=lam, p=p, mode=mode, scope=scope, l1_ratio=l1_ratio, eps=eps)
        except ValueError as err:
            raise ValueError(f"WeightPenalty: {err}") from None
        # optimizer=None: the user's optimizer already exists, so the decay is always wdsweep's
        # own update (impl=manual), run from that optimizer's step hooks.
        super().__init__(model, lam=lam, p=p, mode=mode, scope=scope, l1_ratio=l1_ratio, eps=eps,
                         momentum_corrected=momentum_corrected)
        self.model = model

    @property
    def settings(self) -> Dict[str, object]:
        return {"lam": self.lam, "p": self.p, "mode": self.mode, "scope": self.scope,
                "l1_ratio": self.l1_ratio, "eps": self.eps, "momentum_corrected": self.momentum_corrected}

    def attach(self, *optimizers: torch.optim.Optimizer) -> "WeightPenalty":
        """Apply the decay in every step of these optimizers (several, when each trains a part
        of the model: together they must hold every tensor in scope). Returns self."""
        if not optimizers:
            raise TypeError("WeightPenalty.attach: give the optimizer (or optimizers) that train the model")
        for optimizer in optimizers:
            if not isinstance(optimizer, torch.optim.Optimizer):
                raise TypeError(f"WeightPenalty.attach: {type(optimizer).__name__} is not allowed: "
                                "a torch.optim.Optimizer")
        held = {id(q) for opt in optimizers for group in opt.param_groups for q in group["params"]}
        missing = [name for name, q in self.decayed if id(q) not in held]
        if missing:
            raise ValueError(f"WeightPenalty.attach: the optimizer does not hold {len(missing)} of the model's "
                             f"{len(self.decayed)} tensors in scope (first: {missing[0]!r}): build it from "
                             "this model's parameters, or give WeightPenalty the module it trains")
        for optimizer in optimizers:
            self._warn_of_own_decay(optimizer)
            try:
                super().attach(optimizer)
            except ValueError as err:
                raise ValueError(f"WeightPenalty: {err}") from None
        return self

    def _warn_of_own_decay(self, optimizer: torch.optim.Optimizer) -> None:
        for group in optimizer.param_groups:
            decay = group.get("weight_decay", 0.0)
            if self.active and decay and any(id(q) in self._decayed_ids for q in group["params"]):
                warnings.warn(f"{type(optimizer).__name__}'s own weight_decay={decay} decays these tensors "
                              "as well as WeightPenalty (set weight_decay=0 to have WeightPenalty's alone)",
                              stacklevel=3)
                return

    # ---------------------------------------------------------------- metrics
    def weight_norm(self) -> float:
        """The L2 norm over all of the model's dim >= 2 tensors, whatever the scope (as
        metrics.json's weight_norm)."""
        return weight_norm(self.model)

    def metrics(self) -> Dict[str, float]:
        """What a sweep records for the regularizer: reg_loss (penalty(): the penalty of the
        objective the run converges to), weight_norm and sparsity (the share of exact zeros in
        scope)."""
        return {"reg_loss": self.penalty(), "weight_norm": self.weight_norm(), "sparsity": self.sparsity()}

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> Dict[str, object]:
        """The settings: the decay keeps no state of its own (momentum and Adam's moments are
        the optimizer's, saved with it)."""
        return {"settings": self.settings}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        self.check_resumable(state, self.settings)

    @staticmethod
    def check_resumable(state: Dict[str, object], settings: Dict[str, object]) -> None:
        """Refuse to continue a run under other settings: its objective would change halfway."""
        saved = dict(state.get("settings", {}))
        changed = [f"{key}={saved[key]!r} (now {value!r})" for key, value in settings.items()
                   if key in saved and saved[key] != value]
        if changed:
            raise ValueError(f"WeightPenalty: the checkpoint was trained with {', '.join(changed)}: resume with "
                             "the same settings, or load its weights alone to start a new run")
