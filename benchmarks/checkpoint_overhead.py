"""What checkpoints cost: the training time of a job with `trainer.checkpoint_every=500` against
the same job without checkpoints, side by side in one run, for ResNet-20 on CIFAR-10-shaped
images (the issue's target: at most 2%) and for the article's MLP (a fast step, so the worst case
of a fixed interval).

Each job runs as a real process (`python -m wdsweep`), `--repeats` times, alternating with the
other so that a change of load hits both alike; the time is the job's train_seconds less its
eval_seconds, from metrics.json (the checkpoints are written inside that time).

    python benchmarks/checkpoint_overhead.py --repeats 3
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from synthetic_jobs import cifar_shaped, run_job


def train_seconds(args, folder: Path, tag: str) -> float:
    record = run_job(args, folder, tag)
    return record["train_seconds"] - record["eval_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--resnet-steps", type=int, default=1000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        npz = cifar_shaped(folder)
        cases = {
            f"ResNet-20, batch 64, {options.resnet_steps} steps": [
                "model=resnet", "data=npz", f"data.path={npz}", "trainer.batch_size=64",
                f"trainer.steps={options.resnet_steps}", f"trainer.eval_every={options.resnet_steps}"],
            "MLP 1-200-200-200-1 (the article), 2000 steps": ["trainer.eval_every=2000"],
        }
        settings = {"no checkpoint": ["trainer.checkpoint_seconds=0"],
                    "checkpoint_every=500": ["trainer.checkpoint_seconds=0", "trainer.checkpoint_every=500"]}
        times = {(c, s): [] for c in cases for s in settings}
        for r in range(options.repeats):
            for c, args in cases.items():
                for s, extra in settings.items():
                    times[c, s].append(train_seconds([*args, *extra], folder, f"{r}-{len(c)}-{len(s)}"))
        print(f"{'case':<48} {'setting':<22} {'train s':>9} {'x none':>7}")
        for c in cases:
            base = statistics.median(times[c, "no checkpoint"])
            for s in settings:
                t = statistics.median(times[c, s])
                print(f"{c:<48} {s:<22} {t:>9.2f} {t / base:>7.3f}")


if __name__ == "__main__":
    main()
