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

from analysis.collect import matching, varying_keys  # noqa: E402

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
    frame = frame.copy()
    if "model._target_" in frame:  # a user's model may have no name: its target's last name
        label = frame["model._target_"].astype(str).str.rsplit(".", n=1).str[-1].str.lower()
        frame["model.name"] = frame["model.name"].fillna(label) if "model.name" in frame else label
    for key in ("data.name", "model.name", "optimizer.name"):
        if key in frame and frame[key].notna().any():
            parts.append("/".join(sorted(frame[key].dropna().astype(str).unique())))
    return " · ".join(parts)


def lambda_curves(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean and 95% interval (t, over seeds) of `metric` per (p, curve, lambda > 0), with the
    mean validation error alongside (to pick each curve's best lambda). Grid runs only."""
    done = runs[(runs["status"] == "completed") & (runs["reg.lam"] > 0) & runs[metric].notna()]
    if "trial" in done:
        done = done[done["trial"].isna()]  # Optuna trials (continuous p) have charts of their own
    done = done.copy()
    done["curve"] = decay_label(done)
    for key in varying_keys(done, exclude=("seed", "reg.lam", "reg.p", "reg.scope", "reg.mode")):
        done["curve"] += ", " + key + "=" + done[key].map(str)  # another swept key: its own line
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
    the lambda = 0 baseline dashed, and each curve's best lambda (on validation error) starred.
    Runs with a continuous setting (an Optuna search's p) get continuous_lambda_chart instead."""
    if continuous_keys(runs, metric):
        return continuous_lambda_chart(runs, out, metric, name, ylabel)
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
    """`metric` against lambda (log x), each run a point coloured by the first continuous key
    (one colorbar), one panel per categorical setting (mode, scope, any other key with few
    values); the lambda = 0 baseline dashed and each panel's best run on validation error
    starred. At most MAX_PANELS panels in rows of three, so the size is bounded whatever the
    number of trials."""
    done = _lambda_runs(runs, metric).copy()
    continuous = continuous_keys(runs, metric)
    colour = continuous[0]
    categorical = [k for k in varying_keys(done, exclude=("seed", "reg.lam")) if k not in continuous]
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
    nrows = -(-len(panels) // ncols)
    # One λ axis for all panels (they are compared along it); own y scales, as in the grid chart.
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols + 1.0, 3.4 * nrows + 0.8), squeeze=False,
                             sharex=True, layout="constrained")
    norm = matplotlib.colors.Normalize(vmin=done[colour].min(), vmax=done[colour].max())
    cmap = matplotlib.colormaps["viridis"]
    base = baseline(runs, metric)
    for ax, panel in zip(axes.flat, panels):
        points = done[done["panel"] == panel]
        ax.scatter(points["reg.lam"], points[metric].astype(float), c=points[colour], cmap=cmap, norm=norm,
                   s=28, edgecolors="none")
        if "val_error" in points and points["val_error"].notna().any():
            best = points.loc[points["val_error"].astype(float).idxmin()]
            ax.plot(best["reg.lam"], float(best[metric]), marker="*", ms=14, color=cmap(norm(best[colour])),
                    mec="black", mew=0.7, ls="", zorder=5)
        if base is not None:
            ax.axhline(base, ls="--", color="grey", lw=1.2)
        ax.set_xscale("log")
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel("λ (reg.lam, log scale)")
        ax.xaxis.set_tick_params(labelbottom=True)  # sharex hides them above the last row
        ax.set_ylabel(ylabel if ax in axes[:, 0] else "")
    for ax in axes.flat[len(panels):]:
        ax.set_axis_off()
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, label=colour, shrink=0.9)
    handles = [plt.Line2D([], [], marker="*", ls="", color="black", ms=10)]
    labels = ["best run on validation error"]
    if base is not None:
        handles.append(plt.Line2D([], [], ls="--", color="grey"))
        labels.append("λ = 0 (no decay)")
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False)
    more = [k for k in continuous[1:] + unshown]
    fig.suptitle(f"{ylabel} against λ — {title_of(runs)} (each run a point, coloured by {colour})"
                 + (f"\nalso varied, not shown: {', '.join(more)}" if more else ""), fontsize=10)
    columns = [c for c in ("panel", "reg.lam", metric, colour, "val_error", "study", "trial") if c in done]
    return done[columns].reset_index(drop=True), save(fig, out, name)


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


# ------------------------------------------------------------------ seed 1's two figures
def decay_pair(runs: pd.DataFrame) -> Optional[Tuple[pd.Series, pd.Series]]:
    """A run without decay and the best decayed run (on validation error) of the same seed,
    both completed and with a saved model: the pair seed 1 compares."""
    done = runs[runs["status"] == "completed"]
    has_model = pd.Series([(Path(s) / j / "model.pt").is_file() for s, j in zip(done["sweep"], done["job"])],
                          index=done.index, dtype=bool)
    done = done.loc[has_model]
    plain, decayed = done[done["reg.lam"] == 0], done[done["reg.lam"] > 0]
    # The pair differs in its regularizer only: same seed, same model, same everything else.
    others = [k for k in varying_keys(done) if not k.startswith("reg.")]
    for _, base in plain.sort_values("seed").iterrows():
        same = decayed[matching(decayed, base, ["seed", *others])]
        if len(same):
            return base, same.sort_values("val_error").iloc[0]
    return None


def _pair_label(run: pd.Series) -> str:
    if run["reg.lam"] == 0:
        return "no decay"
    return f"{run['reg.mode']} L{run['reg.p']:g} on {run['reg.scope']}, λ = {run['reg.lam']:g}"


class FigureProblem(Exception):
    """A figure that cannot be drawn from what the jobs left (one line; the others are drawn)."""


def _state(run: pd.Series) -> dict:
    """A job's saved weights. Tensors only (weights_only=True, whatever the torch version's
    default or TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD say): a crafted model.pt cannot run code here.
    A missing, truncated or foreign file is a FigureProblem."""
    import torch

    path = Path(run["sweep"]) / run["job"] / "model.pt"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a bad file
        detail = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise FigureProblem(f"{path}: unreadable model.pt ({type(err).__name__}: {detail[:200]})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FigureProblem(f"{path}: not a state_dict of tensors")
    return state


def weight_histograms(runs: pd.DataFrame, out: Path) -> Chart:
    """Seed 1's figure: each weight matrix's values, without and with decay."""
    pair = decay_pair(runs)
    if pair is None:
        return pd.DataFrame(), []
    states = [_state(run) for run in pair]
    layers = [k for k, v in states[0].items() if v.dim() >= 2]
    data = pd.concat([pd.DataFrame({"layer": layer, "run": _pair_label(run),
                                    "weight": state[layer].flatten().numpy()})
                      for run, state in zip(pair, states) for layer in layers], ignore_index=True)
    fig, axes = plt.subplots(1, len(layers), figsize=(3.4 * len(layers), 3.0), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        sns.histplot(data=data[data["layer"] == layer], x="weight", hue="run", bins=60, element="step",
                     stat="density", common_norm=False, ax=ax, legend=ax is axes[0][-1])
        ax.set_title(layer)
        ax.set_xlabel("weight value")
    fig.suptitle(f"weights per layer without and with decay — {title_of(runs)}, seed {pair[0]['seed']}",
                 fontsize=11)
    fig.tight_layout()
    return data, save(fig, out, "weight_histograms")


def regression_fits(runs: pd.DataFrame, out: Path) -> Chart:
    """Seed 1's other figure: train and test points with the fitted curves without and with decay."""
    import torch
    from omegaconf import OmegaConf

    from wdsweep.data import build_splits
    from wdsweep.models import build_model, data_info_of

    pair = decay_pair(runs[runs.get("data.name", pd.Series(dtype=str)) == "regression1d"]) \
        if "data.name" in runs else None
    if pair is None:
        return pd.DataFrame(), []
    config = OmegaConf.load(Path(pair[0]["sweep"]) / pair[0]["job"] / ".hydra" / "config.yaml")
    splits = build_splits(config.data, config.seed, torch.Generator().manual_seed(config.seed))
    grid = torch.linspace(float(splits.x["test"].min()), float(splits.x["test"].max()), 200).unsqueeze(1)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.scatter(splits.x["train"], splits.y["train"], s=40, alpha=0.6, label="train")
    ax.scatter(splits.x["test"], splits.y["test"], s=40, alpha=0.6, marker="s", label="test")
    curves = []
    for run, style in zip(pair, ("-", "--")):
        if "_target_" not in config.model:  # a sweep from before models were targets
            raise FigureProblem(f"{Path(run['sweep']) / run['job']}: config.yaml has no model._target_ "
                                "(made by an older wdsweep)")
        model = build_model(config.model, data_info_of(splits))
        model.load_state_dict(_state(run))
        with torch.no_grad():
            fitted = model(grid).squeeze(1)
        label = f"{_pair_label(run)} (test MSE {run['test_error']:.3f})"
        ax.plot(grid.squeeze(1), fitted, style, lw=2.5, label=label)
        curves.append(pd.DataFrame({"run": _pair_label(run), "x": grid.squeeze(1).numpy(), "y": fitted.numpy()}))
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(f"fits without and with decay — seed {pair[0]['seed']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return pd.concat(curves), save(fig, out, "regression_fits")


# ------------------------------------------------------------------ lr x lambda
def lr_lambda_heatmap(runs: pd.DataFrame, out: Path) -> Chart:
    """When lr is swept too: mean test error over lr x lambda, one panel per mode (Loshchilov &
    Hutter's figure)."""
    done = runs[runs["status"] == "completed"]
    if "optimizer.lr" not in done or done["optimizer.lr"].nunique() < 2 or done["reg.lam"].nunique() < 2:
        return pd.DataFrame(), []
    modes = sorted(done["reg.mode"].dropna().unique())
    fig, axes = plt.subplots(1, len(modes), figsize=(4.6 * len(modes), 3.8), squeeze=False)
    tables = []
    for ax, mode in zip(axes[0], modes):
        table = done[done["reg.mode"] == mode].pivot_table(index="optimizer.lr", columns="reg.lam",
                                                            values="test_error", aggfunc="mean")
        sns.heatmap(table.sort_index(ascending=False), annot=True, fmt=".3f", cmap="viridis_r", ax=ax,
                    cbar_kws={"label": f"test {error_label(runs)}"})
        ax.set_title(f"mode = {mode}")
        ax.set_xlabel("λ (reg.lam)")
        ax.set_ylabel("learning rate")
        tables.append(table.stack().rename("test_error").reset_index().assign(mode=mode))
    fig.suptitle(f"test error over learning rate and λ — {title_of(runs)}", fontsize=11)
    fig.tight_layout()
    return pd.concat(tables), save(fig, out, "lr_lambda_heatmap")
