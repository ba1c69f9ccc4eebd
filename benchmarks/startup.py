"""What a `python -m wdsweep` start costs before any training, side by side in one run.

A command that only refuses a value, plans a dry run or refuses a sweep should cost what it
needs (Hydra, and torch where validation builds the model on the meta device), never the
training machinery (the loop, the job runner, torch._dynamo, which torch's optimizers import
at their first step). Each command runs `--repeats` times, alternating with the others so that
a change of load hits them all alike; the table gives the median wall time and its ratio to
`python -c "import torch"`, the floor of any command that builds a model.

    python benchmarks/startup.py --repeats 5
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    'python -c "import torch"': [sys.executable, "-c", "import torch"],
    "wdsweep reg.lam=-1 (refused run)": [sys.executable, "-m", "wdsweep", "reg.lam=-1"],
    "wdsweep -m reg.p=1,2,-1 (refused sweep)": [sys.executable, "-m", "wdsweep", "-m", "reg.p=1,2,-1"],
    "wdsweep -m reg.p=1,2 dry run": [sys.executable, "-m", "wdsweep", "-m", "reg.p=1,2", "hydra.sweeper.dry_run=true"],
    "wdsweep -m search=optuna dry run": [sys.executable, "-m", "wdsweep", "-m", "search=optuna",
                                         "hydra.sweeper.dry_run=true"],
    "wdsweep trainer.steps=1 (one step)": [sys.executable, "-m", "wdsweep", "trainer.steps=1", "trainer.eval_every=1",
                                           "hydra.run.dir=one-step"],
}
FLOOR = 'python -c "import torch"'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    seconds = {name: [] for name in COMMANDS}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeats):
            for name, command in COMMANDS.items():
                tic = time.perf_counter()
                subprocess.run(command, cwd=folder, capture_output=True, check=False)
                seconds[name].append(time.perf_counter() - tic)
    floor = statistics.median(seconds[FLOOR])
    print(f"| command | median of {args.repeats} | / import torch |")
    print("|---|---|---|")
    for name, times in seconds.items():
        median = statistics.median(times)
        print(f"| {name} | {median:.2f} s | {median / floor:.2f}x |")


if __name__ == "__main__":
    main()
