"""Replicated trials (hydra.sweeper.seeds): each trial trains every seed and is told their
aggregate; with the Wilcoxon pruner, one seed per round (see wdsweep.search.replicates).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional

import optuna
from optuna.trial import TrialState

from wdsweep.search.replicates import SEED_TEST_ATTR, SEED_VALUES_ATTR, SEEDS_ATTR, Replicated, aggregate, seed_outcome
from wdsweep.search.space import SearchSpace
from wdsweep.search.trials import CANONICAL_ATTR, JOB_DIR_ATTR, fail_reason
from wdsweep.search.twins import Twins

log = logging.getLogger(__name__)


class ReplicatedTrials(Twins):
    """Running and telling replicated trials."""

    def _run_replicated_batch(self, study: optuna.Study, space: SearchSpace, storage_spec: str,
                              trials: List[optuna.Trial], job_index: int) -> int:
        """Each asked trial trains every seed of hydra.sweeper.seeds and is told their aggregate.
        Without the Wilcoxon pruner all the batch's seeds go to the launcher at once (one
        batched model under hydra/launcher=vectorized); with it, one seed per round, and a
        trial the pruner stops after a round runs no more seeds."""
        from wdsweep.config.validation import validate
        from wdsweep.jobs.canonical import canonical_hash

        sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
        twins = self._finished_by_canonical(study, replicated=True) if self.dedupe else {}
        active: List[Replicated] = []
        for trial in trials:
            folder = f"trial-{trial.number:05d}"
            try:
                job = [o for o in self._trial_overrides(trial, space) if not o.startswith("seed=")]
                cfg = self.hydra_context.config_loader.load_sweep_config(self.config, job + [f"seed={self.seeds[0]}"])
                validate(cfg)
                canonical = canonical_hash(cfg) + f"|seeds={self.seeds}"
            except Exception as err:  # noqa: BLE001 - composition, validation or the hook: this trial fails
                self._tell(study, trial._trial_id, trial.number, TrialState.FAIL, None, fail_reason(err))
                continue
            for key, value in ((CANONICAL_ATTR, canonical), (JOB_DIR_ATTR, str(sweep_dir / folder)),
                               (SEEDS_ATTR, self.seeds)):
                self.storage_obj.set_trial_user_attr(trial._trial_id, key, value)
            if canonical in twins:
                self._tell_replicated_twin(study, trial, twins[canonical])
                continue
            active.append(Replicated(trial, job, folder))
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

    def _take_seed(self, r: "Replicated", seed: int, ret: Any, job_dir: Path) -> None:
        """Keep one seed's outcome on the trial: its values as the intermediate value at
        step = seed (what WilcoxonPruner compares), or the trial's failure."""
        state, values, reason, record = seed_outcome(ret, job_dir, len(self.directions))
        r.take(seed, state, values, reason, record)
        if state == TrialState.COMPLETE and len(self.directions) == 1:
            self.storage_obj.set_trial_intermediate_value(r.trial._trial_id, seed, values[0])

    def _tell_replicated(self, study: optuna.Study, r: "Replicated", seeds: Optional[List[int]] = None) -> None:
        """Tell a replicated trial its aggregate (or PRUNED, or FAIL), with the per-seed values
        and the means of the seeds' validation and test errors as user attributes."""
        def mean(values: Dict[int, Optional[float]]) -> Optional[float]:
            kept = [v for v in values.values() if v is not None]
            return sum(kept) / len(kept) if kept else None

        status = "failed" if r.failed else "pruned" if r.pruned else "completed"
        attrs = {SEED_VALUES_ATTR: {str(s): v for s, v in r.values.items()},
                 SEED_TEST_ATTR: {str(s): v for s, v in r.test_errors.items()},
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
            values = aggregate([r.values[s] for s in seeds or self.seeds], self.directions, self.aggregate,
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

    def _wilcoxon_pruner(self) -> Optional[optuna.pruners.BasePruner]:
        import warnings

        conf = dict(self.pruner_conf)
        if conf.pop("name") != "wilcoxon":
            return None
        with warnings.catch_warnings():  # experimental since Optuna 3.6; we pin its use in tests
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.pruners.WilcoxonPruner(**conf)
