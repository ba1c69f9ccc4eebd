"""Optimizers and learning-rate schedules. No decay here: the regularizer sets weight_decay
on its parameter groups, and only where torch's own decay equals ours."""
from __future__ import annotations

import math
from typing import List, Tuple

import torch
from omegaconf import DictConfig


def build_optimizer(cfg: DictConfig, param_groups: List[dict], steps: int
                    ) -> Tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    if cfg.name == "sgd":
        optimizer = torch.optim.SGD(param_groups, lr=cfg.lr, momentum=cfg.momentum,
                                    nesterov=cfg.nesterov, weight_decay=0.0)
    else:
        cls = torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam
        # weight_decay=0.0 explicitly: AdamW's own default (0.01) would decay behind reg's back.
        optimizer = cls(param_groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=0.0)
    factor = lr_factor(cfg.schedule, steps, cfg.warmup_steps, cfg.min_lr / cfg.lr)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def lr_factor(schedule: str, steps: int, warmup_steps: int, min_ratio: float):
    """The multiplier of the base lr before step t+1: linear warm-up, then constant or cosine."""

    def factor(t: int) -> float:
        if t < warmup_steps:
            return (t + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = (t - warmup_steps) / max(1, steps - warmup_steps)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor
