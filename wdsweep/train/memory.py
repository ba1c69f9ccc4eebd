"""Will a job fit in memory: what its data and model need, against what this machine has.

Checked before any job starts (wdsweep.config.validation), so that `data.n_train=2000000000` is one
line, not a process that swaps for minutes until the kernel kills it. The estimate counts
what wdsweep itself allocates and is sure to: the generated data sets' splits (regression1d,
moons: float32 inputs and their targets) and the model's parameters four times over
(weights, gradients, and two optimizer moments for Adam, or momentum and a spare for SGD).
Activations, a csv's or a user loader's own arrays (already read when this runs) and the
vectorized launcher's K members are not counted: the figure is a floor, so what it refuses
cannot fit, and what it passes may still not.

A job that will train on a CUDA GPU of this machine is also checked against the GPU's free
memory (`gpu_memory_problem`): the model four times over again, and the splits a job moves to
the device whole (all but those that `data.num_workers` workers read per batch). Where the
GPU is another machine's (a Slurm launcher's node), the job is not checked here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from omegaconf import DictConfig

GIB = 2**30
# weights, gradients, and the optimizer's two per-parameter buffers, in float32
BYTES_PER_PARAMETER = 4 * 4


def available_bytes() -> Optional[int]:
    """Memory this process may still take: MemAvailable, or less under a cgroup v2 limit;
    None where neither can be read."""
    figures = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                figures.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            figures.append(max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    return min(figures) if figures else None


def _generated_rows(data: DictConfig) -> Optional[dict]:
    """The row counts of a data set wdsweep draws itself, by key; None for files and loaders."""
    if "_target_" in data or data.get("name") not in ("regression1d", "moons"):
        return None
    return {f"data.n_{split}": int(data.get(f"n_{split}")) for split in ("train", "val", "test")}


def memory_problem(cfg: DictConfig, n_features: int, n_parameters: int) -> Optional[str]:
    """Why this job cannot fit in the memory available now (one line naming the key), or None."""
    available = available_bytes()
    if available is None:
        return None
    rows = _generated_rows(cfg.data)
    data_bytes = device_data_bytes(cfg, n_features) if rows else 0
    model_bytes = n_parameters * BYTES_PER_PARAMETER
    if data_bytes + model_bytes <= available:
        return None
    have = f"{available / GIB:.1f} GiB are available"
    if data_bytes >= model_bytes:
        key = max(rows, key=rows.get)
        return (f"{key}={rows[key]} is not allowed: the splits would need about "
                f"{data_bytes / GIB:,.1f} GiB of memory and {have}")
    return (f"model={_label(cfg.model)} is not allowed here: its {n_parameters:,} parameters need about "
            f"{model_bytes / GIB:,.1f} GiB with their gradients and optimizer state, and {have}")


def device_data_bytes(cfg: DictConfig, n_features: int, splits=None) -> int:
    """The bytes of data a job moves to its device whole: the generated sets' splits by their
    sizes, a loader's (`splits`) by its tensors; none when workers read them per batch."""
    if int(cfg.data.get("num_workers", 0) or 0) > 0:
        return 0
    if splits is not None:
        import torch

        tensors = [*splits.x.values(), *splits.y.values()]
        return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))
    rows = _generated_rows(cfg.data)
    return sum(rows.values()) * (n_features * 4 + 8) if rows else 0


def gpu_memory_problem(needed: int, free_by_gpu: dict, device: str) -> Optional[str]:
    """Why a job needing `needed` bytes on the GPU cannot train on `device` (one line), or None.
    `free_by_gpu`: each visible GPU's free bytes by index; `cuda` and `auto` take any of them
    (a job is given one by its slot: the roomiest decides), `cuda:N` that one."""
    if not free_by_gpu:
        return None
    if device.startswith("cuda:"):
        index = int(device.split(":", 1)[1])
        free, where = free_by_gpu.get(index, 0), f"GPU {index} has"
    else:
        index = max(free_by_gpu, key=free_by_gpu.get)
        free, where = free_by_gpu[index], f"the roomiest GPU ({index}) has"
    if needed <= free:
        return None
    return (f"trainer.device={device} is not allowed here: the job needs about {needed / GIB:,.1f} GiB of GPU "
            f"memory (its parameters with their gradients and optimizer state, and its data), and {where} "
            f"{free / GIB:,.1f} GiB free (data.num_workers > 0 keeps the data off the GPU)")


def free_gpu_memory() -> dict:
    """Each visible CUDA GPU's free bytes, by index; {} without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return {}
    return {i: torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())}


def _label(model: DictConfig) -> str:
    from wdsweep.train.models import model_label

    return model_label(model)

