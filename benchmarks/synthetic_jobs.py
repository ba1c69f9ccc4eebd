"""What the benchmarks that run real jobs share: a CIFAR-10-shaped set of random uint8 images as
data=npz reads it, and one `python -m wdsweep` job run as a process, its metrics.json returned."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import numpy as np


def cifar_shaped(folder: Path, n_train: int = 2048, n_test: int = 256) -> Path:
    """n_train + n_test random 3x32x32 uint8 images with 10 labels, in folder/cifar_shaped.npz."""
    rng = np.random.default_rng(0)
    path = folder / "cifar_shaped.npz"
    np.savez(path, x_train=rng.integers(0, 256, (n_train, 3, 32, 32), dtype=np.uint8),
             y_train=rng.integers(0, 10, n_train), x_test=rng.integers(0, 256, (n_test, 3, 32, 32), dtype=np.uint8),
             y_test=rng.integers(0, 10, n_test))
    return path


def run_job(args: Sequence[str], folder: Path, tag: str) -> dict:
    """One job in folder/tag (no progress bar), as a process; its metrics.json."""
    run_dir = folder / tag
    subprocess.run([sys.executable, "-m", "wdsweep", *args, "trainer.progress=false", f"hydra.run.dir={run_dir}"],
                   check=True, capture_output=True, cwd=folder)
    return json.loads((run_dir / "metrics.json").read_text())
