"""Does replicated search pay? Three ways to pick a regularizer at an equal training budget,
each judged by the fresh-seed test error of the configuration it picks.

    python benchmarks/replicated_search.py [--repeats 3] [--eval-seeds 10] [--workdir DIR]

On experiment=lp_vs_global (digits, coupled decay) with a budget of 72 training runs:
  grid        the experiment's own grid, 4 lam x 2 scopes x 3 p x 3 seeds; picks the lowest mean
              validation error over its seeds (lam = 0 included)
  tpe-1seed   TPE, 72 trials of one seed each; picks the study's best trial
  tpe-3seeds  TPE, 20 trials of 3 seeds each (hydra.sweeper.seeds), then the 3 best re-run on 4
              fresh seeds (hydra.sweeper.finalists); picks the finalist with the lowest fresh
              validation error
The TPE searches cover the grid's ranges, continuous: lam log-uniform in [1e-5, 1e-2], p in
[1, 3], scope weights or all. Each method is repeated --repeats times with other training seeds
(and sampler seeds); every pick is then trained on --eval-seeds seeds none of them used
(1000, 1001, ...), and its mean test error there is the method's score for that repeat. The
table gives the mean and spread over repeats, the search's own claimed validation error beside
the picked configuration's fresh one (the winner's curse), and the compute: training runs and
the CPU seconds their training loops took (metrics.json's train_seconds).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import optuna
import yaml
from optuna.storages.journal import JournalFileBackend

BASE = ["experiment=lp_vs_global", "reg.mode=coupled", "hydra/launcher=vectorized"]
CONTINUOUS = ["reg.lam=tag(log,interval(1e-5,1e-2))", "reg.scope=choice(weights,all)", "reg.p=interval(1,3)"]
KEYS = ("reg.lam", "reg.p", "reg.scope")


def wdsweep(workdir: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "wdsweep", "-m", *BASE, *args], cwd=workdir, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONHASHSEED": "0"})


def records(folder: Path) -> List[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("metrics.json"))]


def compute(folder: Path) -> Dict[str, float]:
    """Training runs and their training-loop seconds (records of another job's result trained nothing)."""
    trained = [r for r in records(folder) if "same_as" not in r]
    return {"runs": len(trained), "train_seconds": sum(r.get("train_seconds") or 0.0 for r in trained)}


def params_of(config: dict) -> Dict[str, object]:
    return {"reg.lam": config["reg"]["lam"], "reg.p": config["reg"]["p"], "reg.scope": config["reg"]["scope"]}


def grid(workdir: Path, r: int, seeds: List[int]) -> dict:
    folder = workdir / f"grid-{r}"
    wdsweep(workdir, f"seed={','.join(map(str, seeds))}", f"hydra.sweep.dir={folder}")
    by_config: Dict[tuple, List[float]] = {}
    for record in records(folder):
        key = tuple(params_of(record["config"]).items())
        by_config.setdefault(key, []).append(record["val_error"])
    key, values = min(by_config.items(), key=lambda kv: (statistics.mean(kv[1]), str(kv[0])))
    return {"pick": dict(key), "claimed": statistics.mean(values), **compute(folder)}


def study(workdir: Path, name: str) -> optuna.Study:
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(workdir / f"{name}.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def tpe(workdir: Path, r: int, name: str, *args: str) -> Path:
    folder = workdir / f"{name}-{r}"
    wdsweep(workdir, "search=optuna", *CONTINUOUS, f"hydra.sweeper.sampler.seed={r}",
            f"hydra.sweeper.study_name={name}-{r}", f"hydra.sweeper.storage_dir={workdir}",
            f"hydra.sweep.dir={folder}", *args)
    return folder


def tpe_one_seed(workdir: Path, r: int, seed: int) -> dict:
    folder = tpe(workdir, r, "tpe1", f"seed={seed}", "hydra.sweeper.n_trials=72", "hydra.sweeper.n_jobs=8")
    best = study(workdir, f"tpe1-{r}").best_trial
    return {"pick": {k: best.params[k] for k in KEYS}, "claimed": best.value, **compute(folder)}


def tpe_replicated(workdir: Path, r: int, seeds: List[int]) -> dict:
    folder = tpe(workdir, r, "tpe3", f"hydra.sweeper.seeds=[{','.join(map(str, seeds))}]",
                 "hydra.sweeper.n_trials=20", "hydra.sweeper.n_jobs=4", "hydra.sweeper.finalists=3",
                 "hydra.sweeper.finalist_seeds=4")
    finalists = yaml.safe_load((folder / "finalists.yaml").read_text())["finalists"]
    best = min((f for f in finalists if f["fresh"]["objective"]), key=lambda f: f["fresh"]["objective"]["mean"])
    # claimed: what the search itself said of its pick (as for the other two methods)
    return {"pick": {k: best["params"][k] for k in KEYS}, "claimed": best["search_value"], **compute(folder)}


def evaluate(workdir: Path, label: str, pick: dict, seeds: List[int]) -> dict:
    folder = workdir / f"eval-{label}"
    wdsweep(workdir, *(f"{k}={v!r}" if isinstance(v, float) else f"{k}={v}" for k, v in pick.items()),
            f"seed={','.join(map(str, seeds))}", f"hydra.sweep.dir={folder}")
    done = records(folder)
    return {key: statistics.mean(r[key] for r in done) for key in ("val_error", "test_error")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eval-seeds", type=int, default=10)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="replicated-search-"))
    workdir.mkdir(parents=True, exist_ok=True)
    eval_seeds = list(range(1000, 1000 + args.eval_seeds))
    rows: Dict[str, List[dict]] = {"grid": [], "tpe-1seed": [], "tpe-3seeds": []}
    for r in range(args.repeats):
        seeds = [10 * r, 10 * r + 1, 10 * r + 2]  # this repeat's training seeds
        for method, run in (("grid", lambda: grid(workdir, r, seeds)),
                            ("tpe-1seed", lambda: tpe_one_seed(workdir, r, seeds[0])),
                            ("tpe-3seeds", lambda: tpe_replicated(workdir, r, seeds))):
            tic = time.perf_counter()
            row = run()
            row["wall_seconds"] = time.perf_counter() - tic
            row.update(evaluate(workdir, f"{method}-{r}", row["pick"], eval_seeds))
            rows[method].append(row)
            print(f"{method} repeat {r}: pick {row['pick']} claimed val {row['claimed']:.4f} -> fresh val "
                  f"{row['val_error']:.4f} test {row['test_error']:.4f} ({row['runs']} runs, "
                  f"{row['train_seconds']:.0f} s training, {row['wall_seconds']:.0f} s wall)", flush=True)

    def spread(values: List[float]) -> str:
        return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}" if len(values) > 1 \
            else f"{values[0]:.4f}"

    print(f"\n{args.repeats} repeats, each pick evaluated on {len(eval_seeds)} fresh seeds "
          "(mean ± std over repeats):\n")
    print("| method | fresh test error | fresh val error | claimed val error | training runs | training s | wall s |")
    print("|---|---|---|---|---|---|---|")
    for method, done in rows.items():
        print(f"| {method} | {spread([d['test_error'] for d in done])} | {spread([d['val_error'] for d in done])} | "
              f"{spread([d['claimed'] for d in done])} | {statistics.mean(d['runs'] for d in done):.0f} | "
              f"{statistics.mean(d['train_seconds'] for d in done):.0f} | "
              f"{statistics.mean(d['wall_seconds'] for d in done):.0f} |")
    print(f"\nworkdir: {workdir}")


if __name__ == "__main__":
    main()
