"""The thread default (`trainer.threads=null`) against fixed counts, alone and beside busy
neighbours, side by side in one run.

    python benchmarks/thread_default.py [--repeats 3] [--neighbours 0 1 3]

For each number of neighbours (other processes training a torch MLP with torch's default
thread count, as a second sweep would), one job runs with trainer.threads=1, =2 and null, in
turns, `--repeats` times; the figure is the median training time from each job's
metrics.json (what the thread count changes; start-up is the same for all). Target: the
default within 1.15x of the best fixed count in every case.

Workloads: the weight-decay article's net and run (`experiment=seed_regression reg=global`,
2000 full-batch steps of a tiny net: two threads barely help; shorter runs are too short to
time) and the digits MLP for 300 steps (where two threads are up to 1.8x faster alone).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKLOADS = {
    "article MLP, 2000 steps": ["experiment=seed_regression", "reg=global"],
    "digits MLP, 300 steps": ["data=digits", "trainer.steps=300", "trainer.eval_every=300"],
}
SETTINGS = {"threads=1": "1", "threads=2": "2", "default (null)": "null"}

NEIGHBOUR = """
import torch
net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                          torch.nn.ReLU(), torch.nn.Linear(256, 10))
opt = torch.optim.SGD(net.parameters(), lr=1e-3)
x, y = torch.randn(128, 64), torch.randint(0, 10, (128,))
while True:
    opt.zero_grad(); torch.nn.functional.cross_entropy(net(x), y).backward(); opt.step()
"""


def train_seconds(overrides: list, threads: str, workdir: Path) -> tuple:
    out = Path(tempfile.mkdtemp(dir=workdir))
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    subprocess.run([sys.executable, "-m", "wdsweep", *overrides, f"trainer.threads={threads}",
                    "trainer.progress=false", f"hydra.run.dir={out}"], check=True, cwd=workdir,
                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    record = json.loads((out / "metrics.json").read_text())
    return record["train_seconds"], record["torch_threads"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--neighbours", type=int, nargs="+", default=[0, 1, 3])
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"median training seconds of {args.repeats}")
    print(f"| workload | busy neighbours | {' | '.join(SETTINGS)} | default / best fixed | default chose |")
    print(f"|---|---|{'---|' * len(SETTINGS)}---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.neighbours:
            neighbours = [subprocess.Popen([sys.executable, "-c", NEIGHBOUR], env=env)
                          for _ in range(n)]
            try:
                time.sleep(2.0 if n else 0.0)  # let them get going
                for name, overrides in WORKLOADS.items():
                    times = {s: [] for s in SETTINGS}
                    chosen = []
                    for _ in range(args.repeats):
                        for setting, value in SETTINGS.items():
                            seconds, threads = train_seconds(overrides, value, Path(tmp))
                            times[setting].append(seconds)
                            if value == "null":
                                chosen.append(threads)
                    med = {s: statistics.median(v) for s, v in times.items()}
                    best = min(med["threads=1"], med["threads=2"])
                    print(f"| {name} | {n} | " + " | ".join(f"{med[s]:.2f} s" for s in SETTINGS)
                          + f" | **{med['default (null)'] / best:.2f}x** | {chosen} threads |",
                          flush=True)
            finally:
                for p in neighbours:
                    p.kill()
                    p.wait()


if __name__ == "__main__":
    main()
