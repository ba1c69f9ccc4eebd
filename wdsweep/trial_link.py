"""The job's side of an Optuna search: find the trial the sweeper asked for, report the
objective every evaluation so the pruner can stop the job, and record how the job ended on
the trial. The sweeper passes storage, study and trial id through environment variables
(hydra.job.env_set), which every Hydra launcher carries to the job, whatever the process.

No torch here: the sweeper plugin uses open_storage and build_pruner too. The reporting
callback is monitors.PruningReporter.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional

ENV_STORAGE = "WDSWEEP_OPTUNA_STORAGE"
ENV_STUDY = "WDSWEEP_OPTUNA_STUDY"
ENV_TRIAL = "WDSWEEP_OPTUNA_TRIAL_ID"
PRUNER_ATTR = "wdsweep_pruner"  # study user attr: the pruner config, so jobs build the same one


def open_storage(spec: str):
    """An Optuna storage from a URL (sqlite:///..., postgresql://...) or a journal file path."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if "://" in spec:
        return optuna.storages.get_storage(spec)
    return optuna.storages.JournalStorage(JournalFileBackend(spec))


def build_pruner(conf: Optional[Dict[str, Any]]):
    import optuna

    conf = dict(conf or {"name": "none"})
    name = conf.pop("name")
    if name == "none":
        return optuna.pruners.NopPruner()
    cls = {"median": optuna.pruners.MedianPruner,
           "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
           "hyperband": optuna.pruners.HyperbandPruner}[name]
    return cls(**conf)


@dataclass
class TrialLink:
    storage: str
    study_name: str
    trial_id: int

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, Any]] = None) -> Optional["TrialLink"]:
        """The job's trial, from the environment, or from `env` (a job config's
        hydra.job.env_set, for a launcher that trains the job before Hydra sets it)."""
        env = os.environ if env is None else env
        if ENV_TRIAL not in env:
            return None
        return cls(str(env[ENV_STORAGE]), str(env[ENV_STUDY]), int(env[ENV_TRIAL]))

    def connect(self):
        """The trial as an optuna.Trial, in a study carrying the sweep's pruner."""
        import optuna

        storage = open_storage(self.storage)
        study = optuna.load_study(study_name=self.study_name, storage=storage)
        study.pruner = build_pruner(study.user_attrs.get(PRUNER_ATTR))
        return study, optuna.trial.Trial(study, self.trial_id)

    def record(self, metrics: dict) -> None:
        """How the job ended, as trial user attributes the sweeper and the analysis read."""
        storage = open_storage(self.storage)
        for key in ("status", "test_error", "val_error", "steps", "diverged_at_step", "error"):
            value = metrics.get(key)
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            storage.set_trial_user_attr(self.trial_id, f"wdsweep_{key}", value)
