"""Trials whose sweep stopped: this sweep's heartbeat on its running trials, and the settling
of RUNNING trials no sweep will tell (told from their job's metrics.json if it ended, else
failed once their heartbeat is older than stale_after_seconds).
"""
from __future__ import annotations

import logging
import re
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import List, Optional, Tuple

import optuna
from optuna.trial import TrialState

from wdsweep.search.replicates import SEEDS_ATTR, Replicated
from wdsweep.search.telling import Telling
from wdsweep.search.trial_outcome import how_it_ended
from wdsweep.search.trials import HEARTBEAT_ATTR, JOB_DIR_ATTR, SAME_AS_ATTR

log = logging.getLogger(__name__)
# A job's record counts as this trial's if the job started at most this long before the trial
# was asked (clocks of two machines sharing a study may differ by that much).
RECORD_CLOCK_SLACK_SECONDS = 10.0


class Orphans(Telling):
    """Settling the trials of a stopped sweep."""

    def _settle_orphaned_trials(self, study: optuna.Study) -> None:
        """Tell the RUNNING trials no sweep will tell. Called between batches, when none of this
        sweep's own trials run, so every RUNNING trial is another sweep's: one whose job has
        finished (its metrics.json is in the trial's folder; its sweep was killed before the
        tell) is told at once how the job ended, without waiting for its heartbeat to go
        stale; one without is failed once its heartbeat is older than stale_after_seconds.
        Telling a live sweep's finished trial first is harmless: its own tell is then skipped."""
        now = time.time()
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.user_attrs.get(SEEDS_ATTR) and self._settle_replicated(study, trial):
                continue
            record = finished_record(trial)
            if record is not None:
                self._tell_from_record(study, trial, record)
                continue
            last = last_sign_of_life(trial, now)
            if now - last > self.stale_after_seconds:
                self._tell(study, trial._trial_id, trial.number, TrialState.FAIL, None,
                           f"stale: its sweep stopped (no heartbeat for {now - last:.0f} s)")

    def _settle_replicated(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        """A replicated trial whose sweep was killed after its seeds' jobs ended: told from the
        seeds' metrics.json (trial-NNNNN/seed-S) as its sweep would have, once every seed has
        one, or as failed at once if one of them failed. False: not settled (seeds still
        missing: the heartbeat rule then applies)."""
        seeds, folder = trial.user_attrs[SEEDS_ATTR], trial.user_attrs.get(JOB_DIR_ATTR)
        if not folder:
            return False
        records = {s: finished_record(trial, Path(folder) / f"seed-{s}") for s in seeds}
        r = Replicated(trial, [], Path(folder).name)
        for seed, record in records.items():
            if record is not None:
                r.take(seed, *outcome_of_record(record, len(self.directions)), record)
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
        from wdsweep.tracking.trial_link import record_attrs

        state, values, reason = outcome_of_record(record, len(self.directions))
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
        ages = ", ".join(f"{t.number} ({now - last_sign_of_life(t, now):.0f} s ago)" for t in running)
        log.info("the study's budget is taken; waiting for the trials other sweeps run (last heartbeat: "
                 "%s). A trial whose heartbeat is older than hydra.sweeper.stale_after_seconds=%g "
                 "belonged to a killed sweep and is failed then", ages, self.stale_after_seconds)


def finished_record(trial: optuna.trial.FrozenTrial, folder: Optional[Path] = None) -> Optional[dict]:
    """The metrics.json of the trial's job (or of the job in `folder`: one seed of a replicated
    trial) if that job finished (any status), else None. The record must be this trial's: it
    names the trial (or is a record of another trial's result, written by the sweeper) and its
    job started after the trial was asked, not an older run in a folder of the same name."""
    from wdsweep.jobs.resume import read_record

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


def outcome_of_record(record: dict, n_directions: int
                       ) -> Tuple[TrialState, Optional[List[float]], Optional[str]]:
    """How a job ended, from its metrics.json (whose status finished_record checked)."""
    return how_it_ended(record.get("status"), record.get("error"), record.get("diverged_at_step"),
                        record.get("objective"), n_directions, "metrics.json holds")


def last_sign_of_life(trial: optuna.trial.FrozenTrial, now: float) -> float:
    """When the trial's sweep last wrote its heartbeat (or asked it)."""
    beat = trial.user_attrs.get(HEARTBEAT_ATTR)
    if beat is not None:
        return beat
    return trial.datetime_start.timestamp() if trial.datetime_start else now


class SweepHeartbeat:
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
