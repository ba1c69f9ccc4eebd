"""Running many jobs one after another in this process: what our grid sweeper (with Hydra's
basic launcher) and the vectorized launcher share. Torch-free at import."""
import gc
import logging
from typing import Any, List, Sequence

from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.types import HydraContext
from omegaconf import DictConfig, open_dict

from wdsweep.jobs.override_text import readable_overrides

log = logging.getLogger(__name__)

_prepared = False


# How often the young generation is collected while a sweep composes and runs its jobs: each
# job's config copies are tens of thousands of short-lived objects, and CPython's default (a
# collection every 700 allocations) spends most of its time scanning them.
MANY_JOBS_GC_THRESHOLD = (50_000, 20, 20)


def collect_less_often() -> None:
    """The garbage collector's thresholds for a sweep that composes many job configs in this
    process (validation, and the in-process jobs): set before the sweep validates its jobs,
    which needs no torch."""
    gc.set_threshold(*MANY_JOBS_GC_THRESHOLD)


def prepare_for_many_jobs() -> None:
    """Import what the jobs use now, once, and keep what then lives (torch, Hydra) out of the
    garbage collector's scans, which the config copies of every job trigger (about 10 ms a job
    otherwise); collect the young generation less often (collect_less_often). Once per
    process: the garbage is collected first, and freezing again later (an Optuna sweep
    launches round after round) would keep uncollected cycles alive for good."""
    global _prepared
    if _prepared:
        return
    import wdsweep.jobs.run  # noqa: F401 - torch and the job's modules

    gc.collect()
    gc.freeze()
    collect_less_often()
    _prepared = True


def numbered(cfg: DictConfig, index: int) -> DictConfig:
    """The job's number in its sweep, set as Hydra's launchers set it (a subdir may use it)."""
    with open_dict(cfg):
        cfg.hydra.job.id = index
        cfg.hydra.job.num = index
    return cfg


def run_here(hydra_context: HydraContext, task: Any, config: DictConfig, job_overrides: Sequence[Sequence[str]],
             start: int) -> List[JobReturn]:
    """What Hydra's basic launcher does, job by job through run_sweep_job (its log line without
    the sweeper's plumbing; a job folder that cannot be made fails that job, not the sweep):
    for a sweeper that runs basic-launcher jobs itself (grid and Optuna). The config loader
    may hand back configs it keeps (hydra_plugins/wdsweep_sweeper/_compose.py)."""
    setup_globals()
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    log.info("Launching %d jobs locally", len(job_overrides))
    loader = hydra_context.config_loader
    return [run_sweep_job(hydra_context, task, numbered(loader.load_sweep_config(config, list(overrides)), index),
                          index, overrides)
            for index, overrides in enumerate(job_overrides, start)]


def run_sweep_job(hydra_context: HydraContext, task: Any, cfg: DictConfig, index: int,
                  overrides: Sequence[str]) -> JobReturn:
    """One job of a sweep through Hydra's own run_job, logged as the basic launcher logs it."""
    shown = [o for o in filter_overrides(overrides) if not o.lstrip("+~").startswith("hydra.")]
    log.info("\t#%d : %s", index, readable_overrides(shown))
    # The sweeper's plumbing (its trial link through hydra.job.env_set, the folder of a
    # replicated seed) says nothing a reader needs at the normal level.
    log.debug("\t#%d : all overrides: %s", index, " ".join(overrides))
    try:
        return run_job(hydra_context=hydra_context, task_function=task, config=cfg,
                       job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
    except OSError as err:
        # run_job makes the job's folder and writes its .hydra/ files before the task runs, and
        # raises if it cannot (a folder turned read-only, a full disk). That is this job's
        # failure, not the sweep's: it has no result (resume runs it again) and the sweep goes
        # on to its summary, which names it.
        log.error("#%d could not start: its folder cannot be written (%s: %s)", index,
                  type(err).__name__, err)
        failed = JobReturn(overrides=list(overrides), cfg=cfg, status=JobStatus.FAILED)
        failed.return_value = FolderNotWritable(err)  # as Hydra keeps what a task raised
        return failed


class FolderNotWritable(OSError):
    """Why a job of a sweep could not start (run_sweep_job): the sweep reports it and goes on."""
