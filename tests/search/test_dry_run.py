"""hydra.sweeper.dry_run: the grid a sweep would run, what resume would skip and why, with
nothing trained or written, through real `python -m wdsweep -m` processes."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import read_metrics, run_wdsweep

pytestmark = pytest.mark.integration

QUICK = ["trainer.steps=20", "trainer.eval_every=10", "model.depth=1", "model.width=16"]


def tree(folder: Path) -> dict:
    """Every file under `folder` with its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_a_dry_run_lists_what_would_train_and_what_is_skipped_and_writes_nothing(tmp_path):
    sweep = tmp_path / "multirun" / "grid"
    dry = run_wdsweep(["-m", "reg.lam=0,1e-3", "reg.p=1,2", *QUICK, "hydra.sweeper.dry_run=true",
                   f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "4 jobs" in dry.stdout and "3 would train" in dry.stdout and "1 would be records" in dry.stdout
    assert not (tmp_path / "multirun").exists() and not (tmp_path / "outputs").exists()

    real = run_wdsweep(["-m", "reg.lam=0,1e-3", "reg.p=1", *QUICK, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert real.returncode == 0, real.stderr
    (done_job,) = [p.parent for p in sweep.glob("*reg.lam=0.001*/metrics.json")]
    before = tree(tmp_path)
    dry = run_wdsweep(["-m", "reg.lam=0,1e-3", "reg.p=1,2", *QUICK, "hydra.sweeper.dry_run=true",
                   f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert tree(tmp_path) == before  # not a file added, changed or touched
    lines = {line.split()[1]: line for line in dry.stdout.splitlines() if line.lstrip().startswith("#")}
    assert "skip: done" in lines[done_job.name] and read_metrics(done_job)["status"] == "completed"
    assert "2 already done" in dry.stdout and "1 would train" in dry.stdout
    (p2,) = [line for name, line in lines.items() if "reg.lam=0.001" in name and "reg.p=2" in name]
    assert p2.rstrip().endswith("train")


def test_an_optuna_dry_run_says_what_the_study_holds_and_asks_nothing(tmp_path):
    import optuna
    from optuna.storages.journal import JournalFileBackend

    journal = tmp_path / "multirun" / "optuna" / "planned.journal"
    journal.parent.mkdir(parents=True)
    study = optuna.create_study(study_name="planned", storage=optuna.storages.JournalStorage(
        JournalFileBackend(str(journal))))
    study.optimize(lambda t: t.suggest_float("reg.lam", 1e-6, 1e-1, log=True), n_trials=2)
    before = tree(tmp_path)
    dry = run_wdsweep(["-m", "search=optuna", "hydra.sweeper.study_name=planned", "hydra.sweeper.n_trials=5",
                   "hydra.sweeper.n_jobs=2", "hydra.sweeper.dry_run=true", *QUICK], cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    first = dry.stdout.splitlines()[0]
    assert "2 trials already (2 complete)" in first and "up to 3 more" in first and "2 at a time" in first
    assert "search reg.lam: FloatDistribution" in dry.stdout and ": valid" in dry.stdout
    assert tree(tmp_path) == before and len(study.trials) == 2  # nothing asked, no sweep folder made


def test_a_dry_run_on_a_storage_url_shows_no_password_and_opens_nothing(tmp_path):
    secret = "Dry-Run-Secret-271"
    dry = run_wdsweep(["-m", "search=optuna", "hydra.sweeper.dry_run=true",
                   f"hydra.sweeper.storage=postgresql://me:{secret}@127.0.0.1:1/studies"], cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert secret not in dry.stdout + dry.stderr and "postgresql://me:***@127.0.0.1:1/studies" in dry.stdout
    assert "not opened" in dry.stdout and not any(tmp_path.iterdir())  # port 1: a connection would have failed
