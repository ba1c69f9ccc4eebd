"""Speed of the ways to apply decay, as ratios measured side by side in one process.

    python benchmarks/decay_paths.py [--steps 400] [--repeats 5]

Baseline: a bare PyTorch loop (seed 1's: SGD with weight_decay, full batch). Against it, the
harness's training loop with the decay applied by torch's weight_decay (impl=optimizer, what
auto picks at p=2), by our gradient term (impl=manual) and by a loss penalty (impl=loss), and
the same for p=3, where only manual and loss exist. Targets (ratios to the bare loop):
the harness loop at p=2 within 1.15x; manual p=3 no slower than loss p=3.
Timings are medians over interleaved repeats, so drift on the machine hits all alike.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from wdsweep.data import Splits
from wdsweep.models import mlp
from wdsweep.optimizers import build_optimizer
from wdsweep.regularizers import Regularizer
from wdsweep.training import train
from omegaconf import OmegaConf

LAM = 1e-2


def problem(width: int):
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 10).unsqueeze(1)
    y = 1.5 * x + 0.5 * torch.randn(10, 1)
    splits = Splits("regression", {s: x for s in ("train", "val", "test")},
                    {s: y for s in ("train", "val", "test")}, n_features=1, n_outputs=1)
    return splits, mlp(1, 1, depth=3, width=width, activation="relu")


def bare(steps: int, width: int) -> float:
    splits, net = problem(width)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=LAM)
    x, y = splits.x["train"], splits.y["train"]
    tic = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(net(x), y).backward()
        opt.step()
    return time.perf_counter() - tic


def harness(steps: int, width: int, impl: str, p: float) -> float:
    splits, net = problem(width)
    reg = Regularizer(net, lam=LAM, p=p, mode="coupled", scope="all", optimizer="sgd", impl=impl)
    cfg = OmegaConf.create({"name": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": False,
                            "schedule": "constant", "warmup_steps": 0, "min_lr": 0.0})
    opt, sched = build_optimizer(cfg, reg.param_groups(), steps)
    result = train(net, splits, opt, sched, reg, steps=steps, batch_size=None, eval_every=steps,
                   generator=torch.Generator().manual_seed(0))
    return result.train_seconds - result.eval_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--width", type=int, default=200)
    args = parser.parse_args()
    cases = {
        "bare torch loop, weight_decay (p=2)": lambda: bare(args.steps, args.width),
        "harness, impl=optimizer (p=2)": lambda: harness(args.steps, args.width, "optimizer", 2.0),
        "harness, impl=manual (p=2)": lambda: harness(args.steps, args.width, "manual", 2.0),
        "harness, impl=loss (p=2)": lambda: harness(args.steps, args.width, "loss", 2.0),
        "harness, impl=manual (p=3)": lambda: harness(args.steps, args.width, "manual", 3.0),
        "harness, impl=loss (p=3)": lambda: harness(args.steps, args.width, "loss", 3.0),
    }
    for case in cases.values():  # warm-up: lazy imports, allocator
        case()
    times = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, case in cases.items():
            times[name].append(case())
    base = statistics.median(times["bare torch loop, weight_decay (p=2)"])
    print(f"{args.steps} steps, MLP 1-{args.width}x3-1 on 10 points, {torch.get_num_threads()} threads, "
          f"median of {args.repeats}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"  {name:40s} {1e3 * median / args.steps:7.3f} ms/step  {median / base:5.2f}x bare")


if __name__ == "__main__":
    main()
