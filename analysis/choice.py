"""The choosing rule: which configurations exist in a sweep's runs, which may be chosen, and
each setting's best λ, one rule for the report, the charts' stars, the weight histograms and the
grid finalists (docs: the report's statistics, "one rule").

- A configuration is a setting and a λ; a setting is the mode, scope and p, and any other key
  the sweep varied (optimizer.lr, ...). Seeds are averaged over, never these. At λ = 0 the reg.*
  keys change nothing, so "no decay" is one configuration per value of the other keys, and a
  candidate λ of every setting.
- A configuration that diverged or failed on any seed it ran fails there: it is never chosen.
- Candidates are compared on the same seeds, and only candidates that ran on most of them: one
  whose completed seeds are no more than half of the most any candidate of the setting completed
  (λ = 0.03 run on 1 seed beside λs run on 4, as another sweep adds) is not compared and never
  chosen, and the report names it ("ran on 1 seed of the 4 the others ran: not compared"). So
  adding a sparsely-run candidate cannot shrink the others to its seeds and flip the choice.
  The others are compared over the seeds all of them completed, and the report says how many.
- A setting's best λ has the lowest mean validation error over those seeds, λ = 0 included; of
  λs tied exactly (stats.close: within float32 rounding of their scale) the smallest: no more
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
    judged: Optional["Judged"] = None  # the seeds it was chosen on, and who was not compared


def healthy(configs) -> List[Config]:
    """The configurations that may be chosen: a seed of each completed, none diverged or failed."""
    return [c for c in configs if not c.failed and len(c.val)]


@dataclass
class Judged:
    """Configurations compared on validation error: each one's mean over the seeds all of the
    compared ones completed (`seeds` of them; 0: they share none, each over its own), and those
    left out because they ran on too few seeds (`sparse`) beside `most`, the most any completed."""
    means: Dict[Tuple, float]
    seeds: int
    most: int
    sparse: List[Config] = field(default_factory=list)

    def sparse_words(self) -> List[str]:
        """"λ = 0.03 ... ran on 1 seed of the 4 the others ran: not compared", one per left out."""
        return [f"{c.name} ran on {len(c.val)} seed{'s' if len(c.val) != 1 else ''} of the {self.most} the "
                "others ran: not compared" for c in self.sparse]

    def seeds_words(self) -> str:
        """How many seeds the choice was made on, in words."""
        if not self.seeds:
            return "no seed shared by all, each on its own seeds"
        return f"{self.seeds} seed{'s' if self.seeds != 1 else ''}" + (
            f" of the {self.most} run" if self.seeds < self.most else "")


def comparable(configs: List[Config]) -> Tuple[List[Config], List[Config]]:
    """(compared, left out): a configuration that completed no more than half of the most seeds
    any of them completed is left out (choice's rule: it would shrink the others to its seeds)."""
    most = max((len(c.val) for c in configs), default=0)
    kept = [c for c in configs if 2 * len(c.val) > most]
    return kept, [c for c in configs if c not in kept]


def judge(configs: List[Config]) -> Judged:
    """Compare `configs` (healthy ones) on validation error by choice's rule."""
    kept, sparse = comparable(list(configs))
    shared = None
    for c in kept:
        shared = c.val.index if shared is None else shared.intersection(c.val.index)
    common = shared is not None and len(shared) > 0
    means = {c.identity: (c.val[shared] if common else c.val).mean() for c in kept}
    return Judged(means, len(shared) if common else 0, max((len(c.val) for c in configs), default=0), sparse)


def shared_val_means(configs: List[Config]) -> Dict[Tuple, float]:
    """The compared configurations' mean validation errors, by identity (judge's rule)."""
    return judge(configs).means


def _best(candidates: List[Tuple[pd.Series, Dict[float, Config]]]) -> List[Best]:
    """Per setting, its best λ among the configurations that may be chosen (none: no best)."""
    out = []
    for row, configs in candidates:
        usable = healthy(configs.values())
        if not usable:
            continue
        judged = judge(usable)
        by_lam = {c.lam: judged.means[c.identity] for c in usable if c.identity in judged.means}
        low = min(by_lam.values())
        tied = sorted(lam for lam, m in by_lam.items() if stats.close(m, low))
        out.append(Best(row, configs[tied[0]], tied[1:], configs.get(0.0), sorted(configs), judged))
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
        row.update({"reg.lam": c.lam, "tied": best.tied, "seeds": len(c.val), "chosen_on": best.judged.seeds,
                    "not_compared": [x.lam for x in best.judged.sparse]})
        for metric, values in (("val_error", c.val), ("test_error", c.test)):
            low, high = stats.interval(values)
            row.update({metric: values.mean(), f"{metric}_std": values.std(ddof=1) if len(values) > 1 else math.nan,
                        f"{metric}_low": low, f"{metric}_high": high})
        rows.append(row)
    table = pd.DataFrame(rows)
    # stable: settings tied on validation keep their key order, and the table says they tie
    return table.sort_values("val_error", kind="stable").reset_index(drop=True) if len(table) else table
