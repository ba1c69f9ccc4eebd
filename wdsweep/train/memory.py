"""Will a job fit in memory: what its data and model need, against what this machine has.

Checked before any job starts (wdsweep.config.validation), so that `data.n_train=2000000000` is one
line, not a process that swaps for minutes until the kernel kills it. The estimate counts
what wdsweep itself allocates and is sure to: the generated data sets' splits (regression1d,
moons: float32 inputs and their targets) and the model's parameters four times over
(weights, gradients, and two optimizer moments for Adam, or momentum and a spare for SGD).
Activations, a csv's or a user loader's own arrays (already read when this runs) and the
vectorized launcher's K members are not counted: the figure is a floor, so what it refuses
cannot fit, and what it passes may still not.
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
    data_bytes = sum(rows.values()) * (n_features * 4 + 8) if rows else 0
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


def _label(model: DictConfig) -> str:
    from wdsweep.train.models import model_label

    return model_label(model)

