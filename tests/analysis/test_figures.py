"""The figures' honesty rules (analysis/figures.py, collapse.py, model_figures.py) on one real
sweep: digits, p = 1 and 3, λ = 0, 1e-3, 1e-2, two seeds, 150 steps. At p = 1 and λ = 1e-2 every
run collapses to chance (error 0.9); at p = 3 weight-only and global decay give the same
test errors seed by seed (an exact overlap). The charts are called in this process and their
open figures inspected; the expected values are computed here from runs.csv with pandas."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from analysis.chartbase import FigureProblem, num
from analysis.collect import collect
from analysis.figures import gap_chart, lambda_figure
from analysis.model_figures import weight_histogram_figure

from conftest import run_wdsweep, shared_folder

pytestmark = pytest.mark.integration
GRID = ["-m", "experiment=lp_vs_global", "reg.lam=0,1e-3,1e-2", "reg.p=1,3", "seed=0,1", "trainer.steps=150",
        "trainer.eval_every=50", "hydra/launcher=vectorized", "hydra.sweep.dir=sweep"]
WEIGHTS, GLOBAL = "weights only", "all parameters (global)"


def _build(folder):
    proc = run_wdsweep(GRID, cwd=folder)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory, worker_id) -> pd.DataFrame:
    folder = shared_folder(tmp_path_factory, worker_id, "figures-digits", _build)
    return collect([folder / "sweep"]).runs


def _figure(runs, metric="test_error"):
    curves, fig = lambda_figure(runs, metric, "test_error_vs_lambda", "test error")
    return curves, fig, {ax.get_title(): ax for ax in fig.axes}


def test_a_collapse_to_chance_is_an_edge_marker_named_on_the_panel_and_not_in_the_y_range(runs):
    fell = runs[(runs["reg.p"] == 1) & (runs["reg.lam"] == 0.01)]
    assert len(fell) == 4 and (fell["test_error"] > 0.85).all()  # the sweep still collapses there
    informative = runs[~((runs["reg.p"] == 1) & (runs["reg.lam"] == 0.01))]["test_error"]
    curves, fig, axes = _figure(runs)
    ax = axes["p = 1"]
    low, high = ax.get_ylim()
    assert high < 0.5 and high > informative[runs["reg.p"] == 1].max() * 0.9  # 0.9 left out, the rest in
    labels = [t.get_text() for t in ax.texts if t.get_gid() == "edge-label"]
    assert labels == [f"collapsed to chance: error {num(fell['test_error'].mean())} (4 of 4 runs)"]
    edges = [line for line in ax.lines if line.get_gid() == "edge-collapsed"]
    assert len(edges) == 2  # one per curve, at the edge
    row = curves[(curves["reg.p"] == 1) & (curves["reg.lam"] == 0.01)]
    assert (row["n"] == 0).all() and (row["n_collapsed"] == 2).all()
    assert not [t for t in axes["p = 3"].texts if t.get_gid() == "edge-label"]  # nothing fell there
    plt.close(fig)


def test_an_exact_overlap_keeps_both_curves_visible_with_their_own_markers(runs):
    p3 = runs[(runs["reg.p"] == 3) & (runs["reg.lam"] > 0)]
    means = p3.groupby(["reg.scope", "reg.lam"])["test_error"].mean().unstack(0)
    assert np.allclose(means["weights"], means["all"])  # the overlap this test is about
    _, fig, axes = _figure(runs)
    lines = {c.get_label(): c.lines[0] for c in axes["p = 3"].containers}
    weights, globl = lines[WEIGHTS], lines[GLOBAL]
    assert weights.get_marker() != globl.get_marker() and weights.get_linestyle() != globl.get_linestyle()
    assert np.allclose(weights.get_ydata(), globl.get_ydata())
    # side by side on the log axis, each near its λ
    assert (np.asarray(weights.get_xdata()) != np.asarray(globl.get_xdata())).all()
    for line in (weights, globl):
        assert np.allclose(np.log10(line.get_xdata()), np.log10([1e-3, 1e-2]), atol=0.1)
    plt.close(fig)


def test_the_baseline_is_drawn_with_its_interval_over_seeds_and_the_legend_explains_every_mark(runs):
    zero = runs[(runs["reg.lam"] == 0)].groupby("seed")["test_error"].mean()
    half = stats.t.ppf(0.975, len(zero) - 1) * zero.std(ddof=1) / np.sqrt(len(zero))
    _, fig, axes = _figure(runs)
    for ax in axes.values():
        (band,) = [p for p in ax.patches if p.get_gid() == "baseline-band"]
        ys = band.get_path().transformed(band.get_patch_transform()).vertices[:, 1] \
            if hasattr(band, "get_patch_transform") else band.get_xy()[:, 1]
        assert np.isclose(min(ys), zero.mean() - half) and np.isclose(max(ys), zero.mean() + half)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "λ = 0 (no decay): mean, band: 95% t-interval over 2 seeds" in legend
    assert "bars: 95% t-interval over 2 seeds" in legend
    assert any(t.startswith(WEIGHTS) for t in legend) and any(t.startswith(GLOBAL) for t in legend)
    assert any(text.startswith("collapsed to chance") for text in legend)
    plt.close(fig)


@pytest.mark.parametrize("lams", [(0.001,), (0, 0.001, 0.01)], ids=["one-lambda", "every-lambda"])
def test_a_single_seed_claims_no_interval_and_one_lambda_says_that_is_all(runs, lams):
    curves, fig, axes = _figure(runs[(runs["seed"] == 0) & runs["reg.lam"].isin(lams)])
    title = fig._suptitle.get_text()
    assert "single seed: no interval" in title and "interval over" not in title
    assert ("one λ (0.001), no λ = 0 run" in title) == (len(lams) == 1)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "single seed: no interval" in legend and not any("interval over" in t for t in legend)
    for ax in axes.values():
        assert not [p for p in ax.patches if p.get_gid() == "baseline-band"]
        assert ax.containers and all(not c.has_yerr for c in ax.containers)
    plt.close(fig)


def test_the_gap_chart_marks_collapses_and_is_left_out_where_train_error_is_zero(runs, tmp_path):
    gaps, files = gap_chart(runs, tmp_path)
    row = gaps[(gaps["reg.p"] == 1) & (gaps["reg.lam"] == 0.01)]
    assert (row["n"] == 0).all() and (row["n_collapsed"] == 2).all()  # a gap near 0 that means nothing
    assert len(files) == 2
    perfect = runs.assign(train_error=0.0)  # the gap is the test error again
    with pytest.raises(FigureProblem, match="would repeat the test error chart"):
        gap_chart(perfect, tmp_path / "perfect")


def test_the_histograms_hold_no_decay_and_each_scope_at_its_best_lambda_of_one_seed(runs):
    """Each scope at its best λ by the report's rule, computed here from the runs: the lowest mean
    validation error over the (shared) seeds, λ = 0 included, exact ties to the smallest λ."""
    data, fig = weight_histogram_figure(runs)
    done = runs[runs["status"] == "completed"]
    assert done.groupby(["reg.p", "reg.scope", "reg.lam"])["seed"].nunique().eq(2).all()  # all share seeds
    means = done.groupby(["reg.p", "reg.scope", "reg.lam"])["val_error"].mean().reset_index()
    for p in (1.0, 3.0):
        at_p = data[data["p"] == p]
        assert set(at_p["config"]) == {"no decay", WEIGHTS, GLOBAL}
        for scope, words in (("weights", WEIGHTS), ("all", GLOBAL)):
            options = means[(means["reg.p"] == p) & (means["reg.scope"] == scope)]
            low = options["val_error"].min()
            best = options[options["val_error"] - low <= 1e-7]["reg.lam"].min()  # exact: stats.TOL
            assert set(at_p.loc[at_p["config"] == words, "reg.lam"]) == {best}
            # the weights are that run's own (seed 0, from its model.pt)
            job = runs[(runs["reg.p"] == p) & (runs["reg.scope"] == scope) & (runs["reg.lam"] == best)
                       & (runs["seed"] == 0)].iloc[0]
            saved = torch.load(f"{job['sweep']}/{job['job']}/model.pt", weights_only=True)["0.weight"]
            drawn = at_p[(at_p["config"] == words) & (at_p["layer"] == "0.weight")]["weight"].to_numpy()
            assert np.array_equal(drawn, saved.flatten().numpy())
    assert set(data["seed"]) == {0}
    legends = [t.get_text() for legend in fig.legends for t in legend.get_texts()]  # one legend for the figure
    assert "no decay" in legends and any(t.startswith((WEIGHTS + ", λ = ", WEIGHTS + ", best: no decay"))
                                         for t in legends)
    plt.close(fig)


def test_no_minus_zero_in_figure_numbers_and_small_values_keep_their_digits():
    # significant digits, as the report's (a small-unit MSE of 1e-4 is not "0.00")
    assert num(-0.0) == "0" and num(-0.0001) == "-0.00010" and num(1.26e-10) == "1.3e-10" and num(-0.02) == "-0.020"


@pytest.mark.parametrize("width, inches", [("column", 3.5), ("page", 7.0)])
def test_paper_figures_are_drawn_at_a_column_or_a_page_with_fonts_of_7_pt_or_more(runs, width, inches):
    import matplotlib.text

    from analysis.chartbase import set_layout

    set_layout(width, sharey=True)
    try:
        for draw in (lambda: _figure(runs)[1], lambda: weight_histogram_figure(runs)[1]):
            fig = draw()
            assert fig.get_size_inches()[0] == pytest.approx(inches)
            texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text().strip() and t.get_visible()]
            assert texts and min(t.get_fontsize() for t in texts) >= 7
            plt.close(fig)
        _, fig, axes = _figure(runs)
        limits = {ax.get_ylim() for ax in axes.values() if ax.get_visible() and ax.get_title()}
        assert len(limits) == 1  # --sharey: one y-range
        assert all("offset" not in ax.get_xlabel() for ax in axes.values())
        assert "digits" in fig._suptitle.get_text()  # the data set is named
        plt.close(fig)
    finally:
        set_layout()


def test_weight_histograms_are_a_grid_of_short_named_log_density_panels(runs):
    data, fig = weight_histogram_figure(runs)
    shown = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert len(shown) == data.groupby(["p", "layer"]).ngroups
    rows = {round(ax.get_position().y0, 3) for ax in shown}
    assert max(sum(round(ax.get_position().y0, 3) == y for ax in shown) for y in rows) <= 3  # at most 3 across
    assert all(ax.get_yscale() == "log" for ax in shown)  # a spike at 0 cannot flatten the rest
    assert all(len(ax.get_title()) <= 24 for ax in shown)
    plt.close(fig)


def test_an_optuna_study_of_any_size_gets_a_lambda_chart_of_its_trials():
    """Three trials, p fixed: too few for a continuous key, yet their λ chart is drawn, each
    trial a point (coloured by trial number); none completed is one line saying why."""
    trials = pd.DataFrame({"trial": [0, 1, 2], "status": "completed", "reg.lam": [1e-4, 1e-3, 1e-2], "reg.p": 2.0,
                           "reg.mode": "coupled", "reg.scope": "weights", "seed": 0, "val_error": [0.3, 0.2, 0.25],
                           "test_error": [0.31, 0.22, 0.27], "train_error": [0.1, 0.1, 0.1], "data.name": "digits"})
    data, fig = lambda_figure(trials, "test_error", "test_error_vs_lambda", "test error")
    assert len(data) == 3 and sorted(data["reg.lam"]) == [1e-4, 1e-3, 1e-2]
    assert "each run a point, coloured by trial" in fig._suptitle.get_text()
    plt.close(fig)
    with pytest.raises(FigureProblem, match="no completed trial"):
        lambda_figure(trials.assign(status="failed"), "test_error", "test_error_vs_lambda", "test error")
