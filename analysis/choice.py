"""The choosing rule: which configurations exist in a sweep's runs, which may be chosen, and
each setting's best λ, one rule for the report, the charts' stars, the weight histograms and the
grid finalists (docs: the report's statistics, "one rule").

- A configuration is a setting and a λ; a setting is the mode, scope and p, and any other key
  the sweep varied (optimizer.lr, ...). Seeds are averaged over, never these. At λ = 0 the reg.*
  keys change nothing, so "no decay" is one configuration per value of the other keys, and a
  candidate λ of every setting.
- A configuration that diverged or failed on any seed it ran fails there: it is never chosen.
- A setting's best λ has the lowest mean validation error over the seeds every candidate of the
  setting completed, λ = 0 included; of λs tied exactly (within stats.TOL) the smallest: no more
  decay than the data ask for.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import pandas as pd

from analysis import stats
from analysis.collect import matching, varying_keys

GROUP = ["reg.mode", "reg.scope", "reg.p"]
SCOPE_WORDS = {"weights": "weights only", "all": "all parameters"}


def settings(runs: pd.DataFrame) -> List[str]:
    """The keys one regularizer setting is told apart by: mode, scope, p, and any other config key
    the sweep varied (optimizer.lr, model.width, ...); seeds are averaged over, never these."""
    return GROUP + [k for k in varying_keys(runs) if k not in GROUP]


def _others(keys: List[str]) -> List[str]:
    """The keys that still matter at λ = 0, where every reg.* key is idle."""
    return [k for k in keys if not k.startswith("reg.")]


# What a seed's run that gave no usable result says of its configuration: it fails there. (A
# run still going, or killed, says nothing yet: "incomplete" is not among them.)
FAILING = ("diverged", "failed")


def _usable(runs: pd.DataFrame) -> pd.DataFrame:
    """Completed runs with both errors, and the runs that failed their configuration (FAILING)."""
    done = runs[((runs["status"] == "completed") & runs["val_error"].notna() & runs["test_error"].notna())
                | runs["status"].isin(FAILING)]
    return done if "seed" in done else done.assign(seed=0)  # no seed key: one seed


@dataclass
class Config:
    """One configuration's runs: validation and test error per seed (a seed run twice, as by
    two overlapping sweeps, counts once, at its mean)."""
    name: str
    lam: float
    identity: Tuple  # equal for configurations that are the same runs
    val: pd.Series  # over the seeds it completed
    test: pd.Series
    failed: Dict[Any, str] = field(default_factory=dict)  # seed -> status, where it diverged or failed

    def failing(self) -> str:
        """What failed, in words ("diverged on seeds 3, 7 of 10"), or "" if nothing did."""
        if not self.failed:
            return ""
        by_status: Dict[str, List] = {}
        for seed, status in sorted(self.failed.items()):
            by_status.setdefault(status, []).append(seed)
        total = len(set(self.val.index) | set(self.failed))
        return " and ".join(f"{status} on seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
                            for status, seeds in by_status.items()) + f" of {total}"


def _config(rows: pd.DataFrame, name: str, lam: float, identity: Tuple) -> Config:
    completed = rows[rows["status"] == "completed"]
    by_seed = completed.groupby("seed")
    failed = rows[rows["status"].isin(FAILING)]
    return Config(name, lam, identity, by_seed["val_error"].mean(), by_seed["test_error"].mean(),
                  {seed: status for seed, status in zip(failed["seed"], failed["status"])})


def _name(row: pd.Series, keys: List[str], lam: float) -> str:
    extra = "".join(f", {k}={row[k]}" for k in keys if k not in GROUP and (lam > 0 or not k.startswith("reg.")))
    if lam == 0:
        return "no decay" + extra
    scope = SCOPE_WORDS.get(row["reg.scope"], row["reg.scope"])
    return f"{row['reg.mode']} L{row['reg.p']:g} on {scope} at λ = {lam:g}" + extra


def _candidates(done: pd.DataFrame, keys: List[str]) -> List[Tuple[pd.Series, Dict[float, Config]]]:
    """Per setting (a key combination with a λ > 0 run of its own): its configurations by λ,
    λ = 0 being the no-decay runs of its other keys, whatever their reg.* keys say."""
    others = _others(keys)
    out = []
    for _, group in done[done["reg.lam"] > 0].groupby(keys, dropna=False, sort=True):
        row = group.iloc[0]
        configs = {}
        base = done[matching(done, row, others) & (done["reg.lam"] == 0)]
        if len(base):
            configs[0.0] = _config(base, _name(row, keys, 0.0), 0.0,
                                   ("no decay",) + tuple(str(row[k]) for k in others))
        for lam, rows in group.groupby("reg.lam"):
            lam = float(lam)
            configs[lam] = _config(rows, _name(row, keys, lam), lam,
                                   tuple(str(row[k]) for k in keys) + (lam,))
        out.append((row, configs))
    return out


@dataclass
class Best:
    """A setting's best λ on validation, with the λs tied with it."""
    setting: pd.Series
    config: Config
    tied: List[float]
    no_decay: Optional[Config]
    lams: List[float] = field(default_factory=list)  # every λ the setting swept (λ = 0 included)


def healthy(configs) -> List[Config]:
    """The configurations that may be chosen: a seed of each completed, none diverged or failed."""
    return [c for c in configs if not c.failed and len(c.val)]


def shared_val_means(configs: List[Config]) -> Dict[Tuple, float]:
    """Each configuration's mean validation error over the seeds all of them completed (over its
    own seeds when they share none), by identity."""
    shared = None
    for c in configs:
        shared = c.val.index if shared is None else shared.intersection(c.val.index)
    return {c.identity: (c.val[shared] if shared is not None and len(shared) else c.val).mean() for c in configs}


def _best(candidates: List[Tuple[pd.Series, Dict[float, Config]]]) -> List[Best]:
    """Per setting, its best λ among the configurations that may be chosen (none: no best)."""
    out = []
    for row, configs in candidates:
        usable = healthy(configs.values())
        if not usable:
            continue
        means = shared_val_means(usable)
        by_lam = {c.lam: means[c.identity] for c in usable}
        low = min(by_lam.values())
        tied = sorted(lam for lam, m in by_lam.items() if m - low <= stats.TOL)
        out.append(Best(row, configs[tied[0]], tied[1:], configs.get(0.0), sorted(configs)))
    return out


def best_lambdas(runs: pd.DataFrame) -> pd.DataFrame:
    """Per setting: the λ with the lowest mean validation error (λ = 0 included; of exactly tied
    λs the smallest, the others in `tied`), with the spread over seeds of its val and test error."""
    if not len(runs) or not {"reg.lam", "val_error", "test_error", "status", *GROUP} <= set(runs.columns):
        return pd.DataFrame()
    keys = settings(runs)
    rows = []
    for best in _best(_candidates(_usable(runs), keys)):
        c = best.config
        row = {k: best.setting[k] for k in keys}
        row.update({"reg.lam": c.lam, "tied": best.tied, "seeds": len(c.val)})
        for metric, values in (("val_error", c.val), ("test_error", c.test)):
            low, high = stats.interval(values)
            row.update({metric: values.mean(), f"{metric}_std": values.std(ddof=1) if len(values) > 1 else math.nan,
                        f"{metric}_low": low, f"{metric}_high": high})
        rows.append(row)
    table = pd.DataFrame(rows)
    # stable: settings tied on validation keep their key order, and the table says they tie
    return table.sort_values("val_error", kind="stable").reset_index(drop=True) if len(table) else table
