"""The regularizer: which tensors decay, the penalty's value, and the coupled, decoupled and
proximal updates.

One lambda convention throughout (see the README for the math):

    penalty(W) = lam * sum_w [ l1_ratio * |w| + (1 - l1_ratio) * |w|^p / p ]
    gradient   = lam * [ l1_ratio * sign(w) + (1 - l1_ratio) * sign(w) |w|^(p-1) ]

so at p=2, l1_ratio=0 the gradient is lam*w: torch's `weight_decay=lam`, in every mode.
For p < 1, |w| is smoothed to sqrt(w^2 + eps^2), which keeps the gradient finite at 0.

The training loop calls, around each optimizer step:
    loss_term()   -> added to the loss (impl=loss only)
    before_step() -> coupled: adds the gradient term; decoupled: shrinks the weights
    after_step()  -> proximal: the closed-form prox step (soft-threshold / rescale)
When torch's own `weight_decay` computes the same update (impl=optimizer, or auto), it is
handed to the optimizer through `param_groups()` and the hooks do nothing.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from wdsweep.schema import has_native_decay

NamedParams = List[Tuple[str, nn.Parameter]]


def matrix_params(model: nn.Module) -> NamedParams:
    """Tensors with dim >= 2: weight matrices and kernels; no biases, no norm gains (nanoGPT's rule)."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.dim() >= 2]


def ordered_sum(t: torch.Tensor, keep: int = 0) -> torch.Tensor:
    """t summed over every dim after the first `keep`, in an order that does not depend on
    torch's thread count. A plain .sum() over more than 32k entries splits the work among
    threads and adds their partial sums, so a reported penalty or norm changed in its last
    bits with the thread count (wdsweep.threads); rows of 256 summed one per thread do not.
    Zero padding changes no sum."""
    flat = t.reshape(*t.shape[:keep], -1)
    while flat.shape[-1] > 256:
        flat = F.pad(flat, (0, (-flat.shape[-1]) % 256)).view(*flat.shape[:keep], -1, 256).sum(-1)
    return flat.sum(-1)


def weight_norm(model: nn.Module) -> float:
    """The L2 norm over all dim >= 2 tensors, whatever the regularizer's scope."""
    with torch.no_grad():
        squares = [ordered_sum(p.pow(2)) for _, p in matrix_params(model)]
        return float(torch.stack(squares).sum().sqrt()) if squares else 0.0


def lp_term(w: torch.Tensor, p: float, eps: float) -> torch.Tensor:
    """sum |w|^p / p, smoothed for p < 1. Differentiable, so it also serves impl=loss."""
    return ordered_sum(lp_elementwise(w, p, eps))


def lp_elementwise(w: torch.Tensor, p: float, eps) -> torch.Tensor:
    """|w|^p / p per entry, smoothed for p < 1. eps: a number, or a tensor broadcasting over w
    (wdsweep.vectorized: one per member of a batch)."""
    if p == 2:
        return w.pow(2) / 2
    if p < 1:
        return ((w.pow(2) + eps * eps).pow(p / 2) - eps**p) / p
    return w.abs().pow(p) / p


def lp_grad(w: torch.Tensor, p: float, eps) -> torch.Tensor:
    """d/dw of lp_elementwise: sign(w)|w|^(p-1), or w (w^2 + eps^2)^(p/2 - 1) for p < 1. The
    single-tensor form of Regularizer._directions (which works on lists, for speed); used by
    wdsweep.vectorized. At p=2 it returns w itself, to be read, not written."""
    if p == 2:
        return w
    if p == 1:
        return torch.sign(w)
    if p == 3:
        return w * w.abs()
    if p < 1:
        return w * (w * w + eps * eps).pow(p / 2 - 1)
    return torch.sign(w) * w.abs().pow(p - 1)


class Regularizer:
    def __init__(self, model: nn.Module, *, lam: float, p: float, mode: str, scope: str,
                 optimizer: str, l1_ratio: float = 0.0, eps: float = 1e-3, impl: str = "auto") -> None:
        self.lam, self.p, self.mode, self.scope = float(lam), float(p), mode, scope
        self.l1_ratio, self.eps = float(l1_ratio), float(eps)
        named = [(n, q) for n, q in model.named_parameters() if q.requires_grad]
        in_scope = (lambda q: q.dim() >= 2) if scope == "weights" else (lambda q: True)
        self.decayed: NamedParams = [(n, q) for n, q in named if in_scope(q)]
        self.kept: NamedParams = [(n, q) for n, q in named if not in_scope(q)]
        self._params = [q for _, q in self.decayed]

        native = has_native_decay(self.p, self.l1_ratio, mode, optimizer)
        if impl == "auto":
            impl = "optimizer" if native else "manual"
        if impl == "optimizer" and not native:
            raise ValueError(f"torch's {optimizer} has no weight_decay equal to mode={mode}, p={p}")
        if impl == "loss" and mode != "coupled":
            raise ValueError("impl=loss is coupled decay; mode must be coupled")
        self.impl = impl
        self.active = self.lam > 0 and bool(self._params)

    # ------------------------------------------------------------------ set-up
    def param_groups(self) -> List[dict]:
        """Optimizer parameter groups: decayed and kept tensors, with torch's weight_decay set
        only where torch itself applies our decay (impl=optimizer)."""
        decay = self.lam if self.impl == "optimizer" else 0.0
        groups = [{"params": self._params, "weight_decay": decay},
                  {"params": [q for _, q in self.kept], "weight_decay": 0.0}]
        return [g for g in groups if g["params"]]

    def summary(self) -> dict:
        return {
            "decayed_tensors": len(self.decayed),
            "decayed_params": sum(q.numel() for _, q in self.decayed),
            "kept_tensors": len(self.kept),
            "kept_params": sum(q.numel() for _, q in self.kept),
            "impl": self.impl,
        }

    # --------------------------------------------------------------- the step
    def loss_term(self) -> Optional[torch.Tensor]:
        """The penalty as a differentiable loss term, for impl=loss; None otherwise."""
        if not self.active or self.impl != "loss":
            return None
        return self._penalty()

    @torch.no_grad()
    def before_step(self, lr: float) -> None:
        if not self.active or self.impl != "manual":
            return
        # Whole-list foreach ops, no Python loop over tensors: a few kernel launches per step
        # whatever the depth, so the decay costs next to nothing on small nets (benchmarks/).
        if self.mode == "coupled":
            params = [q for q in self._params if q.grad is not None]
            self._add_direction([q.grad for q in params], params, self.lam)
        elif self.mode == "decoupled":
            # Before the optimizer step and from the current weights, as torch.optim.AdamW does.
            if self._plain_l2:
                torch._foreach_mul_(self._params, 1.0 - lr * self.lam)
            else:
                self._add_direction(self._params, self._params, -lr * self.lam)

    @torch.no_grad()
    def after_step(self, lr: float) -> None:
        """The proximal step: argmin_v penalty(v)*lr + |v - w|^2 / 2, in closed form."""
        if not self.active or self.mode != "proximal":
            return
        step = lr * self.lam
        threshold = step if self.p == 1 else step * self.l1_ratio
        if threshold:  # soft-threshold, in place: w - clamp(w, -t, t) (exact zeros where |w| <= t)
            clamped = torch._foreach_clamp_min(self._params, -threshold)
            torch._foreach_clamp_max_(clamped, threshold)
            torch._foreach_sub_(self._params, clamped)
        if self.p == 2 and self.l1_ratio < 1:  # then rescale for the L2 part
            torch._foreach_div_(self._params, 1.0 + step * (1.0 - self.l1_ratio))

    # ---------------------------------------------------------------- reports
    @torch.no_grad()
    def penalty(self) -> float:
        """The penalty's value, lam included (0 when lam = 0)."""
        return float(self._penalty()) if self.active else 0.0

    @torch.no_grad()
    def sparsity(self) -> float:
        """The fraction of exactly-zero entries among the tensors in scope."""
        total = sum(q.numel() for q in self._params)
        zeros = sum(int((q == 0).sum()) for q in self._params)
        return zeros / total if total else 0.0

    # ---------------------------------------------------------------- helpers
    @property
    def _plain_l2(self) -> bool:
        return self.p == 2 and self.l1_ratio == 0

    def _penalty(self) -> torch.Tensor:
        a = self.l1_ratio
        total = sum(lp_term(q, self.p, self.eps) for q in self._params)
        if a:
            total = (1 - a) * total + a * sum(ordered_sum(q.abs()) for q in self._params)
        return self.lam * total

    def _add_direction(self, targets: List[torch.Tensor], params: List[torch.Tensor],
                       scale: float) -> None:
        """targets += scale * d(penalty / lam)/dw, in place, in as few foreach kernels as the
        case allows (one or two for p in {1, 2, 3}); targets may be the params themselves."""
        p, a = self.p, self.l1_ratio
        if p == 3 and not a:  # sign(w)|w|^2 = w|w|
            torch._foreach_addcmul_(targets, params, torch._foreach_abs(params), value=scale)
        elif (p == 2 and not a) and targets is not params:
            torch._foreach_add_(targets, params, alpha=scale)
        elif p == 1:  # L1 mixed with L1 is still L1
            torch._foreach_add_(targets, torch._foreach_sign(params), alpha=scale)
        else:
            torch._foreach_add_(targets, self._directions(params), alpha=scale)

    def _directions(self, params: List[torch.Tensor]) -> List[torch.Tensor]:
        """d(penalty / lam)/dw for each tensor, as new tensors: sign(w)|w|^(p-1) (smoothed to
        w (w^2 + eps^2)^(p/2 - 1) for p < 1), mixed with sign(w) by l1_ratio."""
        p, a = self.p, self.l1_ratio
        if p == 2:
            g = torch._foreach_mul(params, 1.0)
        elif p == 1:
            g = torch._foreach_sign(params)
        elif p < 1:
            g = torch._foreach_mul(params, params)
            torch._foreach_add_(g, self.eps * self.eps)
            torch._foreach_pow_(g, p / 2 - 1)
            torch._foreach_mul_(g, params)
        else:
            g = torch._foreach_abs(params)
            torch._foreach_pow_(g, p - 1)
            torch._foreach_mul_(g, torch._foreach_sign(params))
        if a and p != 1:
            torch._foreach_mul_(g, 1 - a)
            torch._foreach_add_(g, torch._foreach_sign(params), alpha=a)
        return g
