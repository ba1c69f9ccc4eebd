"""How much search the Optuna sweeper saves over the full grid, measured in one run.

    python benchmarks/search_vs_grid.py [--seeds 3] [--workdir DIR]

On experiment=lp_vs_global (seed 0) the grid is reg.lam x reg.scope x reg.p = 4 x 2 x 3 = 24
points. It runs the grid once under Optuna's grid sampler, then TPE over the same space with
several sampler seeds, and reports how many trials TPE needed to come within 1% of the grid's
best validation error (or loss: --objective val_loss). Then TPE with and without the median pruner on
the same seeds: the
training steps each spent and the best value each found.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

OBJECTIVE = "val_error"
FIXED = ["reg.mode=coupled", "seed=0", "experiment=lp_vs_global"]
GRID = ["reg.lam=choice(0,1e-4,1e-3,1e-2)", "reg.scope=choice(weights,all)", "reg.p=choice(1,2,3)"]
# The space a user would search instead: the grid's ranges, continuous.
CONTINUOUS = ["reg.lam=tag(log,interval(1e-5,1e-2))", "reg.scope=choice(weights,all)", "reg.p=interval(1,3)"]
SPACE = GRID


def search(workdir: Path, name: str, *args: str) -> optuna.Study:
    journal = workdir / f"{name}.journal"
    cmd = [sys.executable, "-m", "wdsweep", "-m", "search=optuna", *FIXED, *SPACE, f"objective={OBJECTIVE}",
           f"hydra.sweeper.study_name={name}",
           f"hydra.sweeper.storage_dir={workdir}", f"hydra.sweep.dir={workdir / name}", *args]
    subprocess.run(cmd, cwd=workdir, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONHASHSEED": "0"})
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    return optuna.load_study(study_name=name, storage=storage)


def trials_to_reach(study: optuna.Study, target: float) -> int | None:
    best = float("inf")
    for trial in sorted(study.trials, key=lambda t: t.number):
        if trial.state == TrialState.COMPLETE:
            best = min(best, trial.value)
        if best <= target:
            return trial.number + 1
    return None


def steps_spent(study: optuna.Study, steps: int) -> int:
    total = 0
    for trial in study.trials:
        if trial.state == TrialState.PRUNED:
            total += max(trial.intermediate_values)
        elif trial.state == TrialState.COMPLETE:
            total += steps
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--objective", default="val_error", choices=["val_error", "val_loss"],
                        help="val_error ties often on 360 validation images (steps of 1/360); "
                             "val_loss is continuous")
    parser.add_argument("--warmup", type=int, default=100,
                        help="the median pruner's n_warmup_steps (of 500 training steps)")
    parser.add_argument("--space", default="grid", choices=["grid", "continuous"],
                        help="what TPE searches: the grid's 24 points, or their ranges made continuous")
    args = parser.parse_args()
    global OBJECTIVE, SPACE
    OBJECTIVE = args.objective
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="wdsweep-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)

    grid = search(workdir, "grid", "hydra/sweeper/sampler=grid", "hydra.sweeper.n_trials=24")
    SPACE = CONTINUOUS if args.space == "continuous" else GRID
    target = grid.best_value * 1.01
    print(f"objective: {OBJECTIVE}; TPE searches the {args.space} space")
    print(f"grid: {len(grid.trials)} trials, best {grid.best_value:.4f} at {grid.best_params}")

    reached, plain_steps, pruned_steps, plain_best, pruned_best = [], [], [], [], []
    for seed in range(args.seeds):
        common = [f"hydra.sweeper.n_trials={args.trials}", f"hydra.sweeper.sampler.seed={seed}",
                  "hydra.sweeper.sampler.n_startup_trials=5"]
        tpe = search(workdir, f"tpe{seed}", *common)
        n = trials_to_reach(tpe, target)
        reached.append(n if n is not None else float("inf"))
        plain_steps.append(steps_spent(tpe, 500))
        plain_best.append(tpe.best_value)
        pruned = search(workdir, f"tpe_median{seed}", *common, "hydra/sweeper/pruner=median",
                        "hydra.sweeper.pruner.n_startup_trials=5",
                        f"hydra.sweeper.pruner.n_warmup_steps={args.warmup}")
        pruned_steps.append(steps_spent(pruned, 500))
        pruned_best.append(pruned.best_value)
        print(f"seed {seed}: TPE within 1% of the grid's best after {n} trials; steps {plain_steps[-1]} "
              f"(best {tpe.best_value:.4f}) vs with the median pruner {pruned_steps[-1]} "
              f"(best {pruned.best_value:.4f})")
    print(f"TPE trials to within 1% of the grid's best (of 24 grid points): median {statistics.median(reached)}")
    saved = 1 - sum(pruned_steps) / sum(plain_steps)
    print(f"median pruner: {saved:.0%} fewer training steps; best {OBJECTIVE} "
          f"{statistics.mean(plain_best):.4f} without, {statistics.mean(pruned_best):.4f} with (mean over seeds)")


if __name__ == "__main__":
    main()
