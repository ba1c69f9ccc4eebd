"""Twins: a trial whose canonical config (wdsweep.jobs.canonical) a finished trial already
trained is told that trial's values and gets a record of its result instead of a training
(hydra.sweeper.dedupe).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import optuna
from optuna.trial import TrialState

from wdsweep.search.orphans import Orphans
from wdsweep.search.replicates import SEED_VALUES_ATTR
from wdsweep.search.trials import CANONICAL_ATTR, HEARTBEAT_ATTR, JOB_DIR_ATTR, SAME_AS_ATTR

log = logging.getLogger(__name__)


class Twins(Orphans):
    """Finding and recording twins."""

    def _finished_by_canonical(self, study: optuna.Study, replicated: bool = False
                               ) -> Dict[str, optuna.trial.FrozenTrial]:
        """Completed trials a twin can be told from, by canonical config hash (the first of
        each): with a result on disk, or for a replicated search, with its seeds' values."""
        found: Dict[str, optuna.trial.FrozenTrial] = {}
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            key = t.user_attrs.get(CANONICAL_ATTR)
            if not key or key in found:
                continue
            if SEED_VALUES_ATTR in t.user_attrs if replicated else self._source_dir(t) is not None:
                found[key] = t
        return found

    @staticmethod
    def _source_dir(trial: optuna.trial.FrozenTrial) -> Optional[Path]:
        """The folder of a trial that trained, if its finished result is still there."""
        from wdsweep.jobs.resume import DONE_STATUSES, read_record

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

        from wdsweep.jobs.canonical import RecordTwin
        from wdsweep.jobs.inprocess import run_sweep_job

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

    def _take_result_attrs(self, trial: Any, source: optuna.trial.FrozenTrial) -> None:
        """A twin trial's user attributes: the result ones of `source` (not its canonical hash,
        folder or heartbeat), and which trial it shares them with. Raises UpdateFinishedTrialError
        if the trial was told meanwhile."""
        for key, value in source.user_attrs.items():
            if key.startswith("wdsweep_") and key not in (CANONICAL_ATTR, JOB_DIR_ATTR, HEARTBEAT_ATTR):
                self.storage_obj.set_trial_user_attr(trial._trial_id, key, value)
        self.storage_obj.set_trial_user_attr(trial._trial_id, SAME_AS_ATTR, source.number)
