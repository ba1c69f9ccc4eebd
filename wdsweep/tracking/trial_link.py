"""The job's side of an Optuna search: find the trial the sweeper asked for, report the
objective every evaluation so the pruner can stop the job, and record how the job ended on
the trial. The sweeper passes storage, study and trial id through environment variables
(hydra.job.env_set), which every Hydra launcher carries to the job, whatever the process.

A storage password never travels that way: Hydra writes env_set into every job's hydra.yaml.
A storage URL that holds one (postgresql://me:pw@host/db, or ...?password=pw: the forms of
wdsweep.config.urls) is written and passed everywhere in its masked form
(postgresql://me:***@host/db), and the password itself goes to the jobs in
the process environment (ENV_PASSWORD, which every launcher's job processes inherit), where
open_storage puts it back into the URL, in memory only. Without a password in the URL (the
driver's own PGPASSWORD or ~/.pgpass) there is nothing to hide.

A job whose process outlives its sweep (submitit's jobs, local or on Slurm, go on when the
sweep that submitted them is killed) keeps its trial alive itself: TrialHeartbeat writes the
trial's heartbeat, as the sweep does, so that the next sweep on the study waits for the job
and tells the trial from its metrics.json instead of failing it as stale while it runs. A job
whose trial was told meanwhile all the same (stale_after_seconds shorter than the job's
heartbeat, or a Slurm job that started only after the next sweep gave its trial up) stops at
its next evaluation as `failed`, and its metrics.json says why; it does not crash writing to a
finished trial.

No torch here: the sweeper plugin uses open_storage and build_pruner too. The reporting
callback is monitors.PruningReporter, the stop of a job whose trial is over monitors.TrialWatch.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence

from wdsweep.config.urls import hide_password, with_password

log = logging.getLogger(__name__)

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
PRUNER_ATTR = "wdsweep_pruner"  # study user attr: the pruner config, so jobs build the same one
# Trial user attr: when a process last vouched for the trial (the sweep's own heartbeat,
# wdsweep.search.orphans.SweepHeartbeat, writes the same one, imported from here).
HEARTBEAT_ATTR = "wdsweep_heartbeat"
REASON_ATTR = "wdsweep_fail_reason"  # the sweeper's reason for a FAIL (wdsweep.search.trials)
# The roles whose trial is RUNNING while the job trains (a finalist's trial is long finished).
BEATING_ROLES = ("trial", "replicate")
DEFAULT_HEARTBEAT_SECONDS = 10.0  # the sweeper's default hydra.sweeper.heartbeat_seconds

def open_storage(spec: str):
    """An Optuna storage from a URL (sqlite:///..., postgresql://..., its password masked or
    not) or a journal file path (its torn tail cut before anything is appended: wdsweep.tracking.journal)."""
    import optuna

    from wdsweep.tracking.journal import TailSafeJournalBackend

    if "://" in spec:
        return optuna.storages.get_storage(with_password(spec, ENV_PASSWORD))
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
        """How the job ended, as trial user attributes the sweeper and the analysis read. A
        trial another sweep has told meanwhile (see the module) keeps what it was told: one
        warning, and the job's result stays in its metrics.json."""
        import optuna

        try:
            record_attrs(open_storage(self.storage), self.trial_id, metrics)
        except optuna.exceptions.UpdateFinishedTrialError:
            log.warning("Optuna trial id %d was already finished by another sweep; this job's result "
                        "is in its metrics.json only", self.trial_id)


def heartbeat_seconds(hydra_cfg: Any) -> float:
    """The interval a job beats at: its sweep's hydra.sweeper.heartbeat_seconds (the job's
    Hydra config carries the sweeper's), else the sweeper's default."""
    try:
        value = float(hydra_cfg.sweeper.get("heartbeat_seconds") or 0)
    except (AttributeError, TypeError, ValueError):
        value = 0.0
    return value if value > 0 else DEFAULT_HEARTBEAT_SECONDS


class TrialHeartbeat:
    """Writes HEARTBEAT_ATTR on the trials of the jobs this process trains, every `interval`
    seconds from a thread, while they train (see the module); `gone` maps the id of a trial
    found finished to why. Nothing in the sweep's own process (in-process launchers), whose
    sweeper beats for its trials itself: only a job in a process of its own can outlive its
    sweep. The first beat is at once, so a job whose trial is already over stops at its first
    evaluation."""

    def __init__(self, links: Sequence[Optional[TrialLink]], interval: float, in_sweep_process: bool) -> None:
        # in_sweep_process: wdsweep.jobs.lifeline.in_main_process(), asked by the caller (the
        # jobs wing sits above this one).
        self.links = [] if in_sweep_process else [k for k in links if k is not None and k.role in BEATING_ROLES]
        self.interval = interval
        self.gone: Dict[int, str] = {}
        self._storages: Dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        if self.links:
            self._beat()
            self._thread = threading.Thread(target=self._run, name="wdsweep-job-heartbeat", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._beat()

    def _beat(self) -> None:
        import optuna

        for link in self.links:
            if link.trial_id in self.gone:
                continue
            try:
                storage = self._storages.get(link.storage) or self._storages.setdefault(
                    link.storage, open_storage(link.storage))
                try:
                    storage.set_trial_user_attr(link.trial_id, HEARTBEAT_ATTR, time.time())
                except optuna.exceptions.UpdateFinishedTrialError:
                    trial = storage.get_trial(link.trial_id)
                    why = trial.user_attrs.get(REASON_ATTR)
                    self.gone[link.trial_id] = (f"its Optuna trial {trial.number} was told {trial.state.name} by "
                                                f"another sweep while this job ran" + (f" ({why})" if why else ""))
                    log.warning("%s: this job stops at its next evaluation", self.gone[link.trial_id])
            except Exception as err:  # noqa: BLE001 - a beat missed is no reason to stop training
                log.debug("heartbeat on trial id %d: %s", link.trial_id, hide_password(str(err)))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def record_attrs(storage, trial_id: int, metrics: dict) -> None:
    """A job's metrics.json fields as the trial's user attributes (wdsweep_status, ...): by the
    job, or by a sweep that tells a trial from its job's metrics.json."""
    for key in ("status", "test_error", "val_error", "steps", "diverged_at_step", "error"):
        value = metrics.get(key)
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        storage.set_trial_user_attr(trial_id, f"wdsweep_{key}", value)
