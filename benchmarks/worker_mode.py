"""Rounds or workers? The Optuna sweeper's two ways of running 2 trials at a time, on a search
whose trials take very different times.

    python benchmarks/worker_mode.py [--trials 24] [--repeats 2] [--steps 1000] [--workdir DIR]

  rounds   hydra.sweeper.n_jobs=2 with hydra/launcher=joblib (n_jobs=2): 2 trials asked, run
           in 2 processes, and the next 2 asked when both have ended.
  workers  hydra.sweeper.workers=2: 2 worker processes, each asking its next trial as soon as
           it has told its last one.

The workload: the default MLP on the built-in regression, SGD with momentum, with the median
pruner (reporting every 50 steps). Both modes run the same trials: --trials points drawn once
(seeded) and enqueued, lr log-uniform in [1e-3, 3], lam log-uniform in [1e-6, 1e-1], p in [1, 3],
scope weights or all. A large lr diverges within a few steps, the pruner stops middling trials
part-way, the rest train every step: trial lengths range over two orders of magnitude.

Measured from the job folders (the same for both modes): a job runs from its .hydra/config.yaml
(written by Hydra as it starts) to its metrics.json (written last). The search's span is the
first start to the last end. Busy fraction: the jobs' summed durations over 2 x span (the
share of the two slots spent inside a job). Trials per minute: finished trials over the span,
and over the whole command (process start-up included). The modes alternate, repeat by
repeat, so that any other load on the machine falls on both.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

SEARCH = ["search=optuna", "hydra/sweeper/pruner=median", "hydra.sweeper.pruner.n_startup_trials=4",
          "hydra.sweeper.pruner.n_warmup_steps=200", "optimizer.lr=tag(log,interval(1e-3,3))",
          "reg.lam=tag(log,interval(1e-6,1e-1))", "reg.p=interval(1,3)", "reg.mode=coupled",
          "reg.scope=choice(weights,all)", "trainer.threads=1"]
MODES = {
    "rounds": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"],
    "workers": ["hydra.sweeper.workers=2"],
}


def points(n: int, seed: int) -> str:
    """n search points as hydra.sweeper.enqueue's value: the same trials for both modes."""
    rng = random.Random(seed)
    rows = [f"{{optimizer.lr:{10 ** rng.uniform(-3, math.log10(3)):.4g},reg.lam:{10 ** rng.uniform(-6, -1):.4g},"
            f"reg.p:{rng.uniform(1, 3):.3f},reg.scope:{rng.choice(['weights', 'all'])}}}" for _ in range(n)]
    return "hydra.sweeper.enqueue=[" + ",".join(rows) + "]"


def run(mode: str, workdir: Path, trials: int, steps: int, repeat: int) -> Dict[str, float]:
    sweep = workdir / f"{mode}-{repeat}"
    args = [sys.executable, "-m", "wdsweep", "-m", *SEARCH, *MODES[mode], f"trainer.steps={steps}",
            points(trials, repeat),
            "trainer.eval_every=50", f"hydra.sweeper.n_trials={trials}", f"hydra.sweeper.sampler.seed={repeat}",
            f"hydra.sweeper.study_name={mode}-{repeat}", f"hydra.sweep.dir={sweep}"]
    start = time.time()
    subprocess.run(args, cwd=workdir, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   env={**os.environ, "PYTHONHASHSEED": "0"})
    wall = time.time() - start
    jobs = []
    for metrics in sweep.glob("trial-*/metrics.json"):
        record = json.loads(metrics.read_text())
        began = (metrics.parent / ".hydra" / "config.yaml").stat().st_mtime
        jobs.append((began, metrics.stat().st_mtime, record["status"]))
    span = max(end for _, end, _ in jobs) - min(begin for begin, _, _ in jobs)
    busy = sum(end - begin for begin, end, _ in jobs)
    statuses = [s for *_, s in jobs]
    return {"busy": busy / (2 * span), "per_min_span": 60 * len(jobs) / span, "per_min_wall": 60 * len(jobs) / wall,
            "span": span, "wall": wall, "jobs": len(jobs),
            "diverged": statuses.count("diverged"), "pruned": statuses.count("pruned"),
            "lengths": sorted(end - begin for begin, end, _ in jobs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="wdsweep-workers-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: Dict[str, List[Dict[str, float]]] = {m: [] for m in MODES}
    for repeat in range(args.repeats):
        order = list(MODES) if repeat % 2 == 0 else list(reversed(MODES))
        for mode in order:
            r = run(mode, workdir, args.trials, args.steps, repeat)
            results[mode].append(r)
            lengths = r["lengths"]
            print(f"{mode:8s} repeat {repeat}: busy {r['busy']:.2f}, {r['per_min_span']:.1f} trials/min "
                  f"(span {r['span']:.0f} s), {r['per_min_wall']:.1f} trials/min over the command "
                  f"({r['wall']:.0f} s); {r['jobs']} jobs, {r['diverged']} diverged, {r['pruned']} pruned; "
                  f"job seconds min {lengths[0]:.1f} median {statistics.median(lengths):.1f} "
                  f"max {lengths[-1]:.1f}", flush=True)

    def cell(mode: str, key: str, fmt: str) -> str:
        values = [r[key] for r in results[mode]]
        spread = f" ± {statistics.stdev(values):{fmt}}" if len(values) > 1 else ""
        return f"{statistics.mean(values):{fmt}}{spread}"

    print(f"\n{args.trials} trials, 2 at a time, {args.repeats} repeats (mean ± std over repeats)\n")
    print("| mode | busy fraction | trials/min (search span) | trials/min (whole command) | diverged | pruned |")
    print("|---|---|---|---|---|---|")
    for mode in MODES:
        print(f"| {mode} | {cell(mode, 'busy', '.2f')} | {cell(mode, 'per_min_span', '.1f')} | "
              f"{cell(mode, 'per_min_wall', '.1f')} | {cell(mode, 'diverged', '.1f')} | "
              f"{cell(mode, 'pruned', '.1f')} |")
    ratio = [w["per_min_span"] / r["per_min_span"] for w, r in zip(results["workers"], results["rounds"])]
    print(f"\nworkers / rounds, trials per minute over the span: {statistics.mean(ratio):.2f} "
          f"(per repeat: {', '.join(f'{x:.2f}' for x in ratio)})")


if __name__ == "__main__":
    main()
