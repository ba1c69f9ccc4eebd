"""Where a CUDA GPU exists: does wdsweep train there as on the CPU, and how much faster?

Runs, each as real `python -m wdsweep` sweeps, once with trainer.device=cpu and once with
trainer.device=cuda:
1. the README's main job (experiment=lp_vs_global: 57 trainings of the article's MLP);
2. a small ResNet-20 sweep on CIFAR-10-shaped random images (reg.lam=0,5e-4 x seed=0,1, 200 steps
   in batches of 128);
and the main job a third time on the GPU with hydra/launcher=vectorized. It checks that each
configuration's test error (and the ResNet's final training loss) on the GPU is within
TOLERANCE of the CPU's, and prints the GPU's speed-up over the CPU and the vectorized
launcher's over one job at a time on the GPU. Elsewhere it prints "no GPU" and exits 0.
Unattended, under 10 minutes on one GPU; the exit status is 1 if any check fails.

    python benchmarks/gpu_check.py

(Written on a machine without a GPU: its GPU path has not run yet.)
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from synthetic_jobs import cifar_shaped

# GPU against CPU: float32 kernels that sum in another order drift apart over thousands of
# steps; a relative 5% on a configuration's test error (or final training loss) is the claim.
TOLERANCE = 0.05


def sweep(args, folder: Path, name: str) -> tuple:
    """Run a sweep; (wall seconds, {job folder name: metrics.json})."""
    out = folder / name
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "wdsweep", "-m", *args, "trainer.progress=false", f"hydra.sweep.dir={out}"],
                   check=True, capture_output=True, cwd=folder)
    seconds = time.perf_counter() - start
    return seconds, {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/metrics.json")}


def compare(cpu: dict, gpu: dict, key: str) -> list:
    """The configurations whose `key` differs by more than TOLERANCE (relative), as lines."""
    bad = []
    for name, record in cpu.items():
        a, b = record.get(key), gpu.get(name, {}).get(key)
        if a is None or b is None or abs(a - b) > TOLERANCE * max(abs(a), 1e-12):
            bad.append(f"  {name}: {key} cpu={a} cuda={b}")
    return bad


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print(f"no GPU: torch {torch.__version__} sees no CUDA device; nothing to check")
        return 0
    print(f"GPU: {torch.cuda.get_device_name(0)} (torch {torch.__version__})")
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        npz = cifar_shaped(folder, n_train=4096, n_test=1024)
        main_job = ["experiment=lp_vs_global"]
        resnet = ["model=resnet", "data=npz", f"data.path={npz}", "trainer.batch_size=128", "trainer.steps=200",
                  "trainer.eval_every=100", "reg.lam=0,5e-4", "seed=0,1"]
        rows, on_gpu = [], {}
        for label, args, key in (("main job (57 MLPs)", main_job, "test_error"),
                                 ("ResNet-20 sweep (4 jobs)", resnet, "train_loss")):
            cpu_s, cpu = sweep([*args, "trainer.device=cpu"], folder, f"{len(rows)}-cpu")
            gpu_s, gpu = sweep([*args, "trainer.device=cuda"], folder, f"{len(rows)}-cuda")
            on_gpu[label] = gpu
            bad = compare(cpu, gpu, key)
            failures += bad
            rows.append((label, cpu_s, gpu_s, "ok" if not bad else f"{len(bad)} outside {TOLERANCE:.0%}"))
        vec_s, vec = sweep([*main_job, "trainer.device=cuda", "hydra/launcher=vectorized"], folder, "vectorized")
        failures += compare(on_gpu["main job (57 MLPs)"], vec, "test_error")
    print(f"{'sweep':<26} {'cpu s':>8} {'cuda s':>8} {'speed-up':>9}  agreement")
    for label, cpu_s, gpu_s, verdict in rows:
        print(f"{label:<26} {cpu_s:>8.1f} {gpu_s:>8.1f} {cpu_s / gpu_s:>8.2f}x  {verdict}")
    print(f"vectorized launcher on the GPU, main job: {vec_s:.1f} s, {rows[0][2] / vec_s:.2f}x one job at a time")
    if failures:
        print("outside the tolerance:\n" + "\n".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
