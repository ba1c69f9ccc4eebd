"""How a search ends: optimization_results.yaml (the study's states and its best trial or
Pareto front), and the stops for a search that fails too often or completes nothing.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict

import optuna
from omegaconf import OmegaConf
from optuna.trial import TrialState

from wdsweep.errors import ConfigError
from wdsweep.search.trials import FINISHED, REASON_ATTR, SAME_AS_ATTR, count_trials

log = logging.getLogger(__name__)

RESULTS_FILE = "optimization_results.yaml"


class ResultsFile:
    """The results file and the failure stops; uses config, seeds, storage_spec and the
    failure-rate settings."""

    def _write_results(self, study: optuna.Study, sweep_dir: Path) -> None:
        trials = study.get_trials(deepcopy=False)
        results: Dict[str, Any] = {
            "study_name": study.study_name,
            "storage": self.storage_spec,
            "n_trials": len(trials),
            "states": {s.name: sum(t.state == s for t in trials) for s in TrialState},
            # complete trials told another trial's values: the same configuration, not trained
            "same_as_another_trial": sum(SAME_AS_ATTR in t.user_attrs for t in trials),
            "directions": [d.name.lower() for d in study.directions],
        }
        if self.seeds is not None:  # a replicated search: each value aggregates these seeds
            results.update(seeds=list(self.seeds), aggregate=self.aggregate,
                           **({"se_k": self.se_k} if self.aggregate == "mean_se" else {}))
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        if complete and len(study.directions) == 1:
            best = study.best_trial
            results.update(best_params=best.params, best_value=best.value, best_trial_number=best.number)
        elif complete:
            results["pareto_front"] = [{"number": t.number, "values": t.values, "params": t.params}
                                       for t in study.best_trials]
        OmegaConf.save(OmegaConf.create(results), sweep_dir / RESULTS_FILE)
        # The file keeps every digit; the log line rounds to 4 significant digits, what a reader
        # compares (a 17-digit float says more than one run can support).
        def rounded(value):
            if isinstance(value, float):
                return float(f"{value:.4g}") + 0.0  # + 0.0: a rounded -0.0 prints as 0.0
            if isinstance(value, dict):
                return {k: rounded(v) for k, v in value.items()}
            return [rounded(v) for v in value] if isinstance(value, (list, tuple)) else value

        log.info("%s: %s", RESULTS_FILE, rounded({k: v for k, v in results.items() if k != "pareto_front"}))

    def _check_failure_rate(self, study: optuna.Study) -> None:
        finished = count_trials(study, FINISHED)
        failed = count_trials(study, (TrialState.FAIL,))
        if finished >= self.min_trials_for_failure_rate and failed / finished > self.max_failure_rate:
            self._write_results(study, Path(self.config.hydra.sweep.dir))
            ConfigError(f"search stopped: {failed} of {finished} trials failed, more than "
                        f"hydra.sweeper.max_failure_rate={self.max_failure_rate}; see the trials' "
                        f"{REASON_ATTR} and their metrics.json").exit()

    def _fail_if_nothing_completed(self, study: optuna.Study) -> None:
        """A search none of whose trials completed has no answer: say so and exit non-zero
        (below min_trials_for_failure_rate the failure-rate stop does not look)."""
        trials = study.get_trials(deepcopy=False)
        if trials and not any(t.state == TrialState.COMPLETE for t in trials):
            reasons = [t.user_attrs.get(REASON_ATTR) for t in trials if t.user_attrs.get(REASON_ATTR)]
            ConfigError(f"search ended without a completed trial: {len(trials)} trials, "
                        f"{count_trials(study, (TrialState.FAIL,))} failed"
                        + (f" (first reason: {reasons[0]})" if reasons else "")).exit()
