"""Sweep folders made by an earlier wdsweep still resume: the job configs, their `_target_`
paths and config_hash, the job folders' names and the derived Optuna study name are a contract
with every sweep already on disk. tests/jobs/fixtures/made_before_the_wings holds a grid and an
Optuna search written before the code moved into sub-packages (commit f7116d3):

    python -m wdsweep -m reg.p=1,2 trainer.steps=20 trainer.eval_every=10 model.width=8 hydra.sweep.dir=grid
    python -m wdsweep -m search=optuna hydra.sweeper.n_trials=2 trainer.steps=20 trainer.eval_every=10 \
        model.width=8 hydra.sweep.dir=optuna
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import job_dirs, read_metrics, run_wdsweep

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parent / "fixtures" / "made_before_the_wings"
FAST = ["trainer.steps=20", "trainer.eval_every=10", "model.width=8"]


def records(sweep: Path) -> dict:
    return {job.name: read_metrics(job) for job in job_dirs(sweep)}


def test_an_old_grid_sweep_resumes_without_training_again(tmp_path):
    shutil.copytree(FIXTURE, tmp_path, dirs_exist_ok=True)
    before = records(tmp_path / "grid")
    assert len(before) == 2
    rerun = run_wdsweep(["-m", "reg.p=1,2", *FAST, "hydra.sweep.dir=grid"], cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "skipped 2 of 2 (already done)" in rerun.stdout + rerun.stderr
    assert records(tmp_path / "grid") == before  # not one job trained again


def test_an_old_optuna_search_reopens_its_study(tmp_path):
    shutil.copytree(FIXTURE, tmp_path, dirs_exist_ok=True)
    journal = tmp_path / "multirun" / "optuna" / "wdsweep-9a8e4d85a2.journal"
    before = records(tmp_path / "optuna")
    journal_before = journal.read_bytes()
    args = ["-m", "search=optuna", *FAST, "hydra.sweep.dir=optuna"]
    same = run_wdsweep([*args, "hydra.sweeper.n_trials=2"], cwd=tmp_path)
    assert same.returncode == 0, same.stderr
    assert records(tmp_path / "optuna") == before
    # One trial more: the derived study name found the old study, so it is trial 2.
    grown = run_wdsweep([*args, "hydra.sweeper.n_trials=3"], cwd=tmp_path)
    assert grown.returncode == 0, grown.stderr
    after = records(tmp_path / "optuna")
    assert sorted(after) == ["trial-00000", "trial-00001", "trial-00002"]
    assert {k: after[k] for k in before} == before
    assert journal.read_bytes().startswith(journal_before)
