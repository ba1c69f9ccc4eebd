"""A local MLflow SQLite store whose creation was cut short by a full disk (a real tmpfs):
the export command the warning names recovers it once there is room again
(wdsweep/tracking/mlflow_sqlite.py)."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from wdsweep.tracking.mlflow_export import export_folders

from conftest import mounted_tmpfs


def finished_job(folder: Path) -> Path:
    """A job folder as a finished job leaves it (no training: what the export reads)."""
    (folder / ".hydra").mkdir(parents=True)
    config = {"logger": {"name": "mlflow"}, "reg": {"lam": 0.01}}
    (folder / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(config))
    (folder / "history.csv").write_text("step,val_error,seconds\n0,0.5,0.1\n10,0.25,0.2\n")
    record = {"status": "completed", "run_id": "r1", "started_at": "2026-12-02T10:00:00+00:00",
              "finished_at": "2026-12-02T10:00:01+00:00", "steps": 10, "val_error": 0.25, "config": config}
    (folder / "metrics.json").write_text(json.dumps(record))
    return folder


def half_migrated_store(disk: Path) -> str:
    """An MLflow store created by MLflow itself on a disk too full for all its migrations:
    left at a schema revision short of the newest, which MLflow can never open again."""
    from mlflow.tracking import MlflowClient

    filler = disk / "filler"
    filler.write_bytes(b"\0" * (4096 - 300) * 1024)  # 300 kB left: MLflow's first tables, not all
    uri = f"sqlite:///{disk / 'mlflow.db'}"
    with pytest.raises(Exception, match="database or disk is full"):
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    filler.unlink()
    with sqlite3.connect(disk / "mlflow.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall()
    return uri


def test_a_store_half_migrated_by_a_full_disk_is_made_anew_by_the_export_command(tmp_path, capsys, caplog):
    job = finished_job(tmp_path / "job")
    with mounted_tmpfs(tmp_path / "small", "4m") as disk:
        uri = half_migrated_store(disk)
        # there is room again: the command the export's warning names exports the job
        assert export_folders([job], uri_setting=uri) == 0, capsys.readouterr()
        assert f"{job}: exported as run" in capsys.readouterr().out
        (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert "was left half-migrated by its creation" in warning and warning.endswith("holds no run: made anew")
        client = MlflowClient(tracking_uri=uri)  # and the store works from then on
        assert len(client.search_runs([client.get_experiment_by_name("wdsweep").experiment_id])) == 1


def test_an_export_to_a_new_store_on_a_full_disk_leaves_no_broken_store(tmp_path, capsys):
    job = finished_job(tmp_path / "job")
    with mounted_tmpfs(tmp_path / "small", "4m") as disk:
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (4096 - 300) * 1024)
        uri = f"sqlite:///{disk / 'mlflow.db'}"
        assert export_folders([job], uri_setting=uri) == 1
        assert "database or disk is full" in capsys.readouterr().out
        assert not (disk / "mlflow.db").exists()
        filler.unlink()
        assert export_folders([job], uri_setting=uri) == 0


def test_a_half_migrated_store_that_holds_runs_is_kept_and_the_error_says_how_to_recover(tmp_path, capsys):
    job = finished_job(tmp_path / "job")
    with mounted_tmpfs(tmp_path / "small", "4m") as disk:
        uri = half_migrated_store(disk)
        with sqlite3.connect(disk / "mlflow.db") as conn:  # someone's experiment: not ours to remove
            conn.execute("INSERT INTO experiments (experiment_id, name, lifecycle_stage) "
                         "VALUES (7, 'theirs', 'active')")
        before = (disk / "mlflow.db").read_bytes()
        assert export_folders([job], uri_setting=uri) == 1
        (line,) = capsys.readouterr().out.strip().splitlines()
        assert f"the MLflow database {disk / 'mlflow.db'} is half-migrated" in line
        assert "restore it from its backup, or move it aside and export the job folders again" in line
        assert (disk / "mlflow.db").read_bytes() == before
