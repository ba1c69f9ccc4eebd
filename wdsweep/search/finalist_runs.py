"""Finalists (hydra.sweeper.finalists=m): the m best trials of distinct configurations re-run
on seeds the search never used, and finalists.yaml (wdsweep.search.finalists).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Dict, List, Optional

import optuna
from optuna.trial import TrialState

from wdsweep.search.finalists import finite_or_none
from wdsweep.search.replicated_trials import ReplicatedTrials
from wdsweep.search.replicates import SEED_VALUES_ATTR, seed_outcome
from wdsweep.search.trials import CANONICAL_ATTR, SAME_AS_ATTR

log = logging.getLogger(__name__)


class FinalistRuns(ReplicatedTrials):
    """Choosing and re-running the finalists."""

    def _run_finalists(self, study: optuna.Study, sweep_dir: Path, storage_spec: str, job_index: int) -> None:
        """Re-run the m best trials (distinct configurations) on seeds the search never used,
        and write finalists.yaml (wdsweep.search.finalists). Jobs already done by an earlier run of
        the same command are not trained again (their folders are kept, as any job's)."""
        from wdsweep.search import finalists

        # the seeds the trials trained with: a searched seed's values, else the one every trial
        # kept (as the check before the search read them: settings._finalist_seed_problems)
        if "seed" in self.space.distributions:
            used = sorted({int(t.params["seed"]) for t in study.get_trials(deepcopy=False) if "seed" in t.params})
        else:
            used = [int(self.space.fixed.get("seed", self.config.seed))]
        used = self.seeds or used
        seeds = finalists.fresh_seeds(self.finalist_seeds_conf, used)
        best = self._best_distinct(study, self.finalists)
        if not best:
            return
        log.info("finalists: trials %s on fresh seeds %s", [t.number for t in best], seeds)
        launched = []
        for t in best:
            job = [o for o in self._trial_overrides(t, self.space) if not o.startswith("seed=")]
            for s in seeds:
                folder = f"{finalists.FINALISTS_DIR}/trial-{t.number:05d}/seed-{s}"
                launched.append((t, s, folder, self._linked(job + [f"seed={s}", f"hydra.sweep.subdir={folder}"],
                                                            storage_spec, study, t, "finalist")))
        returns = self._launch([o for *_, o in launched], initial_job_idx=job_index)
        rows: Dict[int, List[dict]] = {t.number: [] for t in best}
        for (t, s, folder, _), ret in zip(launched, returns):
            _, values, reason, record = seed_outcome(ret, sweep_dir / folder, 1)
            rows[t.number].append(finalists.seed_row(s, record, values[0] if values else None, reason))
        entries = [finalists.summary(f"trial-{t.number:05d}", dict(t.params), t.value, rows[t.number],
                                     search_mean=_seed_mean(t), trial=t.number,
                                     search_test_error=finite_or_none(t.user_attrs.get("wdsweep_test_error")))
                   for t in best]
        finalists.write(sweep_dir, self.directions[0], used, seeds, entries, study_name=study.study_name)
        for entry in entries:
            log.info("%s", finalists.log_line(entry))

    def _best_distinct(self, study: optuna.Study, m: int) -> List[optuna.trial.FrozenTrial]:
        """The m best completed trials by value, one per distinct configuration (a trial told
        another's value, same_as, is that configuration again)."""
        complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                    if SAME_AS_ATTR not in t.user_attrs]
        sign = 1.0 if self.directions[0] == "minimize" else -1.0
        chosen, seen = [], set()
        for t in sorted(complete, key=lambda t: (sign * t.value, t.number)):
            key = t.user_attrs.get(CANONICAL_ATTR, t.number)
            if key not in seen:
                seen.add(key)
                chosen.append(t)
        from wdsweep.search.finalists import cut_with_ties

        cut = cut_with_ties(chosen, m, lambda t: sign * t.value)
        if len(cut) > m:
            log.info("finalists: %d trials tie exactly at the cut of %d: all of them run", len(cut), m)
        return cut


def _seed_mean(trial: optuna.trial.FrozenTrial) -> Optional[float]:
    """A replicated trial's plain mean over its seeds (its value is mean + k * SE under
    aggregate=mean_se, a ranking score, not an estimate to compare fresh seeds with)."""
    values = [v[0] if isinstance(v, (list, tuple)) else v
              for v in (trial.user_attrs.get(SEED_VALUES_ATTR) or {}).values()]
    values = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(values) / len(values) if values else None
