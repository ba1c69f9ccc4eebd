"""Runs of different data sets or error metrics are never ranked together (analysis/groups.py):
a report per group, and a top report.md naming them."""
from __future__ import annotations

import pandas as pd
import pytest
from test_output import TINY

from analysis.groups import apart, groups_of

from conftest import run_analysis, shared_sweep

pytestmark = pytest.mark.integration
MSE, RATE = "mean squared error", "error rate (1 - accuracy)"


def test_runs_group_by_data_set_task_and_metric_and_rows_that_say_nothing_join_theirs():
    runs = pd.DataFrame([
        {"sweep": "a", "data.name": "regression1d"},  # made before metrics.json said its task
        {"sweep": "a", "data.name": "regression1d", "task": "regression", "error_metric": MSE},
        {"sweep": "b", "data.name": "moons", "task": "classification", "error_metric": RATE, "study": "s"},
        {"sweep": "b", "study": "s"},  # a trial whose job folder is gone: its study's data set
        {"sweep": "c", "data.name": "csv", "data.path": "x/my.csv", "task": "regression", "error_metric": MSE},
        {"sweep": "c", "data.name": "csv", "data.path": "x/my.csv", "task": "classification", "error_metric": RATE},
    ])
    groups = groups_of(runs)
    assert [(g.data, g.task, g.metric, list(g.runs.index)) for g in groups] == [
        ("regression1d", "regression", MSE, [0, 1]), ("moons", "classification", RATE, [2, 3]),
        ("csv (my.csv)", "regression", MSE, [4]), ("csv (my.csv)", "classification", RATE, [5])]
    assert len({g.slug for g in groups}) == 4
    # sweep c holds two groups: no command analyses one of them alone
    assert apart(groups) == [["a"], ["b"], [], []]
    assert [g.label for g in groups_of(runs.iloc[[0, 1]])] == [f"regression1d · {MSE}"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Two jobs on regression1d (the default data), shared with test_output.py."""
    return shared_sweep(tmp_path_factory, "analysis-tiny", TINY)


@pytest.fixture(scope="module")
def moons(tmp_path_factory):
    return shared_sweep(tmp_path_factory, "analysis-tiny-moons", ["data=moons", *TINY])


def test_two_unrelated_sweeps_get_a_report_each_and_an_index(tmp_path, moons, tiny):
    out = tmp_path / "out"
    proc = run_analysis(tiny, moons, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "4 runs of 2 data sets or error metrics, each with a report of its own" in proc.stdout
    index = (out / "report.md").read_text()
    assert "## Lowest validation error" not in index and "λ" not in index
    for folder, data, error in (("regression1d-regression", "regression1d", "the mean squared error of a regression"),
                                ("moons-classification", "moons", "the error rate (1 − accuracy) of a classification")):
        assert f"[{folder}/report.md]({folder}/report.md)" in index
        assert f"`python -m analysis {tiny if data == 'regression1d' else moons}`" in index
        report = (out / folder / "report.md").read_text()
        assert "## Lowest validation error" in report and (out / folder / "test_error_vs_lambda.png").is_file()
        assert f"\nError: {error}.\n" in report  # of its own runs only
        (sweeps,) = [line for line in report.splitlines() if line.startswith("Sweep")]
        assert sweeps.startswith("Sweep: ") and ("data=moons" in sweeps) == (data == "moons")
        assert set(pd.read_csv(out / folder / "runs.csv")["data.name"]) == {data}
    assert len(pd.read_csv(out / "runs.csv")) == 4
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # the staging folder is gone
    assert not (out / "test_error_vs_lambda.png").exists()  # no chart of both
