"""The job's side of an Optuna search: find the trial the sweeper asked for, report the
objective every evaluation so the pruner can stop the job, and record how the job ended on
the trial. The sweeper passes storage, study and trial id through environment variables
(hydra.job.env_set), which every Hydra launcher carries to the job, whatever the process.

A storage password never travels that way: Hydra writes env_set into every job's hydra.yaml.
A storage URL that holds one (postgresql://me:pw@host/db) is written and passed everywhere in
its masked form (postgresql://me:***@host/db), and the password itself goes to the jobs in
the process environment (ENV_PASSWORD, which every launcher's job processes inherit), where
open_storage puts it back into the URL, in memory only. Without a password in the URL (the
driver's own PGPASSWORD or ~/.pgpass) there is nothing to hide.

No torch here: the sweeper plugin uses open_storage and build_pruner too. The reporting
callback is monitors.PruningReporter.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

ENV_STORAGE = "WDSWEEP_OPTUNA_STORAGE"
ENV_STUDY = "WDSWEEP_OPTUNA_STUDY"
ENV_TRIAL = "WDSWEEP_OPTUNA_TRIAL_ID"
# What the job is to its trial (ROLES): absent means "trial".
ENV_ROLE = "WDSWEEP_OPTUNA_ROLE"
# trial: the job is the trial: it reports to the pruner and records how it ended on the trial.
# replicate: one seed of a replicated trial (hydra.sweeper.seeds); finalist: a fresh-seed re-run
# of a finished trial (hydra.sweeper.finalists). Those two only name their trial in metrics.json:
# the sweeper reads each one's metrics.json and tells the trial one number for all its seeds.
ROLES = ("trial", "replicate", "finalist")
# The password of a storage URL, as written in the URL (percent-encoded), for the jobs: never
# in a config, a file or a log line.
ENV_PASSWORD = "WDSWEEP_OPTUNA_STORAGE_PASSWORD"
MASK = "***"
PRUNER_ATTR = "wdsweep_pruner"  # study user attr: the pruner config, so jobs build the same one

# scheme://user:PASSWORD@ ... : the password is what lies between the user's colon and the "@"
# (SQLAlchemy's own reading of a URL; a password holding "@" must be percent-encoded there too).
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<password>[^@\s]*)@")


def split_password(url: str) -> Tuple[str, Optional[str]]:
    """postgresql://me:pw@host/db -> ("postgresql://me:***@host/db", "pw"); (url, None) when the
    URL holds no password (or only the mask)."""
    match = _URL_PASSWORD.search(url)
    if match is None or match["password"] == MASK:
        return url, None
    return url[:match.start("password")] + MASK + url[match.end("password"):], match["password"]


def hide_password(text: str, password: Optional[str] = None) -> str:
    """`text` (a URL, a log or error line) with every URL password masked, and `password`, if
    given, wherever else it appears (a driver may quote its connection string)."""
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK + "@", text)
    return text.replace(password, MASK) if password else text


def with_password(url: str, env: str = ENV_PASSWORD) -> str:
    """The URL to connect with: a masked password is replaced by the environment variable
    `env` (ENV_PASSWORD; wdsweep.mlflow_export uses its own), when set."""
    match = _URL_PASSWORD.search(url)
    password = os.environ.get(env)
    if match is None or match["password"] != MASK or not password:
        return url
    return url[:match.start("password")] + password + url[match.end("password"):]


def open_storage(spec: str):
    """An Optuna storage from a URL (sqlite:///..., postgresql://..., its password masked or
    not) or a journal file path (its torn tail cut before anything is appended: wdsweep.journal)."""
    import optuna

    from wdsweep.journal import TailSafeJournalBackend

    if "://" in spec:
        return optuna.storages.get_storage(with_password(spec))
    return optuna.storages.JournalStorage(TailSafeJournalBackend(spec))


def build_pruner(conf: Optional[Dict[str, Any]]):
    import optuna

    conf = dict(conf or {"name": "none"})
    name = conf.pop("name")
    if name in ("none", "wilcoxon"):  # wilcoxon prunes between a trial's seeds: the sweeper's job
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
    role: str = "trial"

    @property
    def reports(self) -> bool:
        """Whether the job reports to the pruner and records its ending on the trial."""
        return self.role == "trial"

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, Any]] = None) -> Optional["TrialLink"]:
        """The job's trial, from the environment, or from `env` (a job config's
        hydra.job.env_set, for a launcher that trains the job before Hydra sets it)."""
        env = os.environ if env is None else env
        if ENV_TRIAL not in env:
            return None
        return cls(str(env[ENV_STORAGE]), str(env[ENV_STUDY]), int(env[ENV_TRIAL]),
                   str(env.get(ENV_ROLE, "trial")))

    def connect(self):
        """The trial as an optuna.Trial, in a study carrying the sweep's pruner."""
        import optuna

        storage = open_storage(self.storage)
        study = optuna.load_study(study_name=self.study_name, storage=storage)
        study.pruner = build_pruner(study.user_attrs.get(PRUNER_ATTR))
        return study, optuna.trial.Trial(study, self.trial_id)

    def record(self, metrics: dict) -> None:
        """How the job ended, as trial user attributes the sweeper and the analysis read."""
        record_attrs(open_storage(self.storage), self.trial_id, metrics)


def record_attrs(storage, trial_id: int, metrics: dict) -> None:
    """A job's metrics.json fields as the trial's user attributes (wdsweep_status, ...): by the
    job, or by a sweep that tells a trial from its job's metrics.json."""
    for key in ("status", "test_error", "val_error", "steps", "diverged_at_step", "error"):
        value = metrics.get(key)
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        storage.set_trial_user_attr(trial_id, f"wdsweep_{key}", value)
