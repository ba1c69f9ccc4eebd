"""Runs that learned nothing, and y-ranges that are not set by them.

Collapsed. A completed run collapsed when its training error is at least (1 - COLLAPSE_TOL) of
the best constant predictor's training error on the same training split: it removed less than
10% of the error a constant leaves, on the very data it was fitted to. The constant predictor's
error is computed from the training split, rebuilt from one job's saved config per data
setting (the first seed's; a split's class shares or target variance barely move with the seed):
- classification: 1 - the largest class's share, i.e. chance level (1 - 1/n_classes when the
  classes are balanced, as in digits' stratified splits: 0.9);
- regression: the variance of the training targets (the MSE of predicting their mean).
Training error, not test error, decides: a network that overfits has a test error possibly
above a constant's but a training error near 0, and is not collapsed; one that collapsed fits
its own training data no better than a constant. A run whose data cannot be rebuilt (a moved csv,
a folder gone) is never called collapsed: its point is drawn as any other.

Diverged runs are the jobs with status `diverged` (a non-finite loss); they have no error to
draw. Both kinds are drawn as markers at the top edge of their panel with what they are and the
value (collapsed) or the count of seeds (diverged): never hidden, never allowed to set the range.

The y-range rule: the panel covers the means and 95% intervals of the configurations that did
not collapse and the λ = 0 baseline's band, at least MIN_SPAN (10%) of the largest of those
values tall (so that differences in the fourth digit do not fill a panel), padded by 8% of that
span (an error's range is not taken below 0), plus headroom for the edge markers' labels.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

import matplotlib.transforms as mtransforms
import numpy as np
import pandas as pd

from analysis.chartbase import is_regression, num

COLLAPSE_TOL = 0.1
PAD = 0.08  # of the informative span, each side
MIN_SPAN = 0.1  # the least y-span, as a fraction of the largest value drawn
HEADROOM = 0.30  # of the informative span, above it, for the edge markers and their labels


def constant_train_error(runs: pd.DataFrame) -> pd.Series:
    """Per run, the best constant predictor's error on its training split (NaN when the data
    cannot be rebuilt from a saved config)."""
    result = pd.Series(np.nan, index=runs.index, dtype=float)
    if not {"sweep", "job"} <= set(runs.columns):
        return result
    keys = [c for c in runs.columns if c.startswith("data.")]
    text = pd.Series(["|".join(map(str, row)) for row in runs[keys].itertuples(index=False)], index=runs.index,
                     dtype=object)
    for _, group in runs.groupby(text):
        for sweep, job in zip(group["sweep"], group["job"]):
            path = Path(str(sweep)) / str(job) / ".hydra" / "config.yaml"
            if path.is_file():
                result[group.index] = _constant_error_of(str(path))
                break
    return result


@functools.lru_cache(maxsize=64)
def _constant_error_of(config_path: str) -> float:
    """The constant predictor's training error for the data of the job config at `config_path`
    (cached: every chart asks for the same few)."""
    try:
        import torch
        from omegaconf import OmegaConf

        from wdsweep.train.data import build_splits

        config = OmegaConf.load(config_path)
        splits = build_splits(config.data, config.seed, torch.Generator().manual_seed(config.seed))
        y = splits.y["train"]
        if splits.task == "classification":
            shares = torch.bincount(y.flatten()).double() / len(y)
            return float(1 - shares.max())
        return float(((y.double() - y.double().mean(dim=0)) ** 2).mean())
    except Exception:  # noqa: BLE001 - any data that cannot be rebuilt: no collapse verdict
        return float("nan")


def collapsed(runs: pd.DataFrame) -> pd.Series:
    """Completed runs whose training error is within COLLAPSE_TOL of a constant predictor's (see
    the module docstring); False where either is unknown."""
    if "train_error" not in runs or runs.empty:
        return pd.Series(False, index=runs.index)
    reference = constant_train_error(runs)
    train = pd.to_numeric(runs["train_error"], errors="coerce")
    return ((runs["status"] == "completed") & reference.notna() & train.notna()
            & (train >= (1 - COLLAPSE_TOL) * reference))


def collapse_words(runs: pd.DataFrame) -> str:
    return "collapsed to a constant" if is_regression(runs) else "collapsed to chance"


def informative_limits(values: Iterable[float], nonnegative: bool,
                       headroom: bool) -> Optional[Tuple[float, float]]:
    """The y-limits covering `values` (the informative means, interval ends and baseline band),
    padded; None when there is no value."""
    values = np.array([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if not len(values):
        return None
    low, high = float(values.min()), float(values.max())
    # At least MIN_SPAN of the largest value (and 1e-3): differences in the fifth digit are
    # rounding and seed noise, and a panel zoomed onto them would make them look like findings.
    least = max(MIN_SPAN * float(np.abs(values).max()), 1e-3)
    if high - low < least:
        middle = (low + high) / 2
        low, high = middle - least / 2, middle + least / 2
    span = high - low
    bottom, top = low - PAD * span, high + PAD * span + (HEADROOM * span if headroom else 0)
    if nonnegative:
        bottom = max(bottom, 0.0)
    return bottom, top


def edge_marker(ax, x: float, color, kind: str) -> None:
    """A marker on the top edge of `ax` at data-x `x`: ▲ a collapsed configuration, ✕ a diverged
    one (drawn over the frame, not clipped; its y is the edge, not a value)."""
    transform = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    marker = "^" if kind == "collapsed" else "X"
    ax.plot([x], [1.0], marker=marker, ms=8, color=color, mec="black", mew=0.6, ls="",
            transform=transform, clip_on=False, zorder=6, gid=f"edge-{kind}")


def edge_label(ax, x: float, lines: List[str], xs_all: Iterable[float]) -> None:
    """The words under the edge markers at `x`: what the runs there are and their values.
    Right-aligned at the panel's largest x, left-aligned at its smallest, so it stays inside."""
    xs_all = sorted(xs_all)
    align = "right" if x >= xs_all[-1] else "left" if x <= xs_all[0] and len(xs_all) > 1 else "center"
    transform = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    ax.text(x, 0.955, "\n".join(lines), transform=transform, ha=align, va="top", fontsize=7,
            bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="0.7", alpha=0.9), zorder=7,
            gid="edge-label")


def value_range(values: Iterable[float], digits: int = 2) -> str:
    """"0.90", or "0.89–0.90" when the values differ at that precision."""
    values = sorted(float(v) for v in values)
    low, high = num(values[0], digits), num(values[-1], digits)
    return low if low == high else f"{low} to {high}" if values[0] < 0 else f"{low}–{high}"

