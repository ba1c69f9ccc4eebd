"""The study and its storage: where it lives (a journal file by default, any Optuna storage
URL), its derived name (the same command, the same study), the lock that makes "count, then
ask" exact across sweep processes, the password kept out of everything written, and the
checks that stop a sweep with one line before a storage it cannot use is touched.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from pathlib import Path
from typing import Iterator, NoReturn, Optional, Tuple

import optuna
from omegaconf import OmegaConf, open_dict, read_write
from optuna.trial import TrialState

from wdsweep.config.urls import UnsafePassword, hide_password, is_masked, shown_scheme, split_password, with_password
from wdsweep.errors import ConfigError
from wdsweep.search.settings import SearchSettings
from wdsweep.search.space import SearchSpace, SearchSpaceError
from wdsweep.search.trials import FINISHED, REPLICATION_ATTR, count_trials, one_line
from wdsweep.tracking.trial_link import ENV_PASSWORD

log = logging.getLogger(__name__)


class StudyStorage(SearchSettings):
    """Opening the study: settings -> storage_spec, storage_obj, password."""

    def _take_password_out_of_storage(self) -> None:
        """Keep a storage URL's password out of everything written or logged (see the module).

        Hydra saves the sweeper's config (multirun.yaml here, each job's .hydra/hydra.yaml in
        run_job) with hydra.sweeper.storage and the command line's hydra.overrides.hydra, and
        composes every job from those overrides: both get the masked URL before the first is
        saved or composed. The password goes to os.environ, which every launcher's job
        processes inherit (in-process, joblib's workers, submitit's jobs), and open_storage puts
        it back into the URL in memory. A password written in a config file comes back with
        every job's composition from that file: the job composer masks it there too
        (hydra_plugins/wdsweep_sweeper/_compose.py). The forms of a password and the refusal
        of one that cannot be masked whole are wdsweep.config.urls'. A user who would rather
        not type it at all gives postgresql://me@host/db and PGPASSWORD or ~/.pgpass, which
        the driver reads."""
        try:
            public, password = split_password(self.storage) if self.storage else (self.storage, None)
        except UnsafePassword as err:
            ConfigError(f"invalid config: hydra.sweeper.storage={shown_scheme(self.storage)!r} is not allowed: "
                        f"a URL whose password can be masked ({err}), or none in it: "
                        "PGPASSWORD or ~/.pgpass, which the driver reads itself").exit()
        if password is None:
            if self.storage and is_masked(self.storage):  # a worker's URL: its coordinator masked it
                self.password = os.environ.get(ENV_PASSWORD)
            return
        self.storage, self.password = public, password
        os.environ[ENV_PASSWORD] = password
        hydra_cfg = self.config.hydra
        with read_write(hydra_cfg), open_dict(hydra_cfg):
            hydra_cfg.sweeper.storage = public
            hydra_cfg.overrides.hydra = [hide_password(o, password) for o in hydra_cfg.overrides.hydra]

    def _claim_sweep_dir(self, sweep_dir: Path, study_name: str) -> Tuple[Path, bool]:
        """The sweep folder this study's trials go to, claimed for it before the storage is
        opened or anything written (wdsweep.search.sweep_claim): a clock-named folder another
        study holds gives way to <folder>-2, ...; a folder the user named is refused. Returns
        the folder and whether the claim was made here (release it if the search stops before
        it starts)."""
        from wdsweep.jobs.fresh_folder import is_clock_named
        from wdsweep.search import sweep_claim
        from wdsweep.search.trials import quote

        unresolved = str(OmegaConf.to_container(self.config.hydra.sweep, resolve=False).get("dir"))
        try:
            if self.worker is not None or not is_clock_named(unresolved):
                return sweep_dir, sweep_claim.claim(sweep_dir, study_name)
            claimed, made = sweep_claim.claim_fresh(sweep_dir, study_name)
        except sweep_claim.TakenByAnotherStudy as taken:
            ConfigError(f"invalid config: hydra.sweep.dir={str(sweep_dir)!r} is not allowed: a folder "
                        f"of this study only ({study_name}); it holds the trials of study "
                        f"{taken.owner!r}, which its own storage still points to").exit()
        except OSError as err:
            ConfigError(f"invalid config: hydra.sweep.dir={str(sweep_dir)!r} is not allowed: a folder this "
                        f"process can write ({err.strerror or err})").exit()
        if claimed != sweep_dir:
            log.warning("%s holds another study's trials (a search started in the same second?): this "
                        "search writes to %s", sweep_dir, claimed)
            hydra_cfg = self.config.hydra
            with read_write(hydra_cfg), open_dict(hydra_cfg):
                hydra_cfg.sweep.dir = str(claimed)
                # every job is composed from these overrides: its folder is under the claimed one
                hydra_cfg.overrides.hydra = [o for o in hydra_cfg.overrides.hydra
                                             if not o.startswith("hydra.sweep.dir=")]
                hydra_cfg.overrides.hydra.append(f"hydra.sweep.dir={quote(str(claimed))}")
        return claimed, made

    def _open_study_or_exit(self, study_name: str, storage_spec: str, space: SearchSpace
                            ) -> tuple["AskLock", optuna.Study]:
        """Open the study before any trial is asked: a storage that cannot be reached or written
        ends the sweep with one line naming it, instead of a driver's traceback."""
        problem = storage_path_problem(storage_spec)
        if problem is None:
            try:
                lock = AskLock(storage_spec, study_name)
                with lock.held():  # two processes creating one RDB schema or study at once would collide
                    return lock, self._open_study(study_name, storage_spec, space)
            except storage_errors() as err:
                problem = hide_password(one_line(err), self.password)
        key, value = ("storage", self.storage) if self.storage else ("storage_dir", self.storage_dir)
        ConfigError(f"invalid config: hydra.sweeper.{key}={value!r} is not allowed: an Optuna storage "
                    f"this process can open and write ({problem})").exit()

    def _open_study(self, study_name: str, storage_spec: str, space: SearchSpace) -> optuna.Study:
        from wdsweep.tracking.trial_link import PRUNER_ATTR, open_storage

        storage = self.storage_obj = open_storage(storage_spec)
        existing = [s for s in optuna.get_all_study_summaries(storage) if s.study_name == study_name]
        n_existing = existing[0].n_trials if existing else 0
        study = optuna.create_study(
            study_name=study_name, storage=storage, load_if_exists=True, directions=self.directions,
            sampler=self._sampler(space, n_existing), pruner=nop_pruner())
        if [d.name.lower() for d in study.directions] != self.directions:
            ConfigError(f"invalid search: study {study_name!r} in {storage_spec} was created with directions "
                        f"{[d.name.lower() for d in study.directions]}, not {self.directions}").exit()
        replication = self._replication()
        mixed = self._check_fixed_settings(study, storage_spec, space, bool(existing), replication)
        if existing and study.user_attrs.get(REPLICATION_ATTR) != replication:
            # Values aggregated over other seeds (or one seed) are not comparable with these.
            ConfigError(f"invalid search: study {study_name!r} in {storage_spec} was run with "
                        f"{replication_text(study.user_attrs.get(REPLICATION_ATTR))}, not "
                        f"{replication_text(replication)}: give another hydra.sweeper.study_name").exit()
        study.set_user_attr(REPLICATION_ATTR, replication)
        study.set_user_attr(PRUNER_ATTR, self.pruner_conf)
        self._settle_orphaned_trials(study)
        if not existing:
            for point in self.enqueue:
                study.enqueue_trial(point, skip_if_exists=True)
        if self.worker is None:
            self._say_what_study(study, storage_spec, n_existing, mixed)
        return study

    def _check_fixed_settings(self, study: optuna.Study, storage_spec: str, space: SearchSpace, existing: bool,
                              replication: Optional[dict]) -> bool:
        """Refuse to add trials of other fixed settings to a study, unless mix_settings
        (wdsweep.search.study_settings): then the study records what was mixed in (MIXED_ATTR,
        which the analysis names); a new study records its own settings. Whether this search
        mixes."""
        from wdsweep.search.study_settings import FIXED_ATTR, MIXED_ATTR, differences, fixed_settings

        try:
            settings = fixed_settings(self.config, space.distributions, bool(replication))
        except Exception as err:  # noqa: BLE001 - an interpolation only a job can resolve: no check
            log.debug("fixed settings not recorded: %s", err)
            return False
        recorded = study.user_attrs.get(FIXED_ATTR)
        if existing and isinstance(recorded, dict):
            changed = differences(recorded, settings)
            if changed and not self.mix_settings:
                ConfigError(f"invalid search: study {study.study_name!r} in {storage_spec} holds trials made "
                            f"with other fixed settings ({'; '.join(changed)}): give hydra.sweeper.study_name "
                            "for a new study, or hydra.sweeper.mix_settings=true to add these trials to it").exit()
            if changed:
                log.warning("study %r: these trials' fixed settings differ from its earlier ones (%s); "
                            "mixed as hydra.sweeper.mix_settings=true asks", study.study_name, "; ".join(changed))
                earlier = study.user_attrs.get(MIXED_ATTR) or []
                study.set_user_attr(MIXED_ATTR, sorted(set(earlier) | set(changed)))
            return bool(changed)
        study.set_user_attr(FIXED_ATTR, settings)
        return False

    def _say_what_study(self, study: optuna.Study, storage_spec: str, n_existing: int, mixed: bool = False) -> None:
        """One line: a new study, or which study this search joins, what it holds already, and
        how many trials that leaves to run. n_trials counts the study's trials, not this
        search's, as the budget does (loop._ask_batch): finished ones (a trial failed as stale, left
        by a killed sweep, among them) and running ones (of a cooperating sweep, or a killed
        sweep's not yet failed)."""
        if not n_existing:
            log.info("new study %r in %s: running %d trials", study.study_name, storage_spec, self.n_trials)
            return
        finished = count_trials(study, FINISHED)
        running = count_trials(study, (TrialState.RUNNING,))
        left = max(0, self.n_trials - finished - running)
        held = f"{finished} finished" + (f", {running} running or left running by a killed sweep" if running else "")
        same = "same search space, other fixed settings mixed in" if mixed else "same search space and settings"
        line = (f"joins study {study.study_name!r} in {storage_spec} ({same}): it holds {n_existing} trials, {held}; "
                f"n_trials={self.n_trials} counts them, so {left} more run")
        if left == 0:
            log.warning("%s: raise hydra.sweeper.n_trials to run more, or give hydra.sweeper.study_name "
                        "for a new study", line)
        else:
            log.info("%s", line)

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

    def _stop_unwritable(self, problem: str) -> NoReturn:
        ConfigError(f"search stopped: the Optuna storage {self.storage_spec} cannot be written ({problem}); "
                    "the study keeps every trial told before: run the same command again to resume once "
                    "it can be written").exit()


def default_study_name(space: SearchSpace, replication: Optional[dict] = None) -> str:
    """wdsweep-<digest of the search space, the fixed overrides and, for a replicated search,
    its seeds and aggregate>: the same command, the same study; other seeds, another study."""
    text = repr(sorted((k, repr(v)) for k, v in space.distributions.items())) + repr(sorted(space.fixed.items()))
    if replication:
        text += repr(sorted(replication.items()))
    return "wdsweep-" + hashlib.sha1(text.encode()).hexdigest()[:10]


def replication_text(replication: Optional[dict]) -> str:
    if not replication:
        return "one seed per trial"
    return f"seeds {replication['seeds']} aggregated by {replication['aggregate']}"


def storage_path_problem(storage_spec: str) -> str | None:
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


def storage_errors() -> tuple[type, ...]:
    """What opening a storage raises when it cannot be reached: files, drivers, databases."""
    errors: tuple[type, ...] = (OSError, ImportError, optuna.exceptions.StorageInternalError)
    try:
        import sqlalchemy.exc  # optional: only RDB storages need it
    except ImportError:
        return errors
    return errors + (sqlalchemy.exc.SQLAlchemyError,)


def nop_pruner() -> optuna.pruners.BasePruner:
    # The sweeper never prunes: its jobs do, with the pruner stored on the study.
    return optuna.pruners.NopPruner()


class AskLock:
    """Serializes "count, then ask" across sweep processes sharing a study, so that together
    they run exactly n_trials: a lock file beside a journal or sqlite file (one machine), or a
    PostgreSQL advisory lock (any number of machines). Other storages rely on the storage alone."""

    def __init__(self, storage_spec: str, study_name: str) -> None:
        self.path: Optional[Path] = None
        self.engine = None
        if storage_spec.startswith("postgresql"):
            import sqlalchemy
            from sqlalchemy.pool import NullPool

            self.engine = sqlalchemy.create_engine(with_password(storage_spec, ENV_PASSWORD), poolclass=NullPool)
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
