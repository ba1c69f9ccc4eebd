"""Trials to jobs and back: a trial's overrides and its link (the env_set that tells the job its
trial), the launch of a batch through Hydra's launcher, and telling Optuna how each job ended.
A failure to tell is logged, never raised; a trial that stays untold stops the sweep (below).
"""
from __future__ import annotations

import importlib
import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple

import optuna
from optuna.trial import TrialState

from wdsweep.config.urls import hide_password
from wdsweep.search.space import SearchSpace
from wdsweep.search.study import StudyStorage
from wdsweep.search.trial_outcome import how_it_ended
from wdsweep.search.trials import REASON_ATTR, one_line, override_value, quote

log = logging.getLogger(__name__)


class Telling(StudyStorage):
    """Launching trials as jobs and telling Optuna their outcome; uses config, hydra_context,
    launcher and storage_obj."""

    def _trial_overrides(self, trial: optuna.Trial, space: SearchSpace) -> List[str]:
        chosen: Dict[str, Any] = dict(trial.params)  # sampled by study.ask from the space
        if self.custom_search_space:
            module, _, name = self.custom_search_space.rpartition(".")
            hook = getattr(importlib.import_module(module), name)
            chosen.update(hook(self.config, trial) or {})
        fixed = {k: v for k, v in space.fixed.items() if k not in chosen}
        return [f"{k}={v}" for k, v in fixed.items()] + [f"{k}={override_value(v)}" for k, v in chosen.items()]

    @staticmethod
    def _linked(job: List[str], storage_spec: str, study: optuna.Study, trial: Any,
                role: str = "trial") -> List[str]:
        """The job's overrides with its trial link (wdsweep.tracking.trial_link), carried by env_set."""
        from wdsweep.tracking.trial_link import ENV_ROLE, ENV_STORAGE, ENV_STUDY, ENV_TRIAL

        link = [f"++hydra.job.env_set.{ENV_STORAGE}={quote(storage_spec)}",
                f"++hydra.job.env_set.{ENV_STUDY}={quote(study.study_name)}",
                f"++hydra.job.env_set.{ENV_TRIAL}={trial._trial_id}"]
        return job + link + ([f"++hydra.job.env_set.{ENV_ROLE}={role}"] if role != "trial" else [])

    def _launch(self, job_overrides: List[List[str]], initial_job_idx: int) -> Sequence[Any]:
        """The launcher's launch; with Hydra's basic launcher, the same through
        wdsweep.jobs.inprocess.run_sweep_job, whose log line leaves out the trial link (env_set)
        and a job folder that cannot be created fails that job, not the sweep."""
        from hydra._internal.core_plugins.basic_launcher import BasicLauncher

        from wdsweep.cluster import submitit_launch

        if submitit_launch.is_submitit_launcher(self.launcher):
            # a job that dies without a result (OOM, time limit) fails its trial, not the sweep
            return submitit_launch.launch(self.launcher, job_overrides, initial_job_idx)
        if type(self.launcher) is not BasicLauncher:
            return self.launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
        from hydra.core.utils import configure_log

        from wdsweep.jobs.inprocess import run_here

        returns = run_here(self.hydra_context, self.launcher.task_function, self.config, job_overrides,
                           initial_job_idx)
        # the jobs configured their own logging: the sweeper's lines go back to Hydra's
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return returns

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
                               f"{hide_password(one_line(err), self.password)}")

    def _still_running(self, trial_id: int) -> bool:
        try:
            return self.storage_obj.get_trial(trial_id).state == TrialState.RUNNING
        except Exception:  # noqa: BLE001 - a storage that cannot even be read
            return True

    def _stop_if_untold(self) -> None:
        """A trial this sweep could not tell would stay RUNNING, and the sweep would wait for
        it forever: the storage cannot be written (a full disk, a lost server). Stop."""
        if self.untold:
            self._stop_unwritable(self.untold)
