"""What decay costs per training step, as ratios measured side by side in one process.

    python benchmarks/decay_paths.py [--steps 100] [--repeats 30] [--threads 1]

Two tables:
1. Regularizer overhead (target: <= 1.03x). On the weight-decay article's MLP (1-200x3-1, 10 points, full batch)
   and on the main job's digits MLP (64-128x2-10, batches of 64), a harness step with
   weight-only Lp at lam=1e-2 for p in {1, 2, 3} and every mode (proximal: p in {1, 2}),
   against a harness step with lam=0 on the same net and optimizer (SGD with momentum).
2. Ways to apply the same decay (the weight-decay article's MLP, all parameters): a bare PyTorch loop with
   torch's weight_decay, and the harness with impl=optimizer, manual and loss at p=2 and p=3.
   Target: the harness within 1.15x of the bare loop at p=2.

Times are of the steps alone (evaluations excluded): blocks of steps on nets built once, the
cases taking turns, and each case's fastest block (interference on a shared machine only adds
time).
"""
from __future__ import annotations

import argparse
import copy
import time
from typing import Callable, Dict, List

import torch
from omegaconf import OmegaConf
from torch import nn

from wdsweep.train.data import Splits
from wdsweep.train.models import mlp
from wdsweep.train.optimizers import build_optimizer
from wdsweep.train.regularizers import Regularizer
from wdsweep.train.training import train

LAM = 1e-2
SGD = OmegaConf.create({"name": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": False,
                        "schedule": "constant", "warmup_steps": 0, "min_lr": 0.0,
                        "fused": True})


def seed_one_problem():
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 10).unsqueeze(1)
    y = 1.5 * x + 0.5 * torch.randn(10, 1)
    splits = Splits("regression", {s: x for s in ("train", "val", "test")},
                    {s: y for s in ("train", "val", "test")}, n_features=1, n_outputs=1)
    return splits, mlp(1, 1, depth=3, width=200, activation="relu"), None


def digits_problem():
    torch.manual_seed(0)
    x = torch.rand(300, 64)
    y = torch.randint(0, 10, (300,))
    splits = Splits("classification", {s: x for s in ("train", "val", "test")},
                    {s: y for s in ("train", "val", "test")}, n_features=64, n_outputs=10)
    return splits, mlp(64, 10, depth=2, width=128, activation="relu"), 64


PROBLEMS = {"the weight-decay article's MLP": seed_one_problem, "digits MLP": digits_problem}


def harness(problem: Callable, steps: int, *, lam: float, p: float, mode: str = "coupled",
            scope: str = "weights", impl: str = "auto") -> Callable[[], float]:
    """A net, optimizer and regularizer built once; each call trains `steps` steps from the
    same start with the harness loop and returns their time, evaluations excluded. (The same
    start each time: a net trained on and on drifts into slow subnormal floats.)"""
    splits, net, batch_size = problem()
    reg = Regularizer(net, lam=lam, p=p, mode=mode, scope=scope, optimizer="sgd", impl=impl)
    opt, sched = build_optimizer(SGD, reg.param_groups(), steps)
    start = copy.deepcopy((net.state_dict(), opt.state_dict()))
    generator = torch.Generator()

    def block() -> float:
        net.load_state_dict(start[0])
        opt.load_state_dict(start[1])
        generator.manual_seed(0)
        result = train(net, splits, opt, sched, reg, steps=steps, batch_size=batch_size,
                       eval_every=steps, generator=generator)
        return result.train_seconds - result.eval_seconds

    return block


def bare(steps: int) -> Callable[[], float]:
    splits, net, _ = seed_one_problem()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=LAM)
    x, y = splits.x["train"], splits.y["train"]
    start = copy.deepcopy((net.state_dict(), opt.state_dict()))

    def block() -> float:
        net.load_state_dict(start[0])
        opt.load_state_dict(start[1])
        tic = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.mse_loss(net(x), y).backward()
            opt.step()
        return time.perf_counter() - tic

    return block


def measure(cases: Dict[str, Callable[[], float]], repeats: int) -> Dict[str, float]:
    """Blocks of steps, the cases taking turns; each case's fastest block. On a shared
    machine interference only ever adds time, so the minimum is the steadiest estimate."""
    for case in cases.values():  # warm-up: lazy imports, the allocator
        case()
    times: Dict[str, List[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, case in cases.items():
            times[name].append(case())
    return {name: min(samples) for name, samples in times.items()}


def overhead_table(steps: int, repeats: int) -> None:
    print("1. Regularizer overhead: weight-only Lp, lam=1e-2, against lam=0 (target <= 1.03x)")
    for label, problem in PROBLEMS.items():
        cases = {"lam=0": harness(problem, steps, lam=0.0, p=2.0)}
        for mode in ("coupled", "decoupled", "proximal"):
            for p in (1.0, 2.0, 3.0):
                if mode == "proximal" and p == 3:
                    continue
                cases[f"{mode} p={p:g}"] = harness(problem, steps, lam=LAM, p=p, mode=mode)
        times = measure(cases, repeats)
        base = times["lam=0"]
        print(f"  {label}: {1e3 * base / steps:.3f} ms/step without decay")
        for name, t in times.items():
            if name != "lam=0":
                print(f"    {name:16s} {t / base:5.3f}x")


def paths_table(steps: int, repeats: int) -> None:
    print("2. Ways to apply the decay, the weight-decay article's MLP, all parameters (target: p=2 within 1.15x bare)")
    one = seed_one_problem
    cases = {
        "bare torch loop, weight_decay (p=2)": bare(steps),
        "harness, impl=optimizer (p=2)": harness(one, steps, lam=LAM, p=2.0, scope="all", impl="optimizer"),
        "harness, impl=manual (p=2)": harness(one, steps, lam=LAM, p=2.0, scope="all", impl="manual"),
        "harness, impl=loss (p=2)": harness(one, steps, lam=LAM, p=2.0, scope="all", impl="loss"),
        "harness, impl=manual (p=3)": harness(one, steps, lam=LAM, p=3.0, scope="all", impl="manual"),
        "harness, impl=loss (p=3)": harness(one, steps, lam=LAM, p=3.0, scope="all", impl="loss"),
    }
    times = measure(cases, repeats)
    base = times["bare torch loop, weight_decay (p=2)"]
    for name, t in times.items():
        print(f"    {name:38s} {1e3 * t / steps:6.3f} ms/step  {t / base:5.2f}x bare")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="steps per block")
    parser.add_argument("--repeats", type=int, default=30, help="blocks per case")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1, as each job of a parallel sweep gets on 2 cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.repeats} blocks of {args.steps} steps per case, fastest block, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")
    overhead_table(args.steps, args.repeats)
    paths_table(args.steps, args.repeats)


if __name__ == "__main__":
    main()
