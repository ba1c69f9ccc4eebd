"""How an Optuna trial ended, from its job's status and objective value: the state to tell,
its values, and the fail reason. One rule for every path that tells a trial: the sweeper from a
job's return, a seed of a replicated trial, and a resumed sweep from a metrics.json."""
from __future__ import annotations

import math
from typing import Any, List, Optional, Tuple

from optuna.trial import TrialState


def how_it_ended(status: Optional[str], error: Optional[str], diverged_at_step: Any, value: Any,
                 n_directions: int, source: str) -> Tuple[TrialState, Optional[List[float]], Optional[str]]:
    """The trial's state, values and fail reason for a job of this status and objective value,
    whether read from its return and trial attributes (the sweeper's tell) or from its metrics.json (a
    trial whose sweep was killed before the tell); `source` says which, in reasons."""
    if status == "pruned":
        return TrialState.PRUNED, None, None
    if status in ("diverged", "failed"):
        detail = error or (f"at step {diverged_at_step}" if status == "diverged" else "")
        return TrialState.FAIL, None, f"{status} {detail}".strip()
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(values) != n_directions:
        return TrialState.FAIL, None, f"{source} {len(values)} values for {n_directions} directions"
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        return TrialState.FAIL, None, f"non-finite objective {values}"
    return TrialState.COMPLETE, [float(v) for v in values], None
