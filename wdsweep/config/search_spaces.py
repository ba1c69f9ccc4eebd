"""Conditional search spaces for the Optuna sweeper's custom_search_space hook.

A hook is fn(cfg, trial) -> {override key: value}: it may ask the trial for more values with
Optuna's suggest API, after the `params` entries have been sampled, and returns overrides.
"""
from typing import Any, Dict


def lp_with_proximal(cfg: Any, trial: Any) -> Dict[str, Any]:
    """All three decay modes. The proximal step exists for p = 1 and p = 2 only, so a proximal
    trial takes p from {1, 2} and the others from [1, 3]; with lam = 0 p does not matter, and is
    left at its default rather than searched."""
    mode = trial.suggest_categorical("reg.mode", ["coupled", "decoupled", "proximal"])
    chosen: Dict[str, Any] = {"reg.mode": mode}
    if trial.params.get("reg.lam", 1.0) > 0:
        if mode == "proximal":
            chosen["reg.p"] = trial.suggest_categorical("reg.p_proximal", [1, 2])
        else:
            chosen["reg.p"] = trial.suggest_float("reg.p", 1.0, 3.0)
    return chosen
