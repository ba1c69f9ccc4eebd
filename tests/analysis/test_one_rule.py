"""One rule picks the best λ everywhere: the report, the λ charts' stars and the weight
histograms. A configuration that diverged or failed on a seed is never chosen and is named, and
no chart draws the mean of its survivors; configurations are judged on the seeds all of them
completed; an exact tie goes to the smallest λ, no decay included. On constructed runs tables
shaped like analysis.collect's, where the right answer is known."""
from __future__ import annotations

import math

import pandas as pd

from analysis.choice import best_lambdas
from analysis.collect import status_counts
from analysis.figures import lambda_curves
from analysis.model_figures import histogram_choice
from analysis.report import write_report

SEEDS = [0, 1, 2, 3, 4, 5]
VAL = [0.050, 0.061, 0.055, 0.058, 0.052, 0.060]
TEST = [0.062, 0.070, 0.066, 0.069, 0.064, 0.071]


def rows(lam, val, test, scope="weights", status=None, sweep="S"):
    status = status or {}
    return [{"status": status.get(s, "completed"), "seed": s, "reg.lam": lam, "reg.p": 2.0, "reg.mode": "coupled",
             "reg.scope": scope, "val_error": math.nan if s in status else v,
             "test_error": math.nan if s in status else t, "sweep": sweep, "job": f"{scope}-{lam}-{s}"}
            for s, v, t in zip(SEEDS, val, test)]


def shift(values, by):
    return [v + by for v in values]


def report_text(runs: pd.DataFrame, tmp_path) -> str:
    return write_report(runs, status_counts(runs), [], tmp_path, "python -m wdsweep -m ...", []).read_text()


def test_a_lambda_that_diverged_on_two_seeds_cannot_win_on_its_survivors(tmp_path):
    # λ = 0.1's four surviving seeds have the lowest validation error of all.
    runs = pd.DataFrame(rows(0.0, VAL, TEST) + rows(0.01, shift(VAL, -0.005), shift(TEST, -0.004))
                        + rows(0.1, shift(VAL, -0.02), shift(TEST, -0.02), status={4: "diverged", 5: "diverged"}))
    best = best_lambdas(runs)
    assert list(best["reg.lam"]) == [0.01]
    text = report_text(runs, tmp_path)
    assert "coupled L2 on weights only at λ = 0.1: diverged on seeds 4, 5 of 6" in text
    assert "at λ = 0.1" not in text.split("Never chosen")[0]  # not in any comparison above
    curves = lambda_curves(runs, "test_error").set_index("reg.lam")
    assert math.isnan(curves.loc[0.1, "mean"]) and curves.loc[0.1, "n"] == 0 and curves.loc[0.1, "n_diverged"] == 2
    assert curves.loc[0.01, "best"] and not curves.loc[0.1, "best"]


def test_lambdas_are_judged_on_the_seeds_all_of_them_completed(tmp_path):
    # λ = 0.01 did not finish seed 5 (a killed run: incomplete, no verdict). On seeds 0-4 it is
    # worse than λ = 0.001 everywhere; its mean over its own 5 seeds would still win, because seed 5,
    # which it lacks, is the hard one.
    val_a = [0.050, 0.050, 0.050, 0.050, 0.050, 0.090]
    val_b = [0.052, 0.052, 0.052, 0.052, 0.052, 0.0]
    runs = pd.DataFrame(rows(0.001, val_a, TEST) + rows(0.01, val_b, TEST, status={5: "incomplete"}))
    assert sum(val_b[:5]) / 5 < sum(val_a) / 6  # the trap: own-seed means pick 0.01
    assert list(best_lambdas(runs)["reg.lam"]) == [0.001]


def test_an_exact_tie_with_no_decay_is_no_decay_in_the_report_the_chart_and_the_histograms(tmp_path):
    folder = tmp_path / "S"
    runs = pd.DataFrame(rows(0.0, VAL, TEST) + rows(0.01, VAL, shift(TEST, 0.001))
                        + rows(0.1, shift(VAL, 0.01), TEST)
                        + rows(0.0, VAL, TEST, scope="all") + rows(0.01, shift(VAL, -0.003), TEST, scope="all"),
                        ).assign(sweep=str(folder))
    for job in runs["job"]:
        (folder / job).mkdir(parents=True, exist_ok=True)
        (folder / job / "model.pt").write_bytes(b"")
    best = best_lambdas(runs).set_index("reg.scope")
    assert best.loc["weights", "reg.lam"] == 0.0 and best.loc["weights", "tied"] == [0.01]
    assert best.loc["all", "reg.lam"] == 0.01
    curves = lambda_curves(runs, "test_error")
    weights = curves[curves["curve"].str.contains("weights")]
    assert not weights["best"].any() and weights["best_is_no_decay"].all()  # no star on 0.01
    assert curves[curves["curve"].str.contains("all")].set_index("reg.lam")["best"].to_dict() == {0.01: True}
    labels = set(histogram_choice(runs)["label"])
    assert "weights only, best: no decay" in labels and "all parameters (global), λ = 0.01" in labels
