"""How many torch threads a job gets, and whether its numbers depend on that count.

Two facts, measured on the project's 2-core VMs (benchmarks/thread_default.py):
- torch's default, one thread per core, spins in OpenMP barriers when another process holds a
  core: a job beside one busy neighbour ran 4.5x slower with 2 threads than with 1, and far
  slower beside three. Alone, 2 threads are up to 1.8x faster than 1 (the digits MLP) or equal
  (the weight-decay article's tiny MLP). No fixed count is right on a shared machine, and OpenMP's passive wait
  policy is no way out (5.5x slower alone: every small op then wakes a sleeping thread).
- MKL's sgemm sums in an order that depends on its thread count, so the same config gave test
  error 0.2221 with 2 threads and 0.2167 with 1. MKL's strict conditional numerical
  reproducibility (`MKL_CBWR=AUTO,STRICT`, at no measured cost here) makes its gemm independent
  of the thread count; wdsweep sets it, unless the user set MKL_CBWR, before MKL's first call.
  Models made only of dense layers and pointwise activations (mlp, linear, and every batched
  model of the vectorized launcher) then give bit-identical results at any thread count
  (tests/jobs/test_threads.py). oneDNN's convolutions (and layers we have not checked) still do
  not.

So `trainer.threads: null` (auto) means:
- a thread-independent model takes the cores that are free when its job starts: the cores it
  may run on (affinity, a cgroup quota) less the CPU time other processes used since the
  previous decision (/proc/stat, minus this process's own time), at most its parallel
  launcher's share, at least 1. The count can differ from job to job; the numbers cannot.
- any other model keeps a fixed count (the launcher's share, else every core it may run on),
  so that the same command gives the same numbers; a busy CPU then gets one warning naming
  trainer.threads=1. Resume compares this count (see wdsweep.jobs.resume.done_record).

OMP_NUM_THREADS, when set, wins over both, as does trainer.threads. No torch at import: the
grid sweeper uses fixed_threads() to check finished jobs before launching any.
"""
from __future__ import annotations

import functools
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Optional

log = logging.getLogger(__name__)

STRICT_GEMM = "AUTO,STRICT"
# Shorter windows than this give too coarse an estimate (/proc/stat counts in 10 ms ticks).
MIN_WINDOW_SECONDS = 0.3
# A core counts as free when others used less than this share of it.
BUSY_THRESHOLD = 0.25


def request_reproducible_gemm() -> None:
    """Ask MKL for thread-count-independent gemm results. MKL reads MKL_CBWR at its first
    call, so this must run before any matrix product: wdsweep/__init__.py calls it."""
    os.environ.setdefault("MKL_CBWR", STRICT_GEMM)


@functools.lru_cache(maxsize=1)
def gemm_is_strict() -> bool:
    """MKL's strict mode is asked for and torch's BLAS is MKL (an OpenBLAS or Accelerate build
    ignores MKL_CBWR). Once per process: MKL reads MKL_CBWR once, and every job asks."""
    if "STRICT" not in os.environ.get("MKL_CBWR", "").upper():
        return False
    import torch

    return torch.backends.mkl.is_available() and "BLAS_INFO=mkl" in torch.__config__.show()


# How many processes run jobs side by side on this machine, each with a launcher of its own
# (the Optuna sweeper's workers, hydra.sweeper.workers): they share the cores as joblib's
# n_jobs workers do.
ENV_PARALLEL_JOBS = "WDSWEEP_PARALLEL_JOBS"


def usable_cores() -> int:
    """The cores this process may run on: its affinity set, capped by a cgroup v2 CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_quota()
    return max(1, min(cores, math.floor(quota))) if quota else max(1, cores)


def _cgroup_quota() -> Optional[float]:
    try:
        with open("/sys/fs/cgroup/cpu.max") as limit:
            text = limit.read().split()
    except OSError:
        return None
    if len(text) != 2 or text[0] == "max":
        return None
    try:
        return int(text[0]) / int(text[1])
    except ValueError:
        return None


@dataclass(frozen=True)
class CpuShare:
    """The CPUs a launcher gives each job (submitit's cpus_per_task), for fixed_threads."""

    cpus: int


def launcher_share(launcher: Any) -> object:
    """What a job's launcher config (hydra.launcher) says about the cores its jobs share, for
    fixed_threads: submitit's `cpus_per_task` when set (a CpuShare: on Slurm the job's own
    allocation; under submitit_local, which runs every job of a launch at once, the share you
    give each one), else joblib's `n_jobs` (workers sharing this machine's cores), else None.
    The sweep process and the job read the same config, so resume compares the count the job
    ran with even when the job ran on another machine (a Slurm node) than the sweep."""
    get = getattr(launcher, "get", None)
    if get is None:
        return None
    cpus = get("cpus_per_task")
    if isinstance(cpus, int) and not isinstance(cpus, bool) and cpus > 0:
        return CpuShare(cpus)
    return get("n_jobs")


def fixed_threads(n_jobs: object = None) -> int:
    """The count a thread-dependent job runs with when trainer.threads is null: OMP_NUM_THREADS
    if set, else the CPUs its launcher gives each job (a CpuShare, from launcher_share), else
    the cores shared out among a parallel launcher's workers (joblib's n_jobs; -1 all cores,
    -2 all but one, ...; or ENV_PARALLEL_JOBS processes), else every usable core. Workers that
    each take every core slow one another down many times over."""
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        return int(omp)
    if isinstance(n_jobs, CpuShare):
        return n_jobs.cpus
    cores = usable_cores()
    side_by_side = os.environ.get(ENV_PARALLEL_JOBS, "")
    if (n_jobs is None or n_jobs == 1) and side_by_side.isdigit():
        n_jobs = int(side_by_side)  # one of several processes that each run their own jobs
    if isinstance(n_jobs, int) and not isinstance(n_jobs, bool) and n_jobs not in (0, 1):
        workers = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
        return max(1, cores // workers)
    return cores


@dataclass
class _Snapshot:
    wall: float
    busy_seconds: float  # CPU time of every process on our usable CPUs
    own_seconds: float  # CPU time of this process (all its threads)


def _snapshot() -> Optional[_Snapshot]:
    try:
        with open("/proc/stat") as stat:
            lines = stat.read().splitlines()
    except OSError:
        return None
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    ticks = os.sysconf("SC_CLK_TCK")
    busy = 0
    for line in lines:
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *fields = line.split()
        if allowed is not None and int(name[3:]) not in allowed:
            continue
        # user nice system idle iowait irq softirq steal ...: all but idle and iowait are busy
        # (steal too: the hypervisor gave that time to someone else).
        values = [int(v) for v in fields[:8]]
        busy += sum(values) - values[3] - values[4]
    return _Snapshot(time.monotonic(), busy / ticks, time.process_time())


class FreeCores:
    """Cores other processes left free since the last decision. Each decision measures the
    window since the previous one (the previous job's run, which this process's own CPU time
    is subtracted from), so it costs no waiting, but the first one in a process."""

    def __init__(self) -> None:
        self._last = _snapshot()
        self._decided: Optional[int] = None

    def count(self) -> int:
        now = _snapshot()
        if now is None or self._last is None:
            return usable_cores()  # no /proc: nothing to go on but the cores
        if self._decided is not None and now.wall - self._last.wall < MIN_WINDOW_SECONDS:
            return self._decided  # jobs of a few ms: keep the last decision
        if now.wall - self._last.wall < MIN_WINDOW_SECONDS:
            time.sleep(MIN_WINDOW_SECONDS - (now.wall - self._last.wall))
            now = _snapshot() or now
        free = free_between(self._last, now, usable_cores())
        self._last, self._decided = now, free
        return free


def free_between(before: _Snapshot, after: _Snapshot, cores: int) -> int:
    """Cores free of other processes over the window between two snapshots: the CPU time
    spent on our cores less this process's own, per second of wall time; a core counts as
    free when others used less than BUSY_THRESHOLD of it. At least 1, at most `cores`."""
    window = after.wall - before.wall
    others = ((after.busy_seconds - before.busy_seconds)
              - (after.own_seconds - before.own_seconds)) / window
    return max(1, min(cores, cores - math.ceil(max(0.0, others) - BUSY_THRESHOLD)))


_free_cores: Optional[FreeCores] = None


def start_watching() -> None:
    """Begin the first measurement window now (app.main calls it as the process starts), so
    that the first job's decision needs no waiting."""
    global _free_cores
    if _free_cores is None:
        _free_cores = FreeCores()


def dependent_threads(requested: Optional[int], n_jobs: object) -> int:
    """The count a thread-dependent job runs with: trainer.threads, else fixed_threads. What
    resume compares (wdsweep.jobs.resume.done_record)."""
    return int(requested) if requested else fixed_threads(n_jobs)


def job_threads(requested: Optional[int], n_jobs: object, thread_independent: bool) -> int:
    """The torch threads for one job: trainer.threads if set; else OMP_NUM_THREADS; else, for
    a thread-independent model, the free cores (at most the launcher's share); else the fixed
    count. See the module docstring."""
    fixed = dependent_threads(requested, n_jobs)
    if requested or os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return fixed
    start_watching()
    assert _free_cores is not None
    free = _free_cores.count()
    if thread_independent:
        return min(fixed, free)
    if free < fixed:
        _warn_busy_once(free, fixed)
    return fixed


_warned = False


def _warn_busy_once(free: int, fixed: int) -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning("other processes are busy on this CPU (%d of %d cores free); this model's "
                    "numbers depend on its thread count, so it keeps %d threads for "
                    "reproducibility, and may run several times slower: trainer.threads=1 runs "
                    "it faster here", free, fixed, fixed)


# torch splits a reduction to one value over more than this many entries among its threads.
PARALLEL_REDUCTION = 32768


def is_thread_independent(model, batch_entries: int = 0) -> bool:
    """True when MKL's gemm is strict and the model holds only layers whose CPU kernels we
    have checked give the same bits at any thread count (tests/jobs/test_threads.py): dense layers,
    pointwise activations, containers. Anything else (convolutions, normalization, dropout,
    a user's module) is taken to depend on it: at worst a needless re-run, never a silent mix."""
    from torch import nn

    checked = (nn.Linear, nn.Sequential, nn.Identity, nn.Flatten, nn.ReLU, nn.Tanh, nn.GELU,
               nn.SiLU, nn.Sigmoid, nn.LeakyReLU)
    # batch_entries: rows x outputs of a training batch. Past PARALLEL_REDUCTION the loss's mean
    # and a bias gradient are such reductions, split among threads.
    return (batch_entries < PARALLEL_REDUCTION and gemm_is_strict()
            and all(type(m) in checked for m in model.modules()))
