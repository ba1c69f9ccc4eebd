"""Charts from the tidy runs table, drawn with matplotlib and seaborn on the Agg backend, saved as
PNG (screens) and PDF (papers). Each chart function returns the table it drew, so tests can check
the data behind a chart and not only that a file exists.

One file of about 430 lines, on purpose: the charts against λ share their rules (below), their
axes and their legends, and those rules are what a reader checks, in one place.

What the charts against λ promise (the same rules for the test error and the gap charts):
- A point is the mean over seeds of a configuration none of whose seeds collapsed, diverged or
  failed; its bar is the 95% t-interval over those seeds, and the legend says over how many.
  With a single seed there is no bar, and the title and legend say "single seed: no interval".
- A configuration with a seed that collapsed, diverged or failed (analysis/collapse.py defines
  collapse) gets no point: the mean of its surviving seeds would flatter it. It is a marker at
  the top edge of its panel, labelled with what happened on how many runs; the y-range is chosen
  from the other configurations and the λ = 0 baseline, so a collapse to chance cannot flatten
  the differences that matter.
- The star is the report's best λ (analysis/report.py's rule: chosen on validation error over the
  seeds every candidate completed, λ = 0 included, exact ties to the smallest λ, never a
  configuration that diverged or failed on a seed). A curve whose best λ is 0 has no star, and
  its legend entry says "best: no decay".
- The λ = 0 baseline is its own mean (dashed) and 95% t-interval over seeds (a grey band), by
  the same rule as the points: when a λ = 0 seed collapsed, diverged or failed, no baseline is
  drawn (its survivors' mean would flatter it), and each panel says so in its top-left corner
  ("λ = 0 (no decay): collapsed on 3 of 4 seeds: no baseline"); the legend counts its seeds.
- A chart where no λ > 0 point survives (every one collapsed, diverged or failed on a seed)
  is still drawn: only edge markers, and the title says so.
- Curves of one panel are drawn side by side (a dodge of DODGE_STEP of the smallest λ step on
  the log axis), each with its own marker and line style, so that curves that coincide
  exactly both stay visible; intervals are bars, not bands, so no two shades mix into a colour
  the legend does not explain.
- A chart of one λ and no λ = 0 run shows the settings side by side at that λ, and its title
  says so ("one λ (0.01), no λ = 0 run"); with one seed too it claims no interval either.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.patches import Patch

from analysis.chartbase import (
    FORMATS,
    LAYOUT,
    Chart,
    FigureProblem,
    decay_label,
    error_label,
    figure_size,
    fit_labels,
    fit_title,
    lambda_ticks,
    legend_columns,
    mean_and_ci,
    num,
    panel_grid,
    save,
    seeds_phrase,
    title_of,
    title_size,
)
from analysis.collapse import (
    COLLAPSE_TOL,
    collapse_words,
    collapsed,
    edge_label,
    edge_marker,
    informative_limits,
    value_range,
)
from analysis.collect import varying_keys
from analysis.model_figures import decay_pair, regression_fits, weight_histograms

__all__ = [  # the charts' one name: the model-file figures and the shared pieces are re-exported
    "CONTINUOUS_AFTER", "FORMATS", "Chart", "FigureProblem", "baseline", "continuous_keys",
    "continuous_lambda_chart", "decay_label", "decay_pair", "error_label", "gap_chart", "headline_chart",
    "lambda_chart", "lambda_curves", "lambda_figure", "lr_lambda_heatmap", "regression_fits", "save",
    "title_of", "weight_histograms",
]

# Curve styles, by the curve's place in the sorted curve names (the same in every panel). No "^"
# or "X": those mark collapsed and diverged configurations on the top edge.
MARKERS = ["o", "s", "D", "v", "P", "<", ">", "h"]
LINESTYLES = ["-", "-.", ":", (0, (5, 1, 1, 1))]
# Neighbouring curves are this fraction of the smallest λ step (in decades) apart: enough to
# tell two equal points apart, small enough to stay clearly at their λ.
DODGE_STEP = 0.12


# ------------------------------------------------------------------ the data behind a λ chart
def lambda_curves(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (p, curve, λ > 0): the mean and 95% t-interval of `metric` over its seeds (`n` of them)
    when none collapsed, diverged or failed (else no mean: `n` 0), how many collapsed
    (`n_collapsed`, at `collapsed_value` on average) and how many diverged or failed
    (`n_diverged`), and whether it is its setting's best λ by the report's rule (`best`; and
    `best_is_no_decay` when that λ is 0). Grid runs only."""
    from analysis.choice import best_lambdas, settings

    grid = runs[runs["trial"].isna()] if "trial" in runs else runs  # Optuna trials: charts of their own
    done = grid[grid["status"].isin(["completed", "diverged", "failed"]) & (grid["reg.lam"] > 0)]
    done = done.assign(curve=decay_label(done), collapsed=collapsed(done))
    for key in varying_keys(done, exclude=("seed", "reg.lam", "reg.p", "reg.scope", "reg.mode")):
        done["curve"] += ", " + key + "=" + done[key].map(str)  # another swept key: its own line
    keys = settings(grid)
    chosen = best_lambdas(grid)
    best_of = {tuple(str(r[k]) for k in keys): float(r["reg.lam"]) for _, r in chosen.iterrows()}
    rows = []
    for (p, curve, lam), group in done.groupby(["reg.p", "curve", "reg.lam"]):
        completed = group[group["status"] == "completed"]
        fell = completed[completed["collapsed"]]
        diverged = int(group["status"].isin(["diverged", "failed"]).sum())
        # Drawn only when every seed gave a result of its own: no mean of survivors.
        whole = not len(fell) and not diverged
        kept = completed[completed[metric].notna()] if whole else completed.iloc[0:0]
        mean, half = mean_and_ci(kept[metric].astype(float)) if len(kept) else (np.nan, np.nan)
        best = best_of.get(tuple(str(group.iloc[0][k]) for k in keys))
        rows.append({"reg.p": p, "curve": curve, "reg.lam": lam, "mean": mean, "low": mean - half,
                     "high": mean + half, "n": len(kept), "n_collapsed": len(fell),
                     "collapsed_value": fell[metric].astype(float).mean() if len(fell) else np.nan,
                     "n_diverged": diverged, "runs": len(group),
                     "best": best == float(lam), "best_is_no_decay": best == 0.0})
    return pd.DataFrame(rows)


def baseline(runs: pd.DataFrame, metric: str) -> Optional[dict]:
    """The λ = 0 runs' mean of `metric` and its 95% t-interval over seeds (a seed run under
    several reg.* settings, all idle at λ = 0, counts once; `n` seeds). When a seed collapsed,
    diverged or failed, no mean (NaN, `n` 0: the rule of the λ > 0 points) and the counts:
    `n_collapsed`, `n_diverged` of `seeds`. None without λ = 0 runs."""
    ran = runs[(runs["reg.lam"] == 0) & runs["status"].isin(["completed", "diverged", "failed"])]
    if "trial" in ran:
        ran = ran[ran["trial"].isna()]  # an Optuna trial's λ = 0 is a point of its own chart
    ran = ran if "seed" in ran else ran.assign(seed=0)
    zero = ran[(ran["status"] == "completed") & ran[metric].notna()]
    if zero.empty and not ran["status"].isin(["diverged", "failed"]).any():
        return None
    fell = set(zero.loc[collapsed(zero), "seed"])
    diverged = set(ran.loc[ran["status"].isin(["diverged", "failed"]), "seed"])
    others = [k for k in varying_keys(ran) if not k.startswith("reg.")]
    counts = {"n_collapsed": len(fell), "n_diverged": len(diverged), "seeds": ran["seed"].nunique(),
              "pooled": others}
    if fell or diverged:
        return {"mean": np.nan, "low": np.nan, "high": np.nan, "n": 0, **counts}
    values = zero.groupby("seed")[metric].mean()
    mean, half = mean_and_ci(values.astype(float))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": len(values), **counts}


def baseline_failing(base: Optional[dict], words: str) -> str:
    """"λ = 0 (no decay): collapsed on 3 of 4 seeds: no baseline", or "" when it is drawn."""
    if base is None or base["n"]:
        return ""
    parts = ([f"{words} on {base['n_collapsed']}"] if base["n_collapsed"] else []) + (
        [f"diverged or failed on {base['n_diverged']}"] if base["n_diverged"] else [])
    return f"λ = 0 (no decay): {' and '.join(parts)} of {base['seeds']} seeds: no baseline"


def _draw_baseline(ax, base: Optional[dict], values: List[float], words: str) -> None:
    """The λ = 0 baseline on a panel (its band, dashed mean) or, when it fails, the words why not."""
    if base is None:
        return
    if not base["n"]:
        ax.text(0.02, 0.02, baseline_failing(base, words), transform=ax.transAxes, ha="left", va="bottom",
                fontsize=7, gid="baseline-failing", bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="0.7"))
        return
    if base["n"] > 1:
        ax.axhspan(base["low"], base["high"], color="0.55", alpha=0.2, lw=0, zorder=0, gid="baseline-band")
        values += [base["low"], base["high"]]
    ax.axhline(base["mean"], ls="--", color="0.35", lw=1.2, zorder=1, gid="baseline")
    values.append(base["mean"])


def _baseline_legend(base: Optional[dict], words: str):
    """(handle, label) of the baseline for a legend, or None."""
    if base is None:
        return None
    pooled = f", pooled over {', '.join(base['pooled'])}" if base["pooled"] else ""
    line = plt.Line2D([], [], ls="--", color="0.35")
    if not base["n"]:
        return plt.Line2D([], [], ls="", marker=""), baseline_failing(base, words) + " drawn" + pooled
    if base["n"] > 1:
        return ((Patch(color="0.55", alpha=0.35, lw=0), line),
                f"λ = 0 (no decay): mean, band: 95% t-interval over {base['n']} seeds{pooled}")
    return line, f"λ = 0 (no decay), single seed: no interval{pooled}"


def dodge_factors(names: List[str], lams) -> Dict[str, float]:
    """Each curve's x multiplier on the log axis: symmetric offsets of DODGE_STEP of the
    smallest step between the swept λs (one decade when there is one λ)."""
    logs = np.log10(sorted(set(float(v) for v in lams if v > 0)))
    step = float(np.diff(logs).min()) if len(logs) > 1 else 1.0
    middle = (len(names) - 1) / 2
    return {name: 10 ** ((i - middle) * DODGE_STEP * step) for i, name in enumerate(names)}


# ------------------------------------------------------------------ the grid chart
def lambda_chart(runs: pd.DataFrame, out: Path, metric: str, name: str, ylabel: str,
                 value_name: str = "error") -> Chart:
    """lambda_figure, saved as out/name.png and .pdf (nothing when there is nothing to draw)."""
    data, fig = lambda_figure(runs, metric, name, ylabel, value_name)
    return data, (save(fig, out, name) if fig is not None else [])


def lambda_figure(runs: pd.DataFrame, metric: str, name: str, ylabel: str, value_name: str = "error"):
    """`metric` against λ (log x), one panel per p, one dodged curve per scope (and mode) with
    95% t-interval bars, the λ = 0 baseline as a dashed mean in its grey interval band, each
    curve's best λ on validation error starred, collapsed and diverged configurations on the
    top edge (rules in the module docstring): (the data drawn, the open figure or None). Runs
    with a continuous setting (an Optuna search's p) get continuous_lambda_figure instead."""
    trials = runs["trial"].notna() if "trial" in runs else pd.Series(False, index=runs.index)
    if continuous_keys(runs, metric) or (trials.any() and not (~trials).any()):
        # an Optuna study of any size: its trials as points (no grid of λs to draw curves over)
        if _lambda_runs(runs, metric).empty:
            raise FigureProblem("no completed trial with λ > 0 and a test error: no chart against λ")
        return continuous_lambda_figure(runs, metric, ylabel)
    curves = lambda_curves(runs, metric)
    if curves.empty:
        return curves, None
    base = baseline(runs, metric)
    # One λ and no λ = 0 run: no trend to see, but the settings side by side at that λ are still
    # worth a look; the title says that is all it shows.
    only = f"one λ ({curves['reg.lam'].iloc[0]:g}), no λ = 0 run; " \
        if base is None and curves["reg.lam"].nunique() == 1 else ""
    names = sorted(curves["curve"].unique())
    palette = sns.color_palette("colorblind")
    styles = {c: dict(color=palette[i % len(palette)], marker=MARKERS[i % len(MARKERS)],
                      ls=LINESTYLES[i % len(LINESTYLES)]) for i, c in enumerate(names)}
    shift = dodge_factors(names, curves["reg.lam"])
    drawn = curves["n"][curves["n"] > 0]
    # "single seed" only where a point or the baseline rests on one seed, and none on more
    single = (len(drawn) > 0 or (base is not None and base["n"] == 1)) and (not len(drawn) or drawn.max() <= 1) \
        and (base is None or base["n"] <= 1)
    nonnegative = bool((pd.to_numeric(runs[metric], errors="coerce").dropna() >= 0).all())
    words = collapse_words(runs)
    ps = sorted(curves["reg.p"].unique())
    # Own y scales: a panel's range is set by its own informative points (collapse.py's rule).
    rows, cols, size = panel_grid(len(ps), 4.2, 3.9, legend_height=1.0)
    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False, layout="constrained", sharey=LAYOUT.sharey)
    panels = list(axes.flat)
    for ax in panels[len(ps):]:
        ax.set_visible(False)
    for i, (ax, p) in enumerate(zip(panels, ps)):
        _lambda_panel(ax, curves[curves["reg.p"] == p], base, styles, shift, single, nonnegative,
                      f"{words}: {value_name}", value_name)
        ax.set_title(f"p = {p:g}")
        ax.set_xlabel("λ (reg.lam, log scale)")
        ax.set_ylabel(ylabel if i % cols == 0 else "")
    if LAYOUT.sharey:  # one range for every panel: the union of what each needed
        lows, highs = zip(*(ax.get_ylim() for ax in panels[:len(ps)]))
        for ax in panels[:len(ps)]:
            ax.set_ylim(min(lows), max(highs))
    handles, labels = _lambda_legend(curves, base, styles, single, words)
    fig.legend(handles, fit_labels(labels), loc="outside lower center",
               ncol=legend_columns(min(3 if len(ps) > 2 else 2, len(labels))), frameon=False)
    how = ("single seed: no interval" if single
           else f"mean over {seeds_phrase(drawn)}, 95% t-interval" if len(drawn)
           else "no point: every λ > 0 collapsed, diverged or failed on a seed")
    fig.suptitle(fit_title(f"{ylabel} against λ — {title_of(runs)} ({only}{how})", title_size(11)),
                 fontsize=title_size(11))
    return curves, fig


def _lambda_panel(ax, facet: pd.DataFrame, base: Optional[dict], styles: dict, shift: dict, single: bool,
                  nonnegative: bool, collapse_text: str, value_name: str) -> None:
    """One p's curves, baseline, stars, edge markers and y-range."""
    values: List[float] = []
    edges: Dict[float, Dict[str, list]] = {}  # λ -> collapsed values and counts, diverged counts
    for curve, line in facet.groupby("curve"):
        line = line.sort_values("reg.lam")
        style, x = styles[curve], line["reg.lam"].to_numpy(float) * shift[curve]
        # NaN for a λ without a kept seed: the line breaks there instead of bridging a collapse.
        mean = line["mean"].where(line["n"] > 0).to_numpy(float)
        yerr = None if single else np.vstack([mean - line["low"].to_numpy(float), line["high"].to_numpy(float) - mean])
        ax.errorbar(x, mean, yerr=yerr, capsize=3, elinewidth=1, lw=1.6, ms=5, mec="white", mew=0.5,
                    label=curve, gid=f"curve:{curve}", **style)
        kept = line[line["n"] > 0]
        values += [*kept["mean"], *([] if single else [*kept["low"], *kept["high"]])]
        for _, best in line[line["best"] & (line["n"] > 0)].iterrows():
            ax.plot(best["reg.lam"] * shift[curve], best["mean"], marker="*", ms=13, color=style["color"],
                    mec="black", mew=0.6, ls="", zorder=5, gid="best")
        for _, row in line.iterrows():
            entry = edges.setdefault(row["reg.lam"], {"value": [], "fell": 0, "diverged": 0, "runs": 0})
            entry["runs"] += row["runs"]
            if row["n_collapsed"]:
                edge_marker(ax, row["reg.lam"] * shift[curve], style["color"], "collapsed")
                entry["value"].append(row["collapsed_value"])
                entry["fell"] += row["n_collapsed"]
            if row["n_diverged"]:
                edge_marker(ax, row["reg.lam"] * shift[curve], style["color"], "diverged")
                entry["diverged"] += row["n_diverged"]
    _draw_baseline(ax, base, values, collapse_text.split(":")[0])
    ax.set_xscale("log")
    lambda_ticks(ax)
    marked = {lam: e for lam, e in edges.items() if e["fell"] or e["diverged"]}
    limits = informative_limits(values, nonnegative, headroom=bool(marked))
    if limits:
        ax.set_ylim(*limits)
    elif nonnegative:  # nothing informative drawn (only edge markers): an error's axis starts at 0
        ax.set_ylim(0, 1)
    for lam, entry in marked.items():
        lines = []
        if entry["fell"]:
            lines.append(f"{collapse_text} {value_range(entry['value'])} ({entry['fell']} of {entry['runs']} runs)")
        if entry["diverged"]:
            lines.append(f"diverged or failed ({entry['diverged']} of {entry['runs']} runs)")
        edge_label(ax, lam, lines, edges)


def _lambda_legend(curves: pd.DataFrame, base: Optional[dict], styles: dict, single: bool, words: str):
    """Every mark of the chart, with what it means and over how many seeds."""
    handles = [plt.Line2D([], [], lw=1.6, ms=5, **styles[c]) for c in styles]
    no_decay = set(curves.loc[curves["best_is_no_decay"], "curve"])
    labels = [c + (" (best: no decay)" if c in no_decay else "") for c in styles]
    if single:
        handles.append(plt.Line2D([], [], ls="", marker=""))
        labels.append("single seed: no interval")
    elif (curves["n"] > 0).any():  # no bars to explain where no point is drawn
        handles.append(matplotlib.container.ErrorbarContainer(
            (plt.Line2D([], [], ls="", marker="o", color="black", ms=3),
             (), (matplotlib.collections.LineCollection([], color="black"),)), has_yerr=True))
        labels.append(f"bars: 95% t-interval over {seeds_phrase(curves['n'][curves['n'] > 0])}")
    entry = _baseline_legend(base, words)
    if entry is not None:
        handles.append(entry[0])
        labels.append(entry[1])
    handles.append(plt.Line2D([], [], marker="*", ls="", color="black", ms=10))
    labels.append("best λ on validation error (exact ties: the smallest)")
    if curves["n_collapsed"].any():
        handles.append(plt.Line2D([], [], marker="^", ls="", color="0.5", mec="black", ms=7))
        labels.append(f"{words} (train error ≥ {1 - COLLAPSE_TOL:g}× a constant's): at the top edge")
    if curves["n_diverged"].any():
        handles.append(plt.Line2D([], [], marker="X", ls="", color="0.5", mec="black", ms=7))
        labels.append("diverged (non-finite loss) or failed on a seed: top edge, no mean")
    return handles, labels


# ------------------------------------------------------------------ continuous settings
# A numeric key (reg.p, optimizer.lr, ...) with more distinct values than this among the runs a
# lambda chart draws is continuous, as an Optuna search's interval(1, 3) makes reg.p: a panel or a
# curve per value would be one per run. A grid's few values (p in {1, 2, 3}) keep the grid chart.
CONTINUOUS_AFTER = 6
MAX_PANELS = 12  # panels of the continuous chart, at most (so its size is bounded)


def _lambda_runs(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The runs a lambda chart can draw: completed, lambda > 0, with the metric."""
    if not {"status", "reg.lam", metric} <= set(runs.columns):
        return runs.iloc[0:0]
    return runs[(runs["status"] == "completed") & (runs["reg.lam"] > 0) & runs[metric].notna()]


def continuous_keys(runs: pd.DataFrame, metric: str = "test_error") -> List[str]:
    """Swept numeric config keys with more than CONTINUOUS_AFTER distinct values among the runs
    drawn (reg.p first): the chart colours by the first of them instead of a panel per value."""
    done = _lambda_runs(runs, metric)
    keys = []
    for key in varying_keys(done, exclude=("seed", "reg.lam")):
        values = done[key].dropna()
        if pd.api.types.is_bool_dtype(values) or values.map(lambda v: isinstance(v, bool)).any():
            continue
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().all() and numeric.nunique() > CONTINUOUS_AFTER:
            keys.append(key)
    return sorted(keys, key=lambda k: (k != "reg.p", k))


def continuous_lambda_chart(runs: pd.DataFrame, out: Path, metric: str, name: str, ylabel: str) -> Chart:
    """continuous_lambda_figure, saved as out/name.png and .pdf."""
    data, fig = continuous_lambda_figure(runs, metric, ylabel)
    return data, save(fig, out, name)


def continuous_lambda_figure(runs: pd.DataFrame, metric: str, ylabel: str):
    """`metric` against lambda (log x), each run a point coloured by the first continuous key
    (one colorbar), one panel per categorical setting (mode, scope, any other key with few
    values); the lambda = 0 baseline as its mean and interval band, each panel's best run on
    validation error starred, and collapsed runs on the top edge with their count and values
    (the grid chart's rules, analysis/collapse.py). At most MAX_PANELS panels in rows of three,
    so the size is bounded whatever the number of trials."""
    done = _lambda_runs(runs, metric).copy()
    done["collapsed"] = collapsed(done)
    continuous = continuous_keys(runs, metric)
    # a study too small for a continuous key: colour by p if it varies, else by trial number
    varied = varying_keys(done, exclude=("seed", "reg.lam"))
    colour = continuous[0] if continuous else ("reg.p" if "reg.p" in varied else "trial")
    categorical = [k for k in varied if k not in continuous and k != colour]
    categorical = sorted(categorical, key=lambda k: (k not in ("reg.mode", "reg.scope"), k))
    unshown = []
    while categorical and done.groupby(categorical, dropna=False).ngroups > MAX_PANELS:
        unshown.insert(0, categorical.pop())  # too many settings: the least telling keys go unpanelled
    if categorical:
        done["panel"] = [" · ".join(f"{k.rsplit('.', 1)[-1]} = {v}" for k, v in zip(categorical, values))
                         for values in done[categorical].astype(str).itertuples(index=False)]
    else:
        done["panel"] = "every run"
    done[colour] = pd.to_numeric(done[colour])
    panels = sorted(done["panel"].unique())
    ncols = 2 if len(panels) == 4 else min(3, len(panels))  # mode x scope: a 2 x 2 square
    if LAYOUT.width:  # --width: as many panels across as fit, at least 2.3 in each
        ncols = max(1, min(ncols, int(LAYOUT.width // 2.3)))
    nrows = -(-len(panels) // ncols)
    size = (4.2 * ncols + 1.0, 3.4 * nrows + 0.8) if LAYOUT.width is None else \
        (LAYOUT.width, nrows * (LAYOUT.width - 0.8) / ncols * 0.85 + 1.2)
    # One λ axis for all panels (they are compared along it); own y scales, as in the grid chart.
    fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False, sharex=True, layout="constrained")
    norm = matplotlib.colors.Normalize(vmin=done[colour].min(), vmax=done[colour].max())
    cmap = matplotlib.colormaps["viridis"]
    base = baseline(runs, metric)
    nonnegative = bool((done[metric].astype(float) >= 0).all())
    for ax, panel in zip(axes.flat, panels):
        _continuous_panel(ax, done[done["panel"] == panel], metric, colour, cmap, norm, base, nonnegative,
                          collapse_words(runs))
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel("λ (reg.lam, log scale)")
        ax.xaxis.set_tick_params(labelbottom=True)  # sharex hides them above the last row
        ax.set_ylabel(ylabel if ax in axes[:, 0] else "")
    for ax in axes.flat[len(panels):]:
        ax.set_axis_off()
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, label=colour, shrink=0.9)
    handles = [plt.Line2D([], [], marker="*", ls="", color="black", ms=10)]
    labels = ["best run on validation error"]
    entry = _baseline_legend(base, collapse_words(runs))
    if entry is not None:
        handles.append(entry[0])
        labels.append(entry[1])
    if done["collapsed"].any():
        handles.append(plt.Line2D([], [], marker="^", ls="", color="0.5", mec="black", ms=7))
        labels.append(f"{collapse_words(runs)}: top edge")
    fig.legend(handles, fit_labels(labels), loc="outside lower center", ncol=legend_columns(len(labels)),
               frameon=False)
    more = [k for k in continuous[1:] + unshown]
    fig.suptitle(fit_title(f"{ylabel} against λ — {title_of(runs)} (each run a point, coloured by {colour})"
                           + (f"\nalso varied, not shown: {', '.join(more)}" if more else ""), title_size(10)),
                 fontsize=title_size(10))
    columns = [c for c in ("panel", "reg.lam", metric, colour, "val_error", "collapsed", "study", "trial")
               if c in done]
    return done[columns].reset_index(drop=True), fig


def _continuous_panel(ax, points: pd.DataFrame, metric: str, colour: str, cmap, norm, base: Optional[dict],
                      nonnegative: bool, words: str) -> None:
    """One setting's runs as points; collapsed ones on the top edge, out of the y-range."""
    kept, fell = points[~points["collapsed"]], points[points["collapsed"]]
    ax.scatter(kept["reg.lam"], kept[metric].astype(float), c=kept[colour], cmap=cmap, norm=norm, s=28,
               edgecolors="none")
    values = list(kept[metric].astype(float))
    if "val_error" in kept and kept["val_error"].notna().any():
        best = kept.loc[kept["val_error"].astype(float).idxmin()]
        ax.plot(best["reg.lam"], float(best[metric]), marker="*", ms=14, color=cmap(norm(best[colour])),
                mec="black", mew=0.7, ls="", zorder=5)
    _draw_baseline(ax, base, values, words)
    ax.set_xscale("log")
    for _, run in fell.iterrows():
        edge_marker(ax, run["reg.lam"], cmap(norm(run[colour])), "collapsed")
    lambda_ticks(ax)
    limits = informative_limits(values, nonnegative, headroom=len(fell) > 0)
    if limits:
        ax.set_ylim(*limits)
    elif nonnegative:  # every run collapsed: an error's axis still starts at 0
        ax.set_ylim(0, 1)
    if len(fell):
        ax.text(0.5, 0.955, f"{len(fell)} of {len(points)} runs {words}: {value_range(fell[metric])}",
                transform=ax.transAxes, ha="center", va="top", fontsize=7, gid="edge-label",
                bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="0.7", alpha=0.9))


# ------------------------------------------------------------------ the two λ charts
def headline_chart(runs: pd.DataFrame, out: Path) -> Chart:
    return lambda_chart(runs, out, "test_error", "test_error_vs_lambda", f"test {error_label(runs)}")


# The gap chart is left out when train error is this small a share of test error in every
# configuration drawn: the gap is then the test error again, which the headline chart shows.
GAP_REPEATS_TEST = 0.05


def gap_chart(runs: pd.DataFrame, out: Path) -> Chart:
    """Test − train error against λ, by lambda_chart's rules. Collapsed runs (whose gap is
    near 0 because they learned nothing) are edge markers, never a low point on the curve. Not
    drawn (FigureProblem) where the training error is 0, or under GAP_REPEATS_TEST of the test
    error, in every configuration that did not collapse: that chart would repeat the headline."""
    runs = runs.assign(gap=runs["test_error"].astype(float) - runs["train_error"].astype(float))
    drawn = runs[(runs["status"] == "completed") & runs["gap"].notna()]
    drawn = drawn[~collapsed(drawn)]
    if len(drawn) and continuous_keys(runs, "gap") == []:
        keys = ["reg.lam", "reg.p", "reg.scope"] + (["reg.mode"] if "reg.mode" in drawn else [])
        means = drawn.groupby(keys, dropna=False)[["train_error", "test_error"]].mean()
        if (means["train_error"] <= GAP_REPEATS_TEST * means["test_error"]).all():
            worst = float(means["train_error"].max())
            raise FigureProblem(
                f"generalization gap: mean train error ≤ {num(worst, 4)} (under {GAP_REPEATS_TEST:.0%} of test "
                "error) in every configuration that did not collapse, so the gap would repeat the test error "
                "chart")
    return lambda_chart(runs, out, "gap", "generalization_gap_vs_lambda", f"test − train {error_label(runs)}",
                        value_name="gap")


# ------------------------------------------------------------------ lr x lambda
def lr_lambda_heatmap(runs: pd.DataFrame, out: Path) -> Chart:
    """When lr is swept too: mean test error over lr x lambda, one panel per mode (Loshchilov &
    Hutter's figure)."""
    done = runs[runs["status"] == "completed"]
    if "optimizer.lr" not in done or done["optimizer.lr"].nunique() < 2 or done["reg.lam"].nunique() < 2:
        return pd.DataFrame(), []
    modes = sorted(done["reg.mode"].dropna().unique())
    fig, axes = plt.subplots(1, len(modes), figsize=figure_size(4.6 * len(modes), 3.8), squeeze=False,
                             layout="constrained")
    tables = []
    for ax, mode in zip(axes[0], modes):
        table = done[done["reg.mode"] == mode].pivot_table(index="optimizer.lr", columns="reg.lam",
                                                            values="test_error", aggfunc="mean")
        sns.heatmap(table.sort_index(ascending=False), annot=True, fmt=".3g", cmap="viridis_r", ax=ax,
                    cbar_kws={"label": f"test {error_label(runs)}"})
        ax.set_title(f"mode = {mode}")
        ax.set_xlabel("λ (reg.lam)")
        ax.set_ylabel("learning rate")
        tables.append(table.stack().rename("test_error").reset_index().assign(mode=mode))
    fig.suptitle(fit_title(f"test error over learning rate and λ — {title_of(runs)}", title_size(11)),
                 fontsize=title_size(11))
    return pd.concat(tables), save(fig, out, "lr_lambda_heatmap")
