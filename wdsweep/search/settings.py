"""The Optuna search's settings (hydra.sweeper.*), and their checks before any storage is opened
or trial asked: every problem on one line, as wdsweep's validate words them. Besides the
sweeper's own keys, what every trial would share (the objective against the directions, the
device, the folders' names, the finalists' seeds against the trials') is checked here too: a
mistake there would otherwise fail each trial on its own and burn the budget.
"""
from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from omegaconf import DictConfig, ListConfig, OmegaConf

from wdsweep.errors import ConfigError
from wdsweep.search.finalists import fresh_seeds, seed_list
from wdsweep.search.replicates import AGGREGATES
from wdsweep.search.space import SearchSpace, SearchSpaceError
from wdsweep.search.workers import launcher_kind, worker_index

if TYPE_CHECKING:
    import optuna
    from hydra.types import HydraContext

log = logging.getLogger(__name__)


class SearchSettings(object):
    """hydra.sweeper.*, as the plugin hands them over, and their checks. The other parts of
    the search (its mixins) read their settings from here."""

    def __init__(self, sampler: DictConfig, pruner: DictConfig, direction: Any, study_name: Optional[str],
                 storage: Optional[str], storage_dir: str, n_trials: int, n_jobs: int,
                 max_failure_rate: float, min_trials_for_failure_rate: int,
                 params: Optional[DictConfig], custom_search_space: Optional[str], enqueue: List[Any],
                 heartbeat_seconds: float, stale_after_seconds: float, dedupe: bool = True,
                 seeds: Any = None, aggregate: str = "mean", se_k: float = 1.0, finalists: int = 0,
                 finalist_seeds: Any = 5, dry_run: bool = False, workers: int = 1,
                 mix_settings: bool = False) -> None:
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
        self.mix_settings = mix_settings
        # Replicated search and finalists (replicates.py); seeds is checked in _check_settings.
        self.seeds_conf = OmegaConf.to_container(seeds) if isinstance(seeds, DictConfig | ListConfig) else seeds
        self.finalist_seeds_conf = (OmegaConf.to_container(finalist_seeds)
                                    if isinstance(finalist_seeds, ListConfig) else finalist_seeds)
        self.seeds: Optional[List[int]] = None
        self.aggregate, self.se_k, self.finalists = aggregate, se_k, finalists
        self.dry_run = dry_run
        self.workers = workers
        self.worker = worker_index()  # this process is worker i of a worker-mode search, or None
        self.space = SearchSpace()
        self.storage_obj: Optional[optuna.storages.BaseStorage] = None
        self.storage_spec = ""  # the storage URL (password masked) or journal path in use, set by sweep()
        self.password: Optional[str] = None  # the storage URL's password, kept out of every output
        self.untold: Optional[str] = None  # why a trial could not be told, if one could not
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.launcher = None

    def attach(self, config: DictConfig, hydra_context: Any, launcher: Any) -> None:
        """Hydra's side, from the plugin's setup(): the sweep's config, the context whose config
        loader composes each trial's job, and the launcher that runs them."""
        self.config, self.hydra_context, self.launcher = config, hydra_context, launcher

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
        elif self.workers > 1 and launcher_kind(self.config.hydra.launcher) == "other":
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
        problems += self._storage_name_problems()
        if problems:
            ConfigError("invalid config: " + "; ".join(problems)).exit()

    def _storage_name_problems(self) -> List[str]:
        """study_name and storage_dir as names the storage can take: a journal study is the file
        <storage_dir>/<study_name>.journal (with a .asklock beside it), so its name is one file
        name that stays inside storage_dir; an RDB storage keeps names of up to 512 characters."""
        from wdsweep.config.path_limits import NAME_MAX, long_name_problem, name_bytes

        problems = []
        name = self.study_name
        journal_suffix = ".journal.asklock"
        if name is not None and self.storage is None:
            if not isinstance(name, str) or not name.strip() or name in (".", "..") or any(
                    sep in name for sep in ("/", "\\", "\0")):
                problems.append(f"hydra.sweeper.study_name={name!r} is not allowed: a name without / or \\ "
                                f"(its journal is the file <storage_dir>/<study_name>.journal, inside "
                                f"hydra.sweeper.storage_dir), or null: derived from the search")
            elif name_bytes(name + journal_suffix) > NAME_MAX:
                problems.append(f"hydra.sweeper.study_name={name!r} is not allowed: at most "
                                f"{NAME_MAX - len(journal_suffix)} bytes (the file <study_name>{journal_suffix} "
                                f"beside its journal must fit the file system's {NAME_MAX}-byte names; it has "
                                f"{name_bytes(name)}), or null: derived from the search")
        elif name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 512):
            problems.append(f"hydra.sweeper.study_name={name!r} is not allowed: a name of 1 to 512 characters "
                            "(Optuna's RDB storages keep no longer one), or null: derived from the search")
        if self.storage is None:
            too_long = long_name_problem(self.storage_dir)
            if too_long:
                problems.append(f"hydra.sweeper.storage_dir={self.storage_dir!r} is not allowed: {too_long}")
        elif isinstance(self.storage, str) and self.storage.startswith("sqlite:///"):
            # the database file, and its ask lock beside it (study.AskLock)
            too_long = long_name_problem(self.storage[len("sqlite:///"):], suffix=".asklock")
            if too_long:
                problems.append(f"hydra.sweeper.storage={self.storage!r} is not allowed: {too_long}")
        return problems

    def _replication_problems(self) -> List[str]:
        """hydra.sweeper.seeds, aggregate, se_k, finalists, finalist_seeds and the pruner that
        goes with them, each problem as one line (see replicates.py)."""
        problems = []

        def fail(key: str, value: Any, allowed: str) -> None:
            problems.append(f"{key}={value!r} is not allowed: {allowed}")

        try:
            self.seeds = seed_list(self.seeds_conf, "seeds")
        except ValueError:
            fail("hydra.sweeper.seeds", self.seeds_conf,
                 "null, a count >= 1, or a list of distinct seeds >= 0 (each trial trains them all)")
        if self.aggregate not in AGGREGATES:
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
        if pruner != "none" and len(self.directions) > 1:
            # Optuna's trial.report and should_prune refuse a multi-objective study: the pruner
            # would do nothing, silently
            fail("hydra/sweeper/pruner", pruner, "none for a multi-objective search (Optuna prunes "
                 "single-objective studies only)")
        elif pruner == "wilcoxon" and (self.seeds is None or len(self.seeds) < 2):
            fail("hydra/sweeper/pruner", pruner, "wilcoxon prunes between a trial's seeds: set "
                 "hydra.sweeper.seeds to 2 or more seeds, or pick another pruner")
        elif self.seeds is not None and pruner not in ("none", "wilcoxon"):
            fail("hydra/sweeper/pruner", pruner, "none or wilcoxon with hydra.sweeper.seeds (the other "
                 "pruners stop one run by its training steps, and a replicated trial is several runs)")
        return problems

    def _check_shared_config(self, space: SearchSpace) -> None:
        """What every trial would share, checked once before the study is opened, where each
        trial would otherwise fail on it alone and burn the budget: the objective (its names,
        one direction each; test_error never chooses), trainer.device on this machine, the
        sweep folder's name, hydra.sweep.subdir, and the finalists' seeds against the seeds
        the trials use. Read from the config the fixed entries make (a searched key is each
        trial's own: validated with its trial)."""
        from wdsweep.config.job_folder import numbered_subdir
        from wdsweep.config.path_limits import long_name_problem
        from wdsweep.config.schema import OBJECTIVES
        from wdsweep.train.device import device_problem

        problems = []

        def fail(key: str, value: Any, allowed: str) -> None:
            problems.append(f"{key}={value!r} is not allowed: {allowed}")

        subdir = numbered_subdir(self.config.hydra)
        if subdir is not None:
            fail("hydra.sweep.subdir", subdir, "wdsweep's default: the Optuna sweeper names each "
                 "trial's folder trial-NNNNN itself (a job's number is not its trial's)")
        too_long = long_name_problem(str(self.config.hydra.sweep.dir))
        if too_long:
            fail("hydra.sweep.dir", str(self.config.hydra.sweep.dir), too_long)
        shared = self._shared_config(space) if not problems else None
        if shared is not None:
            objective = OmegaConf.to_container(shared.objective) if OmegaConf.is_list(shared.objective) \
                else shared.objective
            names = objective if isinstance(objective, list) else [objective]
            if "objective" in space.distributions:
                pass  # each trial's own
            elif not names or any(name not in OBJECTIVES for name in names):
                fail("objective", objective, "one of " + ", ".join(OBJECTIVES) + ", or a list of them"
                     + (" (test_error is measured on every trial, never searched on: a search that "
                        "chooses by the test split leaves no unbiased test error)" if "test_error" in names else ""))
            elif len(names) != len(self.directions):
                direction = self.directions[0] if len(self.directions) == 1 else self.directions
                fail("hydra.sweeper.direction", direction, f"one direction per objective: a list of {len(names)} "
                     f"of minimize or maximize, as objective={objective!r} has {len(names)}" if len(names) > 1
                     else f"one minimize or maximize, as objective={objective!r} is one objective")
            device = shared.trainer.get("device", "auto")
            launcher = str(self.config.hydra.launcher.get("_target_", ""))
            problem = (None if "trainer.device" in space.distributions
                       else device_problem(device, this_machine="slurm" not in launcher.lower()))
            if problem:
                fail("trainer.device", device, problem)
            problems += self._finalist_seed_problems(shared, space)
        if problems:
            ConfigError("invalid config: " + "; ".join(problems)).exit()

    def _shared_config(self, space: SearchSpace) -> Optional[DictConfig]:
        """The job config of the fixed entries alone, or None if it does not compose (each
        trial then fails with the reason, as before)."""
        fixed = [f"{k}={v}" for k, v in space.fixed.items() if k not in space.distributions]
        try:
            return self.hydra_context.config_loader.load_sweep_config(self.config, fixed)
        except Exception:  # noqa: BLE001 - composition: each trial reports its own
            return None

    def _finalist_seed_problems(self, shared: DictConfig, space: SearchSpace) -> List[str]:
        """A list of finalist seeds must miss every seed a trial may train: the replicated
        search's seeds (checked in _replication_problems), else the config's seed and every
        value a searched seed can take."""
        if not self.finalists or self.seeds is not None or not isinstance(self.finalist_seeds_conf, list):
            return []
        try:
            finalist = set(seed_list(self.finalist_seeds_conf, "finalist_seeds"))
        except ValueError:
            return []  # said by _replication_problems
        dist = space.distributions.get("seed")
        if dist is None:
            used = {shared.seed}
        elif hasattr(dist, "choices"):
            used = set(dist.choices)
        else:  # an integer range: every seed in it may be drawn
            used = {s for s in finalist if dist.low <= s <= dist.high and (s - dist.low) % (dist.step or 1) == 0}
        overlap = sorted(s for s in finalist & used)
        if not overlap:
            return []
        return [f"hydra.sweeper.finalist_seeds={self.finalist_seeds_conf!r} is not allowed: seeds the search "
                f"does not use (its trials use {overlap}), or a count n: the n smallest seeds the "
                "search does not use"]

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

    def _replication(self) -> Optional[dict]:
        """What each trial's value aggregates (None: one run, the config's seed)."""
        if self.seeds is None:
            return None
        return {"seeds": list(self.seeds), "aggregate": self.aggregate,
                **({"se_k": float(self.se_k)} if self.aggregate == "mean_se" else {})}
