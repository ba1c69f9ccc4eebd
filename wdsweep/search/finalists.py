"""Finalists: the best configurations of a search or a grid, trained again on fresh seeds.

A search's best value is the best of many noisy draws, so it is optimistic: the winner's curse.
Re-running the m best configurations on seeds the search never used measures it. Both sweepers
(hydra_plugins/wdsweep_optuna with hydra.sweeper.finalists, hydra_plugins/wdsweep_sweeper with
the same key) put the runs in <sweep>/finalists/<name>/seed-S and write <sweep>/finalists.yaml:

    direction, search_seeds, fresh_seeds
    finalists: one per configuration, best first:
        name, params (or overrides), search_value (what the search said of it: its ranking
        value, mean + k * SE under aggregate=mean_se), search_mean (the plain mean over the
        search's seeds, which the fresh mean is compared with),
        fresh: {objective, val_error, test_error}: mean, std, 95% t-interval low/high, n
        fresh_minus_search (the optimism, fresh mean - search_mean: > 0 when the search
        flattered it, for a minimized objective), seeds_completed, per_seed

No torch here: the sweepers import it.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

FINALISTS_DIR = "finalists"
FINALISTS_FILE = "finalists.yaml"


def seed_list(value: Any, key: str) -> Optional[List[int]]:
    """hydra.sweeper.seeds (or finalist_seeds) as a list: a count n gives 0..n-1. None stays
    None. Raises ValueError with the allowed values for anything else."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{key}={value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"{key}={value!r}")
        return list(range(value))
    try:
        seeds = list(value)
    except TypeError:
        raise ValueError(f"{key}={value!r}") from None
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds) \
            or len(set(seeds)) != len(seeds):
        raise ValueError(f"{key}={seeds!r}")
    return seeds


def fresh_seeds(spec: Any, used: Sequence[int]) -> List[int]:
    """The finalists' seeds: a count n gives the n smallest seeds not in `used`; a list is
    taken as it is, and must not meet `used` (ValueError naming the overlap)."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        if spec < 1:
            raise ValueError(f"finalist_seeds={spec!r}")
        seeds, candidate = [], 0
        while len(seeds) < spec:
            if candidate not in used:
                seeds.append(candidate)
            candidate += 1
        return seeds
    seeds = seed_list(spec, "finalist_seeds")
    overlap = sorted(set(seeds) & set(used))
    if overlap:
        raise ValueError(f"finalist_seeds={seeds!r} (seeds {overlap} were used by the search)")
    return seeds


def interval(values: Sequence[float]) -> Dict[str, Any]:
    """Mean, sample std and 95% t-interval of per-seed values (no interval below 2 values)."""
    from scipy import stats

    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return {"mean": mean, "std": None, "low": None, "high": None, "n": n}
    std = math.sqrt(sum((x - mean) ** 2 for x in values) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "low": mean - half, "high": mean + half, "n": n}


def finite_or_none(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def seed_row(seed: int, record: Optional[dict], objective: Optional[float], reason: Optional[str]) -> dict:
    """One fresh seed's outcome, from its job's metrics.json (None: the job left none)."""
    record = record or {}
    return {"seed": seed, "status": record.get("status", "failed"), "objective": finite_or_none(objective),
            "val_error": finite_or_none(record.get("val_error")),
            "test_error": finite_or_none(record.get("test_error")), **({"reason": reason} if reason else {})}


def summary(name: str, params: Dict[str, Any], search_value: float, seed_rows: List[dict],
            search_mean: Optional[float] = None, **extra: Any) -> dict:
    """A finalist's entry of finalists.yaml (see the module docstring). `search_mean`: the plain
    mean over the search's seeds where the search ranked by something else (mean + k * SE);
    by default the search's value is that mean."""
    completed = [r for r in seed_rows if r["status"] == "completed" and r["objective"] is not None]

    def stat(key: str) -> Optional[dict]:
        values = [r[key] for r in completed if r[key] is not None]
        return interval(values) if values else None

    fresh = {k: stat(k) for k in ("objective", "val_error", "test_error")}
    mean = float(search_value if search_mean is None else search_mean)
    return {"name": name, "params": params, "search_value": float(search_value), "search_mean": mean, **extra,
            "fresh": fresh,
            "fresh_minus_search": None if fresh["objective"] is None else fresh["objective"]["mean"] - mean,
            "seeds_completed": len(completed), "per_seed": seed_rows}


def write(sweep_dir: Path, direction: str, search_seeds: Sequence[int], fresh: Sequence[int],
          finalists: List[dict], **extra: Any) -> Path:
    from omegaconf import OmegaConf

    path = Path(sweep_dir) / FINALISTS_FILE
    OmegaConf.save(OmegaConf.create({**extra, "direction": direction, "search_seeds": list(search_seeds),
                                     "fresh_seeds": list(fresh), "finalists": finalists}), path)
    return path


def log_line(entry: dict) -> str:
    """One finalist in one line. Every objective (an error, a loss, sparsity, a norm) is >= 0, so
    an interval reaching below 0 is shown cut there, and says so (finalists.yaml keeps the raw
    t-interval, as the report's statistics take it)."""
    fresh = entry["fresh"]["objective"]
    if fresh is None:
        return f"finalist {entry['name']}: search value {entry['search_value']:.4g}, no fresh seed completed"
    low = "" if fresh["low"] is None else (f"{fresh['low']:.4g}" if fresh["low"] >= 0 else "0 (cut at 0)")
    spread = "" if fresh["low"] is None else f", 95% interval [{low}, {fresh['high']:.4g}]"
    return (f"finalist {entry['name']}: search value {entry['search_value']:.4g}; on {fresh['n']} fresh "
            f"seeds {fresh['mean']:.4g}{spread}")


# When two values are the same number: within float32's resolution of their scale (the jobs'
# values are float32), with float32's smallest normal number as a floor so that two zeros tie.
# One rule for the finalist cut here and every tie the analysis names (analysis.stats.close).
REL_TOL = 2.0 ** -23
ABS_FLOOR = 2.0 ** -126


def tolerance(scale: float) -> float:
    """How far apart two values of this scale (the largest |value| compared) may be and still be
    the same number written or summed another way."""
    return REL_TOL * abs(float(scale)) + ABS_FLOOR


def close(a: float, b: float) -> bool:
    """a and b are the same value within float32 rounding, relative to their scale: an exact tie."""
    return abs(a - b) <= tolerance(max(abs(a), abs(b)))


def cut_with_ties(ranked: List[Any], m: int, value) -> List[Any]:
    """The first m of `ranked` (sorted best first), and every later one that ties exactly with
    the m-th on `value`: a cut between equal configurations would pick by row order."""
    chosen = list(ranked[:m])
    if not chosen:
        return chosen
    last = value(chosen[-1])
    for item in ranked[m:]:
        if not close(value(item), last):
            break
        chosen.append(item)
    return chosen
