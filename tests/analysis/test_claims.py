"""What report.md claims about uncertainty claims no more than the numbers give: no zero-width
interval from seeds that happen to agree, no error interval below 0, intervals labelled
unadjusted beside Holm-adjusted verdicts, no "seeds suffice" beside a "within noise", and no
p-value whose rounding crosses the 5% line. Checked against scipy and statsmodels."""
from __future__ import annotations

import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.power import TTestPower

from analysis import stats
from analysis.collect import status_counts
from analysis.numbers import p_text
from analysis.report import _needed, write_report


@pytest.mark.parametrize("p, shown", [(0.0498, "0.0498"), (0.0502, "0.05"), (0.034, "0.034"), (0.00049, "< 0.001"),
                                      (0.04996, "0.04996"), (0.2, "0.2")])
def test_a_p_value_is_never_rounded_across_the_5_percent_line(p, shown):
    assert p_text(p) == shown
    assert (float(shown.lstrip("< ")) < 0.05) == (p < 0.05) or shown.startswith("<")


def test_seeds_needed_are_judged_at_the_level_the_verdict_is():
    """Four seeds reach power 0.8 at α = 0.05 for this difference, not at Holm's strictest step
    over 4 tests (α = 0.0125): the report must not say they suffice."""
    b = [0.050, 0.058, 0.053, 0.061]
    a = [x + d for x, d in zip(b, [0.010, 0.006, 0.013, 0.005])]
    r = stats.paired(a, b)
    effect = abs(r.mean) / r.sd
    assert TTestPower().power(effect, 4, 0.05, alternative="two-sided") >= 0.8
    assert TTestPower().power(effect, 4, 0.0125, alternative="two-sided") < 0.8
    assert "suffice" in _needed(r, tests=1)
    text = _needed(r, tests=4)
    assert "suffice" not in text and "α = 0.0125" in text


def rows(lam, scope, val, test):
    return [{"status": "completed", "seed": s, "reg.lam": lam, "reg.p": 2.0, "reg.mode": "coupled",
             "reg.scope": scope, "val_error": v, "test_error": t} for s, (v, t) in enumerate(zip(val, test))]


def test_agreeing_seeds_get_no_zero_width_interval_and_no_error_interval_goes_below_0(tmp_path):
    runs = pd.DataFrame(rows(0.0, "weights", [0.1, 0.1, 0.1], [0.2, 0.2, 0.2])       # every seed equal
                        + rows(0.01, "weights", [0.05, 0.06, 0.07], [0.02, 0.02, 0.02])  # agree at the best λ
                        + rows(0.0, "all", [0.1, 0.1, 0.1], [0.2, 0.2, 0.2])
                        + rows(0.01, "all", [0.06, 0.07, 0.08], [0.0, 0.0, 0.03]))  # near 0: t-interval < 0
    text = write_report(runs, status_counts(runs), [], tmp_path, "python -m analysis x", []).read_text()
    low, _ = scipy_stats.t.interval(0.95, 2, loc=0.01, scale=scipy_stats.sem([0.0, 0.0, 0.03]))
    assert low < 0  # what an uncut interval would print
    assert "[0 (cut at 0)," in text and "[-" not in text.split("## Best λ")[1].split("##")[0]
    # seeds that all agree are said to: in the best-λ table (no "± 0") and as the interval of a
    # paired difference that is the same on every seed (weight-only − no decay: −0.18 thrice)
    best = text.split("## Best λ")[1].split("##")[0]
    assert "| 0.02000 (all 3 seeds equal) |" in best and "± 0 " not in best
    against = text.split("## Against no decay")[1].split("##")[0]
    assert "| -0.1800 | all 3 seeds equal |" in against and "[-0.1800, -0.1800]" not in against
    # differences: weight-only and global against no decay, each its own interval, labelled unadjusted
    assert "95% interval (unadjusted)" in text and "not adjusted for the report's other tests" in text


def test_the_report_says_what_scope_changes_flags_edge_lambdas_and_names_the_sweeps_command(tmp_path):
    """On a real sweep: the parameters each scope decays (counted here on the same torch MLP), a
    best λ at the grid's largest λ flagged, and the sweep's own command beside the report's."""
    from wdsweep.train.models import mlp

    from conftest import run_analysis, run_wdsweep

    grid = ["-m", "reg.lam=0,1e-4,1e-3", "reg.scope=weights,all", "seed=0,1", "model.width=16", "trainer.steps=40",
            "trainer.eval_every=20", "hydra.sweep.dir=S"]
    sweep = run_wdsweep(grid, cwd=tmp_path)
    assert sweep.returncode == 0
    proc = run_analysis(tmp_path / "S", "--out", tmp_path / "A")
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "A" / "report.md").read_text()
    net = mlp(1, 1, depth=3, width=16)
    weights = sum(p.numel() for p in net.parameters() if p.dim() >= 2)
    every = sum(p.numel() for p in net.parameters())
    assert (f"weight-only decay decays {weights:,} parameters (the tensors of dim ≥ 2), global decay {every:,}, "
            f"adding {every - weights:,}") in text
    assert text.splitlines()[2].startswith("Sweep: `python -m wdsweep -m reg.lam=0,1e-4,1e-3 reg.scope=weights,all")
    assert "Report: `python -m analysis" in text
    # what "error" is, named: the default task is a regression
    assert "Error: the mean squared error of a regression." in text
    from conftest import job_dirs, read_metrics

    record = read_metrics(job_dirs(tmp_path / "S")[0])
    assert record["task"] == "regression" and record["error_metric"] == "mean squared error"
    # and each job's log line says what its test_error is
    lines = [line for line in (sweep.stdout + sweep.stderr).splitlines() if " | completed | " in line]
    assert len(lines) == 10 and all(" (mean squared error) " in line for line in lines), lines[:1]  # 2 λ=0 alike
    best = best_lambdas_of(tmp_path)
    for scope, lam in best.items():
        flagged = f"scope={scope}, p=2: λ = {lam:g} is the largest swept: try larger λ" in text
        assert flagged == (lam == 1e-3), (scope, lam)


def best_lambdas_of(tmp_path) -> dict:
    runs = pd.read_csv(tmp_path / "A" / "runs.csv")
    from analysis.choice import best_lambdas

    return {row["reg.scope"]: row["reg.lam"] for _, row in best_lambdas(runs[runs["role"].isna()]
                                                                           if "role" in runs else runs).iterrows()}


def test_a_sweep_over_a_list_valued_key_is_analysed(tmp_path):
    from conftest import run_analysis, run_wdsweep

    # both list-valued keys the issue names: the optimizer's betas and the convnet's channels
    grid = ["-m", "data=digits", "model=cnn", "optimizer=adam", "optimizer.lr=0.01",
            "optimizer.betas=[0.9,0.999],[0.8,0.99]", "model.channels=[2,4],[4,4]", "reg.lam=0,1e-3", "seed=0,1",
            "trainer.steps=10", "trainer.eval_every=10", "trainer.batch_size=32", "hydra.sweep.dir=S"]
    assert run_wdsweep(grid, cwd=tmp_path).returncode == 0
    proc = run_analysis(tmp_path / "S", "--out", tmp_path / "A")
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "A" / "report.md").read_text()
    assert "optimizer.betas=[0.8, 0.99]" in text and "optimizer.betas=[0.9, 0.999]" in text
    assert "model.channels=[2, 4]" in text and "model.channels=[4, 4]" in text
    assert (tmp_path / "A" / "test_error_vs_lambda.png").is_file()


def test_the_scope_sizes_count_what_a_step_decayed_not_an_unused_layer_in_scope():
    """A model with an unused layer: its tensors are in scope (decayed_params) and no step ever
    decays them (stepped_params); the report's line counts what was in fact decayed."""
    import pandas as pd

    from analysis.report import _scope_sizes

    grid = pd.DataFrame({"reg.lam": [1e-3, 1e-3, 0.0], "reg.scope": ["weights", "all", "weights"],
                         "decayed_params": [41, 55, 41], "kept_params": [14, 0, 14],
                         "stepped_params": [32, 46, None]})
    (line, _) = _scope_sizes(grid)
    assert "weight-only decay decays 32 parameters" in line and "global decay 46, adding 14" in line
    older = grid.drop(columns="stepped_params")  # records from before stepped_params: the scope's count
    assert "weight-only decay decays 41 parameters" in _scope_sizes(older)[0]
