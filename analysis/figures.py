"""Charts from the tidy runs table, drawn with seaborn on the Agg backend, saved as PNG (screens)
and PDF (papers). Each chart function returns the table it drew, so tests can check the data
behind a chart and not only that a file exists.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(style="whitegrid", context="paper")

FORMATS = ("png", "pdf")


def decay_label(frame: pd.DataFrame) -> pd.Series:
    """The curve a run belongs to: its scope, with the mode when the sweep has several modes."""
    scope = frame["reg.scope"].map({"weights": "weights only", "all": "all parameters (global)"}).fillna(
        frame["reg.scope"].astype(str))
    if "reg.mode" in frame and frame["reg.mode"].nunique() > 1:
        return scope + " · " + frame["reg.mode"].astype(str)
    return scope


def error_label(frame: pd.DataFrame) -> str:
    regression = frame.get("data.name", pd.Series(dtype=str)).eq("regression1d").any() or \
        frame.get("data.task", pd.Series(dtype=str)).eq("regression").any()
    return "mean squared error" if regression else "error (1 − accuracy)"


def title_of(frame: pd.DataFrame) -> str:
    parts = []
    for key in ("data.name", "model.name", "optimizer.name"):
        if key in frame and frame[key].notna().any():
            parts.append("/".join(sorted(frame[key].dropna().astype(str).unique())))
    return " · ".join(parts)


def lambda_curves(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean and 95% interval (t, over seeds) of `metric` per (p, curve, lambda > 0), with the
    mean validation error alongside (to pick each curve's best lambda)."""
    done = runs[(runs["status"] == "completed") & (runs["reg.lam"] > 0)].copy()
    done["curve"] = decay_label(done)
    rows = []
    for (p, curve, lam), group in done.groupby(["reg.p", "curve", "reg.lam"]):
        values = group[metric].astype(float)
        mean, half = _mean_and_ci(values)
        rows.append({"reg.p": p, "curve": curve, "reg.lam": lam, "mean": mean, "low": mean - half,
                     "high": mean + half, "n": len(values), "val_error": group["val_error"].mean()})
    return pd.DataFrame(rows)


def baseline(runs: pd.DataFrame, metric: str) -> Optional[float]:
    zero = runs[(runs["status"] == "completed") & (runs["reg.lam"] == 0)]
    return float(zero[metric].mean()) if len(zero) else None


Chart = Tuple[pd.DataFrame, List[Path]]  # the data drawn, and the files written


def lambda_chart(runs: pd.DataFrame, out: Path, metric: str, name: str, ylabel: str) -> Chart:
    """`metric` against lambda (log x), one facet per p, one line per curve with its 95% interval,
    the lambda = 0 baseline dashed, and each curve's best lambda (on validation error) starred."""
    curves = lambda_curves(runs, metric)
    if curves.empty:
        return curves, []
    base = baseline(runs, metric)
    ps = sorted(curves["reg.p"].unique())
    palette = dict(zip(sorted(curves["curve"].unique()), sns.color_palette("colorblind")))
    # Own y scales: one collapsed curve (L1 at a large lambda) must not flatten the other facets.
    fig, axes = plt.subplots(1, len(ps), figsize=(4.2 * len(ps), 3.6), squeeze=False)
    for ax, p in zip(axes[0], ps):
        facet = curves[curves["reg.p"] == p].sort_values("reg.lam")
        sns.lineplot(data=facet, x="reg.lam", y="mean", hue="curve", palette=palette, marker="o",
                     markersize=4, errorbar=None, ax=ax, legend=ax is axes[0][0])
        for curve, line in facet.groupby("curve"):
            color = palette[curve]
            ax.fill_between(line["reg.lam"], line["low"], line["high"], color=color, alpha=0.2, lw=0)
            best = line.loc[line["val_error"].idxmin()]
            ax.plot(best["reg.lam"], best["mean"], marker="*", ms=13, color=color, mec="black", mew=0.6,
                    zorder=5)
        if base is not None:
            ax.axhline(base, ls="--", color="grey", lw=1.2, label="λ = 0 (no decay)")
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        ax.set_xscale("log")
        ax.set_title(f"p = {p:g}")
        ax.set_xlabel("λ (reg.lam, log scale)")
    for ax in axes[0]:
        ax.set_ylabel(ylabel if ax is axes[0][0] else "")
    handles, labels = axes[0][0].get_legend_handles_labels()
    handles.append(plt.Line2D([], [], marker="*", ls="", color="black", ms=10))
    labels.append("best λ on validation error")
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), frameon=False,
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(f"{ylabel} against λ — {title_of(runs)} (mean, 95% interval over seeds)", fontsize=11)
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    return curves, save(fig, out, name)


def headline_chart(runs: pd.DataFrame, out: Path) -> Chart:
    return lambda_chart(runs, out, "test_error", "test_error_vs_lambda", f"test {error_label(runs)}")


def gap_chart(runs: pd.DataFrame, out: Path) -> Chart:
    runs = runs.assign(gap=runs["test_error"].astype(float) - runs["train_error"].astype(float))
    return lambda_chart(runs, out, "gap", "generalization_gap_vs_lambda",
                        f"test − train {error_label(runs)}")


def save(fig: plt.Figure, out: Path, name: str, formats: Sequence[str] = FORMATS) -> List[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = out / f"{name}.{fmt}"
        fig.savefig(path, dpi=150, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def _mean_and_ci(values: pd.Series):
    """Mean and the half-width of its 95% t-interval (0 for a single value)."""
    from scipy import stats

    n = len(values)
    mean = float(values.mean())
    if n < 2:
        return mean, 0.0
    return mean, float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n))
