"""The Optuna search: ask a batch of trials, run them as Hydra jobs, tell Optuna how they
ended, until the study holds n_trials finished trials.

- Each job is told its trial through hydra.job.env_set, so it can report to the pruner and
  record its ending (wdsweep.tracking.trial_link); its folder is <sweep dir>/trial-<number>.
- A job that raises, diverges, returns NaN or cannot be composed or validated is told as FAIL
  with the reason (one line) in the trial's user attributes, and the sweep goes on.
- Bad sweeper settings (n_trials=0, ...) and a storage that cannot be opened or written end
  the sweep with one line before any trial is asked (settings.py, study.py).
- The study lives in a journal file (or any Optuna storage URL) at a path derived from the
  study name, so the same command resumes it. Several sweep processes on one storage share
  the budget: "count, then ask" happens under a lock, so n_trials is exact (study.py).
- hydra.sweeper.workers=N: this process coordinates N worker processes that each ask, run
  and tell one trial at a time, with no round barrier (workers.py).
- While its trials run, the sweeper writes a heartbeat on them; RUNNING trials no sweep will
  tell are settled by the next sweep on the study (orphans.py).
- A password in the storage URL is taken out before anything is written or launched (study.py).

OptunaSearch is assembled from one class per concern, each in its module and each building on
the one before: SearchSettings (settings.py) < StudyStorage (study.py) < Telling (telling.py) <
Orphans (orphans.py) < Twins (twins.py) < ReplicatedTrials (replicated_trials.py) <
FinalistRuns (finalist_runs.py), plus the side parts ResultsFile, DryRun and Workers. The
Hydra plugin (hydra_plugins/wdsweep_optuna) builds one, gives it Hydra's context and launcher,
and calls sweep().
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Dict, List

import optuna
from optuna.trial import TrialState

from wdsweep.config.urls import hide_password
from wdsweep.errors import ConfigError
from wdsweep.jobs.sweep_record import save_sweep_config
from wdsweep.search import sweep_claim
from wdsweep.search.dry_run import DryRun
from wdsweep.search.finalist_runs import FinalistRuns
from wdsweep.search.orphans import SweepHeartbeat
from wdsweep.search.results_file import ResultsFile
from wdsweep.search.space import SearchSpace, SearchSpaceError, parse_search_space
from wdsweep.search.study import AskLock, default_study_name, storage_errors
from wdsweep.search.trials import CANONICAL_ATTR, FINISHED, JOB_DIR_ATTR, count_trials, fail_reason, one_line
from wdsweep.search.workers import Workers

log = logging.getLogger(__name__)
# Optuna's own INFO lines ("Using an existing study ...", "Trial 3 finished ...") repeat what the
# sweeper logs in its own words, and go to stderr, where a one-line error must stand alone.
optuna.logging.set_verbosity(optuna.logging.WARNING)


class OptunaSearch(FinalistRuns, ResultsFile, DryRun, Workers):
    """One Optuna search over one sweep folder (see the module)."""

    def sweep(self, arguments: List[str]) -> Any:
        self._take_password_out_of_storage()
        self._check_settings()
        try:
            space = parse_search_space(self.params, arguments)
            self._check_setup(space)
        except SearchSpaceError as err:
            ConfigError(f"invalid search space: {err}").exit()
        self.space = space
        self._check_shared_config(space)
        study_name = self.study_name or default_study_name(space, self._replication())
        storage_spec = self.storage_spec = (
            self.storage or str((Path(self.storage_dir) / f"{study_name}.journal").resolve()))
        sweep_dir = Path(self.config.hydra.sweep.dir)
        if self.dry_run:
            self._print_plan(space, study_name, storage_spec)
            return None
        sweep_dir, claimed_here = self._claim_sweep_dir(sweep_dir, study_name)
        try:
            lock, study = self._open_study_or_exit(study_name, storage_spec, space)
        except SystemExit:  # refused before anything ran: leave no folder behind
            if claimed_here:
                sweep_claim.release(sweep_dir)
            raise
        if self.worker is None:  # a worker shares its coordinator's folder and multirun.yaml
            sweep_dir.mkdir(parents=True, exist_ok=True)
            save_sweep_config(self.config, sweep_dir)  # the earlier invocations' kept beside it

        job_index = 0
        if self.workers > 1:
            self._run_workers(study, sweep_dir)
        else:
            heartbeat = SweepHeartbeat(self.storage_obj, self.heartbeat_seconds)
            try:
                job_index = self._run_to_budget(study, lock, space, storage_spec, heartbeat)
            except storage_errors() as err:  # the storage went away or filled up mid-sweep
                self._stop_unwritable(hide_password(one_line(err), self.password))
            finally:
                heartbeat.stop()
        if self.worker is not None:
            return None  # its coordinator writes the results and runs the finalists
        self._write_results(study, sweep_dir)
        self._fail_if_nothing_completed(study)
        if self.finalists:
            self._run_finalists(study, sweep_dir, storage_spec, job_index)
        return None

    def _run_to_budget(self, study: optuna.Study, lock: "AskLock", space: SearchSpace, storage_spec: str,
                       heartbeat: "SweepHeartbeat") -> int:
        """Ask, run and tell batches of trials until the study holds n_trials finished ones;
        return how many jobs this sweep launched."""
        job_index = 0
        waited_for: set = set()
        while True:
            with lock.held():
                self._settle_orphaned_trials(study)  # a cooperating sweep may have been killed
                trials = self._ask_batch(study)
            self._stop_if_untold()
            if not trials:
                running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if not running:
                    return job_index
                # The budget is taken, but other sweeps' trials still run: wait for them to
                # finish, or to go stale, so that the study ends with n_trials finished.
                self._say_waiting(running, waited_for)
                time.sleep(min(self.heartbeat_seconds, 1.0))  # (a read of the study: cheap)
                continue
            heartbeat.add(trials)
            run_batch = self._run_batch if self.seeds is None else self._run_replicated_batch
            try:
                job_index = run_batch(study, space, storage_spec, trials, job_index)
            finally:
                heartbeat.remove(trials)
            self._stop_if_untold()
            self._check_failure_rate(study)

    def _ask_batch(self, study: optuna.Study) -> List[optuna.Trial]:
        """Up to n_jobs new trials, never more than the study's budget leaves, counting the
        trials other sweep processes are running."""
        taken = count_trials(study, FINISHED + (TrialState.RUNNING,))
        n = max(0, min(self.n_jobs, self.n_trials - taken))
        return [study.ask(self.space.distributions) for _ in range(n)]

    def _run_batch(self, study: optuna.Study, space: SearchSpace, storage_spec: str,
                   trials: List[optuna.Trial], job_index: int) -> int:
        """Launch the asked trials, tell Optuna how each ended. A trial whose canonical config
        a finished trial already trained (wdsweep.jobs.canonical) is told that trial's values and
        gets a record of its result instead of a training; a trial that repeats another of
        this same batch waits for it, and trains after all if that one did not complete."""
        from wdsweep.config.validation import validate
        from wdsweep.jobs.canonical import canonical_hash

        sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
        runnable, overrides, waiting = [], [], []
        first_in_batch: Dict[str, optuna.Trial] = {}
        finished = self._finished_by_canonical(study) if self.dedupe else {}
        for trial in trials:
            try:
                job = self._trial_overrides(trial, space)
                cfg = self.hydra_context.config_loader.load_sweep_config(self.config, job)
                validate(cfg)
                canonical = canonical_hash(cfg)
            except Exception as err:  # noqa: BLE001 - composition, validation or the hook: this trial fails
                self._tell(study, trial._trial_id, trial.number, TrialState.FAIL, None, fail_reason(err))
                continue
            folder = f"trial-{trial.number:05d}"
            self.storage_obj.set_trial_user_attr(trial._trial_id, CANONICAL_ATTR, canonical)
            self.storage_obj.set_trial_user_attr(trial._trial_id, JOB_DIR_ATTR, str(sweep_dir / folder))
            job = job + [f"hydra.sweep.subdir={folder}"]
            if canonical in finished and self._record_twin(study, trial, job, finished[canonical]):
                continue
            if self.dedupe and canonical in first_in_batch:
                waiting.append((trial, job, first_in_batch[canonical]))
                continue
            first_in_batch[canonical] = trial
            runnable.append(trial)
            overrides.append(self._linked(job, storage_spec, study, trial))
        if runnable:
            returns = self._launch(overrides, initial_job_idx=job_index)
            for trial, ret in zip(runnable, returns):
                state, values, reason = self._outcome(study, trial, ret)
                self._tell(study, trial._trial_id, trial.number, state, values, reason)
            job_index += len(runnable)
        for trial, job, source in waiting:
            source = self.storage_obj.get_trial(source._trial_id)
            if not (source.state == TrialState.COMPLETE and self._record_twin(study, trial, job, source)):
                # its twin was pruned or failed, or its result is gone: this one trains after all
                returns = self._launch([self._linked(job, storage_spec, study, trial)],
                                               initial_job_idx=job_index)
                state, values, reason = self._outcome(study, trial, returns[0])
                self._tell(study, trial._trial_id, trial.number, state, values, reason)
                job_index += 1
        return job_index
