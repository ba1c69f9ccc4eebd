"""Both cores busy: a grid run one job after another against the joblib launcher with two
workers, side by side in one run.

    python benchmarks/parallel_launcher.py [--jobs 16] [--steps 2000] [--repeats 1]

The grid is `seed=range(N)` of the weight-decay article's full run (2000 full-batch steps, about 2 s a job).
Sequential: our grid sweeper with Hydra's basic launcher, torch at its default thread count.
Parallel: `hydra/launcher=joblib hydra.launcher.n_jobs=2`, where each job pins torch to
cores / workers threads (wdsweep's rule when trainer.threads is null). Target: the parallel
sweep >= 1.7x faster on 2 cores. Wall time of the whole command, start-up included.
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

LAUNCHERS = {"sequential (basic launcher)": [],
             "joblib, 2 workers": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]}


def sweep_seconds(n_jobs: int, steps: int, extra: list, workdir: Path) -> float:
    out = Path(tempfile.mkdtemp(dir=workdir))
    args = [sys.executable, "-m", "wdsweep", "-m", f"seed=range({n_jobs})", f"trainer.steps={steps}",
            f"hydra.sweep.dir={out}", *extra]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    tic = time.perf_counter()
    subprocess.run(args, check=True, cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    times = {name: [] for name in LAUNCHERS}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name, extra in LAUNCHERS.items():
                times[name].append(sweep_seconds(args.jobs, args.steps, extra, Path(tmp)))
    medians = {name: statistics.median(samples) for name, samples in times.items()}
    base = medians["sequential (basic launcher)"]
    print(f"{args.jobs} jobs of {args.steps} steps on {os.cpu_count()} cores, median of {args.repeats}")
    for name, seconds in medians.items():
        print(f"  {name:28s} {seconds:6.1f} s  {base / seconds:4.2f}x the sequential speed")


if __name__ == "__main__":
    main()
