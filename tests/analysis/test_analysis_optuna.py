"""Optuna searches as analysis input, on real searches with real journals.

Two real studies, each made by `python -m wdsweep -m search=optuna` subprocesses once per test
session (a file lock shares them between the xdist workers): a single-objective study run to 3
trials and resumed to 8 (two sweep folders, one journal; 8 trials so that the continuous reg.p
takes more distinct values than analysis.figures.CONTINUOUS_AFTER), and a multi-objective one.
The analysis itself runs in this process.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import matplotlib.image as mpimg
import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.storages.journal import JournalFileBackend

from analysis.collect import collect
from analysis.figures import CONTINUOUS_AFTER, continuous_keys, headline_chart
from analysis.study import IMPORTANCE_SEED, MIN_TRIALS_FOR_IMPORTANCES, LoadedStudy, summarize

from conftest import read_metrics, run_analysis, run_wdsweep, shared_folder

pytestmark = pytest.mark.integration
QUICK = ["trainer.steps=30", "trainer.eval_every=10", "model.depth=1", "model.width=16"]
PLOTS = ("history", "slice", "parallel", "contour", "importances")


def _search(root: Path, *args: str) -> None:
    proc = run_wdsweep(["-m", "search=optuna", *QUICK, *args], cwd=root)
    assert proc.returncode == 0, proc.stderr


def _load(journal: Path) -> optuna.Study:
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def _study_folders(root: Path) -> SimpleNamespace:
    sweeps = sorted(p.parent for p in (root / "multirun").glob("*/*/optimization_results.yaml"))
    (journal,) = (root / "multirun" / "optuna").glob("*.journal")
    return SimpleNamespace(root=root, sweeps=sweeps, journal=journal, study=_load(journal))


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, worker_id) -> SimpleNamespace:
    """The stock search (continuous reg.p, default study name), 3 trials, then the same command
    resumed to 8: two dated sweep folders, one journal."""
    def build(root: Path) -> None:
        _search(root, "hydra.sweeper.n_trials=3")
        _search(root, "hydra.sweeper.n_trials=8")

    found = _study_folders(shared_folder(tmp_path_factory, worker_id, "analysis-optuna-resumed", build))
    assert len(found.sweeps) == 2 and len(found.study.trials) == 8
    return found


@pytest.fixture(scope="module")
def resumed_report(resumed, tmp_path_factory) -> Path:
    """python -m analysis on the second folder alone (it names neither the first nor the journal)."""
    out = tmp_path_factory.mktemp("resumed-report")
    proc = run_analysis(resumed.sweeps[1], "--out", out)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return out


@pytest.fixture(scope="module")
def multi(tmp_path_factory, worker_id) -> SimpleNamespace:
    def build(root: Path) -> None:
        _search(root, "hydra.sweeper.n_trials=6", "hydra.sweeper.direction=[minimize,minimize]",
                "objective=[val_error,weight_norm]")

    return _study_folders(shared_folder(tmp_path_factory, worker_id, "analysis-optuna-multi", build))


def test_a_resumed_study_is_every_trial_once_from_any_of_its_sources(resumed, tmp_path):
    first, second = resumed.sweeps
    numbers = {t.number: t for t in resumed.study.trials}
    for sources in ([first], [second], [resumed.journal], [first, resumed.journal],
                    [second, first, resumed.journal], [resumed.root / "multirun"]):
        found = collect(sources)
        runs = found.runs
        assert found.problems == [], (sources, found.problems)
        assert sorted(runs["trial"]) == list(range(8)), sources
        for _, row in runs.iterrows():  # each joined with its own job's metrics.json
            job = Path(row["sweep"]) / row["job"]  # the invocation that ran it
            assert job.parent.resolve() == (first if row["trial"] < 3 else second).resolve(), (sources, job)
            record = read_metrics(job)
            assert record["optuna"]["trial_id"] == numbers[row["trial"]]._trial_id
            assert row["test_error"] == record["test_error"] == numbers[row["trial"]].user_attrs["wdsweep_test_error"]
            assert row["reg.p"] == record["config"]["reg"]["p"]
            assert row["status"] == "completed" and row["trial_state"] == "COMPLETE"

    # A copy of the tree (the original still there): the copy's folders and journal are read.
    copy = tmp_path / "copy"
    shutil.copytree(resumed.root / "multirun", copy / "multirun")
    runs = collect([copy / "multirun" / first.relative_to(resumed.root / "multirun")]).runs
    assert sorted(runs["trial"]) == list(range(8))
    assert all(Path(s).resolve().is_relative_to(copy.resolve()) for s in runs["sweep"])


def test_continuous_p_is_one_panel_per_setting_with_a_colorbar(resumed, tmp_path):
    runs = collect([resumed.sweeps[0]]).runs
    assert runs["reg.p"].nunique() == 8 > CONTINUOUS_AFTER
    assert continuous_keys(runs) == ["reg.p"]
    # A grid's few p values keep the grid chart (no continuous key)
    assert continuous_keys(runs.assign(**{"reg.p": runs["reg.p"].round()})) == []

    points, files = headline_chart(runs, tmp_path)
    settings = runs[["reg.mode", "reg.scope"]].drop_duplicates()
    assert len(points) == 8 and points["panel"].nunique() == len(settings) >= 2
    for _, setting in settings.iterrows():  # each panel holds the runs of its (mode, scope)
        label = f"mode = {setting['reg.mode']} · scope = {setting['reg.scope']}"
        assert sorted(points.loc[points["panel"] == label, "reg.p"]) == sorted(
            runs.loc[(runs["reg.mode"] == setting["reg.mode"]) & (runs["reg.scope"] == setting["reg.scope"]),
                     "reg.p"])
    (png,) = [f for f in files if f.suffix == ".png"]
    image = mpimg.imread(png)[..., :3]
    height, width = image.shape[:2]
    assert 600 < width <= 2600 and 400 < height <= 2400, (width, height)  # one panel per p was 18878 px wide
    assert _colorbar_columns(image) > 0, "no viridis colorbar in the chart"


def _colorbar_columns(image: np.ndarray) -> int:
    """Columns of the image's right quarter whose pixels run through most of viridis: a colorbar
    (a scatter point is a few pixels of one colour)."""
    viridis = matplotlib.colormaps["viridis"](np.linspace(0, 1, 64))[:, :3]
    right = image[::2, int(image.shape[1] * 0.75):]
    distance = np.linalg.norm(right[..., None, :] - viridis[None, None], axis=-1)
    nearest = np.where(distance.min(axis=-1) < 0.04, distance.argmin(axis=-1), -1)
    spans = [len(set(column) - {-1}) for column in nearest.T]
    return sum(span > 40 for span in spans)


def test_each_study_plot_is_drawn_and_linked_and_the_importances_are_optunas(resumed, resumed_report):
    report = (resumed_report / "report.md").read_text()
    name = resumed.study.study_name
    for plot in PLOTS:
        png = resumed_report / f"optuna_{name}_{plot}.png"
        assert png.is_file() and png.stat().st_size > 5_000 and mpimg.imread(png).std() > 0.05, plot
        assert f"]({png.name})" in report, plot
    table = re.search(r"Parameter importances for val_error .*?\n\n\| parameter \| importance \|\n\|---\|---\|\n"
                      r"((?:\|.*\|\n)+)", report)
    assert table, report
    shown = [line.strip("| ").split(" | ") for line in table.group(1).splitlines()]
    expected = optuna.importance.get_param_importances(
        resumed.study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=IMPORTANCE_SEED))
    assert [param for param, _ in shown] == list(expected)
    assert [float(share) for _, share in shown] == pytest.approx(list(expected.values()), abs=6e-4)
    runs = pd.read_csv(resumed_report / "runs.csv")
    assert sorted(runs["trial"]) == list(range(8))  # the second folder alone gave both invocations


def test_the_reports_best_trial_is_the_studys_own(resumed, resumed_report):
    study = resumed.study
    best = study.best_trial
    (row,) = [line for line in (resumed_report / "report.md").read_text().splitlines()
              if line.startswith(f"| {study.study_name} | 8 | ")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    ties = [t.number for t in study.trials if t.number != best.number and t.value == best.value]
    assert cells[2] == str(best.number) + (f" (ties: {', '.join(map(str, ties))})" if ties else "")
    assert float(cells[3]) == pytest.approx(best.value, abs=1e-4)
    assert float(cells[4]) == pytest.approx(best.user_attrs["wdsweep_test_error"], abs=1e-4)


def test_a_tie_names_the_studys_best_and_the_tying_trials(tmp_path):
    """Two trials with one value (a twin told another's result): the best is Optuna's, the other a tie."""
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    for lam, value in ((1e-3, 0.5), (1e-2, 0.2), (1e-1, 0.2), (1.0, 0.7)):
        study.add_trial(optuna.trial.create_trial(
            params={"reg.lam": lam},
            distributions={"reg.lam": optuna.distributions.FloatDistribution(1e-4, 10, log=True)},
            value=value))
    summary = summarize(LoadedStudy(study, "in memory", []), tmp_path)
    assert summary.best == study.best_trial.number == 1 and summary.ties == [2]
    # four complete trials: too few for importances, said in one line; reg.p is not searched: no contour
    assert any(line.startswith("importances: 4 complete trial(s), fewer than "
                               f"{MIN_TRIALS_FOR_IMPORTANCES}") for line in summary.skipped), summary.skipped
    assert any(line.startswith("contour: reg.lam and reg.p are not both searched") for line in summary.skipped)
    assert summary.importances == {} and {p.name for p in summary.plots.values()} == {
        f"optuna_{study.study_name}_{plot}.png" for plot in ("history", "slice", "parallel")}


def test_a_multi_objective_study_gets_its_plots_per_objective(multi, tmp_path):
    proc = run_analysis(multi.sweeps[0], "--out", tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    report = (tmp_path / "report.md").read_text()
    name = multi.study.study_name
    front = ", ".join(str(n) for n in sorted(t.number for t in multi.study.best_trials))
    assert f"| {name} | 6 | multi-objective: no single best (its Pareto front: trials {front};" in report
    for i, objective in enumerate(("val_error", "weight_norm")):
        for plot in PLOTS:
            png = tmp_path / f"optuna_{name}_{plot}-{i}.png"
            assert png.is_file() and f"]({png.name})" in report, (plot, i)
        assert f"Parameter importances for {objective} " in report
    expected = optuna.importance.get_param_importances(
        multi.study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=IMPORTANCE_SEED),
        target=lambda t: t.values[1])
    table = report.split("Parameter importances for weight_norm ")[1].split("\n\n")[1]
    assert [line.split(" | ")[0].strip("| ") for line in table.splitlines()[2:]] == list(expected)
    assert len(pd.read_csv(tmp_path / "runs.csv")) == 6


def test_a_killed_sweeps_folder_finds_its_study_and_a_lost_journal_is_one_line(resumed, tmp_path):
    first = resumed.sweeps[0]
    # A sweep killed before its optimization_results.yaml: its trials' links name the study.
    killed = tmp_path / "killed" / first.name
    shutil.copytree(first, killed)
    (killed / "optimization_results.yaml").unlink()
    found = collect([killed])
    assert found.problems == [] and sorted(found.runs["trial"]) == list(range(8))
    # A folder whose journal is nowhere: its own trials, by their folders, and one line saying why.
    lost = tmp_path / "lost" / first.name
    shutil.copytree(first, lost)
    results = lost / "optimization_results.yaml"
    results.write_text(results.read_text().replace(str(resumed.journal), str(tmp_path / "gone.journal")))
    for hydra_yaml in lost.glob("trial-*/.hydra/hydra.yaml"):
        hydra_yaml.unlink()
    found = collect([lost])
    (line,) = found.problems
    assert line.startswith(f"{lost}: its study {resumed.study.study_name!r} lives in {tmp_path / 'gone.journal'} "
                           "that is not there")
    assert sorted(found.runs["trial"]) == [0, 1, 2] and set(found.runs["study"]) == {resumed.study.study_name}
