"""What differs between the members of one batched model, as (K, 1, 1) tensors that broadcast over a
stacked weight: each member's lam, p, l1_ratio, eps, mode, scope and learning rate, and the
batched form of the regularizer's steps (Regularizer.before_step and after_step, per member).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
from omegaconf import DictConfig

from wdsweep.train.optimizers import lr_factor
from wdsweep.train.regularizers import lp_grad


def decays_before_step(reg: DictConfig) -> bool:
    """Whether the member's regularizer acts before the optimizer step (coupled or decoupled
    decay), rather than not at all (lam=0) or after it (proximal)."""
    return reg.lam > 0 and reg.mode in ("coupled", "decoupled")


class Members:
    """Per-member constants as (K, 1, 1) tensors, broadcasting over a stacked weight."""

    def __init__(self, cfgs: Sequence[DictConfig], device: torch.device, steps: int) -> None:
        """`steps`: the members' planned steps (their learning-rate schedules span them)."""

        def column(values, dtype=torch.float32):
            return torch.tensor(values, dtype=dtype, device=device).view(-1, 1, 1)

        reg = [c.reg for c in cfgs]
        self.lam = column([r.lam for r in reg])
        self.p = column([r.p for r in reg])
        self.l1 = column([r.l1_ratio for r in reg])
        self.eps = column([r.eps for r in reg])
        self.coupled = column([r.mode == "coupled" and r.lam > 0 for r in reg], torch.bool)
        self.decoupled = column([r.mode == "decoupled" and r.lam > 0 for r in reg], torch.bool)
        self.proximal = column([r.mode == "proximal" and r.lam > 0 for r in reg], torch.bool)
        self.all_scope = column([r.scope == "all" for r in reg], torch.bool)
        # SGD momentum's gain G = 1 / (1 - mu) (dampening is always 0), 1 under Adam/AdamW: the
        # factor of the proximal step, of the corrected decoupled step and, inverted, of what
        # uncorrected decoupled decay reports (wdsweep.train.regularizers explains all three).
        sgd = [c.optimizer.name == "sgd" for c in cfgs]
        self.gain = column([1.0 / (1.0 - float(c.optimizer.momentum)) if is_sgd else 1.0
                            for c, is_sgd in zip(cfgs, sgd)])
        self.decoupled_lam = torch.where(column([r.momentum_corrected for r in reg], torch.bool),
                                         self.lam * self.gain, self.lam)
        self.reported = torch.where(column([is_sgd and r.mode == "decoupled" and not r.momentum_corrected
                                            for r, is_sgd in zip(reg, sgd)], torch.bool),
                                    1.0 / self.gain, torch.ones_like(self.lam))
        groups: Dict[float, List[int]] = {}
        for k, r in enumerate(reg):  # the members come sorted by p (train_batched): each p is a slice
            groups.setdefault(float(r.p), []).append(k)
        self.p_slices = [(p, slice(ks[0], ks[-1] + 1)) for p, ks in groups.items()]
        # Within a p, the members that decay before the step come first: the decay is
        # computed for them only.
        self.decay_slices = []
        for p, ks in groups.items():
            decaying = [k for k in ks if decays_before_step(reg[k])]
            if decaying:
                self.decay_slices.append((p, slice(decaying[0], decaying[-1] + 1)))
        self.any_l1 = any(r.l1_ratio > 0 for r in reg)
        self.base_lr = [float(c.optimizer.lr) for c in cfgs]
        opt = cfgs[0].optimizer
        self.factors = [lr_factor(opt.schedule, steps, opt.warmup_steps, opt.min_lr / lr)
                        for lr in self.base_lr]
        self.device = device

    def lr(self, t: int) -> torch.Tensor:
        """Each member's learning rate for the update after t scheduler steps."""
        return torch.tensor([lr * f(t) for lr, f in zip(self.base_lr, self.factors)],
                            device=self.device).view(-1, 1, 1)

    def add_decay(self, q: torch.Tensor, g: torch.Tensor, lr: torch.Tensor,
                  coupled: Optional[torch.Tensor], decoupled: Optional[torch.Tensor],
                  scratch: torch.Tensor) -> None:
        """Regularizer.before_step per member: g += coupled * d(w) and w -= lr * decoupled * d(w),
        d the penalty's gradient over lam, computed once per p on that p's slice of decaying
        members (a power with a per-element exponent is many times slower). `scratch`, shaped
        like q, holds d at p=1: a fresh tensor of that size every step costs more than the
        sign itself (the allocator returns big blocks to the kernel, and each comes back
        through page faults)."""
        for p, rows in self.decay_slices:
            w = q[rows]
            d = torch.sign(w, out=scratch[rows]) if p == 1 else lp_grad(w, p, self.eps[rows])
            if self.any_l1 and p != 1:
                l1 = self.l1[rows]
                d = (1 - l1) * d + l1 * torch.sign(w)
            if coupled is not None:
                g[rows].addcmul_(coupled[rows], d)
            if decoupled is not None:
                w.addcmul_(lr[rows] * decoupled[rows], d, value=-1.0)

    def prox(self, w: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Regularizer.after_step per member (p is 1 or 2 where the mode is proximal), with
        t its step size in the optimizer's metric: lr*lam*G per member under SGD, lr*lam / D
        per entry under Adam (Regularizer.after_step)."""
        threshold = torch.where(self.p == 1, t, t * self.l1)
        shrunk = w - torch.clamp(w, -threshold, threshold)
        return torch.where(self.p == 1, shrunk, shrunk / (1 + t * (1 - self.l1)))
