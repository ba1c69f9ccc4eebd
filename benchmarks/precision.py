"""trainer.precision on this machine: the step time of bf16-mixed (and 16-mixed) against 32,
side by side in one run, for the article's MLP and for ResNet-20 on CIFAR-10-shaped images.

Each configuration runs as a real job (`python -m wdsweep`, in a process of its own), `--repeats`
times, alternating with the others so that a change of load hits them all alike; the step time
is the job's train_seconds (its evaluations left out) over its steps, from metrics.json, and the
table gives the median and its ratio to 32.

    python benchmarks/precision.py --repeats 3
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from synthetic_jobs import cifar_shaped, run_job

PRECISIONS = ("32", "bf16-mixed", "16-mixed")


def step_seconds(args, folder: Path, tag: str) -> float:
    record = run_job([*args, "trainer.save_model=false"], folder, tag)
    return (record["train_seconds"] - record["eval_seconds"]) / record["steps"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    # 16-mixed on a CPU runs float16 convolutions without hardware support: minutes for a few
    # ResNet steps here, so it is measured only when asked for.
    parser.add_argument("--precisions", nargs="+", default=["32", "bf16-mixed"], choices=PRECISIONS)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        npz = cifar_shaped(folder)
        steps = [f"trainer.steps={options.steps}", f"trainer.eval_every={options.steps}"]
        cases = {
            "MLP 1-200-200-200-1, full batch of 10 (the article)": [*steps],
            "ResNet-20, batch 64 of 3x32x32": [*steps, "model=resnet", "data=npz", f"data.path={npz}",
                                              "trainer.batch_size=64"],
        }
        times = {(case, p): [] for case in cases for p in options.precisions}
        for r in range(options.repeats):
            for case, args in cases.items():
                for p in options.precisions:
                    tag = f"{r}-{p}-{len(case)}"
                    times[case, p].append(step_seconds([*args, f"trainer.precision={p}"], folder, tag))
        print(f"{'case':<52} {'precision':<11} {'step (ms)':>10} {'x 32':>7}")
        for case in cases:
            base = statistics.median(times[case, "32"])
            for p in options.precisions:
                t = statistics.median(times[case, p])
                print(f"{case:<52} {p:<11} {1000 * t:>10.2f} {t / base:>7.2f}")


if __name__ == "__main__":
    main()
