"""The sweeper's config schema, registered in Hydra's ConfigStore: hydra/sweeper=wdsweep_optuna,
with its samplers (hydra/sweeper/sampler=tpe|random|grid|cmaes|gp) and pruners
(hydra/sweeper/pruner=none|median|successive_halving|hyperband|wilcoxon) as config groups."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class SamplerConf:
    # tpe, random, grid, cmaes or gp.
    name: str = "tpe"
    # null: unseeded. A seed makes the search repeatable (a resumed study, or each worker, continues
    # with a seed of its own).
    seed: Optional[int] = None


@dataclass
class TPESamplerConf(SamplerConf):
    name: str = "tpe"
    # Random trials before TPE models the results.
    n_startup_trials: int = 10
    # Model the parameters jointly (Optuna's multivariate TPE).
    multivariate: bool = False
    # With multivariate: model conditional parameters by the groups they appear in.
    group: bool = False
    # Running trials are treated as bad by TPE, so parallel workers spread out.
    constant_liar: bool = True


@dataclass
class RandomSamplerConf(SamplerConf):
    name: str = "random"


@dataclass
class GridSamplerConf(SamplerConf):
    """The grid of the search space (choice and range entries only)."""

    name: str = "grid"


@dataclass
class CmaEsSamplerConf(SamplerConf):
    name: str = "cmaes"
    # Trials before CMA-ES starts (independent sampling until then).
    n_startup_trials: int = 1
    # null: Optuna's default initial step size.
    sigma0: Optional[float] = None
    # null, or ipop or bipop (Optuna's restart strategies).
    restart_strategy: Optional[str] = None


@dataclass
class GPSamplerConf(SamplerConf):
    name: str = "gp"
    # Random trials before the Gaussian process models the results.
    n_startup_trials: int = 10


@dataclass
class PrunerConf:
    # none, median, successive_halving, hyperband or wilcoxon.
    name: str = "none"


@dataclass
class MedianPrunerConf(PrunerConf):
    name: str = "median"
    # Trials that are never pruned, before the median means something.
    n_startup_trials: int = 5
    # In training steps (the job reports every trainer.eval_every steps).
    n_warmup_steps: int = 0
    # Check every this many reports.
    interval_steps: int = 1
    # Trials that must have reported at a step before one is pruned there.
    n_min_trials: int = 1


@dataclass
class SuccessiveHalvingPrunerConf(PrunerConf):
    name: str = "successive_halving"
    # Training steps before the first rung (auto: Optuna's estimate).
    min_resource: Any = "auto"
    # The share of trials kept at each rung is 1/reduction_factor.
    reduction_factor: int = 4
    # Rungs skipped before the first one that can prune.
    min_early_stopping_rate: int = 0


@dataclass
class HyperbandPrunerConf(PrunerConf):
    name: str = "hyperband"
    # Training steps of the smallest bracket.
    min_resource: int = 1
    # Training steps of a whole trial (auto: Optuna's estimate).
    max_resource: Any = "auto"
    # As successive halving's.
    reduction_factor: int = 3


@dataclass
class WilcoxonPrunerConf(PrunerConf):
    """Optuna's WilcoxonPruner, between the seeds of a replicated trial (hydra.sweeper.seeds):
    after each seed, a trial whose per-seed values are worse than the best trial's on the same
    seeds (one-sided Wilcoxon signed-rank, p < p_threshold) runs no more seeds."""

    name: str = "wilcoxon"
    # Prune when a one-sided Wilcoxon test over the seeds run so far finds the trial worse than the
    # best at this level.
    p_threshold: float = 0.1
    # Seeds run before the test may prune.
    n_startup_steps: int = 2


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.wdsweep_optuna.optuna_sweeper.OptunaSweeper"
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "none"}])
    sampler: Any = MISSING
    pruner: Any = MISSING
    # One direction, or a list for multi-objective (the task then returns a tuple): one per objective.
    direction: Any = "minimize"
    # null: derived from the search and the fixed overrides, so the same command resumes
    # the same study and a different command starts another. With a journal storage, one file
    # name inside storage_dir (no / or \, at most 239 bytes).
    study_name: Optional[str] = None
    # null: a journal file (no server; safe for processes on one machine) at
    # <storage_dir>/<study_name>.journal. Or any Optuna storage URL: sqlite:///x.db, postgresql://...
    storage: Optional[str] = None
    # Where the journal files of studies without a storage URL live.
    storage_dir: str = "multirun/optuna"
    # The total of finished (complete, pruned or failed) trials the study should reach.
    n_trials: int = 20
    # Trials launched at once (one launcher batch); with hydra/launcher=joblib they run in parallel.
    # The next batch is asked when the slowest trial of this one has ended.
    n_jobs: int = 1
    # Worker mode (N > 1; n_jobs then stays 1): N worker processes (local, or submitit jobs
    # with hydra/launcher=submitit_*) each ask a trial, run it, tell it and ask the next at
    # once, until the study holds n_trials: no round barrier. See wdsweep/search/workers.py.
    workers: int = 1
    # Stop once failed / finished trials exceeds this (after min_trials_for_failure_rate trials).
    max_failure_rate: float = 1.0
    # Finished trials before max_failure_rate applies.
    min_trials_for_failure_rate: int = 5
    # The search space in Hydra's sweep syntax; command-line entries win per key.
    params: Optional[Dict[str, str]] = None
    # Dotted path of fn(cfg, trial) -> {override key: value}, for conditional spaces.
    custom_search_space: Optional[str] = None
    # Known-good points to try first: a list of {key: value}.
    enqueue: List[Dict[str, Any]] = field(default_factory=list)
    # A running trial whose sweeper has not written a heartbeat for this long is stale:
    # its sweeper was killed, and it is marked failed.
    heartbeat_seconds: float = 10.0
    # A RUNNING trial whose heartbeat is older than this (and whose job left no metrics.json) is
    # failed.
    stale_after_seconds: float = 60.0
    # A trial whose canonical config a finished trial already trained (the same values, or
    # reg.lam=0 with other idle reg keys) is told that trial's values instead of training.
    dedupe: bool = True
    # A study keeps the fixed settings (config and data files, besides the searched keys) its
    # trials were made with; a search whose settings differ is refused, unless this is true,
    # which adds its trials to the study all the same (wdsweep.search.study_settings).
    mix_settings: bool = False
    # Replicated search. null: each trial trains one run, with the config's seed. A count n
    # (seeds 0..n-1) or a list of seeds: each trial trains every one of them (batched by
    # hydra/launcher=vectorized) and is told their aggregate; the per-seed values are trial
    # user attributes and intermediate values (step = seed), their runs job folders
    # trial-NNNNN/seed-S.
    seeds: Any = None
    # mean: the mean over seeds; mean_se: the mean plus se_k standard errors towards the
    # worse side (a config that is good on average but erratic ranks lower).
    aggregate: str = "mean"
    # The standard errors added by aggregate=mean_se.
    se_k: float = 1.0
    # After the search, re-run the m best trials (distinct configurations) on seeds the
    # search never used, into finalists/trial-NNNNN/seed-S; finalists.yaml compares their
    # fresh-seed errors with the search's own values (the winner's curse, measured).
    finalists: int = 0
    # A count n (the n smallest seeds the search did not use) or a list of seeds no trial may use.
    finalist_seeds: Any = 5
    # Check the settings and the search space, validate a sample point's config, say what the
    # study holds and how many trials would be asked, then exit 0: nothing asked or written.
    dry_run: bool = False


_cs = ConfigStore.instance()
_cs.store(group="hydra/sweeper", name="wdsweep_optuna", node=OptunaSweeperConf, provider="wdsweep")
for _name, _node in {"tpe": TPESamplerConf, "random": RandomSamplerConf, "grid": GridSamplerConf,
                     "cmaes": CmaEsSamplerConf, "gp": GPSamplerConf}.items():
    _cs.store(group="hydra/sweeper/sampler", name=_name, node=_node, provider="wdsweep")
for _name, _node in {"none": PrunerConf, "median": MedianPrunerConf,
                     "successive_halving": SuccessiveHalvingPrunerConf,
                     "hyperband": HyperbandPrunerConf, "wilcoxon": WilcoxonPrunerConf}.items():
    _cs.store(group="hydra/sweeper/pruner", name=_name, node=_node, provider="wdsweep")
