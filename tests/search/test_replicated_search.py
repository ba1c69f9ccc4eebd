"""Replicated search (hydra.sweeper.seeds), the Wilcoxon pruner between seeds, and finalists on
fresh seeds, with real studies in real journals driven by `python -m wdsweep -m search=optuna`.
Every number is checked against what the jobs wrote (their metrics.json) and against Optuna's
own study and scipy, never against the sweeper's own arithmetic."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState
from scipy import stats

from conftest import read_metrics, run_analysis, run_wdsweep, shared_folder
from test_optuna_search import QUICK, only_study, results_files

# One batch of three trials, two seeds each, on the vectorized launcher; then the two best on
# two fresh seeds.
REPLICATED = ["hydra/launcher=vectorized", "hydra.sweeper.seeds=[0,1]", "hydra.sweeper.aggregate=mean_se",
              "hydra.sweeper.se_k=1.5", "hydra.sweeper.n_jobs=3", "hydra.sweeper.finalists=2",
              "hydra.sweeper.finalist_seeds=2"]


def search(cwd: Path, *args: str, n_trials: int = 3):
    return run_wdsweep(["-m", "search=optuna", f"hydra.sweeper.n_trials={n_trials}", "hydra.sweeper.sampler.seed=0",
                        *QUICK, *args], cwd=cwd)


@pytest.fixture(scope="module")
def replicated(tmp_path_factory, worker_id):
    def build(cwd: Path) -> None:
        proc = search(cwd, *REPLICATED)
        assert proc.returncode == 0, proc.stderr

    cwd = shared_folder(tmp_path_factory, worker_id, "replicated", build)
    (results,) = results_files(cwd)
    return cwd, results.parent, only_study(cwd)


@pytest.mark.integration
def test_each_trial_is_told_the_aggregate_of_its_seeds_runs(replicated):
    _, sweep, study = replicated
    assert len(study.trials) == 3 and all(t.state == TrialState.COMPLETE for t in study.trials)
    for trial in study.trials:
        folder = sweep / f"trial-{trial.number:05d}"
        runs = {s: read_metrics(folder / f"seed-{s}") for s in (0, 1)}
        for s, record in runs.items():
            assert record["config"]["seed"] == s and record["status"] == "completed"
            assert record["optuna"] == {"study": study.study_name, "trial_id": trial._trial_id, "role": "replicate"}
            assert record["config"]["reg"]["lam"] == pytest.approx(trial.params["reg.lam"])
        values = np.array([runs[s]["objective"] for s in (0, 1)])
        # mean_se with se_k=1.5: the mean plus 1.5 standard errors (minimizing: towards worse)
        expected = values.mean() + 1.5 * values.std(ddof=1) / math.sqrt(len(values))
        assert trial.value == pytest.approx(expected, rel=1e-12)
        assert trial.intermediate_values == {s: pytest.approx(runs[s]["objective"]) for s in (0, 1)}
        assert trial.user_attrs["wdsweep_test_error"] == pytest.approx(
            np.mean([r["test_error"] for r in runs.values()]))
    # the three trials' six seeds were trained as one batched model
    assert all(read_metrics(p.parent).get("batched") for p in sweep.glob("trial-*/seed-*/metrics.json"))
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["seeds"] == [0, 1] and results["best_trial_number"] == study.best_trial.number


@pytest.mark.integration
def test_finalists_are_the_best_trials_rerun_on_fresh_seeds(replicated):
    _, sweep, study = replicated
    report = yaml.safe_load((sweep / "finalists.yaml").read_text())
    best_two = sorted(study.trials, key=lambda t: t.value)[:2]  # Optuna's own ranking
    assert [f["trial"] for f in report["finalists"]] == [t.number for t in best_two]
    assert report["fresh_seeds"] == [2, 3] and not set(report["fresh_seeds"]) & {0, 1}
    for finalist, trial in zip(report["finalists"], best_two):
        runs = [read_metrics(sweep / "finalists" / f"trial-{trial.number:05d}" / f"seed-{s}") for s in (2, 3)]
        assert [r["config"]["seed"] for r in runs] == [2, 3]
        assert runs[0]["config"]["reg"]["lam"] == pytest.approx(trial.params["reg.lam"])
        assert all(r["optuna"]["role"] == "finalist" for r in runs)
        for key in ("val_error", "test_error"):
            values = [r[key] for r in runs]
            low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
            fresh = finalist["fresh"][key]
            assert fresh["mean"] == pytest.approx(np.mean(values)) and fresh["n"] == 2
            assert (fresh["low"], fresh["high"]) == (pytest.approx(low), pytest.approx(high))
        assert finalist["search_value"] == trial.value and finalist["name"] == f"trial-{trial.number:05d}"
        # aggregate=mean_se ranks by mean + k*SE; the optimism is measured from the plain mean of the
        # trial's seeds (Optuna holds each seed's value as an intermediate value)
        search_mean = np.mean(list(trial.intermediate_values.values()))
        assert len(trial.intermediate_values) == 2 and trial.value > search_mean
        assert finalist["search_mean"] == pytest.approx(search_mean)
        assert finalist["fresh_minus_search"] == pytest.approx(np.mean([r["objective"] for r in runs]) - search_mean)
    # the finalists are not trials: the study still holds the three searched ones
    assert len(only_study(replicated[0]).trials) == 3


@pytest.mark.integration
def test_the_analysis_keeps_seed_runs_and_finalists_apart_from_the_trials(replicated, tmp_path):
    _, sweep, study = replicated
    proc = run_analysis(sweep, "--out", tmp_path / "report")
    assert proc.returncode == 0, proc.stderr
    runs = pd.read_csv(tmp_path / "report" / "runs.csv")
    own = runs[runs["role"].isna()]
    # one row per trial, holding what the study was told, not one seed's run
    assert sorted(own["trial"]) == [0, 1, 2]
    for trial in study.trials:
        (row,) = own[own["trial"] == trial.number].to_dict("records")
        assert row["objective"] == pytest.approx(trial.value)
    seeds = runs[runs["role"] == "replicate"]
    assert sorted(zip(seeds["trial"], seeds["seed"])) == [(t, s) for t in (0, 1, 2) for s in (0, 1)]
    assert len(runs[runs["role"] == "finalist"]) == 4
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Finalists on fresh seeds" in report
    table = report.split("## Finalists on fresh seeds")[1]
    for finalist in yaml.safe_load((sweep / "finalists.yaml").read_text())["finalists"]:
        assert (f"| {finalist['name']} | {finalist['search_mean']:.4f} (ranked by {finalist['search_value']:.4f}) |"
                in table)
    assert f"| {study.study_name} | 3 |" in report  # its trials, not its 6 seed runs and 4 finalist runs


@pytest.mark.integration
def test_a_study_is_not_resumed_with_other_seeds(replicated):
    cwd, _, study = replicated
    proc = search(cwd, *REPLICATED[:1], "hydra.sweeper.seeds=[0,1,2]", f"hydra.sweeper.study_name={study.study_name}",
                  "hydra.sweep.dir=multirun/other", n_trials=4)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert "seeds [0, 1]" in line and "seeds [0, 1, 2]" in line and "study_name" in line
    assert len(only_study(cwd).trials) == 3  # nothing was asked


@pytest.mark.integration
def test_the_wilcoxon_pruner_stops_a_trial_that_is_worse_on_the_same_seeds(tmp_path):
    # A good point first, then one that decays every weight to nothing; 4 seeds, pruning allowed
    # from the 2nd (with 2 paired seeds the smallest one-sided Wilcoxon p is 0.25).
    good, bad = "{reg.lam: 1e-6, reg.p: 2.0, reg.mode: coupled, reg.scope: weights}", \
        "{reg.lam: 0.1, reg.p: 1.0, reg.mode: coupled, reg.scope: all}"
    proc = search(tmp_path, "hydra.sweeper.seeds=4", "hydra/sweeper/pruner=wilcoxon",
                  "hydra.sweeper.pruner.p_threshold=0.3", f"+hydra.sweeper.enqueue=[{good},{bad}]", n_trials=2)
    assert proc.returncode == 0, proc.stderr
    study = only_study(tmp_path)
    first, second = study.trials
    assert first.state == TrialState.COMPLETE and second.state == TrialState.PRUNED
    (sweep,) = {p.parent for p in results_files(tmp_path)}
    ran = sorted(p.name for p in (sweep / "trial-00001").iterdir())
    assert ran == ["seed-0", "seed-1"]  # pruned after its second seed: seeds 2 and 3 never trained
    assert len(list((sweep / "trial-00000").iterdir())) == 4
    steps = sorted(second.intermediate_values)
    worse = [second.intermediate_values[s] - first.intermediate_values[s] for s in steps]
    assert stats.wilcoxon(worse, alternative="greater").pvalue < 0.3  # scipy agrees it is worse


@pytest.mark.integration
@pytest.mark.parametrize("args,key", [
    (["hydra.sweeper.seeds=2", "hydra/sweeper/pruner=median"], "hydra/sweeper/pruner='median'"),
    (["hydra/sweeper/pruner=wilcoxon"], "hydra/sweeper/pruner='wilcoxon'"),
    (["hydra.sweeper.seeds=[0,0]"], "hydra.sweeper.seeds=[0, 0]"),
    (["hydra.sweeper.seeds=[0,1]", "hydra.sweeper.finalist_seeds=[1,5]"], "hydra.sweeper.finalist_seeds=[1, 5]"),
])
def test_bad_replication_settings_are_one_line_before_any_trial(tmp_path, args, key):
    proc = search(tmp_path, *args)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert key in line and "is not allowed" in line
    assert not (tmp_path / "multirun" / "optuna").exists() or not any(
        (tmp_path / "multirun" / "optuna").glob("*.journal"))


@pytest.mark.integration
def test_a_grid_reruns_its_best_configurations_on_fresh_seeds(tmp_path):
    proc = run_wdsweep(["-m", "reg.lam=0,1e-3,3e-2", "reg.p=1", "seed=0,1", *QUICK, "hydra.sweeper.finalists=2",
                    "hydra.sweeper.finalist_seeds=[7,8]", "hydra.sweep.dir=multirun/grid"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    sweep = tmp_path / "multirun" / "grid"
    grid = [read_metrics(p.parent) for p in sweep.glob("*/metrics.json")]  # finalists/ is one level down
    assert len(grid) == 6
    by_lam: dict = {}
    for record in grid:
        by_lam.setdefault(record["config"]["reg"]["lam"], []).append(record["objective"])
    ranked = sorted(by_lam, key=lambda lam: np.mean(by_lam[lam]))[:2]
    report = yaml.safe_load((sweep / "finalists.yaml").read_text())
    assert report["search_seeds"] == [0, 1] and report["fresh_seeds"] == [7, 8]
    assert len(report["finalists"]) == 2
    for finalist, lam in zip(report["finalists"], ranked):
        assert finalist["search_value"] == pytest.approx(np.mean(by_lam[lam]))
        runs = [read_metrics(p.parent)
                for p in sorted((sweep / "finalists" / finalist["name"]).glob("seed-*/metrics.json"))]
        assert [r["config"]["seed"] for r in runs] == [7, 8]
        assert all(r["config"]["reg"]["lam"] == lam for r in runs)
        values = [r["test_error"] for r in runs]
        low, high = stats.t.interval(0.95, 1, loc=np.mean(values), scale=stats.sem(values))
        fresh = finalist["fresh"]["test_error"]
        assert (fresh["mean"], fresh["low"], fresh["high"]) == (pytest.approx(np.mean(values)), pytest.approx(low),
                                                                pytest.approx(high))


@pytest.mark.integration
def test_a_replicated_trial_whose_sweep_was_killed_is_told_from_its_seeds_records(tmp_path):
    # The state a SIGKILL between the seeds' last metrics.json and the tell leaves: a RUNNING
    # replicated trial whose seed jobs all finished. Built with Optuna and two real seed jobs.
    from optuna.storages.journal import JournalFileBackend

    from wdsweep.search.trials import REPLICATION_ATTR
    from wdsweep.tracking.trial_link import ENV_ROLE, ENV_STORAGE, ENV_STUDY, ENV_TRIAL

    journal = tmp_path / "multirun" / "optuna" / "orphan.journal"
    journal.parent.mkdir(parents=True)
    study = optuna.create_study(study_name="orphan", storage=optuna.storages.JournalStorage(
        JournalFileBackend(str(journal))))
    study.set_user_attr(REPLICATION_ATTR, {"seeds": [0, 1], "aggregate": "mean"})
    trial = study.ask()
    folder = tmp_path / "multirun" / "killed" / "trial-00000"
    trial.set_user_attr("wdsweep_seeds", [0, 1])
    trial.set_user_attr("wdsweep_job_dir", str(folder))
    env = {ENV_STORAGE: str(journal), ENV_STUDY: "orphan", ENV_TRIAL: str(trial._trial_id), ENV_ROLE: "replicate"}
    jobs = run_wdsweep(["-m", "seed=0,1", *QUICK, f"hydra.sweep.dir={folder}", "hydra.sweep.subdir=seed-${seed}"],
                       cwd=tmp_path, env_extra=env)
    assert jobs.returncode == 0, jobs.stderr

    proc = search(tmp_path, "hydra.sweeper.seeds=[0,1]", "hydra.sweeper.study_name=orphan", n_trials=1)
    assert proc.returncode == 0, proc.stderr
    (told,) = only_study(tmp_path).trials  # settled, and the budget of 1 is then spent
    objectives = [read_metrics(folder / f"seed-{s}")["objective"] for s in (0, 1)]
    assert told.state == TrialState.COMPLETE and told.value == pytest.approx(np.mean(objectives))
    assert told.intermediate_values == {0: pytest.approx(objectives[0]), 1: pytest.approx(objectives[1])}
