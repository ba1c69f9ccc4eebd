"""One ResNet-20 job on CIFAR-shaped data against a bare PyTorch loop of the same model, data
pipeline and optimizer, side by side in one run.

    python benchmarks/resnet_step.py [--steps 100] [--repeats 2] [--n-train 5000] [--decay l2 l1]

Data: random 32x32x3 images in 10 classes, written to an .npz (nothing is downloaded), read by
`data=npz` (standardized per channel, float32 rows in memory). Both sides train
`wdsweep.models.ResNet` (depth 20) with SGD (lr 0.1, momentum 0.9, torch's fused kernel, as
wdsweep's default) on batches of 128 drawn the same way (reshuffled passes, an index_select
per batch), with weight-only decay: L2 (coupled, torch's weight_decay on the decayed group)
and L1 (coupled: lam * sign(w) added to the gradients in one foreach kernel). The figure is
the time per training step: wdsweep's (train_seconds - eval_seconds) / steps from
metrics.json, the bare loop's own timer around the same steps; both run in fresh processes
at torch's default thread count. Target: wdsweep <= 1.05x the bare loop.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

BARE = r"""
import sys, time, json, numpy as np, torch
from wdsweep.train.models import ResNet
from wdsweep.train.training import BatchSampler
path, steps, penalty, lam = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
with np.load(path) as f:
    x, y = f["x_train"].astype(np.float32), f["y_train"]
x = x.reshape(len(x), 3, -1)
mean, std = x.mean(axis=(0, 2), keepdims=True), x.std(axis=(0, 2), keepdims=True)
x = torch.from_numpy(((x - mean) / std).reshape(len(x), -1).astype(np.float32))
y = torch.from_numpy(y.astype(np.int64))
torch.manual_seed(0)
net = ResNet((3, 32, 32), 10)
decayed = [p for p in net.parameters() if p.dim() >= 2]
kept = [p for p in net.parameters() if p.dim() < 2]
groups = [{"params": decayed, "weight_decay": lam if penalty == "l2" else 0.0},
          {"params": kept, "weight_decay": 0.0}]
opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9, fused=True)
sampler = BatchSampler(len(y), 128, torch.Generator().manual_seed(1))
net.train()
tic = time.perf_counter()
for step in range(steps):
    rows = sampler.next()
    loss = torch.nn.functional.cross_entropy(net(x[rows]), y[rows])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if penalty == "l1":
        torch._foreach_add_([p.grad for p in decayed], torch._foreach_sign(decayed), alpha=lam)
    opt.step()
print(json.dumps({"seconds": time.perf_counter() - tic, "threads": torch.get_num_threads()}))
"""

PENALTIES = {"l2": ["reg.p=2", "reg.lam=5e-4"], "l1": ["reg.p=1", "reg.lam=1e-5"]}
LAMS = {"l2": 5e-4, "l1": 1e-5}


def write_data(path: Path, n_train: int) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, n_train + 1000)
    x = rng.integers(0, 256, (n_train + 1000, 3, 32, 32), dtype=np.uint8)
    np.savez(path, x_train=x[:n_train], y_train=y[:n_train], x_test=x[n_train:], y_test=y[n_train:])


def env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def wdsweep_step(data: Path, steps: int, penalty: str, workdir: Path) -> float:
    out = Path(tempfile.mkdtemp(dir=workdir))
    subprocess.run([sys.executable, "-m", "wdsweep", "data=npz", f"data.path={data}", "data.val_fraction=0.1",
                    "model=resnet", "optimizer.lr=0.1", "trainer.batch_size=128", f"trainer.steps={steps}",
                    f"trainer.eval_every={steps}", "trainer.progress=false", "reg.scope=weights",
                    *PENALTIES[penalty], f"hydra.run.dir={out}"], check=True, cwd=workdir, env=env(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    record = json.loads((out / "metrics.json").read_text())
    return (record["train_seconds"] - record["eval_seconds"]) / steps


def bare_step(data: Path, steps: int, penalty: str) -> float:
    done = subprocess.run([sys.executable, "-c", BARE, str(data), str(steps), penalty, str(LAMS[penalty])],
                          check=True, capture_output=True, text=True, env=env())
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"] / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--decay", nargs="+", choices=sorted(PENALTIES), default=list(PENALTIES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "cifar_shaped.npz"
        write_data(data, args.n_train)
        print(f"ResNet-20, batch 128, {args.steps} steps, {os.cpu_count()} cores; median of {args.repeats}")
        print("| decay | bare loop, ms/step | wdsweep, ms/step | wdsweep / bare |")
        print("|---|---|---|---|")
        for penalty in args.decay:
            bare, ours = [], []
            for _ in range(args.repeats):
                bare.append(bare_step(data, args.steps, penalty))
                ours.append(wdsweep_step(data, args.steps, penalty, Path(tmp)))
            b, o = statistics.median(bare), statistics.median(ours)
            print(f"| weight-only {penalty.upper()} | {1e3 * b:.1f} | {1e3 * o:.1f} | **{o / b:.3f}x** |", flush=True)


if __name__ == "__main__":
    main()
