"""The figures drawn from the jobs' saved weights (model.pt): the weight histograms (the
weight-decay article's figure, turned to this experiment's question) and, for regression1d, the
fitted curves without and with decay (the weight-decay article's other figure).

Weight histograms: which runs. The experiment compares weight-only decay with global decay, so the
figure holds three configurations: no decay, weight-only decay and global decay, each decay at
its own best λ by the report's rule (analysis/report.py: on mean validation error over shared
seeds, λ = 0 included, exact ties to the smallest λ; with several modes, the best mode too; a
scope whose best λ is 0 shows its no-decay runs, labelled so), all three from the same seed
(the smallest seed that ran all three with a saved model.pt), so that only the regularizer
differs. Other swept keys (optimizer.lr, ...) are held at the values of the best configuration
overall.
One row per p when p takes a few values (a grid): at most MAX_P_ROWS rows, the smallest, the
middle and the largest swept p, so that the figure stays readable and still spans the range
(L1's spike at 0 to L3's flat top). With a continuous p (an Optuna search, more than
CONTINUOUS_AFTER values) no two runs share a p: one row, each scope at its best (p, λ).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from analysis.chartbase import (
    LAYOUT,
    SCOPE_WORDS,
    Chart,
    FigureProblem,
    figure_size,
    fit_labels,
    fit_title,
    panel_grid,
    save,
    title_of,
    title_size,
)
from analysis.collect import matching, varying_keys

MAX_P_ROWS = 3
CONTINUOUS_AFTER = 6  # as analysis.figures.CONTINUOUS_AFTER (not imported: figures imports this module)


def _with_model(runs: pd.DataFrame) -> pd.DataFrame:
    """Completed runs whose job folder holds a model.pt."""
    done = runs[runs["status"] == "completed"]
    has_model = pd.Series([(Path(str(s)) / str(j) / "model.pt").is_file() for s, j in zip(done["sweep"], done["job"])],
                          index=done.index, dtype=bool)
    return done.loc[has_model]


def _p_rows(ps: List[float]) -> List[Optional[float]]:
    """The p of each histogram row: every swept p up to MAX_P_ROWS, else the smallest, middle and
    largest; [None] (one row, p chosen with λ) for a continuous p."""
    ps = sorted(ps)
    if len(ps) > CONTINUOUS_AFTER:
        return [None]
    if len(ps) > MAX_P_ROWS:
        return [ps[0], ps[len(ps) // 2], ps[-1]]
    return ps


def histogram_choice(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs the weight histograms draw (module docstring): one row per (p row, configuration)
    with `config` ("no decay" or the scope's words), `label`, `reg.lam`, `seed` and the run's
    index in `runs` as `run`; empty when no seed ran without and with decay."""
    done = _with_model(runs)
    plain, decayed = done[done["reg.lam"] == 0], done[done["reg.lam"] > 0]
    if plain.empty or decayed.empty or decayed["val_error"].isna().all():
        return pd.DataFrame()
    from analysis.choice import best_lambdas

    others = [k for k in varying_keys(done) if not k.startswith("reg.")]
    config = ["reg.p", "reg.scope", "reg.mode", "reg.lam", *others]
    config = [k for k in config if k in decayed]
    # Each setting's best λ by the report's one rule (λ = 0 included, exact ties to the smallest
    # λ, never a configuration that diverged on a seed): the figure shows what the report says.
    means = best_lambdas(runs)
    if means.empty:
        return pd.DataFrame()
    if others:  # hold the other swept keys where the best configuration overall has them
        best = means.iloc[0]
        means, plain = means[matching(means, best, others)], plain[matching(plain, best, others)]
        decayed = decayed[matching(decayed, best, others)]
    several_modes = "reg.mode" in means and means["reg.mode"].nunique() > 1
    chosen = []
    for p in _p_rows(list(means["reg.p"].unique())):
        at_p = means if p is None else means[means["reg.p"] == p]
        for scope, options in at_p.groupby("reg.scope"):
            pick = options.sort_values(["val_error", "reg.lam"], kind="stable").iloc[0]  # ties: the smallest λ
            words = SCOPE_WORDS.get(scope, str(scope)) + (f" · {pick['reg.mode']}" if several_modes else "")
            at = "best: no decay" if pick["reg.lam"] == 0 else f"λ = {pick['reg.lam']:g}"
            chosen.append({"row": p, "config": words, "pick": pick,
                           "label": f"{words}, {at}" + (f", p = {pick['reg.p']:g}" if p is None else "")})

    def runs_of(pick: pd.Series) -> pd.DataFrame:
        return plain if pick["reg.lam"] == 0 else decayed[matching(decayed, pick, config)]

    # The same seed for every configuration: the one whose runs differ in the regularizer only.
    seeds = set(plain["seed"])
    for entry in chosen:
        seeds &= set(runs_of(entry["pick"])["seed"])
    if not seeds:
        return pd.DataFrame()
    seed = min(seeds)
    base = plain[plain["seed"] == seed].index[0]
    rows = []
    for p in dict.fromkeys(entry["row"] for entry in chosen):
        rows.append({"row": p, "config": "no decay", "label": "no decay", "reg.lam": 0.0, "seed": seed, "run": base})
        for entry in (e for e in chosen if e["row"] == p):
            candidates = runs_of(entry["pick"])
            same = candidates[candidates["seed"] == seed]
            rows.append({"row": p, "config": entry["config"], "label": entry["label"],
                         "reg.lam": float(entry["pick"]["reg.lam"]), "seed": seed, "run": same.index[0]})
    return pd.DataFrame(rows)


def weight_histograms(runs: pd.DataFrame, out: Path) -> Chart:
    """weight_histogram_figure, saved as out/weight_histograms.png and .pdf (nothing when no
    seed ran without and with decay)."""
    data, fig = weight_histogram_figure(runs)
    return data, (save(fig, out, "weight_histograms") if fig is not None else [])


def weight_histogram_figure(runs: pd.DataFrame):
    """Each weight matrix's values for no decay, weight-only decay and global decay at their best
    λs, one row per p (the choice: module docstring), same seed, bins shared within a panel:
    (the weights drawn, with their configuration, λ and p; the open figure or None)."""
    choice = histogram_choice(runs)
    if choice.empty:
        return pd.DataFrame(), None
    states = {run: _state(runs.loc[run]) for run in choice["run"].unique()}
    layers = [k for k, v in states[choice["run"].iloc[0]].items() if v.dim() >= 2]
    data = pd.concat([pd.DataFrame({"p": entry["row"], "config": entry["config"], "run": entry["label"],
                                    "reg.lam": entry["reg.lam"], "seed": entry["seed"], "layer": layer,
                                    "weight": states[entry["run"]][layer].flatten().numpy()})
                      for _, entry in choice.iterrows() for layer in layers], ignore_index=True)
    configs = sorted(c for c in choice["config"].unique() if c != "no decay")
    palette = sns.color_palette("colorblind")
    styles = {"no decay": dict(color="black", ls="-", lw=1.4)}
    styles.update({c: dict(color=palette[i % len(palette)], ls=("--", ":", "-.")[i % 3], lw=1.6)
                   for i, c in enumerate(configs)})
    rows = list(dict.fromkeys(choice["row"]))
    names = short_names(layers)
    panels = [(p, layer) for p in rows for layer in layers]
    # A grid of readable panels (at most 3 across on a screen), not one row per p as wide as the net.
    n_rows, n_cols, size = panel_grid(len(panels), 3.4, 2.6, legend_height=0.8)
    if LAYOUT.width is None and len(panels) > 3:
        n_cols = 3
        n_rows = -(-len(panels) // n_cols)
        size = (3.4 * n_cols, 2.6 * n_rows + 0.8)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=size, squeeze=False, layout="constrained")
    flat = list(axes.flat)
    for ax in flat[len(panels):]:
        ax.set_visible(False)
    for i, (ax, (p, layer)) in enumerate(zip(flat, panels)):
        at_p = data[data["p"].isna()] if p is None else data[data["p"] == p]
        values = at_p[at_p["layer"] == layer]
        # √n bins of one run's weights, 8 to 60: a 16-weight layer gets bars, not a comb.
        bins = int(np.clip(np.sqrt(len(values) / values["run"].nunique()), 8, 60))
        edges = np.histogram_bin_edges(values["weight"], bins=bins)
        for label, group in values.groupby("run", sort=False):
            density, _ = np.histogram(group["weight"], bins=edges, density=True)
            ax.stairs(density, edges, label=label, **styles[group["config"].iloc[0]])
        # A log density: L1's spike at 0 is orders of magnitude above the rest, which a linear
        # axis would flatten to nothing.
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.set_title(names[layer] if p is None else f"p = {p:g} · {names[layer]}")
        ax.set_xlabel("weight value" if i >= len(panels) - n_cols else "")
        ax.set_ylabel("density (log)" if i % n_cols == 0 else "")
    handles, labels = [], []
    for ax in flat[:len(panels)]:  # every configuration once (the λs may differ between rows of p)
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    fig.legend(handles, fit_labels(labels), loc="outside lower center", ncol=1 if LAYOUT.width else min(3, len(labels)),
               frameon=False)
    fig.suptitle(fit_title(f"weights per layer: no decay, and each scope at its best λ on validation — "
                           f"{title_of(runs)}, seed={choice['seed'].iloc[0]}", title_size(10)), fontsize=title_size(10))
    return data, fig


def short_names(layers: List[str]) -> dict:
    """Each parameter's name without the prefix all of them share ("model.net.0.weight" ->
    "0.weight"), so that panel titles stay short."""
    parts = [name.split(".") for name in layers]
    common = 0
    while all(len(p) > common + 2 for p in parts) and len({p[common] for p in parts}) == 1:
        common += 1
    return {name: ".".join(p[common:]) for name, p in zip(layers, parts)}


# ------------------------------------------------------------------ the fitted curves
def decay_pair(runs: pd.DataFrame) -> Optional[Tuple[pd.Series, pd.Series]]:
    """A run without decay and the best decayed run (on validation error) of the same seed,
    both completed and with a saved model: the pair the weight-decay article compares."""
    done = _with_model(runs)
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


def regression_fits(runs: pd.DataFrame, out: Path) -> Chart:
    """The weight-decay article's other figure: train and test points with the fitted curves
    without and with decay."""
    import torch
    from omegaconf import OmegaConf

    from wdsweep.train.data import build_splits
    from wdsweep.train.models import build_model, data_info_of

    pair = decay_pair(runs[runs.get("data.name", pd.Series(dtype=str)) == "regression1d"]) \
        if "data.name" in runs else None
    if pair is None:
        return pd.DataFrame(), []
    config = OmegaConf.load(Path(pair[0]["sweep"]) / pair[0]["job"] / ".hydra" / "config.yaml")
    splits = build_splits(config.data, config.seed, torch.Generator().manual_seed(config.seed))
    grid = torch.linspace(float(splits.x["test"].min()), float(splits.x["test"].max()), 200).unsqueeze(1)
    fig, ax = plt.subplots(figsize=figure_size(5.5, 4), layout="constrained")
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
    ax.set_title(f"fits without and with decay — seed={pair[0]['seed']}")
    ax.legend(fontsize=8)
    return pd.concat(curves), save(fig, out, "regression_fits")
