"""Replicated trials and fresh-seed finalists, for the Optuna search (wdsweep.search.loop).

A search that trains one seed per trial fits its sampler to single-seed noise and picks its
"best" trial on a lucky draw. With hydra.sweeper.seeds each trial trains every listed seed
(launched together, so hydra/launcher=vectorized trains them as one batched model) and is told
one number for them: their mean, or mean + se_k standard errors towards the worse side
(aggregate=mean_se). Each seed's run is an ordinary job folder, trial-NNNNN/seed-S, and each
seed's value is kept on the trial as an intermediate value (step = the seed) and in the user
attribute wdsweep_seed_values.

With hydra/sweeper/pruner=wilcoxon the seeds are run one at a time across the round's trials,
and after each seed Optuna's WilcoxonPruner compares the trial's per-seed values with the best
trial's on the same seeds: a trial that is significantly worse runs no more seeds (PRUNED).

A seed that fails or diverges fails its trial: a configuration that blows up on one seed in
three is not one to recommend, whatever the other two say.

hydra.sweeper.finalists=m re-runs the m best trials (distinct configurations) on seeds the
search never used, into finalists/trial-NNNNN/seed-S, and writes finalists.yaml
(wdsweep.search.finalists, shared with the grid sweeper).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from wdsweep.search.finalists import finite_or_none

log = logging.getLogger(__name__)

SEED_VALUES_ATTR = "wdsweep_seed_values"  # {seed: objective values}, for the seeds that ran
SEED_TEST_ATTR = "wdsweep_seed_test_errors"  # {seed: test error}
SEEDS_ATTR = "wdsweep_seeds"  # the seeds the trial was to train
AGGREGATES = ("mean", "mean_se")


def aggregate(per_seed: Sequence[Sequence[float]], directions: Sequence[str], how: str, se_k: float
              ) -> List[float]:
    """One value per objective from each seed's values: the mean, or for mean_se the mean plus
    se_k standard errors (sample std / sqrt(n)) in the worse direction of that objective."""
    values = []
    for i, direction in enumerate(directions):
        column = [float(v[i]) for v in per_seed]
        mean = sum(column) / len(column)
        if how == "mean_se" and len(column) > 1:
            se = math.sqrt(sum((x - mean) ** 2 for x in column) / (len(column) - 1) / len(column))
            mean += se_k * se if direction == "minimize" else -se_k * se
        values.append(mean)
    return values


@dataclass
class Replicated:
    """One asked trial of a replicated search, while its seeds run."""

    trial: Any  # optuna.Trial
    job: List[str]  # the trial's overrides, without seed and folder
    folder: str  # trial-NNNNN, relative to the sweep folder
    values: Dict[int, List[float]] = field(default_factory=dict)
    test_errors: Dict[int, Optional[float]] = field(default_factory=dict)
    val_errors: Dict[int, Optional[float]] = field(default_factory=dict)
    failed: Optional[str] = None
    pruned: Optional[str] = None

    def take(self, seed: int, state: Any, values: Optional[List[float]], reason: Optional[str],
             record: Optional[dict]) -> None:
        """Keep one seed's outcome: its values and errors, or the trial's failure."""
        from optuna.trial import TrialState

        if state != TrialState.COMPLETE:
            self.failed = self.failed or f"seed {seed}: {reason or state.name.lower()}"
            return
        self.values[seed] = values
        self.val_errors[seed] = finite_or_none((record or {}).get("val_error"))
        self.test_errors[seed] = finite_or_none((record or {}).get("test_error"))

    def seed_job(self, seed: int) -> List[str]:
        return self.job + [f"seed={seed}", f"hydra.sweep.subdir={self.folder}/seed-{seed}"]


def seed_outcome(ret: Any, job_dir: Path, n_directions: int):
    """(state, values, reason, record) of one seed's job, from its metrics.json (the job
    records no attributes on the trial: it shares the trial with its sibling seeds)."""
    from optuna.trial import TrialState

    from wdsweep.jobs.resume import read_record
    from wdsweep.search.trial_outcome import how_it_ended

    try:
        ret.return_value
    except Exception as err:  # noqa: BLE001 - the job raised: this seed failed
        return TrialState.FAIL, None, f"job raised {type(err).__name__}: {err}", None
    record = read_record(job_dir) or {}
    state, values, reason = how_it_ended(record.get("status"), record.get("error"),
                                         record.get("diverged_at_step"), record.get("objective"),
                                         n_directions, "metrics.json holds")
    if not record:
        state, values, reason = TrialState.FAIL, None, f"no metrics.json in {job_dir}"
    return state, values, reason, record
