"""Data bigger than memory: a ResNet-20 job streamed by 2 DataLoader workers against a bare PyTorch
loop with the same DataLoader and model, and the peak memory of each, side by side in one run.

    python benchmarks/streaming.py [--n-train 50000] [--steps 60] [--repeats 2]

The set is CIFAR-10-shaped: n_train + 10,000 random 3x32x32 uint8 images in 10 classes, written
twice: as a folder of .npy files (memory-mapped, `data=npz`) and as a folder of PNG files
(`data=image_folder`, decoded by the workers). Nothing is downloaded.

Step time. wdsweep's job (`data.num_workers=2`, batch 128, per-channel standardization made per
batch, a validation split carved from train by index) gives (train_seconds - eval_seconds) / steps
from metrics.json. The bare loop reads the same rows through the same kind of loader (2 workers,
one batch of stored rows per worker task), scales them per channel, and trains the same ResNet with
SGD; its own timer covers its steps. Both run as fresh processes at torch's default thread
count. Target: wdsweep <= 1.05x the bare loop.

Peak memory. The resident set of each process, polled from /proc every 50 ms: the job's main
process, and the main process with its workers summed (pages that several processes share are
counted once per process: an upper bound); all of it (RSS, which counts the pages of the mapped
file a process touched: the kernel drops and rereads those as it needs) and its anonymous part
(what the process allocated). The figures to read them against
are the set's uint8 and float32 sizes, and a process that imported torch and built the model and
nothing else (its baseline). The job also evaluates (all 50,000 training rows at the start and
end, in chunks of 2,048), which the bare loop does not; evaluation activations count in its peak.
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

import numpy as np

BARE = r"""
import sys, time, json, numpy as np, torch
from torch.utils.data import DataLoader, Dataset
from wdsweep.train.models import ResNet
folder, steps = sys.argv[1], int(sys.argv[2])
x = np.load(folder + "/x_train.npy", mmap_mode="r")
y = torch.from_numpy(np.load(folder + "/y_train.npy").astype(np.int64))
class Rows(Dataset):
    def __len__(self): return len(x)
    def __getitem__(self, rows): return rows, torch.from_numpy(np.ascontiguousarray(x[np.sort(rows)]))
g = torch.Generator().manual_seed(1)
batches = (torch.randperm(len(x), generator=g)[:128].numpy() for _ in range(steps + 1))
loader = iter(DataLoader(Rows(), batch_size=None, sampler=batches, num_workers=2))
mean = torch.tensor([127.5] * 3).view(1, 3, 1, 1); std = torch.tensor([73.9] * 3).view(1, 3, 1, 1)
torch.manual_seed(0)
net = ResNet((3, 32, 32), 10)
opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, fused=True)
net.train()
rows, stored = next(loader)  # the workers started, as wdsweep's are before its first step
tic = time.perf_counter()
for step in range(steps):
    rows, stored = next(loader)
    inputs = ((stored.view(128, 3, 32, 32).float() - mean) / std).view(128, -1)
    loss = torch.nn.functional.cross_entropy(net(inputs), y[np.sort(rows.numpy())])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
print(json.dumps({"seconds": time.perf_counter() - tic}))
"""

BASELINE = r"""
import time, torch
from wdsweep.train.models import ResNet
net = ResNet((3, 32, 32), 10)
time.sleep(0.5)
"""

MB = 2**20


def write_sets(folder: Path, n_train: int, n_test: int, png: bool) -> dict:
    rng = np.random.default_rng(0)
    arrays = folder / "arrays"
    arrays.mkdir()
    for split, n in (("train", n_train), ("test", n_test)):
        # smooth-ish images (PNG sizes like real photos', not incompressible noise)
        base = rng.integers(0, 256, (n, 3, 8, 8), dtype=np.uint8)
        images = np.repeat(np.repeat(base, 4, axis=2), 4, axis=3)
        np.save(arrays / f"x_{split}.npy", images)
        np.save(arrays / f"y_{split}.npy", rng.integers(0, 10, n))
    paths = {"npy": arrays}
    if png:
        from PIL import Image

        root = folder / "png"
        for split in ("train", "test"):
            images = np.load(arrays / f"x_{split}.npy", mmap_mode="r")
            labels = np.load(arrays / f"y_{split}.npy")
            for label in range(10):
                (root / split / f"c{label}").mkdir(parents=True)
            for i, (image, label) in enumerate(zip(images, labels)):
                pixels = np.ascontiguousarray(image.transpose(1, 2, 0))
                Image.fromarray(pixels).save(root / split / f"c{label}" / f"{i}.png")
        paths["png"] = root
    return paths


def resident(pid: int, field: str = "VmRSS") -> int:
    """A process's resident memory: all of it (VmRSS), or its anonymous part (RssAnon: what it
    allocated, as against the pages of files it maps, which the kernel can drop and reread)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def children(pid: int) -> list:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def run_polled(command: list, cwd: Path) -> tuple:
    """(stdout, peaks): the peak resident memory of the main process, of it and its children
    summed, and the same for their anonymous memory."""
    out = open(cwd / "out.txt", "w+")
    proc = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    peaks = {"rss": 0, "rss+workers": 0, "anon": 0, "anon+workers": 0}
    while proc.poll() is None:
        kids = children(proc.pid)
        for field, name in (("VmRSS", "rss"), ("RssAnon", "anon")):
            main = resident(proc.pid, field)
            peaks[name] = max(peaks[name], main)
            peaks[name + "+workers"] = max(peaks[name + "+workers"], main + sum(resident(c, field) for c in kids))
        time.sleep(0.05)
    out.seek(0)
    text = out.read()
    if proc.returncode:
        raise SystemExit(f"{' '.join(map(str, command))} failed:\n{text[-3000:]}")
    return text, peaks


def wdsweep_job(data: list, steps: int, folder: Path, tag: str) -> tuple:
    run_dir = folder / tag
    args = [sys.executable, "-m", "wdsweep", *data, "model=resnet", "trainer.batch_size=128", f"trainer.steps={steps}",
            f"trainer.eval_every={steps}", "trainer.progress=false", "trainer.checkpoint_seconds=0",
            "trainer.save_model=false", f"hydra.run.dir={run_dir}"]
    _, peaks = run_polled(args, folder)
    record = json.loads((run_dir / "metrics.json").read_text())
    return (record["train_seconds"] - record["eval_seconds"]) / steps, peaks, record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-train", type=int, default=50000)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-png", action="store_true", help="skip the PNG folder (slow to write)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tic = time.perf_counter()
        paths = write_sets(folder, options.n_train, 10000, png=not options.no_png)
        os.sync()  # the writes' flushing to disk must not land in the first case's time
        print(f"sets written in {time.perf_counter() - tic:.0f} s")
        uint8 = (options.n_train + 10000) * 3 * 32 * 32
        npy = ["data=npz", f"data.path={paths['npy']}"]
        cases = {"wdsweep, memory-mapped .npy, 2 workers": [*npy, "data.num_workers=2"],
                 "wdsweep, memory-mapped .npy, in the job's process": npy}
        if "png" in paths:
            cases["wdsweep, PNG folder, 2 workers"] = ["data=image_folder", f"data.root={paths['png']}",
                                                       "data.num_workers=2"]
        step_times = {name: [] for name in [*cases, "bare loop, same loader, 2 workers"]}
        peaks = {}
        bare_name = "bare loop, same loader, 2 workers"
        for r in range(options.repeats):  # the cases alternate: a change of load hits them alike
            text, peaks[bare_name] = run_polled([sys.executable, "-c", BARE, str(paths["npy"]), str(options.steps)],
                                                folder)
            step_times[bare_name].append(json.loads(text.strip().splitlines()[-1])["seconds"] / options.steps)
            for name, data in cases.items():
                seconds, peaks[name], _ = wdsweep_job(data, options.steps, folder, f"{r}-{len(name)}")
                step_times[name].append(seconds)
        _, base = run_polled([sys.executable, "-c", BASELINE], folder)
        bare = statistics.median(step_times[bare_name])
        print(f"\nResNet-20, batch 128, {options.steps} steps, {options.n_train:,} training images; "
              f"{os.cpu_count()} cores; medians of {options.repeats}; peak memory in MB (the last repeat's)")
        print(f"{'':<50} {'step ms':>8} {'x bare':>7} {'RSS':>6} {'+workers':>9} {'anon':>6} {'+workers':>9}")
        for name, times in step_times.items():
            t, p = statistics.median(times), peaks[name]
            print(f"{name:<50} {1000 * t:>8.1f} {t / bare:>7.3f} {p['rss'] / MB:>6.0f} {p['rss+workers'] / MB:>9.0f} "
                  f"{p['anon'] / MB:>6.0f} {p['anon+workers'] / MB:>9.0f}")
        print(f"\nthe set: {uint8 / MB:.0f} MB as uint8, {4 * uint8 / MB:.0f} MB as float32; "
              f"python + torch + ResNet-20 alone: {base['rss'] / MB:.0f} MB resident, {base['anon'] / MB:.0f} MB anon")


if __name__ == "__main__":
    main()
