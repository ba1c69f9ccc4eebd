"""The statistics of report.md: paired comparisons over seeds, Holm's correction, and power.

Two configurations run on the same seeds share their data split and initial weights seed by
seed, so they are compared pair by pair: the per-seed differences a - b carry the comparison.

- `paired(a, b)`: the mean difference, its 95% t-interval, and a two-sided paired t-test
  (scipy.stats.ttest_rel), the primary test. Why the t-test: sweeps here run a handful of
  seeds, and the Wilcoxon signed-rank test cannot reach p < 0.05 below 6 non-zero pairs (its
  smallest two-sided exact p is 2 / 2**n: 0.25 at 3 seeds), while the t-test can, and its
  interval is the one shown. Its assumption (roughly normal differences) cannot be checked at
  3 seeds; from 6 non-zero pairs on, Wilcoxon's p is computed beside it as a check.
- `holm(pvalues)`: Holm's step-down adjustment over every comparison a report states.
- `power`, `detectable_difference`, `seeds_needed`: what a paired t-test (two-sided, alpha
  0.05, power 0.8 by default) can see with n seeds, exact through the noncentral t
  distribution (scipy.stats.nct), not a normal approximation (which flatters small n).

Error rates are multiples of 1/N (N predictions), so two configurations can be exactly equal,
yet their means differ in the last bits: the jobs write float32 values (0.06944445 for 25/360,
off by up to 3e-8 for an error below 1), and a sum in another order rounds differently (a mean
difference of 1.2e-9 where the counts cancel exactly is seen on the main job). Differences and
spreads within that rounding are taken as zero. The tolerance is relative to the values' scale
(`tolerance(scale)`: REL_TOL = float32's resolution, 2**-23, times the largest |value| compared,
plus the float32 smallest normal as a floor), never absolute: an absolute 1e-7 would call a
regression's MSEs of 1.26e-10 and 3.10e-9 an exact tie. At error rates of 0.05 to 0.5 it is
6e-9 to 6e-8: above the rounding above, below one prediction of a million-prediction test set.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import optimize, stats

# When two values tie exactly: one rule with the sweepers' finalist cut (within float32's
# resolution of their scale), defined there.
from wdsweep.search.finalists import ABS_FLOOR, REL_TOL, close, tolerance  # noqa: F401

LEVEL = 0.95  # of every interval
ALPHA = 0.05  # of every test and of the power figures
POWER = 0.8
WILCOXON_MIN_N = 6  # the fewest non-zero pairs for which its two-sided exact p can be < 0.05


@dataclass(frozen=True)
class Paired:
    """a - b over n paired seeds. `low`/`high` and `p` are NaN when undefined: one seed, or
    no spread (every difference the same: then `constant` says so; t would be 0/0 or x/0)."""
    n: int
    mean: float
    sd: float  # of the per-seed differences (ddof 1); NaN for one seed
    low: float
    high: float
    p: float  # paired t-test, two-sided, unadjusted
    wilcoxon_p: float  # NaN below WILCOXON_MIN_N non-zero pairs
    scale: float = 1.0  # the largest |value| compared: what "zero" is relative to (tolerance)

    @property
    def constant(self) -> bool:
        """Every seed gave the same difference (zero spread), with at least two seeds."""
        return self.n > 1 and self.sd <= tolerance(self.scale)

    @property
    def identical(self) -> bool:
        """Equal on every seed."""
        return abs(self.mean) <= tolerance(self.scale) and (self.n == 1 or self.constant)


def interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """The t-interval of the mean of `values` (NaN, NaN for fewer than two)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def paired(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Paired:
    """Compare a and b, given in the same seed order."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired needs two equal-length, non-empty sequences, got {a.shape} and {b.shape}")
    diff = a - b
    n, mean = len(diff), float(diff.mean())
    scale = float(max(np.abs(a).max(), np.abs(b).max()))
    tol = tolerance(scale)
    if abs(mean) <= tol:
        mean = 0.0  # the same predictions summed in another order: no -0.0000 in a report
    sd = float(diff.std(ddof=1)) if n > 1 else math.nan
    low = high = p = wilcoxon_p = math.nan
    if n > 1 and sd > tol:
        test = stats.ttest_rel(a, b)
        p = float(test.pvalue)
        low, high = interval(diff, level)
        nonzero = diff[np.abs(diff) > tol]
        if len(nonzero) >= WILCOXON_MIN_N:
            # zeros dropped (Wilcoxon's own rule), so a tie on a seed is no evidence either way
            wilcoxon_p = float(stats.wilcoxon(nonzero).pvalue)
    elif n > 1:
        sd, low, high = 0.0, mean, mean  # every seed the same: the interval is that value
    return Paired(n, mean, sd, low, high, p, wilcoxon_p, scale)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the given order. NaN (no test) stays NaN and is not counted
    among the comparisons: the correction is over the tests actually made."""
    p = np.asarray(pvalues, dtype=float)
    tested = np.flatnonzero(~np.isnan(p))
    m = len(tested)
    adjusted = np.full(len(p), math.nan)
    running = 0.0
    for rank, i in enumerate(tested[np.argsort(p[tested], kind="stable")]):
        # step-down: the k-th smallest is multiplied by (m - k), and never below an earlier one
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def power(n: int, effect: float, alpha: float = ALPHA) -> float:
    """The power of a two-sided paired t-test on n pairs when the true mean difference is
    `effect` standard deviations of the differences: P(|T| > t_crit), T ~ nct(n - 1, effect sqrt n)."""
    if n < 2:
        return math.nan
    df, nc = n - 1, abs(effect) * math.sqrt(n)
    crit = stats.t.ppf(1 - alpha / 2, df)
    # The lower tail as P(T > crit) under -nc, by symmetry: scipy's nct.cdf returns NaN far
    # out in that tail for small df (df = 1, nc = 11: power would be NaN, not 0.63).
    return float(stats.nct.sf(crit, df, nc) + stats.nct.sf(crit, df, -nc))


def detectable_difference(n: int, sd: float, alpha: float = ALPHA, target: float = POWER) -> float:
    """The smallest true mean difference that n pairs with this spread detect with the target
    power: the effect size solving power(n, d) = target, times sd. NaN for n < 2 or no spread."""
    if n < 2 or not sd > 0:  # paired() sets a spread within rounding to 0
        return math.nan
    # power rises from alpha (d = 0) towards 1; bracket the root by doubling, then solve.
    high = 1.0
    while power(n, high, alpha) < target:
        high *= 2
    d = optimize.brentq(lambda e: power(n, e, alpha) - target, 0.0, high, xtol=1e-12)
    return float(d * sd)


def seeds_needed(difference: float, sd: float, alpha: float = ALPHA, target: float = POWER,
                 cap: int = 100) -> Optional[int]:
    """The fewest seeds (pairs) for which a true difference of this size, with this spread,
    is detected with the target power; None when not reached by `cap` seeds, or when there is
    nothing to detect (no difference) or no spread to judge it by."""
    if not sd > 0 or difference == 0 or math.isnan(difference):  # paired() zeroes rounding
        return None
    effect = abs(difference) / sd
    for n in range(2, cap + 1):  # power grows with n: the first n that reaches it
        if power(n, effect, alpha) >= target:
            return n
    return None
