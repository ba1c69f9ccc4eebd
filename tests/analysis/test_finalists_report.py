"""The report's finalists section, on constructed finalists.yaml files: what it says of the
search's optimism and of the best finalist must follow from the numbers (checked with scipy);
and a grid's finalists stay out of the grid's own sections."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from analysis.finalists import finalist_files, finalists_section
from analysis.numbers import number
from wdsweep.search import finalists

from conftest import run_analysis, run_wdsweep


def entry(name: str, search_value: float, val: list, seeds=(5, 6, 7)) -> dict:
    rows = [finalists.seed_row(s, {"status": "completed", "val_error": v, "test_error": v + 0.01}, v, None)
            for s, v in zip(seeds, val)]
    return finalists.summary(name, {"reg.lam": 1e-3}, search_value, rows)


def write(tmp_path, *entries) -> list:
    finalists.write(tmp_path, "minimize", [0, 1, 2], [5, 6, 7], list(entries))
    return finalist_files([str(tmp_path)])


def test_an_optimistic_search_value_is_called_the_winners_curse(tmp_path):
    text = "\n".join(finalists_section(write(tmp_path, entry("a", 0.02, [0.05, 0.06, 0.055]))))
    low, high = stats.t.interval(0.95, 2, loc=0.055, scale=stats.sem([0.05, 0.06, 0.055]))
    assert f"[{number(low)}, {number(high)}]" in text
    assert "optimistic by about 0.0350" in text and "winner's curse" in text


def test_a_search_value_inside_the_fresh_interval_is_no_measurable_optimism(tmp_path):
    text = "\n".join(finalists_section(write(tmp_path, entry("a", 0.055, [0.05, 0.07, 0.045]))))
    assert "no optimism measurable" in text and "winner's curse" not in text


def test_the_best_finalist_is_compared_with_the_runner_up_on_paired_fresh_seeds(tmp_path):
    best, close = [0.050, 0.060, 0.055], [0.052, 0.059, 0.058]
    text = "\n".join(finalists_section(write(tmp_path, entry("b", 0.05, close), entry("a", 0.05, best))))
    p = stats.ttest_rel(close, best).pvalue
    # within noise: named, not bolded (bold is for a best beyond noise, as in the report's lowest)
    assert "Best on fresh validation error: a;" in text and "**a**" not in text
    assert f"p = {p:.2g}" in text and "within noise" in text
    assert f"by {number(np.mean(np.subtract(close, best)), True)} (runner-up − best)" in text

    clear = [0.150, 0.161, 0.157]  # far worse on every seed
    text = "\n".join(finalists_section(write(tmp_path, entry("a", 0.05, best), entry("c", 0.05, clear))))
    assert "beyond noise" in text and "**a**" in text and stats.ttest_rel(clear, best).pvalue < 0.05


def test_an_exact_tie_on_every_fresh_seed_is_called_a_tie_and_nothing_is_bold(tmp_path):
    text = "\n".join(finalists_section(write(tmp_path, entry("a", 0.05, [0.05, 0.06, 0.07]),
                                             entry("b", 0.05, [0.05, 0.06, 0.07]))))
    assert "tie exactly" in text and "beyond noise" not in text and "**" not in text


def test_an_unreadable_file_is_one_line_and_the_rest_is_kept(tmp_path):
    (tmp_path / "finalists.yaml").write_text(yaml.safe_dump({"finalists": [{"trial": 3}]}))
    lines = finalists_section(finalist_files([str(tmp_path)]))
    assert len([line for line in lines if line]) == 1 and "could not be read" in lines[0]


@pytest.mark.integration
def test_a_grids_finalists_never_enter_its_own_sections(tmp_path):
    """The grid's finalists are fresh-seed runs of its best configurations: counted as more seeds
    of the grid, they would change its best λs and its tests. The grid's sections must read the
    same before and after its finalists ran (but for the one test the finalists add to Holm's
    family, which can only raise the adjusted p-values), and runs.csv marks the finalists' runs."""
    grid = ["-m", "reg.lam=0,1e-3,3e-2", "reg.scope=weights,all", "seed=0,1", "trainer.steps=30",
            "trainer.eval_every=15", "model.width=16", "hydra.sweep.dir=S"]
    assert run_wdsweep(grid, cwd=tmp_path).returncode == 0
    before = run_analysis(tmp_path / "S", "--out", tmp_path / "before")
    ran = run_wdsweep([*grid, "hydra.sweeper.finalists=2", "hydra.sweeper.finalist_seeds=[7,8,9]"], cwd=tmp_path)
    assert ran.returncode == 0 and before.returncode == 0
    after = run_analysis(tmp_path / "S", "--out", tmp_path / "after")
    assert after.returncode == 0, after.stderr

    def grid_sections(folder: Path) -> str:
        text = (folder / "report.md").read_text()
        start = text.index("\n## ")
        return text[start:min(text.index(end) for end in ("\n## Finalists", "\n## Runs") if end in text)]

    before_text, after_text = grid_sections(tmp_path / "before"), grid_sections(tmp_path / "after")
    # The same choices on the same runs: the best-λ table, word for word.
    assert "## Best λ per regularizer" in before_text
    best = lambda text: text.split("## Best λ per regularizer")[1].split("\n## ")[0]  # noqa: E731
    assert best(after_text) == best(before_text)
    from analysis.choice import best_lambdas

    grid_runs = [pd.read_csv(tmp_path / name / "runs.csv") for name in ("before", "after")]
    tables = [best_lambdas(r[r["role"].isna()] if "role" in r else r) for r in grid_runs]  # no role: the grid's
    pd.testing.assert_frame_equal(tables[0], tables[1])
    # and the same comparisons: only the adjusted p-values see the finalists' one more test
    family = [int(re.search(r"Holm-adjusted over the (\d+) tests", text).group(1))
              for text in (before_text, after_text)]
    assert family[1] == family[0] + 1
    assert "## Finalists on fresh seeds" in (tmp_path / "after" / "report.md").read_text()
    runs = pd.read_csv(tmp_path / "after" / "runs.csv")
    finalist_runs = runs[runs["role"] == "finalist"]
    assert len(finalist_runs) == 2 * 3 and set(finalist_runs["seed"]) == {7, 8, 9}
    assert len(runs[runs["role"].isna()]) == 12


def test_under_mean_se_the_optimism_is_the_fresh_mean_against_the_searchs_plain_mean(tmp_path):
    """aggregate=mean_se ranks trials by mean + k * SE, a score above the mean: against it, fresh
    seeds that are worse than the search's mean would look better than the search."""
    import optuna

    from wdsweep.search.finalist_runs import _seed_mean
    from wdsweep.search.replicates import SEED_VALUES_ATTR

    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(value=0.07, user_attrs={SEED_VALUES_ATTR: {"0": [0.04], "1": [0.06]}},
                                              params={}, distributions={}))
    trial = study.trials[0]
    assert _seed_mean(trial) == pytest.approx(0.05)
    fresh = [0.060, 0.062, 0.061]
    rows = [finalists.seed_row(s, {"status": "completed", "val_error": v, "test_error": v}, v, None)
            for s, v in zip((5, 6, 7), fresh)]
    entry = finalists.summary("trial-00000", {}, trial.value, rows, search_mean=_seed_mean(trial))
    assert entry["fresh_minus_search"] == pytest.approx(np.mean(fresh) - 0.05)  # > 0: the search flattered it
    finalists.write(tmp_path, "minimize", [0, 1], [5, 6, 7], [entry])
    text = "\n".join(finalists_section(finalist_files([str(tmp_path)])))
    assert "optimistic by about 0.0110" in text and "winner's curse" in text
    assert "| 0.05000 (ranked by 0.07000) |" in text


def test_the_finalists_test_joins_the_reports_holm_family(tmp_path):
    """The best finalist against the runner-up is one more test of the report: its p is adjusted
    with the grid's (statsmodels' Holm over the raw p-values, computed here with scipy)."""
    from statsmodels.stats.multitest import multipletests

    from analysis.collect import status_counts
    from analysis.report import write_report

    best, close = [0.050, 0.060, 0.055, 0.052], [0.056, 0.063, 0.061, 0.055]
    files = write(tmp_path, entry("a", 0.05, best, seeds=(5, 6, 7, 8)), entry("b", 0.05, close, seeds=(5, 6, 7, 8)))
    finalist_p = stats.ttest_rel(close, best).pvalue
    # A grid whose three tests are known: weight-only at λ = 0.01 (best of all), global at 0.01,
    # no decay; weight-only against global, and each against no decay.
    test_errors = {"none": [0.080, 0.084, 0.079, 0.083], "weights": [0.070, 0.075, 0.069, 0.074],
                   "all": [0.074, 0.077, 0.073, 0.079]}
    val = {"none": 0.09, "weights": 0.05, "all": 0.06}
    rows = []
    for scope in ("weights", "all"):
        for lam, which in ((0.0, "none"), (0.01, scope)):
            for seed in range(4):
                rows.append({"status": "completed", "seed": seed, "reg.lam": lam, "reg.p": 2.0, "reg.mode": "coupled",
                             "reg.scope": scope, "val_error": val[which] + seed * 1e-3,
                             "test_error": test_errors[which][seed]})
    runs = pd.DataFrame(rows)
    raw = [stats.ttest_rel(test_errors[a], test_errors[b]).pvalue
           for a, b in (("weights", "all"), ("weights", "none"), ("all", "none"))] + [finalist_p]
    expected = multipletests(raw, method="holm")[1][-1]
    text = write_report(runs, status_counts(runs), [], tmp_path, "python -m analysis x", [], (), files).read_text()
    line = [t for t in text.splitlines() if t.startswith("Best on fresh validation error")][0]
    assert "Holm-adjusted over the report's 4 tests" in line
    assert float(re.search(r"p = ([0-9.]+)", line).group(1)) == pytest.approx(expected, rel=0.05)
    assert "Holm-adjusted over the 4 tests of this report" in text  # the grid's own sentence counts it too


def test_the_finalist_cut_never_splits_an_exact_tie_and_a_fixed_data_seed_is_said(tmp_path):
    from wdsweep.search.finalists import cut_with_ties

    ranked = [("a", 0.10), ("b", 0.20), ("c", 0.20), ("d", 0.20 + 1e-9), ("e", 0.3)]
    assert [n for n, _ in cut_with_ties(ranked, 2, lambda item: item[1])] == ["a", "b", "c", "d"]
    assert [n for n, _ in cut_with_ties(ranked, 1, lambda item: item[1])] == ["a"]
    # ties are relative to the values' scale: small-unit MSEs 25x apart are no tie
    small = [("x", 1.26e-10), ("y", 3.1e-9)]
    assert [n for n, _ in cut_with_ties(small, 1, lambda item: item[1])] == ["x"]
    files = write(tmp_path, entry("a", 0.05, [0.05, 0.06, 0.055]))
    text = "\n".join(finalists_section(files, data_seeds=["3"]))
    assert "data.seed is fixed (3)" in text and "not independent of the selection" in text
    assert "data.seed is fixed" not in "\n".join(finalists_section(files))


def test_the_sweepers_finalist_line_never_shows_an_error_interval_below_0():
    from wdsweep.search.finalists import interval, log_line

    wide = {"name": "trial-00001", "search_value": 0.7, "fresh": {"objective": interval([0.05, 1.45])}}
    assert wide["fresh"]["objective"]["low"] < 0  # the raw t-interval of two seeds this far apart
    assert "95% interval [0 (cut at 0), " in log_line(wide)
    narrow = {"name": "trial-00002", "search_value": 0.7, "fresh": {"objective": interval([0.70, 0.72])}}
    assert "cut at 0" not in log_line(narrow)
