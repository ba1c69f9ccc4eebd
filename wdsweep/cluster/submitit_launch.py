"""Submitting jobs with submitit (hydra-submitit-launcher's `hydra/launcher=submitit_local` and
`submitit_slurm`, and the vectorized launcher's batches) so that one job that dies does not
end the sweep.

hydra-submitit-launcher's `launch` collects its jobs' results with `[j.results()[0] for j in
jobs]`: a job whose process ended without a result (killed by the kernel's OOM killer or by
hand, a Slurm job past its time limit or on a node that failed) raises submitit's
UncompletedJobError out of the launcher, and the whole sweep stops with a traceback, while
the jobs after it may still be running. Our sweepers promise that a failed job never stops a
sweep, so they launch through `launch` here: the same executor, built from the same
`hydra.launcher.*` keys the same way, the same pickled callable (the launcher itself, which
composes the job in its process and runs it through Hydra's run_job), and each job's result
collected on its own. A job that ended without one comes back as a failed JobReturn holding
a JobLost (its reason and its submitit log), which the grid sweeper counts in its summary
and the Optuna sweeper tells as a failed trial.

Torch-free; submitit is imported only when a sweep uses it (an optional extra:
`pip install 'wdsweep[submitit]'`).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

log = logging.getLogger(__name__)

# Keys of a launcher config that are ours, not submitit's (the vectorized batch launcher's).
OWN_KEYS = ("max_batch", "device")


class JobLost(RuntimeError):
    """A submitit job that ended without a result: its process was killed, timed out, or
    raised outside the task. The job has no metrics.json (resume runs it again)."""


def is_submitit_launcher(launcher: Any) -> bool:
    try:
        from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
    except ImportError:  # the extra is not installed: no launcher can be one
        return False
    return isinstance(launcher, BaseSubmititLauncher)


def executor(params: Dict[str, Any], cluster: str):
    """A submitit executor set up from hydra-submitit-launcher's keys as its own launch() sets it
    up (hydra_plugins/hydra_submitit_launcher/submitit_launcher.py): `submitit_folder` and
    `max_num_timeout` go to the executor, the keys of BaseQueueConf (timeout_min, cpus_per_task,
    mem_gb, ...) as they are, every other key (partition, qos, ...) prefixed by the cluster."""
    import submitit

    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    params = {k: v for k, v in params.items() if k not in OWN_KEYS}
    init_keys = {"submitit_folder", "max_num_timeout"}
    init = {"folder": params["submitit_folder"],
            **{f"{cluster}_{k}": v for k, v in params.items() if k == "max_num_timeout"}}
    made = submitit.AutoExecutor(cluster=cluster, **init)
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    made.update_parameters(**{k if k in base else f"{cluster}_{k}": v for k, v in params.items()
                              if k not in init_keys})
    return made


def prepare_sweep_dir(config) -> None:
    """The sweep folder, made (with hydra.sweep.mode, if set) before any job is submitted."""
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if "mode" in config.hydra.sweep:
        os.chmod(sweep_dir, mode=int(str(config.hydra.sweep.mode), 8))


def submit(params: Dict[str, Any], cluster: str, fn: Callable, args: Sequence[tuple]) -> list:
    """One submitit job per tuple of `args`, running fn(*args) (an array job on Slurm)."""
    made = executor(params, cluster)
    return made.map_array(fn, *zip(*args)) if args else []


# How long a finished job's result file may take to appear, for a job on this machine: its
# process wrote the file before it ended, into this machine's file system. submitit waits 15 s
# for every executor, the grace a cluster's shared file system needs (kept for Slurm), so that
# a lost local job was reported 15 s after its process died.
LOCAL_RESULT_GRACE_SECONDS = 1


def result_or_lost(job, describe: str, lost: Callable[[JobLost], Any]) -> Any:
    """The job's result, waiting for it; for a job that ended without one (UncompletedJobError,
    FailedJobError), `lost(JobLost(...))`, with one error line naming the job and its log."""
    from submitit.core.utils import FailedJobError, UncompletedJobError
    from submitit.local.local import LocalJob

    if isinstance(job, LocalJob):
        job._results_timeout_s = LOCAL_RESULT_GRACE_SECONDS
    try:
        return job.results()[0]
    except (UncompletedJobError, FailedJobError) as err:
        reason = JobLost(f"submitit job {job.job_id} ended without a result ({_why(err)}); "
                         f"its log: {job.paths.stdout}")
        log.error("%s: %s", describe, reason)
        return lost(reason)


def _why(err: Exception) -> str:
    """One line from submitit's many: what the job's process raised (FailedJobError: the last
    line of its traceback), or the state it ended in without output (UncompletedJobError)."""
    from submitit.core.utils import FailedJobError

    lines = [line.strip() for line in str(err).splitlines()]
    if isinstance(err, FailedJobError):
        trace = [line for line in lines[:next((i for i, line in enumerate(lines) if line.startswith("You can check")),
                                              len(lines))]
                 if line and not set(line) <= {"-"}]
        return f"it raised {trace[-1]}" if trace else "it raised"
    said = next((line for line in lines if line.startswith("has not produced any output")), "")
    return f"it {said}" if said else type(err).__name__


def failed_return(overrides: Sequence[str], reason: BaseException) -> JobReturn:
    """A JobReturn for a job that never returned one, as Hydra keeps what a task raised."""
    ret = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
    ret.return_value = reason
    return ret


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> List[JobReturn]:
    """hydra-submitit-launcher's launch (BaseSubmititLauncher.launch), with each job's result
    collected on its own (see the module): a lost job is a failed JobReturn, the others are
    what the launcher returns."""
    from hydra.core.singleton import Singleton
    from hydra.core.utils import filter_overrides

    from wdsweep.jobs.override_text import readable_overrides

    assert launcher.config is not None and len(job_overrides) > 0
    cluster = launcher._EXECUTOR
    log.info("Submitit '%s' sweep output dir : %s", cluster, launcher.config.hydra.sweep.dir)
    prepare_sweep_dir(launcher.config)
    args = []
    for idx, overrides in enumerate(job_overrides, initial_job_idx):
        # the job's own overrides; the sweeper's plumbing (a trial link) only at debug level
        shown = [o for o in filter_overrides(overrides) if not o.lstrip("+~").startswith("hydra.")]
        log.info("\t#%d : %s", idx, readable_overrides(shown))
        log.debug("\t#%d : all overrides: %s", idx, " ".join(overrides))
        args.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
    jobs = submit(launcher.params, cluster, launcher, args)
    return [result_or_lost(job, f"#{idx}", lambda reason, o=overrides: failed_return(o, reason))
            for idx, (job, overrides) in enumerate(zip(jobs, job_overrides), initial_job_idx)]
