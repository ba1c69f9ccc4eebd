"""The README's main job and its analysis, against a bare PyTorch script doing the same
trainings in one process; side by side in one run, with the peak memory of each.

    python benchmarks/end_to_end.py

Harness: `python -m wdsweep -m experiment=lp_vs_global` (72 jobs: lam x scope x p x seed on
digits) then `python -m analysis` on its folder; once with the basic launcher (one process)
once with `hydra/launcher=joblib hydra.launcher.n_jobs=2`, and once with
`hydra/launcher=vectorized` (the jobs as batched models).
Bare: this file's `bare_sweep`, the same 72 trainings (same data sizes, net, optimizer,
schedule, batches, steps and evaluations) in a plain loop in one process, no files written.
Target: harness (job + analysis) <= 1.15x the bare script.
Memory: the peak resident set of the main job's process, and of one worker (a single job).
Also: the share of the main job's training time spent evaluating (target < 5%), from the
jobs' own metrics.json (eval_seconds / train_seconds).
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn

GRID = list(itertools.product((0.0, 1e-4, 1e-3, 1e-2), ("weights", "all"), (1.0, 2.0, 3.0), (0, 1, 2)))


def bare_sweep() -> float:
    """The 72 trainings of experiment=lp_vs_global in a plain loop; returns seconds."""
    tic = time.perf_counter()
    x_all, y_all = load_digits(return_X_y=True)
    x_all = torch.tensor(x_all / 16.0, dtype=torch.float32)
    y_all = torch.tensor(y_all)
    for lam, scope, p, seed in GRID:
        torch.manual_seed(seed)
        order = torch.randperm(len(y_all))
        train, val, test = order[:300], order[300:660], order[660:1020]
        net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                            nn.Linear(128, 10))
        decayed = [q for q in net.parameters() if scope == "all" or q.dim() >= 2]
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=500)
        for step in range(1, 501):
            rows = train[torch.randint(0, 300, (64,))]
            loss = nn.functional.cross_entropy(net(x_all[rows]), y_all[rows])
            opt.zero_grad()
            loss.backward()
            if lam:
                with torch.no_grad():
                    for q in decayed:
                        q.grad.add_(torch.sign(q) * q.abs().pow(p - 1), alpha=lam)
            opt.step()
            sched.step()
            if step % 100 == 0:
                with torch.no_grad():
                    for split in (train, val, test):
                        out = net(x_all[split])
                        float(nn.functional.cross_entropy(out, y_all[split]))
                        float((out.argmax(1) != y_all[split]).float().mean())
        assert math.isfinite(loss.item())
    return time.perf_counter() - tic


def timed_with_peak_rss(cmd: list, cwd: Path) -> tuple:
    """Run cmd in a fresh child that reports its own children's peak RSS (MiB) and the time."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, "
             "stderr=subprocess.DEVNULL); "
             "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], cwd=cwd, check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1]) / 1024


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wd = [sys.executable, "-m", "wdsweep"]
        results = {}
        for name, extra in (("basic launcher", []),
                            ("joblib, 2 workers", ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]),
                            ("vectorized", ["hydra/launcher=vectorized"])):
            sweep = tmp / name.split(",")[0].replace(" ", "_")
            job, rss = timed_with_peak_rss([*wd, "-m", "experiment=lp_vs_global",
                                            f"hydra.sweep.dir={sweep}", *extra], tmp)
            analysis, _ = timed_with_peak_rss([sys.executable, "-m", "analysis", str(sweep)], tmp)
            results[name] = (job, analysis, rss)
            if name == "basic launcher":
                records = [json.loads(f.read_text()) for f in sweep.glob("*/metrics.json")]
                eval_share = (sum(r["eval_seconds"] for r in records)
                              / sum(r["train_seconds"] for r in records))
        _, worker_rss = timed_with_peak_rss([*wd, "experiment=lp_vs_global", "hydra.run.dir=one"], tmp)
    torch.set_num_threads(1 if os.environ.get("OMP_NUM_THREADS") == "1" else torch.get_num_threads())
    bare = bare_sweep()
    print(f"experiment=lp_vs_global, {len(GRID)} trainings; bare script {bare:.1f} s "
          f"({torch.get_num_threads()} torch threads)")
    for name, (job, analysis, rss) in results.items():
        print(f"  harness, {name:18s} job {job:5.1f} s + analysis {analysis:4.1f} s = "
              f"{job + analysis:5.1f} s: {(job + analysis) / bare:4.2f}x bare; "
              f"peak RSS {rss:.0f} MiB")
    print(f"  one job alone (what a worker holds): peak RSS {worker_rss:.0f} MiB")
    print(f"  evaluations: {100 * eval_share:.1f}% of the jobs' training time (eval_every=100)")


if __name__ == "__main__":
    main()
