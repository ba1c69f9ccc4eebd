"""The Optuna sweeper's work (imported only when the sweeper is used; see optuna_sweeper.py).

It asks Optuna for trials, runs them as Hydra jobs, tells Optuna how they
ended, until the study holds n_trials finished trials.

- Each job is told its trial through hydra.job.env_set, so it can report to the pruner and
  record its ending (wdsweep.trial_link); its folder is <sweep dir>/trial-<number>.
- A job that raises, diverges, returns NaN or cannot be composed or validated is told as FAIL
  with the reason (one line) in the trial's user attributes, and the sweep goes on.
- Bad sweeper settings (n_trials=0, ...) and a storage that cannot be opened or written end
  the sweep with one line before any trial is asked.
- The study lives in a journal file (or any Optuna storage URL) at a path derived from the
  study name, so the same command resumes it. Several sweep processes on one storage share
  the budget: "count, then ask" happens under a lock, so n_trials is exact.
- hydra.sweeper.workers=N: this process coordinates N worker processes that each ask, run
  and tell one trial at a time, with no round barrier (_workers.py); each worker is this same
  sweeper, in a process of its own, on the same study and sweep folder.
- While its trials run, the sweeper writes a heartbeat on them. A RUNNING trial that no sweep
  will tell (its sweep was killed) is settled by the next sweep on the study: at once, as its
  job ended, if the job's metrics.json is in the trial's folder (a kill between that file and
  the tell); else failed, once its heartbeat is older than stale_after_seconds.
- A password in the storage URL is taken out before anything is written or launched: the
  sweeper's config (saved by this sweeper as multirun.yaml, and by Hydra in every job's
  hydra.yaml) and every log line get the masked URL, postgresql://me:***@host/db, and the jobs
  get the password through the process environment (wdsweep.trial_link.ENV_PASSWORD).
"""
import contextlib
import fcntl
import hashlib
import importlib
import logging
import math
import os
import re
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Iterator, List, NoReturn, Optional, Sequence, Tuple

import optuna
from hydra.core.plugins import Plugins
from hydra.errors import HydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException
from optuna.trial import TrialState

from hydra_plugins.wdsweep_optuna import _replicates as rep
from hydra_plugins.wdsweep_optuna import _workers as wk
from hydra_plugins.wdsweep_optuna._search_space import SearchSpace, SearchSpaceError, parse_search_space
from wdsweep.errors import ConfigError
from wdsweep.finalists import finite_or_none, fresh_seeds, seed_list
from wdsweep.trial_link import ENV_PASSWORD, MASK, hide_password, split_password, with_password
from wdsweep.trial_outcome import how_it_ended
from wdsweep.validation import composition_error_line  # torch-free; loaded only when the sweeper runs

log = logging.getLogger(__name__)
# Optuna's own INFO lines ("Using an existing study ...", "Trial 3 finished ...") repeat what the
# sweeper logs in its own words, and go to stderr, where a one-line error must stand alone.
optuna.logging.set_verbosity(optuna.logging.WARNING)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
HEARTBEAT_ATTR = "wdsweep_heartbeat"
CANONICAL_ATTR = "wdsweep_canonical"  # wdsweep.canonical's hash of the trial's config
JOB_DIR_ATTR = "wdsweep_job_dir"  # the trial's folder, for a later trial that shares its result
SAME_AS_ATTR = "wdsweep_same_as"  # the number of the trial whose result this one shares
REASON_ATTR = "wdsweep_fail_reason"
REPLICATION_ATTR = "wdsweep_replication"  # study attr: the seeds each trial's value aggregates
RESULTS_FILE = "optimization_results.yaml"
# A job's metrics.json that started this long before its trial was asked is an older run's.
RECORD_CLOCK_SLACK_SECONDS = 10.0


class OptunaSweeperImpl(Sweeper):
    def __init__(self, sampler: DictConfig, pruner: DictConfig, direction: Any, study_name: Optional[str],
                 storage: Optional[str], storage_dir: str, n_trials: int, n_jobs: int,
                 max_failure_rate: float, min_trials_for_failure_rate: int,
                 params: Optional[DictConfig], custom_search_space: Optional[str], enqueue: List[Any],
                 heartbeat_seconds: float, stale_after_seconds: float, dedupe: bool = True,
                 seeds: Any = None, aggregate: str = "mean", se_k: float = 1.0, finalists: int = 0,
                 finalist_seeds: Any = 5, dry_run: bool = False, workers: int = 1) -> None:
        self.sampler_conf = OmegaConf.to_container(sampler, resolve=True)
        self.pruner_conf = OmegaConf.to_container(pruner, resolve=True)
        self.directions = [direction] if isinstance(direction, str) else list(direction)
        self.study_name, self.storage, self.storage_dir = study_name, storage, storage_dir
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.max_failure_rate, self.min_trials_for_failure_rate = max_failure_rate, min_trials_for_failure_rate
        self.params = OmegaConf.to_container(params, resolve=True) if params else {}
        self.custom_search_space = custom_search_space
        self.enqueue = [dict(p) for p in OmegaConf.to_container(OmegaConf.create(list(enqueue)))] if enqueue else []
        self.heartbeat_seconds, self.stale_after_seconds = heartbeat_seconds, stale_after_seconds
        self.dedupe = dedupe
        # Replicated search and finalists (_replicates); seeds is checked in _check_settings.
        self.seeds_conf = OmegaConf.to_container(seeds) if isinstance(seeds, DictConfig | ListConfig) else seeds
        self.finalist_seeds_conf = (OmegaConf.to_container(finalist_seeds)
                                    if isinstance(finalist_seeds, ListConfig) else finalist_seeds)
        self.seeds: Optional[List[int]] = None
        self.aggregate, self.se_k, self.finalists = aggregate, se_k, finalists
        self.dry_run = dry_run
        self.workers = workers
        self.worker = wk.worker_index()  # this process is worker i of a worker-mode search, or None
        self.space = SearchSpace()
        self.storage_obj: Optional[optuna.storages.BaseStorage] = None
        self.storage_spec = ""  # the storage URL (password masked) or journal path in use, set by sweep()
        self.password: Optional[str] = None  # the storage URL's password, kept out of every output
        self.untold: Optional[str] = None  # why a trial could not be told, if one could not
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        # The grid sweeper's composer: a trial's config is derived from the first one's (the
        # sampled values, its folder and its trial link are plain values), not composed by
        # Hydra from scratch, both here and in the launcher.
        from hydra_plugins.wdsweep_sweeper._compose import CachingConfigLoader

        hydra_context = HydraContext(config_loader=CachingConfigLoader(hydra_context.config_loader),
                                     callbacks=hydra_context.callbacks)
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    # ------------------------------------------------------------------ the sweep
    def sweep(self, arguments: List[str]) -> Any:
        self._take_password_out_of_storage()
        self._check_settings()
        try:
            space = parse_search_space(self.params, arguments)
            self._check_setup(space)
        except SearchSpaceError as err:
            ConfigError(f"invalid search space: {err}").exit()
        self.space = space
        study_name = self.study_name or default_study_name(space, self._replication())
        storage_spec = self.storage_spec = (
            self.storage or str((Path(self.storage_dir) / f"{study_name}.journal").resolve()))
        sweep_dir = Path(self.config.hydra.sweep.dir)
        if self.dry_run:
            self._print_plan(space, study_name, storage_spec)
            return None
        self._check_sweep_dir_is_ours(sweep_dir, study_name)
        lock, study = self._open_study_or_exit(study_name, storage_spec, space)
        if self.worker is None:  # a worker shares its coordinator's folder and multirun.yaml
            sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        job_index = 0
        if self.workers > 1:
            self._run_workers(study, sweep_dir)
        else:
            heartbeat = _Heartbeat(self.storage_obj, self.heartbeat_seconds)
            try:
                job_index = self._run_to_budget(study, lock, space, storage_spec, heartbeat)
            except _storage_errors() as err:  # the storage went away or filled up mid-sweep
                self._stop_unwritable(hide_password(_one_line(err), self.password))
            finally:
                heartbeat.stop()
        if self.worker is not None:
            return None  # its coordinator writes the results and runs the finalists
        self._write_results(study, sweep_dir)
        self._fail_if_nothing_completed(study)
        if self.finalists:
            self._run_finalists(study, sweep_dir, storage_spec, job_index)
        return None

    def _run_workers(self, study: optuna.Study, sweep_dir: Path) -> None:
        """Worker mode (_workers): start the workers, wait for them, and stop with one line if
        they all ended before the study held n_trials finished trials."""
        import sys

        kind = wk.launcher_kind(self.config.hydra.launcher)
        argv = wk.worker_argv(sys.orig_argv, sweep_dir.resolve(), kind, self.password)
        pool = (wk.SubmititWorkers(argv, self.workers, sweep_dir, self.config.hydra.launcher, kind)
                if kind.startswith("submitit") else wk.LocalWorkers(argv, self.workers, sweep_dir))
        log.info("worker mode: %d workers (%s) ask, run and tell one trial at a time until study %r "
                 "holds %d finished trials", self.workers,
                 "submitit jobs" if kind.startswith("submitit") else "local processes",
                 study.study_name, self.n_trials)
        pool.start()
        codes = pool.wait()
        failed = [(i, code) for i, code in enumerate(codes) if code != 0]
        for i, code in failed:
            log.warning("worker %d exited with status %d: %s", i, code, pool.last_lines.get(i, "(no output)"))
        finished = _count(study, FINISHED)
        if failed and finished < self.n_trials:
            self._write_results(study, sweep_dir)
            i, code = failed[0]
            ConfigError(f"search stopped: {len(failed)} of {self.workers} workers exited with an error "
                        f"(worker {i}, status {code}: {pool.last_lines.get(i, '(no output)')}); the study "
                        f"holds {finished} of n_trials={self.n_trials} finished trials: run the same command "
                        "again to resume").exit()

    def _print_plan(self, space: SearchSpace, study_name: str, storage_spec: str) -> None:
        """hydra.sweeper.dry_run: what the search would do, on stdout; nothing asked or written.
        A journal file is read if it exists; a storage URL is not opened (opening an RDB
        storage may create its tables)."""
        from wdsweep.validation import validate

        sample = {key: _first_value(dist) for key, dist in space.distributions.items()}
        job = [f"{k}={v}" for k, v in space.fixed.items() if k not in sample] + \
              [f"{k}={_override_value(v)}" for k, v in sample.items()]
        try:
            validate(self.hydra_context.config_loader.load_sweep_config(self.config, job))
            checked = "valid"
        except Exception as err:  # noqa: BLE001 - said, as the sweep would fail that trial
            checked = f"invalid ({_fail_reason(err)})"
        held = "a URL storage is not opened in a dry run"
        finished = 0
        if "://" not in storage_spec:
            held = "new study (no journal file yet)"
            if Path(storage_spec).is_file():
                from optuna.storages.journal import JournalFileBackend

                storage = optuna.storages.JournalStorage(JournalFileBackend(storage_spec))
                found = [s for s in optuna.get_all_study_summaries(storage) if s.study_name == study_name]
                if found and found[0].user_attrs.get(REPLICATION_ATTR) != self._replication():
                    # what the sweep itself would say, as it would say it (one line, exit 1)
                    ConfigError(f"invalid search: study {study_name!r} in {storage_spec} was run with "
                                f"{_replication_text(found[0].user_attrs.get(REPLICATION_ATTR))}, not "
                                f"{_replication_text(self._replication())}: give another "
                                "hydra.sweeper.study_name").exit()
                if found:
                    trials = optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)
                    states = {s.name: sum(t.state == s for t in trials) for s in TrialState}
                    finished = sum(states[s.name] for s in FINISHED)
                    held = f"{len(trials)} trials already (" + ", ".join(
                        f"{n} {name.lower()}" for name, n in states.items() if n) + ")" if trials else "no trial yet"
        per_trial = f"{len(self.seeds)} seeds {self.seeds}" if self.seeds else "one run"
        print(f"dry run: study {study_name!r} in {storage_spec}: {held}; would ask up to "
              f"{max(0, self.n_trials - finished)} more trial(s) to reach n_trials={self.n_trials}, "
              + (f"{self.workers} workers pulling one trial each" if self.workers > 1 else
                 f"{self.n_jobs} at a time") + f", each {per_trial}"
              + (f", then {self.finalists} finalist(s) on fresh seeds" if self.finalists else "")
              + "; nothing asked, trained or written")
        for key, dist in space.distributions.items():
            print(f"  search {key}: {dist}")
        for key, value in space.fixed.items():
            print(f"  fixed  {key}={value}")
        print(f"  a sample point's config ({' '.join(job)}): {checked}")

    def _fail_if_nothing_completed(self, study: optuna.Study) -> None:
        """A search none of whose trials completed has no answer: say so and exit non-zero
        (below min_trials_for_failure_rate the failure-rate stop does not look)."""
        trials = study.get_trials(deepcopy=False)
        if trials and not any(t.state == TrialState.COMPLETE for t in trials):
            reasons = [t.user_attrs.get(REASON_ATTR) for t in trials if t.user_attrs.get(REASON_ATTR)]
            ConfigError(f"search ended without a completed trial: {len(trials)} trials, "
                        f"{_count(study, (TrialState.FAIL,))} failed"
                        + (f" (first reason: {reasons[0]})" if reasons else "")).exit()

    def _run_to_budget(self, study: optuna.Study, lock: "_AskLock", space: SearchSpace, storage_spec: str,
                       heartbeat: "_Heartbeat") -> int:
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

    def _stop_if_untold(self) -> None:
        """A trial this sweep could not tell would stay RUNNING, and the sweep would wait for
        it forever: the storage cannot be written (a full disk, a lost server). Stop."""
        if self.untold:
            self._stop_unwritable(self.untold)

    def _stop_unwritable(self, problem: str) -> NoReturn:
        ConfigError(f"search stopped: the Optuna storage {self.storage_spec} cannot be written ({problem}); "
                    "the study keeps every trial told before: run the same command again to resume once "
                    "it can be written").exit()

    def _take_password_out_of_storage(self) -> None:
        """Keep a storage URL's password out of everything written or logged (see the module).

        Hydra saves the sweeper's config (multirun.yaml here, each job's .hydra/hydra.yaml in
        run_job) with hydra.sweeper.storage and the command line's hydra.overrides.hydra, and
        composes every job from those overrides: both get the masked URL before the first is
        saved or composed. The password goes to os.environ, which every launcher's job
        processes inherit (in-process, joblib's workers, submitit's jobs), and open_storage puts
        it back into the URL in memory. A user who would rather not type it at all gives
        postgresql://me@host/db and PGPASSWORD or ~/.pgpass, which the driver reads."""
        public, password = split_password(self.storage) if self.storage else (self.storage, None)
        if password is None:
            if self.storage and f":{MASK}@" in self.storage:  # a worker's URL: its coordinator masked it
                self.password = os.environ.get(ENV_PASSWORD)
            return
        self.storage, self.password = public, password
        os.environ[ENV_PASSWORD] = password
        hydra_cfg = self.config.hydra
        with read_write(hydra_cfg), open_dict(hydra_cfg):
            hydra_cfg.sweeper.storage = public
            hydra_cfg.overrides.hydra = [hide_password(o, password) for o in hydra_cfg.overrides.hydra]

    @staticmethod
    def _check_sweep_dir_is_ours(sweep_dir: Path, study_name: str) -> None:
        """Trial folders are named by trial number, so a second study in the same sweep folder
        would overwrite the first one's trial-00000, ... while that study's storage still points
        there: refuse, before the storage is opened or anything written."""
        import json

        import yaml

        owners = set()
        results = sweep_dir / RESULTS_FILE
        if results.is_file():
            try:
                owners.add((yaml.safe_load(results.read_text()) or {}).get("study_name"))
            except (OSError, yaml.YAMLError, AttributeError):
                pass
        for metrics in sorted(sweep_dir.glob("trial-*/metrics.json"))[:20]:
            try:
                owners.add((json.loads(metrics.read_text()).get("optuna") or {}).get("study"))
            except (OSError, ValueError, AttributeError):
                continue
        others = sorted(o for o in owners - {study_name, None} if isinstance(o, str))
        if others:
            ConfigError(f"invalid config: hydra.sweep.dir={str(sweep_dir)!r} is not allowed: a folder "
                        f"of this study only ({study_name}); it holds the trials of study "
                        f"{others[0]!r}, which its own storage still points to").exit()

    def _check_settings(self) -> None:
        """The sweeper's own keys, every problem on one line as wdsweep's validate words them,
        before the storage is opened or any trial asked."""
        problems = []

        def fail(key: str, value: Any, allowed: str) -> None:
            problems.append(f"hydra.sweeper.{key}={value!r} is not allowed: {allowed}")

        if not self.directions or any(d not in ("minimize", "maximize") for d in self.directions):
            direction = self.directions[0] if len(self.directions) == 1 else self.directions
            fail("direction", direction, "minimize or maximize, or a list of them")
        if not self.n_trials >= 1:
            fail("n_trials", self.n_trials, "an integer >= 1 (the finished trials the study should hold)")
        if not self.n_jobs >= 1:
            fail("n_jobs", self.n_jobs, "an integer >= 1 (the trials launched at once)")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            fail("workers", self.workers, "an integer >= 1 (1: round mode; N > 1: N worker processes)")
        elif self.workers > 1 and self.n_jobs != 1:
            fail("n_jobs", self.n_jobs, "1 with hydra.sweeper.workers > 1 (each worker runs one trial "
                 "at a time; the workers are the parallelism)")
        elif self.workers > 1 and wk.launcher_kind(self.config.hydra.launcher) == "other":
            fail("workers", self.workers, "1 with this launcher (worker mode runs its workers as local "
                 "processes or submitit jobs: hydra/launcher=basic, vectorized, joblib or submitit_*)")
        if not 0 <= self.max_failure_rate <= 1:
            fail("max_failure_rate", self.max_failure_rate, "a number in [0, 1]")
        if not self.min_trials_for_failure_rate >= 1:
            fail("min_trials_for_failure_rate", self.min_trials_for_failure_rate, "an integer >= 1")
        # stale_after_seconds may be below heartbeat_seconds: a sweep resumed after a crash may
        # fail the dead sweep's trials early on purpose.
        for key in ("heartbeat_seconds", "stale_after_seconds"):
            if not getattr(self, key) > 0:
                fail(key, getattr(self, key), "a number > 0")
        problems += self._replication_problems()
        if problems:
            ConfigError("invalid config: " + "; ".join(problems)).exit()

    def _replication_problems(self) -> List[str]:
        """hydra.sweeper.seeds, aggregate, se_k, finalists, finalist_seeds and the pruner that
        goes with them, each problem as one line (see _replicates)."""
        problems = []

        def fail(key: str, value: Any, allowed: str) -> None:
            problems.append(f"{key}={value!r} is not allowed: {allowed}")

        try:
            self.seeds = seed_list(self.seeds_conf, "seeds")
        except ValueError:
            fail("hydra.sweeper.seeds", self.seeds_conf,
                 "null, a count >= 1, or a list of distinct seeds >= 0 (each trial trains them all)")
        if self.aggregate not in rep.AGGREGATES:
            fail("hydra.sweeper.aggregate", self.aggregate, "mean or mean_se")
        if not (isinstance(self.se_k, (int, float)) and math.isfinite(self.se_k) and self.se_k >= 0):
            fail("hydra.sweeper.se_k", self.se_k, "a finite number >= 0")
        if isinstance(self.finalists, bool) or not isinstance(self.finalists, int) or self.finalists < 0:
            fail("hydra.sweeper.finalists", self.finalists, "an integer >= 0")
        elif self.finalists and len(self.directions) > 1:
            fail("hydra.sweeper.finalists", self.finalists,
                 "0 for a multi-objective search (its trials have no single ranking)")
        try:
            fresh_seeds(self.finalist_seeds_conf, self.seeds or [])
        except ValueError as err:
            fail("hydra.sweeper.finalist_seeds", self.finalist_seeds_conf,
                 f"a count >= 1 or a list of distinct seeds >= 0 the search does not use ({err})")
        pruner = self.pruner_conf.get("name")
        if pruner == "wilcoxon" and (self.seeds is None or len(self.seeds) < 2):
            fail("hydra/sweeper/pruner", pruner, "wilcoxon prunes between a trial's seeds: set "
                 "hydra.sweeper.seeds to 2 or more seeds, or pick another pruner")
        elif pruner == "wilcoxon" and len(self.directions) > 1:
            fail("hydra/sweeper/pruner", pruner, "none for a multi-objective search (Optuna prunes "
                 "single-objective studies only)")
        elif self.seeds is not None and pruner not in ("none", "wilcoxon"):
            fail("hydra/sweeper/pruner", pruner, "none or wilcoxon with hydra.sweeper.seeds (the other "
                 "pruners stop one run by its training steps, and a replicated trial is several runs)")
        return problems

    def _check_setup(self, space: SearchSpace) -> None:
        if not space.distributions and not self.custom_search_space:
            raise SearchSpaceError("nothing to search: give hydra.sweeper.params or sweep entries "
                                   "such as reg.lam='tag(log,interval(1e-5,1e-1))'")
        if self.seeds is not None and "seed" in space.distributions:
            raise SearchSpaceError("hydra.sweeper.params.seed is not allowed to be searched with "
                                   "hydra.sweeper.seeds: each trial trains every listed seed")
        for point in self.enqueue:
            self._check_enqueued(point, space)
        if self.sampler_conf["name"] == "grid":
            size = math.prod(len(values) for values in space.grid().values())  # raises if continuous
            if size < self.n_trials:
                log.info("the grid has %d points: n_trials %d -> %d", size, self.n_trials, size)
                self.n_trials = size

    @staticmethod
    def _check_enqueued(point: Dict[str, Any], space: SearchSpace) -> None:
        """An enqueued point outside the space would reach the study and leave a trial that
        can be neither run nor told (it stayed RUNNING): check it before the study is opened."""
        allowed = "a point of the search space: keys " + ", ".join(sorted(space.distributions))
        for key, value in point.items():
            dist = space.distributions.get(key)
            if dist is None:
                raise SearchSpaceError(f"hydra.sweeper.enqueue={point} is not allowed: {allowed} "
                                       f"({key} is not searched)")
            try:
                inside = dist._contains(dist.to_internal_repr(value))
            except (ValueError, TypeError):
                inside = False
            if not inside:
                raise SearchSpaceError(f"hydra.sweeper.enqueue={point} is not allowed: {allowed}, each "
                                       f"within its distribution ({key}={value!r} is outside {dist})")

    def _open_study_or_exit(self, study_name: str, storage_spec: str, space: SearchSpace
                            ) -> tuple["_AskLock", optuna.Study]:
        """Open the study before any trial is asked: a storage that cannot be reached or written
        ends the sweep with one line naming it, instead of a driver's traceback."""
        problem = _storage_path_problem(storage_spec)
        if problem is None:
            try:
                lock = _AskLock(storage_spec, study_name)
                with lock.held():  # two processes creating one RDB schema or study at once would collide
                    return lock, self._open_study(study_name, storage_spec, space)
            except _storage_errors() as err:
                problem = hide_password(_one_line(err), self.password)
        key, value = ("storage", self.storage) if self.storage else ("storage_dir", self.storage_dir)
        ConfigError(f"invalid config: hydra.sweeper.{key}={value!r} is not allowed: an Optuna storage "
                    f"this process can open and write ({problem})").exit()

    def _open_study(self, study_name: str, storage_spec: str, space: SearchSpace) -> optuna.Study:
        from wdsweep.trial_link import PRUNER_ATTR, open_storage

        storage = self.storage_obj = open_storage(storage_spec)
        existing = [s for s in optuna.get_all_study_summaries(storage) if s.study_name == study_name]
        n_existing = existing[0].n_trials if existing else 0
        study = optuna.create_study(
            study_name=study_name, storage=storage, load_if_exists=True, directions=self.directions,
            sampler=self._sampler(space, n_existing), pruner=_nop_pruner())
        if [d.name.lower() for d in study.directions] != self.directions:
            ConfigError(f"invalid search: study {study_name!r} in {storage_spec} was created with directions "
                        f"{[d.name.lower() for d in study.directions]}, not {self.directions}").exit()
        replication = self._replication()
        if existing and study.user_attrs.get(REPLICATION_ATTR) != replication:
            # Values aggregated over other seeds (or one seed) are not comparable with these.
            ConfigError(f"invalid search: study {study_name!r} in {storage_spec} was run with "
                        f"{_replication_text(study.user_attrs.get(REPLICATION_ATTR))}, not "
                        f"{_replication_text(replication)}: give another hydra.sweeper.study_name").exit()
        study.set_user_attr(REPLICATION_ATTR, replication)
        study.set_user_attr(PRUNER_ATTR, self.pruner_conf)
        self._settle_orphaned_trials(study)
        if not existing:
            for point in self.enqueue:
                study.enqueue_trial(point, skip_if_exists=True)
        log.info("study %r in %s: %d trials already, %d finished; running to %d", study_name, storage_spec,
                 n_existing, _count(study, FINISHED), self.n_trials)
        return study

    def _sampler(self, space: SearchSpace, n_existing: int) -> optuna.samplers.BaseSampler:
        conf = dict(self.sampler_conf)
        name, seed = conf.pop("name"), conf.pop("seed")
        if seed is not None and n_existing:
            seed += n_existing  # a resumed seeded sampler must not replay its first points
        if seed is not None and self.worker:
            # nor may two workers draw the same points: each has its own sampler
            seed += 100_003 * self.worker
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, **conf)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "grid":
            return optuna.samplers.GridSampler(space.grid(), seed=seed)
        if name == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, **conf)
        if name == "gp":
            return optuna.samplers.GPSampler(seed=seed, **conf)
        raise SearchSpaceError(f"hydra/sweeper/sampler={name!r}: tpe, random, grid, cmaes or gp")

    def _settle_orphaned_trials(self, study: optuna.Study) -> None:
        """Tell the RUNNING trials no sweep will tell. Called between batches, when none of this
        sweep's own trials run, so every RUNNING trial is another sweep's: one whose job has
        finished (its metrics.json is in the trial's folder; its sweep was killed before the
        tell) is told at once how the job ended, without waiting for its heartbeat to go
        stale; one without is failed once its heartbeat is older than stale_after_seconds.
        Telling a live sweep's finished trial first is harmless: its own tell is then skipped."""
        now = time.time()
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.user_attrs.get(rep.SEEDS_ATTR) and self._settle_replicated(study, trial):
                continue
            record = _finished_record(trial)
            if record is not None:
                self._tell_from_record(study, trial, record)
                continue
            last = _last_sign_of_life(trial, now)
            if now - last > self.stale_after_seconds:
                self._tell(study, trial._trial_id, trial.number, TrialState.FAIL, None,
                           f"stale: its sweep stopped (no heartbeat for {now - last:.0f} s)")

    def _settle_replicated(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        """A replicated trial whose sweep was killed after its seeds' jobs ended: told from the
        seeds' metrics.json (trial-NNNNN/seed-S) as its sweep would have, once every seed has
        one, or as failed at once if one of them failed. False: not settled (seeds still
        missing: the heartbeat rule then applies)."""
        seeds, folder = trial.user_attrs[rep.SEEDS_ATTR], trial.user_attrs.get(JOB_DIR_ATTR)
        if not folder:
            return False
        records = {s: _finished_record(trial, Path(folder) / f"seed-{s}") for s in seeds}
        r = rep.Replicated(trial, [], Path(folder).name)
        for seed, record in records.items():
            if record is not None:
                r.take(seed, *_outcome_of_record(record, len(self.directions)), record)
        if r.failed is None and len(r.values) < len(seeds):
            return False
        log.info("trial %d: its sweep stopped after its seeds' jobs ended: told from their metrics.json",
                 trial.number)
        try:
            if len(self.directions) == 1:
                for seed, values in r.values.items():
                    self.storage_obj.set_trial_intermediate_value(trial._trial_id, seed, values[0])
        except optuna.exceptions.UpdateFinishedTrialError:
            return True  # its own sweep told it meanwhile
        self._tell_replicated(study, r, seeds)
        return True

    def _tell_from_record(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, record: dict) -> None:
        """Tell a trial how its job ended, from the job's metrics.json, as the sweep that ran it
        would have: its objective for a completed job, PRUNED, or FAIL with the reason; and
        the job's own user attributes, in case the kill also came before the job wrote them."""
        from wdsweep.trial_link import record_attrs

        state, values, reason = _outcome_of_record(record, len(self.directions))
        try:
            record_attrs(self.storage_obj, trial._trial_id, record)
            same_as = re.fullmatch(r"trial-(\d+)", Path(str(record.get("same_as", ""))).name)
            if same_as:  # a record of another trial's result (dedupe), written before the kill
                self.storage_obj.set_trial_user_attr(trial._trial_id, SAME_AS_ATTR, int(same_as[1]))
        except optuna.exceptions.UpdateFinishedTrialError:
            return  # its own sweep told it meanwhile
        log.info("trial %d: its sweep stopped after its job ended (%s in %s): told %s%s", trial.number,
                 record.get("status"), trial.user_attrs.get(JOB_DIR_ATTR), state.name,
                 f" {values}" if values else "")
        self._tell(study, trial._trial_id, trial.number, state, values, reason)

    def _say_waiting(self, running: List[optuna.trial.FrozenTrial], said: set) -> None:
        """One line per set of trials this sweep waits for, so that no wait is silent."""
        numbers = tuple(sorted(t.number for t in running))
        if numbers in said:
            return
        said.add(numbers)
        now = time.time()
        ages = ", ".join(f"{t.number} ({now - _last_sign_of_life(t, now):.0f} s ago)" for t in running)
        log.info("the study's budget is taken; waiting for the trials other sweeps run (last heartbeat: "
                 "%s). A trial whose heartbeat is older than hydra.sweeper.stale_after_seconds=%g "
                 "belonged to a killed sweep and is failed then", ages, self.stale_after_seconds)

    def _ask_batch(self, study: optuna.Study) -> List[optuna.Trial]:
        """Up to n_jobs new trials, never more than the study's budget leaves, counting the
        trials other sweep processes are running."""
        taken = _count(study, FINISHED + (TrialState.RUNNING,))
        n = max(0, min(self.n_jobs, self.n_trials - taken))
        return [study.ask(self.space.distributions) for _ in range(n)]

    def _run_batch(self, study: optuna.Study, space: SearchSpace, storage_spec: str,
                   trials: List[optuna.Trial], job_index: int) -> int:
        """Launch the asked trials, tell Optuna how each ended. A trial whose canonical config
        a finished trial already trained (wdsweep.canonical) is told that trial's values and
        gets a record of its result instead of a training; a trial that repeats another of
        this same batch waits for it, and trains after all if that one did not complete."""
        from wdsweep.canonical import canonical_hash
        from wdsweep.validation import validate

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
                self._tell(study, trial._trial_id, trial.number, TrialState.FAIL, None, _fail_reason(err))
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

    def _launch(self, job_overrides: List[List[str]], initial_job_idx: int) -> Sequence[Any]:
        """The launcher's launch; with Hydra's basic launcher, the same through
        wdsweep.inprocess.run_sweep_job, whose log line leaves out the trial link (env_set)
        and a job folder that cannot be created fails that job, not the sweep."""
        from hydra._internal.core_plugins.basic_launcher import BasicLauncher

        from wdsweep import submitit_launch

        if submitit_launch.is_submitit_launcher(self.launcher):
            # a job that dies without a result (OOM, time limit) fails its trial, not the sweep
            return submitit_launch.launch(self.launcher, job_overrides, initial_job_idx)
        if type(self.launcher) is not BasicLauncher:
            return self.launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
        from hydra.core.utils import configure_log

        from wdsweep.inprocess import run_here

        returns = run_here(self.hydra_context, self.launcher.task_function, self.config, job_overrides,
                           initial_job_idx)
        # the jobs configured their own logging: the sweeper's lines go back to Hydra's
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return returns

    @staticmethod
    def _linked(job: List[str], storage_spec: str, study: optuna.Study, trial: Any,
                role: str = "trial") -> List[str]:
        """The job's overrides with its trial link (wdsweep.trial_link), carried by env_set."""
        from wdsweep.trial_link import ENV_ROLE, ENV_STORAGE, ENV_STUDY, ENV_TRIAL

        link = [f"++hydra.job.env_set.{ENV_STORAGE}={_quote(storage_spec)}",
                f"++hydra.job.env_set.{ENV_STUDY}={_quote(study.study_name)}",
                f"++hydra.job.env_set.{ENV_TRIAL}={trial._trial_id}"]
        return job + link + ([f"++hydra.job.env_set.{ENV_ROLE}={role}"] if role != "trial" else [])

    # ------------------------------------------------------- replicated trials (_replicates)
    def _run_replicated_batch(self, study: optuna.Study, space: SearchSpace, storage_spec: str,
                              trials: List[optuna.Trial], job_index: int) -> int:
        """Each asked trial trains every seed of hydra.sweeper.seeds and is told their aggregate.
        Without the Wilcoxon pruner all the batch's seeds go to the launcher at once (one
        batched model under hydra/launcher=vectorized); with it, one seed per round, and a
        trial the pruner stops after a round runs no more seeds."""
        from wdsweep.canonical import canonical_hash
        from wdsweep.validation import validate

        sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
        twins = self._finished_by_canonical(study, replicated=True) if self.dedupe else {}
        active: List[rep.Replicated] = []
        for trial in trials:
            folder = f"trial-{trial.number:05d}"
            try:
                job = [o for o in self._trial_overrides(trial, space) if not o.startswith("seed=")]
                cfg = self.hydra_context.config_loader.load_sweep_config(self.config, job + [f"seed={self.seeds[0]}"])
                validate(cfg)
                canonical = canonical_hash(cfg) + f"|seeds={self.seeds}"
            except Exception as err:  # noqa: BLE001 - composition, validation or the hook: this trial fails
                self._tell(study, trial._trial_id, trial.number, TrialState.FAIL, None, _fail_reason(err))
                continue
            for key, value in ((CANONICAL_ATTR, canonical), (JOB_DIR_ATTR, str(sweep_dir / folder)),
                               (rep.SEEDS_ATTR, self.seeds)):
                self.storage_obj.set_trial_user_attr(trial._trial_id, key, value)
            if canonical in twins:
                self._tell_replicated_twin(study, trial, twins[canonical])
                continue
            active.append(rep.Replicated(trial, job, folder))
        wilcoxon = self._wilcoxon_pruner()
        rounds = [[s] for s in self.seeds] if wilcoxon else [self.seeds]
        for seeds in rounds:
            launched = [(r, s) for r in active for s in seeds]
            if not launched:
                break
            overrides = [self._linked(r.seed_job(s), storage_spec, study, r.trial, "replicate") for r, s in launched]
            returns = self._launch(overrides, initial_job_idx=job_index)
            job_index += len(launched)
            for (r, s), ret in zip(launched, returns):
                self._take_seed(r, s, ret, sweep_dir / r.folder / f"seed-{s}")
            for r in active:
                if r.failed is None and wilcoxon is not None and len(r.values) < len(self.seeds):
                    frozen = self.storage_obj.get_trial(r.trial._trial_id)
                    if wilcoxon.prune(study, frozen):
                        r.pruned = f"pruned by WilcoxonPruner after seeds {sorted(r.values)}"
            active_next = []
            for r in active:
                if r.failed is not None or r.pruned is not None:
                    self._tell_replicated(study, r)
                else:
                    active_next.append(r)
            active = active_next
        for r in active:
            self._tell_replicated(study, r)
        return job_index

    def _take_seed(self, r: "rep.Replicated", seed: int, ret: Any, job_dir: Path) -> None:
        """Keep one seed's outcome on the trial: its values as the intermediate value at
        step = seed (what WilcoxonPruner compares), or the trial's failure."""
        state, values, reason, record = rep.seed_outcome(ret, job_dir, len(self.directions))
        r.take(seed, state, values, reason, record)
        if state == TrialState.COMPLETE and len(self.directions) == 1:
            self.storage_obj.set_trial_intermediate_value(r.trial._trial_id, seed, values[0])

    def _tell_replicated(self, study: optuna.Study, r: "rep.Replicated", seeds: Optional[List[int]] = None) -> None:
        """Tell a replicated trial its aggregate (or PRUNED, or FAIL), with the per-seed values
        and the means of the seeds' validation and test errors as user attributes."""
        def mean(values: Dict[int, Optional[float]]) -> Optional[float]:
            kept = [v for v in values.values() if v is not None]
            return sum(kept) / len(kept) if kept else None

        status = "failed" if r.failed else "pruned" if r.pruned else "completed"
        attrs = {rep.SEED_VALUES_ATTR: {str(s): v for s, v in r.values.items()},
                 rep.SEED_TEST_ATTR: {str(s): v for s, v in r.test_errors.items()},
                 "wdsweep_status": status, "wdsweep_val_error": mean(r.val_errors),
                 "wdsweep_test_error": mean(r.test_errors)}
        try:
            for key, value in attrs.items():
                self.storage_obj.set_trial_user_attr(r.trial._trial_id, key, value)
        except optuna.exceptions.UpdateFinishedTrialError:
            return  # told meanwhile (a cooperating sweep settled it)
        if r.failed:
            self._tell(study, r.trial._trial_id, r.trial.number, TrialState.FAIL, None, r.failed)
        elif r.pruned:
            log.info("trial %d: %s", r.trial.number, r.pruned)
            self._tell(study, r.trial._trial_id, r.trial.number, TrialState.PRUNED, None, None)
        else:
            values = rep.aggregate([r.values[s] for s in seeds or self.seeds], self.directions, self.aggregate,
                                   self.se_k)
            self._tell(study, r.trial._trial_id, r.trial.number, TrialState.COMPLETE, values, None)

    def _tell_replicated_twin(self, study: optuna.Study, trial: optuna.Trial,
                              source: optuna.trial.FrozenTrial) -> None:
        """A replicated trial whose configuration and seeds a finished trial already trained is
        told that trial's values and seeds, and trains nothing (it has no folder of its own)."""
        try:
            self._take_result_attrs(trial, source)
            for step, value in source.intermediate_values.items():
                self.storage_obj.set_trial_intermediate_value(trial._trial_id, step, value)
        except optuna.exceptions.UpdateFinishedTrialError:
            return
        log.info("trial %d: the same configuration and seeds as trial %d, told its value (not trained)",
                 trial.number, source.number)
        self._tell(study, trial._trial_id, trial.number, TrialState.COMPLETE, list(source.values), None)

    def _replication(self) -> Optional[dict]:
        """What each trial's value aggregates (None: one run, the config's seed)."""
        if self.seeds is None:
            return None
        return {"seeds": list(self.seeds), "aggregate": self.aggregate,
                **({"se_k": float(self.se_k)} if self.aggregate == "mean_se" else {})}

    def _take_result_attrs(self, trial: Any, source: optuna.trial.FrozenTrial) -> None:
        """A twin trial's user attributes: the result ones of `source` (not its canonical hash,
        folder or heartbeat), and which trial it shares them with. Raises UpdateFinishedTrialError
        if the trial was told meanwhile."""
        for key, value in source.user_attrs.items():
            if key.startswith("wdsweep_") and key not in (CANONICAL_ATTR, JOB_DIR_ATTR, HEARTBEAT_ATTR):
                self.storage_obj.set_trial_user_attr(trial._trial_id, key, value)
        self.storage_obj.set_trial_user_attr(trial._trial_id, SAME_AS_ATTR, source.number)

    def _wilcoxon_pruner(self) -> Optional[optuna.pruners.BasePruner]:
        import warnings

        conf = dict(self.pruner_conf)
        if conf.pop("name") != "wilcoxon":
            return None
        with warnings.catch_warnings():  # experimental since Optuna 3.6; we pin its use in tests
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.pruners.WilcoxonPruner(**conf)

    # ------------------------------------------------------------ finalists (_replicates)
    def _run_finalists(self, study: optuna.Study, sweep_dir: Path, storage_spec: str, job_index: int) -> None:
        """Re-run the m best trials (distinct configurations) on seeds the search never used,
        and write finalists.yaml (wdsweep.finalists). Jobs already done by an earlier run of
        the same command are not trained again (their folders are kept, as any job's)."""
        from wdsweep import finalists

        used = self.seeds or sorted({int(self.config.seed)} | {
            int(t.params["seed"]) for t in study.get_trials(deepcopy=False) if "seed" in t.params})
        seeds = finalists.fresh_seeds(self.finalist_seeds_conf, used)
        best = self._best_distinct(study, self.finalists)
        if not best:
            return
        log.info("finalists: trials %s on fresh seeds %s", [t.number for t in best], seeds)
        launched = []
        for t in best:
            job = [o for o in self._trial_overrides(t, self.space) if not o.startswith("seed=")]
            for s in seeds:
                folder = f"{finalists.FINALISTS_DIR}/trial-{t.number:05d}/seed-{s}"
                launched.append((t, s, folder, self._linked(job + [f"seed={s}", f"hydra.sweep.subdir={folder}"],
                                                            storage_spec, study, t, "finalist")))
        returns = self._launch([o for *_, o in launched], initial_job_idx=job_index)
        rows: Dict[int, List[dict]] = {t.number: [] for t in best}
        for (t, s, folder, _), ret in zip(launched, returns):
            _, values, reason, record = rep.seed_outcome(ret, sweep_dir / folder, 1)
            rows[t.number].append(finalists.seed_row(s, record, values[0] if values else None, reason))
        entries = [finalists.summary(f"trial-{t.number:05d}", dict(t.params), t.value, rows[t.number],
                                     trial=t.number,
                                     search_test_error=finite_or_none(t.user_attrs.get("wdsweep_test_error")))
                   for t in best]
        finalists.write(sweep_dir, self.directions[0], used, seeds, entries, study_name=study.study_name)
        for entry in entries:
            log.info("%s", finalists.log_line(entry))

    def _best_distinct(self, study: optuna.Study, m: int) -> List[optuna.trial.FrozenTrial]:
        """The m best completed trials by value, one per distinct configuration (a trial told
        another's value, same_as, is that configuration again)."""
        complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                    if SAME_AS_ATTR not in t.user_attrs]
        sign = 1.0 if self.directions[0] == "minimize" else -1.0
        chosen, seen = [], set()
        for t in sorted(complete, key=lambda t: (sign * t.value, t.number)):
            key = t.user_attrs.get(CANONICAL_ATTR, t.number)
            if key not in seen:
                seen.add(key)
                chosen.append(t)
        return chosen[:m]

    def _finished_by_canonical(self, study: optuna.Study, replicated: bool = False
                               ) -> Dict[str, optuna.trial.FrozenTrial]:
        """Completed trials a twin can be told from, by canonical config hash (the first of
        each): with a result on disk, or for a replicated search, with its seeds' values."""
        found: Dict[str, optuna.trial.FrozenTrial] = {}
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            key = t.user_attrs.get(CANONICAL_ATTR)
            if not key or key in found:
                continue
            if rep.SEED_VALUES_ATTR in t.user_attrs if replicated else self._source_dir(t) is not None:
                found[key] = t
        return found

    @staticmethod
    def _source_dir(trial: optuna.trial.FrozenTrial) -> Optional[Path]:
        """The folder of a trial that trained, if its finished result is still there."""
        from wdsweep.resume import DONE_STATUSES, read_record

        folder = trial.user_attrs.get(JOB_DIR_ATTR)
        if not folder or trial.user_attrs.get(SAME_AS_ATTR) is not None:
            return None  # a record of another trial's result: point to that one instead
        record = read_record(Path(folder))
        return Path(folder) if record is not None and record.get("status") in DONE_STATUSES else None

    def _record_twin(self, study: optuna.Study, trial: optuna.Trial, job: List[str],
                     source: optuna.trial.FrozenTrial) -> bool:
        """Write the trial's folder as a record of `source`'s result (through Hydra's run_job,
        in this process) and tell Optuna the source's values. False, with nothing done, if the
        source's finished result is no longer on disk: the trial then trains."""
        from hydra.core.utils import configure_log, setup_globals

        from wdsweep.canonical import RecordTwin
        from wdsweep.inprocess import run_sweep_job

        source_dir = self._source_dir(source)
        if source_dir is None:
            return False
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, job)
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
        task = RecordTwin(source_dir, os.path.relpath(source_dir, sweep_dir))
        run_sweep_job(self.hydra_context, task, cfg, trial.number, job)
        if task.record.get("status") != "completed":
            self._tell(study, trial._trial_id, trial.number, TrialState.FAIL, None,
                       f"could not record the result of trial {source.number}")
            return True
        try:
            self._take_result_attrs(trial, source)
        except optuna.exceptions.UpdateFinishedTrialError:
            return True  # another sweep told it from the record just written
        log.info("trial %d: the same configuration as trial %d, told its value (not trained)",
                 trial.number, source.number)
        self._tell(study, trial._trial_id, trial.number, TrialState.COMPLETE, list(source.values), None)
        return True

    def _trial_overrides(self, trial: optuna.Trial, space: SearchSpace) -> List[str]:
        chosen: Dict[str, Any] = dict(trial.params)  # sampled by study.ask from the space
        if self.custom_search_space:
            module, _, name = self.custom_search_space.rpartition(".")
            hook = getattr(importlib.import_module(module), name)
            chosen.update(hook(self.config, trial) or {})
        fixed = {k: v for k, v in space.fixed.items() if k not in chosen}
        return [f"{k}={v}" for k, v in fixed.items()] + [f"{k}={_override_value(v)}" for k, v in chosen.items()]

    def _outcome(self, study: optuna.Study, trial: optuna.Trial, ret: Any
                 ) -> Tuple[TrialState, Optional[List[float]], Optional[str]]:
        try:
            value = ret.return_value
        except Exception as err:  # noqa: BLE001 - the job raised: a failed trial, not a failed sweep
            return TrialState.FAIL, None, f"job raised {type(err).__name__}: {err}"
        attrs = self.storage_obj.get_trial(trial._trial_id).user_attrs
        return how_it_ended(attrs.get("wdsweep_status"), attrs.get("wdsweep_error"),
                            attrs.get("wdsweep_diverged_at_step"), value, len(self.directions),
                            "the job returned")

    def _tell(self, study: optuna.Study, trial_id: int, number: int, state: TrialState,
              values: Optional[List[float]], reason: Optional[str]) -> None:
        """Tell Optuna; a failure to tell is logged, never raised: the sweep goes on. A trial
        another sweep already told (it found this one's job finished) is left as told."""
        try:
            if reason:
                self.storage_obj.set_trial_user_attr(trial_id, REASON_ATTR, reason)
                log.warning("trial %d: %s (%s)", number, state.name, reason)
            study.tell(number, values, state=state, skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:
            log.info("trial %d: already told by another sweep", number)
        except Exception as err:  # noqa: BLE001
            log.error("could not tell Optuna how trial %d ended (%s): %s", number, state.name,
                      hide_password(str(err), self.password))
            if self._still_running(trial_id):  # (a sampler may raise after the state was stored)
                self.untold = (f"trial {number} could not be told {state.name}: "
                               f"{hide_password(_one_line(err), self.password)}")

    def _still_running(self, trial_id: int) -> bool:
        try:
            return self.storage_obj.get_trial(trial_id).state == TrialState.RUNNING
        except Exception:  # noqa: BLE001 - a storage that cannot even be read
            return True

    def _check_failure_rate(self, study: optuna.Study) -> None:
        finished = _count(study, FINISHED)
        failed = _count(study, (TrialState.FAIL,))
        if finished >= self.min_trials_for_failure_rate and failed / finished > self.max_failure_rate:
            self._write_results(study, Path(self.config.hydra.sweep.dir))
            ConfigError(f"search stopped: {failed} of {finished} trials failed, more than "
                        f"hydra.sweeper.max_failure_rate={self.max_failure_rate}; see the trials' "
                        f"{REASON_ATTR} and their metrics.json").exit()

    def _write_results(self, study: optuna.Study, sweep_dir: Path) -> None:
        trials = study.get_trials(deepcopy=False)
        results: Dict[str, Any] = {
            "study_name": study.study_name,
            "storage": self.storage_spec,
            "n_trials": len(trials),
            "states": {s.name: sum(t.state == s for t in trials) for s in TrialState},
            # complete trials told another trial's values: the same configuration, not trained
            "same_as_another_trial": sum(SAME_AS_ATTR in t.user_attrs for t in trials),
            "directions": [d.name.lower() for d in study.directions],
        }
        if self.seeds is not None:  # a replicated search: each value aggregates these seeds
            results.update(seeds=list(self.seeds), aggregate=self.aggregate,
                           **({"se_k": self.se_k} if self.aggregate == "mean_se" else {}))
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        if complete and len(study.directions) == 1:
            best = study.best_trial
            results.update(best_params=best.params, best_value=best.value, best_trial_number=best.number)
        elif complete:
            results["pareto_front"] = [{"number": t.number, "values": t.values, "params": t.params}
                                       for t in study.best_trials]
        OmegaConf.save(OmegaConf.create(results), sweep_dir / RESULTS_FILE)
        # The file keeps every digit; the log line rounds to 4 significant digits, what a reader
        # compares (a 17-digit float says more than one run can support).
        def rounded(value):
            if isinstance(value, float):
                return float(f"{value:.4g}") + 0.0  # + 0.0: a rounded -0.0 prints as 0.0
            if isinstance(value, dict):
                return {k: rounded(v) for k, v in value.items()}
            return [rounded(v) for v in value] if isinstance(value, (list, tuple)) else value

        log.info("%s: %s", RESULTS_FILE, rounded({k: v for k, v in results.items() if k != "pareto_front"}))


def _replication_text(replication: Optional[dict]) -> str:
    if not replication:
        return "one seed per trial"
    return f"seeds {replication['seeds']} aggregated by {replication['aggregate']}"


def _fail_reason(err: Exception) -> str:
    """One line for a trial that could not be composed, validated or hooked."""
    if isinstance(err, ConfigError):  # validate's own line, "invalid config: ..."
        return " ".join(str(err).split())
    if isinstance(err, SearchSpaceError):  # from a custom_search_space hook
        return f"invalid search space: {' '.join(str(err).split())}"
    if isinstance(err, (HydraException, OmegaConfBaseException)):  # Hydra could not compose it
        return composition_error_line(err)
    return f"{type(err).__name__}: {' '.join(str(err).split())}"


def default_study_name(space: SearchSpace, replication: Optional[dict] = None) -> str:
    """wdsweep-<digest of the search space, the fixed overrides and, for a replicated search,
    its seeds and aggregate>: the same command, the same study; other seeds, another study."""
    text = repr(sorted((k, repr(v)) for k, v in space.distributions.items())) + repr(sorted(space.fixed.items()))
    if replication:
        text += repr(sorted(replication.items()))
    return "wdsweep-" + hashlib.sha1(text.encode()).hexdigest()[:10]


def _storage_path_problem(storage_spec: str) -> str | None:
    """Why a file storage (a journal path, sqlite:///path) cannot be used, or None. A journal's
    folder is made; sqlite makes no folders, so its folder must exist."""
    if "://" not in storage_spec:
        folder = Path(storage_spec).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            return f"cannot create the folder {folder}: {err.strerror}"
    elif storage_spec.startswith("sqlite:///"):
        folder = Path(storage_spec[len("sqlite:///"):]).parent
        if not folder.is_dir():
            return f"the folder {folder} does not exist"
    else:
        return None
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder} is not writable"
    return None


def _storage_errors() -> tuple[type, ...]:
    """What opening a storage raises when it cannot be reached: files, drivers, databases."""
    errors: tuple[type, ...] = (OSError, ImportError, optuna.exceptions.StorageInternalError)
    try:
        import sqlalchemy.exc  # optional: only RDB storages need it
    except ImportError:
        return errors
    return errors + (sqlalchemy.exc.SQLAlchemyError,)


def _one_line(err: BaseException) -> str:
    # A DBAPI error wrapped by SQLAlchemy says it best in the driver's own words.
    err = getattr(err, "orig", None) or err
    return f"{type(err).__name__}: {' '.join(str(err).split())}"


def _finished_record(trial: optuna.trial.FrozenTrial, folder: Optional[Path] = None) -> Optional[dict]:
    """The metrics.json of the trial's job (or of the job in `folder`: one seed of a replicated
    trial) if that job finished (any status), else None. The record must be this trial's: it
    names the trial (or is a record of another trial's result, written by the sweeper) and its
    job started after the trial was asked, not an older run in a folder of the same name."""
    from wdsweep.resume import read_record

    folder = folder or trial.user_attrs.get(JOB_DIR_ATTR)
    record = read_record(Path(folder)) if folder else None
    if record is None or record.get("status") not in ("completed", "pruned", "diverged", "failed"):
        return None
    link = record.get("optuna")
    if not (link.get("trial_id") == trial._trial_id if isinstance(link, dict) else "same_as" in record):
        return None
    try:
        started = datetime.fromisoformat(str(record.get("started_at"))).timestamp()
    except ValueError:
        return None
    asked = trial.datetime_start.timestamp() if trial.datetime_start else started
    return record if started >= asked - RECORD_CLOCK_SLACK_SECONDS else None


def _outcome_of_record(record: dict, n_directions: int
                       ) -> Tuple[TrialState, Optional[List[float]], Optional[str]]:
    """How a job ended, from its metrics.json (whose status _finished_record checked)."""
    return how_it_ended(record.get("status"), record.get("error"), record.get("diverged_at_step"),
                        record.get("objective"), n_directions, "metrics.json holds")


def _last_sign_of_life(trial: optuna.trial.FrozenTrial, now: float) -> float:
    """When the trial's sweep last wrote its heartbeat (or asked it)."""
    beat = trial.user_attrs.get(HEARTBEAT_ATTR)
    if beat is not None:
        return beat
    return trial.datetime_start.timestamp() if trial.datetime_start else now


def _count(study: optuna.Study, states: Sequence[TrialState]) -> int:
    return len(study.get_trials(deepcopy=False, states=tuple(states)))


def _nop_pruner() -> optuna.pruners.BasePruner:
    # The sweeper never prunes: its jobs do, with the pruner stored on the study.
    return optuna.pruners.NopPruner()


def _first_value(dist: optuna.distributions.BaseDistribution) -> Any:
    """A point of the distribution, for a dry run's sample config: its first choice or its low end."""
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return dist.choices[0]
    return dist.low


def _override_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _quote(text: str) -> str:
    """Quote a string for Hydra's override grammar when it holds characters the grammar reads."""
    if text and all(c.isalnum() or c in "._-/:+@" for c in text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class _AskLock:
    """Serializes "count, then ask" across sweep processes sharing a study, so that together
    they run exactly n_trials: a lock file beside a journal or sqlite file (one machine), or a
    PostgreSQL advisory lock (any number of machines). Other storages rely on the storage alone."""

    def __init__(self, storage_spec: str, study_name: str) -> None:
        self.path: Optional[Path] = None
        self.engine = None
        if storage_spec.startswith("postgresql"):
            import sqlalchemy
            from sqlalchemy.pool import NullPool

            self.engine = sqlalchemy.create_engine(with_password(storage_spec), poolclass=NullPool)
            self.key = int(hashlib.sha1(study_name.encode()).hexdigest()[:15], 16)
        elif storage_spec.startswith("sqlite:///"):
            self.path = Path(storage_spec[len("sqlite:///"):] + ".asklock")
        elif "://" not in storage_spec:
            self.path = Path(storage_spec + ".asklock")

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self.engine is not None:
            import sqlalchemy

            with self.engine.connect() as conn:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
                try:
                    yield
                finally:
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        elif self.path is not None:
            with open(self.path, "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        else:
            yield


class _Heartbeat:
    """Writes a timestamp on this sweep's running trials every `interval` seconds."""

    def __init__(self, storage: optuna.storages.BaseStorage, interval: float) -> None:
        self.storage, self.interval = storage, interval
        self.trial_ids: set = set()
        self.guard = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="wdsweep-heartbeat", daemon=True)
        self.thread.start()

    def add(self, trials: List[optuna.Trial]) -> None:
        with self.guard:
            self.trial_ids.update(t._trial_id for t in trials)
        self._beat()

    def remove(self, trials: List[optuna.Trial]) -> None:
        with self.guard:
            self.trial_ids.difference_update(t._trial_id for t in trials)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)

    def _run(self) -> None:
        while not self.stopped.wait(self.interval):
            self._beat()

    def _beat(self) -> None:
        with self.guard:
            ids = list(self.trial_ids)
        for trial_id in ids:
            try:
                self.storage.set_trial_user_attr(trial_id, HEARTBEAT_ATTR, time.time())
            except Exception as err:  # noqa: BLE001 - a finished trial refuses attrs; that's fine
                log.debug("heartbeat on trial %d: %s", trial_id, err)
