"""A grid sweeper that checks the whole sweep before launching any job, and resumes.

Hydra's basic sweeper finds a bad value only when the job that holds it starts, after the
jobs before it have trained; with `-m reg.p=1,2,0` two jobs would run and the third fail.
This sweeper expands the whole grid first, runs wdsweep's validate on each job's config and
checks that the sweep folder can be written, and stops with a one-line error before anything
(not even multirun.yaml) is written.

It also resumes: a job whose folder already holds the finished result of the same config
(same config hash in its metrics.json) is skipped, so re-running a killed sweep's command
runs only what is missing, incomplete, failed or changed. `hydra.sweeper.resume=false` runs
everything again. A job's folder depends only on its overrides (see conf/config.yaml), so a
job is found whatever its position in the grid.

Failed jobs do not stop the sweep; when it is over, the exit status is 1 if any failed.
Otherwise it is the basic sweeper: same syntax, `params`, `max_batch_size`.

Speed: job configs come from _compose.JobComposer (Hydra composes once per set of group
choices; the other jobs are derived with Hydra's own override code). With Hydra's basic
launcher the sweeper runs the jobs itself, through Hydra's run_job, from those configs, rather
than have the launcher compose each job a second time; a launcher that runs its jobs in this
process (`runs_jobs_in_this_process = True`, as the vectorized one) gets the validated configs
through the config loader (_compose.CachingConfigLoader.keep). Other launchers (joblib,
submitit) are handed the jobs' overrides as usual.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Sequence, Tuple

from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, configure_log, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

if TYPE_CHECKING:
    from wdsweep.search.grid_plan import GridJob

log = logging.getLogger(__name__)

# Validated configs kept for running in-process (about 0.1 MB each); past this many, a job's
# config is derived again when it starts, so that a huge grid does not fill memory.
KEEP_CONFIGS = 1000


@dataclass
class ValidatingSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.wdsweep_sweeper.validating_sweeper.ValidatingSweeper"
    # Skip jobs whose finished result for the same config is already in their folder.
    resume: bool = True
    # Train each distinct configuration once (wdsweep.jobs.canonical): with reg.lam=0, jobs that
    # differ only in reg.p/mode/scope/... become records of the first one's result.
    dedupe: bool = True
    # After the grid, train its `finalists` best configurations (lowest mean objective over
    # their seeds) again on `finalist_seeds` fresh seeds (a count: the smallest seeds the grid
    # did not use; or a list) into finalists/<config>/seed-S, and write finalists.yaml
    # (wdsweep.search.finalists): the winner's curse, measured.
    finalists: int = 0
    # A count n (the n smallest seeds the grid did not use) or a list of unused seeds.
    finalist_seeds: Any = 5
    # Compose and validate every job, print which would train and which resume would skip
    # (and why), then exit 0: nothing trained, nothing written, no folder made.
    dry_run: bool = False


ConfigStore.instance().store(group="hydra/sweeper", name="wdsweep_grid",
                             node=ValidatingSweeperConf, provider="wdsweep")


class ValidatingSweeper(BasicSweeper):
    def __init__(self, max_batch_size: Any = None, params: Any = None, resume: bool = True,
                 dedupe: bool = True, finalists: int = 0, finalist_seeds: Any = 5, dry_run: bool = False) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.resume, self.dedupe, self.dry_run = resume, dedupe, dry_run
        self.finalists = finalists
        self.finalist_seeds = (OmegaConf.to_container(finalist_seeds) if OmegaConf.is_list(finalist_seeds)
                               else finalist_seeds)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        """As the basic sweeper, with the launcher given our caching config loader."""
        from hydra_plugins.wdsweep_sweeper._compose import CachingConfigLoader

        loader = CachingConfigLoader(hydra_context.config_loader)
        super().setup(hydra_context=HydraContext(config_loader=loader, callbacks=hydra_context.callbacks),
                      task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        # Imported here, not at module level: Hydra imports every plugin at the start of any
        # Hydra app in this environment, and other apps need not load (or register) our schemas.
        from wdsweep.errors import ConfigError
        from wdsweep.jobs.resume import done_record, output_folder_problem
        from wdsweep.search.grid_finalists import check_finalist_seeds_unused, check_finalist_settings, run_finalists
        from wdsweep.search.grid_plan import (
            check_distinct_folders,
            check_folder_names,
            check_subdir_not_numbered,
            find_twins,
            print_plan,
            report,
        )

        assert self.hydra_context is not None and self.config is not None
        assert self.launcher is not None

        self.in_process = (type(self.launcher) is BasicLauncher
                           or getattr(self.launcher, "runs_jobs_in_this_process", False))
        if self.in_process:
            from wdsweep.jobs.inprocess import collect_less_often

            collect_less_often()  # for the job configs validated here; torch comes once some job will train
        check_finalist_settings(self)
        check_subdir_not_numbered(self.config.hydra)
        loader = self.hydra_context.config_loader
        self.composer = loader.composer(self.config)  # the launcher's too: one set of templates
        self._configs: dict = {}  # job index -> its validated config, for running in-process
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(self._parse_config() + list(arguments))
        jobs = [self._checked_job(index, list(job)) for index, job
                in enumerate(self.split_arguments(overrides, max_batch_size=None)[0])]
        log.info("validated %d job configs (%d composed by Hydra, %d derived)", len(jobs),
                 self.composer.composed, self.composer.derived)

        check_distinct_folders(jobs)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        check_folder_names(jobs, sweep_dir)
        check_finalist_seeds_unused(self, jobs)

        one_by_one = not hasattr(self.launcher, "launch_numbered")  # all but the vectorized launchers

        def done(job: "GridJob") -> bool:
            return self.resume and done_record(job.folder, job.config_hash, job.threads, job.fingerprint,
                                               one_by_one) is not None

        twin_of = find_twins(jobs) if self.dedupe else {}
        if self.dry_run:
            print_plan(jobs, twin_of, done, sweep_dir, self.finalists, one_by_one)
            return []
        problem = output_folder_problem(sweep_dir)
        if problem:
            ConfigError(f"invalid config: hydra.sweep.dir={str(sweep_dir)!r} is not allowed: a folder this "
                        f"process can write ({problem})").exit()
        pending = [job for job in jobs if job.index not in twin_of and not done(job)]
        twins = [job for job in jobs if job.index in twin_of and not done(job)]
        if twin_of:
            log.info("%d of %d jobs would train what another job of this sweep trains (reg.lam=0 "
                     "makes reg.p, mode, scope, ... idle): each is recorded from that job's result, "
                     "not trained; hydra.sweeper.dedupe=false trains them", len(twin_of), len(jobs))
        if len(pending) + len(twins) < len(jobs):
            log.info("skipped %d of %d (already done); hydra.sweeper.resume=false runs them "
                     "again", len(jobs) - len(pending) - len(twins), len(jobs))
        for job in pending:  # the launcher runs these configs rather than compose them again
            if job.index in self._configs:
                loader.keep(self.config, job.overrides, self._configs[job.index])
        self._configs.clear()
        from wdsweep.jobs.sweep_record import save_sweep_config

        save_sweep_config(self.config, sweep_dir)  # the earlier invocations' kept beside it
        if self.in_process and pending:
            # Only now that every job is valid and some will train: torch and the training
            # modules (seconds) are not needed to refuse a config, plan a dry run or skip.
            from wdsweep.jobs.inprocess import prepare_for_many_jobs

            prepare_for_many_jobs()

        returns = []
        if hasattr(self.launcher, "launch_numbered"):  # the vectorized launchers: gaps allowed
            size = self.max_batch_size or max(len(pending), 1)  # all done: no launch at all
            for first in range(0, len(pending), size):
                chunk = pending[first:first + size]
                returns.append(self._checked(self.launcher.launch_numbered([(j.index, j.overrides) for j in chunk])))
        else:
            for start, batch in self._batches(pending):
                returns.append(self._launch(batch, start))
        if twins:
            returns.append(self._record_twins(twins, twin_of))
        launched = pending + twins
        if self.finalists:
            finalists, ran = run_finalists(self, jobs, done)
            jobs, launched = jobs + finalists, launched + ran
        report(jobs, launched)
        return returns

    def _launch(self, batch: List[List[str]], start: int) -> List[JobReturn]:
        from wdsweep.cluster import submitit_launch

        if type(self.launcher) is BasicLauncher:
            results = self._run_here(batch, start)
        elif submitit_launch.is_submitit_launcher(self.launcher):
            # the same submission, but a job that dies without a result fails alone
            results = submitit_launch.launch(self.launcher, batch, start)
        else:
            results = self.launcher.launch(batch, initial_job_idx=start)
        return self._checked(results)

    @staticmethod
    def _checked(results: List[JobReturn]) -> List[JobReturn]:
        from wdsweep.cluster import submitit_launch
        from wdsweep.jobs.inprocess import FolderNotWritable

        for r in results:
            # a job that could not start, or whose process ended without a result: counted
            # in the summary (it has no metrics.json), and the sweep goes on
            if not isinstance(r._return_value, (FolderNotWritable, submitit_launch.JobLost)):
                _ = r.return_value  # re-raises what a job raised, as the basic sweeper does
        return results

    def _record_twins(self, twins: List["GridJob"], twin_of: Dict[int, "GridJob"]) -> List[JobReturn]:
        """Each twin's folder through Hydra's run_job (so its .hydra/ files are Hydra's), with
        a task that writes the record of its source's result."""
        from wdsweep.jobs.canonical import RecordTwin
        from wdsweep.jobs.inprocess import numbered, run_sweep_job

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        returns = []
        for job in twins:
            source = twin_of[job.index]
            cfg = numbered(self._job_config(job.index, job.overrides), job.index)
            task = RecordTwin(source.folder, str(source.folder.relative_to(sweep_dir)))
            returns.append(run_sweep_job(self.hydra_context, task, cfg, job.index, job.overrides))
        return returns

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Every job was composed and validated up front in sweep()."""

    def _checked_job(self, index: int, overrides: List[str]) -> "GridJob":
        """Compose one job's config as the launcher will, validate it, and find its folder."""
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        from wdsweep.config.validation import composition_error_line, validate
        from wdsweep.errors import ConfigError

        try:
            cfg = self._job_config(index, overrides)
        except (HydraException, OmegaConfBaseException) as err:
            ConfigError(f"{composition_error_line(err)} [job: {' '.join(overrides)}]").exit()
        try:
            validate(cfg)
        except ConfigError as err:
            ConfigError(f"{err} [job: {' '.join(overrides)}]").exit()
        try:
            job = self._job(index, overrides, cfg)
        except InterpolationResolutionError:
            # ${hydra:...} somewhere: resolve as the job will, with HydraConfig set (a copy of
            # the Hydra node, so only when needed).
            saved = HydraConfig.instance().cfg
            HydraConfig.instance().set_config(cfg)
            try:
                job = self._job(index, overrides, cfg)
            finally:
                HydraConfig.instance().cfg = saved
        if self.in_process and len(self._configs) < KEEP_CONFIGS:
            self._configs[index] = cfg  # run from it; no second derivation
        return job

    def _job(self, index: int, overrides: List[str], cfg: DictConfig) -> "GridJob":
        from wdsweep.jobs.canonical import canonical_tree
        from wdsweep.search.grid_plan import GridJob
        from wdsweep.tracking.fingerprint import fingerprint
        from wdsweep.tracking.results import digest, job_tree

        tree = job_tree(cfg)  # resolved once for both digests: this runs for every job
        return GridJob(index, overrides, self._folder(cfg), digest(tree), self._threads(cfg),
                       digest(canonical_tree(tree)), fingerprint(cfg), seed=tree.get("seed"))

    @staticmethod
    def _threads(cfg: DictConfig) -> int:
        from wdsweep.jobs.threads import dependent_threads, launcher_share

        return dependent_threads(cfg.trainer.threads, launcher_share(cfg.hydra.launcher))

    @staticmethod
    def _folder(cfg: DictConfig) -> Path:
        return Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)

    def _job_config(self, index: int, overrides: List[str]) -> DictConfig:
        from wdsweep.jobs.inprocess import numbered

        return numbered(self.composer.compose(overrides), index)

    def _run_here(self, batch: List[List[str]], start: int) -> List[JobReturn]:
        """What Hydra's basic launcher does, from the configs validated in sweep() (past
        KEEP_CONFIGS jobs derived again here: a big grid's configs would fill memory)."""
        from wdsweep.jobs.inprocess import run_here

        return run_here(self.hydra_context, self.launcher.task_function, self.config, batch, start)

    def _batches(self, pending: List["GridJob"]) -> Iterator[Tuple[int, List[List[str]]]]:
        """Runs of consecutive job numbers (so each job keeps its number), cut to
        max_batch_size."""
        run: List["GridJob"] = []
        for job in pending:
            if run and (job.index != run[-1].index + 1 or len(run) == (self.max_batch_size or 0)):
                yield run[0].index, [j.overrides for j in run]
                run = []
            run.append(job)
        if run:
            yield run[0].index, [j.overrides for j in run]
