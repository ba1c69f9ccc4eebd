"""Grids trained as batched models (`hydra/launcher=vectorized`) against the basic launcher
and the joblib launcher with two workers, side by side in one run.

    python benchmarks/vectorized_sweep.py [--problems mlp digits cnn] [--steps N] [--repeats 1]

Grids:
- mlp, digits: reg.lam x reg.p x reg.scope x seed = 4 x 2 x 2 x 4 = 64 jobs (weight-only and
  global Lp, L1 and L2), on the weight-decay article's MLP (1-200x3-1, full batch) and on the main job's digits
  MLP (64-128x2-10, batches of 64); 2000 steps by default (its own). The stacked path.
- cnn: reg.lam x seed = 4 x 4 = 16 jobs of the digits cnn (conv 16, conv 32, dense 64,
  batches of 64), 300 steps by default. The general torch.func path.
Fewer steps weigh the fixed costs more (start-up, validation, each job's files), which every
launcher pays alike. Wall time of the whole `python -m wdsweep -m ...` command, start-up
included; with --repeats, the launchers take turns and each keeps its fastest run. Throughput
as a ratio to the basic launcher. Targets: vectorized >= 2.5x the best of the others on seed
1's MLP, >= 2x on the cnn grid. torch keeps its default threads (the thread rule gives each
joblib worker one).
"""
from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MLP_GRID = ["reg.lam=0,1e-4,1e-3,1e-2", "reg.p=1,2", "reg.scope=weights,all", "seed=0,1,2,3"]
# key: (title, grid and settings, default steps)
PROBLEMS = {"mlp": ("the weight-decay article's MLP", MLP_GRID, 2000),
            "digits": ("digits MLP", [*MLP_GRID, "data=digits", "data.n_train=300", "model.depth=2",
                                      "model.width=128", "optimizer.lr=0.05", "trainer.batch_size=64"], 2000),
            "cnn": ("digits cnn", ["reg.lam=0,1e-4,1e-3,1e-2", "seed=0,1,2,3", "data=digits", "model=cnn",
                                   "trainer.batch_size=64"], 300)}
LAUNCHERS = {"basic launcher": [],
             "joblib, 2 workers": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
             "vectorized": ["hydra/launcher=vectorized"]}


def seconds(args: list, workdir: Path) -> float:
    out = Path(tempfile.mkdtemp(dir=workdir))
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    tic = time.perf_counter()
    subprocess.run([sys.executable, "-m", "wdsweep", "-m", *args, f"hydra.sweep.dir={out}"],
                   check=True, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", choices=list(PROBLEMS), default=list(PROBLEMS))
    parser.add_argument("--steps", type=int, help="default: each problem's own")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.problems:
            problem, grid, default_steps = PROBLEMS[key]
            steps = args.steps or default_steps
            n_jobs = math.prod(len(o.split("=", 1)[1].split(",")) for o in grid)
            common = [*grid, f"trainer.steps={steps}", f"trainer.eval_every={max(1, steps // 5)}"]
            times = {name: math.inf for name in LAUNCHERS}
            for _ in range(args.repeats):  # in turns, so that a slow spell of the machine hits all
                for name, launcher in LAUNCHERS.items():
                    times[name] = min(times[name], seconds([*common, *launcher], Path(tmp)))
            base = times["basic launcher"]
            best_other = min(times["basic launcher"], times["joblib, 2 workers"])
            print(f"{problem}: {n_jobs} jobs of {steps} steps"
                  + (f", best of {args.repeats}" if args.repeats > 1 else ""))
            for name, t in times.items():
                print(f"  {name:18s} {t:6.1f} s  {base / t:4.2f}x the basic launcher")
            print(f"  vectorized against the best of the others: {best_other / times['vectorized']:.2f}x")


if __name__ == "__main__":
    main()
