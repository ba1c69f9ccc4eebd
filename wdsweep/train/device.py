"""trainer.device: where a job trains, as one torch.device that the job hands to everything.

- `auto` (the default): CUDA when torch sees a GPU, else the CPU. (Apple's MPS only when asked
  for: its kernels differ from the CPU's more than a default should.)
- `cpu`, `cuda`, `cuda:N`, `mps`.
- Several GPUs and jobs in parallel: `auto` and `cuda` give a job the GPU `slot mod count`,
  where the slot is the worker's index in worker mode (hydra.sweeper.workers=N sets
  ENV_GPU_SLOT in each worker) and else the job's number (hydra.job.num): with
  hydra/launcher=joblib and n_jobs equal to the number of GPUs, the jobs running at once are
  consecutive numbers, so each has a GPU of its own. `cuda:N` is taken as given; a Slurm job
  sees only the GPUs it was given (CUDA_VISIBLE_DEVICES), so its `cuda` is its own GPU.

The model is built on the CPU (its initial weights come from the CPU's random stream, the same
on every device) and moved once; the data are moved once; the batch order and augmentation
draws stay on CPU generators. On the CPU nothing here changes a number.

No torch at import: validation asks `device_problem` before anything is built.
"""
from __future__ import annotations

import os
import platform
import re
from functools import lru_cache
from typing import Optional

ENV_GPU_SLOT = "WDSWEEP_GPU_SLOT"  # a worker's index, set by worker mode for each worker
_SETTING = re.compile(r"^(auto|cpu|cuda|mps|cuda:\d+)$")
ALLOWED = "auto, cpu, cuda, cuda:N or mps"


def device_problem(setting: object, this_machine: bool = True) -> Optional[str]:
    """Why `setting` cannot be used (the rest of the one-line refusal after
    "trainer.device=... is not allowed: "), or None: its spelling, and with `this_machine`
    whether this machine's torch has that device. Imports torch only for cuda and mps."""
    if not isinstance(setting, str) or not _SETTING.match(setting):
        return ALLOWED
    return _machine_problem(setting) if this_machine else None


@lru_cache(maxsize=None)  # a sweep validates every job: ask torch once per setting
def _machine_problem(setting: str) -> Optional[str]:
    if setting in ("auto", "cpu"):
        return None
    import torch

    if setting == "mps":
        if not torch.backends.mps.is_available():
            return f"this machine's torch ({torch.__version__}) has no MPS device: auto, cpu or cuda"
        return None
    if not torch.cuda.is_available():
        return f"this machine's torch ({torch.__version__}) sees no CUDA GPU: auto or cpu"
    if ":" in setting and int(setting.split(":")[1]) >= torch.cuda.device_count():
        return f"this machine's torch sees {torch.cuda.device_count()} CUDA GPU(s): cuda:0 to " \
               f"cuda:{torch.cuda.device_count() - 1}, cuda or auto"
    return None


def gpu_slot(job_num: Optional[int], count: int) -> int:
    """Which of `count` GPUs a job takes: the worker's slot (ENV_GPU_SLOT), else the job's
    number, modulo the count."""
    slot = os.environ.get(ENV_GPU_SLOT)
    index = int(slot) if slot is not None and slot.isdigit() else (job_num or 0)
    return index % max(count, 1)


def resolve_device(setting: str, job_num: Optional[int] = None):
    """The torch.device a job with trainer.device=`setting` trains on (see the module)."""
    import torch

    if setting == "cpu" or (setting == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if setting == "mps":
        return torch.device("mps")
    if setting.startswith("cuda:"):
        return torch.device(setting)
    return torch.device("cuda", gpu_slot(job_num, torch.cuda.device_count()))


def device_name(device) -> str:
    """What metrics.json records beside the device: the GPU's name, or the CPU's model."""
    if device.type == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return _cpu_name()


@lru_cache(maxsize=1)
def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"
