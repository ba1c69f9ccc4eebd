"""What a sweep costs per job beyond its training, side by side in one run.

    python benchmarks/sweep_overhead.py [--jobs 40] [--repeats 3]

Grids of 1-step jobs (the weight-decay article's MLP, `seed=range(N)`), run as `python -m wdsweep -m ...`:
with our grid sweeper (the default: configs derived from one Hydra composition, jobs run
in-process without a second composition) and with stock Hydra (`hydra/sweeper=basic`, which
composes every job twice). Per-job cost = (time of N jobs - time of 1 job) / (N - 1); the
work itself (building the net, one step, the evaluations, in a bare loop in this process) is
subtracted to give the overhead. Target: <= 0.05 s per job. Medians over interleaved repeats.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

SWEEPERS = {"wdsweep grid sweeper": [], "stock Hydra (basic sweeper)": ["hydra/sweeper=basic"]}


def sweep_seconds(n_jobs: int, extra: list, workdir: Path) -> float:
    out = Path(tempfile.mkdtemp(dir=workdir))
    args = [sys.executable, "-m", "wdsweep", "-m", f"seed=range({n_jobs})", "trainer.steps=1",
            "trainer.eval_every=1", f"hydra.sweep.dir={out}", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    tic = time.perf_counter()
    subprocess.run(args, check=True, cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - tic


def bare_job_seconds(repeats: int = 50) -> float:
    """One job's work in a bare loop: data, the weight-decay article's net, SGD, one step, two evaluations."""
    torch.set_num_threads(1)
    tic = 0.0
    for seed in range(-1, repeats):  # seed -1 warms up (the optimizer's lazy imports)
        if seed == 0:
            tic = time.perf_counter()
        torch.manual_seed(seed)
        x = torch.linspace(-1, 1, 10).unsqueeze(1)
        y = 1.5 * x + 0.5 * torch.randn(10, 1)
        layers = [nn.Linear(1, 200), nn.ReLU(), nn.Linear(200, 200), nn.ReLU(),
                  nn.Linear(200, 200), nn.ReLU(), nn.Linear(200, 1)]
        net = nn.Sequential(*layers)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-2)
        for _ in range(2):
            with torch.no_grad():
                nn.functional.mse_loss(net(x), y)
        opt.zero_grad()
        nn.functional.mse_loss(net(x), y).backward()
        opt.step()
    return (time.perf_counter() - tic) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = bare_job_seconds()
    times = {(name, n): [] for name in SWEEPERS for n in (1, args.jobs)}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for (name, n), samples in times.items():
                samples.append(sweep_seconds(n, SWEEPERS[name], Path(tmp)))
    print(f"grids of 1-step jobs, 1 vs {args.jobs} jobs, median of {args.repeats}; "
          f"the work of one job in a bare loop: {1e3 * work:.1f} ms")
    for name in SWEEPERS:
        one, many = (statistics.median(times[(name, n)]) for n in (1, args.jobs))
        per_job = (many - one) / (args.jobs - 1)
        print(f"  {name:30s} 1 job {one:5.2f} s, {args.jobs} jobs {many:5.2f} s: "
              f"{1e3 * per_job:6.1f} ms per job, {1e3 * (per_job - work):6.1f} ms overhead")


if __name__ == "__main__":
    main()
