"""logger=mlflow (wdsweep/tracking/mlflow_export.py): every job of a real sweep is read back from MLflow
with MlflowClient and compared with the files the job wrote, which stay the source of truth."""
from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from wdsweep.config.validation import ConfigError, validate
from wdsweep.tracking.mlflow_client import PARENT_FILE
from wdsweep.tracking.mlflow_export import ENV_PASSWORD, export_folders, mask_command_line, tracking_uri

from conftest import job_dirs, read_metrics, run_wdsweep, shared_sweep

# lr=1e4 diverges within steps. Two joblib workers finish their jobs together: both want the
# sweep's parent run and both open a new SQLite database.
COMMON = ["logger=mlflow", "trainer.steps=50", "trainer.eval_every=10", "reg.lam=0"]
GRID = [*COMMON, "optimizer.lr=0.01,1e4"]
JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
# lam = 0 makes reg.p idle: p=2 is recorded from p=1 (same_as), as is GRID's default p=2. (p
# before lr: the two jobs that train are then consecutive, which the sweeper launches together.)
VECTORIZED = [*COMMON, "reg.p=1,2", "optimizer.lr=0.01,1e4", "hydra/launcher=vectorized"]
ARTIFACTS = ("metrics.json", "history.csv", "model.pt", ".hydra/config.yaml", ".hydra/overrides.yaml")
FINAL = ("train_loss", "train_error", "val_loss", "val_error", "test_loss", "test_error", "reg_loss",
         "weight_norm", "sparsity", "objective", "train_seconds", "eval_seconds", "steps")
RUN_STATUS = {"completed": "FINISHED", "diverged": "FAILED", "failed": "FAILED", "pruned": "KILLED"}
SECRET = "s3cr3t-mlflow-pw"


@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory) -> Path:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    return shared_sweep(tmp_path_factory, "mlflow-joblib", [*GRID, *JOBLIB], process=True)


def sweep_runs(uri: str, experiment: str):
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r} at {uri}"
    runs = client.search_runs([found.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("wdsweep.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("wdsweep.role") != "sweep"]
    return client, parents, children


def same_number(a, b) -> bool:
    """MLflow's stores keep +-inf as +-1.8e308, the largest float (their rule, not ours)."""
    a, b = (math.copysign(sys.float_info.max, x) if math.isinf(x) else x for x in (a, b))
    return a == b or (math.isnan(a) and math.isnan(b))


def same_as_record(value, recorded) -> bool:
    """metrics.json writes a non-finite number as null."""
    if recorded is None:
        return math.isnan(value) or abs(value) in (math.inf, sys.float_info.max)
    return same_number(value, recorded)


def flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flat(value, f"{prefix}{key}."))
        else:  # the documented encoding: strings as they are, everything else as JSON
            out[f"{prefix}{key}"] = value if isinstance(value, str) else json.dumps(value)
    return out


def check_runs_match_files(sweep: Path, uri: str, experiment: str, tmp_path: Path) -> dict:
    """Every job of `sweep` is one child run of one parent, equal to its files. Returns the runs
    by job folder name."""
    client, parents, children = sweep_runs(uri, experiment)
    jobs = job_dirs(sweep)
    assert len(parents) == 1, [p.info.run_name for p in parents]
    parent = parents[0]
    assert json.loads((sweep / PARENT_FILE).read_text()) and parent.info.run_id in (sweep / PARENT_FILE).read_text()
    assert sorted(r.data.tags["wdsweep.job_dir"] for r in children) == sorted(str(j.resolve()) for j in jobs)
    by_name = {}
    for run in children:
        job = Path(run.data.tags["wdsweep.job_dir"])
        record = read_metrics(job)
        assert run.info.run_name == job.name
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["status"] == record["status"]
        assert run.info.status == RUN_STATUS[record["status"]]
        assert run.data.tags["wdsweep.run_id"] == record["run_id"]
        assert run.data.tags.get("wdsweep.same_as") == record.get("same_as")
        # params: the job's .hydra/config.yaml, every key
        config = OmegaConf.to_container(OmegaConf.load(job / ".hydra/config.yaml"), resolve=True)
        assert run.data.params == flat(config)
        # metrics: every history.csv column at its steps, and metrics.json's final values
        with open(job / "history.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert rows
        for column in rows[0]:
            if column == "step":
                continue
            got = sorted(((m.step, m.value) for m in client.get_metric_history(run.info.run_id, column)),
                         key=lambda sv: sv[0])
            want = [(int(r["step"]), float(r[column])) for r in rows]
            assert [s for s, _ in got] == [s for s, _ in want], column
            assert all(same_number(g, w) for (_, g), (_, w) in zip(got, want)), (column, got, want)
        for key in FINAL:
            if key == "objective" and record["status"] != "completed":
                assert key not in run.data.metrics
                continue
            assert same_as_record(run.data.metrics[key], record[key]), (key, run.data.metrics[key], record[key])
        # artifacts: the job folder's files, byte for byte
        local = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / run.info.run_id)))
        for name in ARTIFACTS:
            assert (local / name).read_bytes() == (job / name).read_bytes(), name
        by_name[job.name] = run
    return by_name


@pytest.mark.integration
def test_each_job_of_a_parallel_sweep_is_one_run_equal_to_its_files(joblib_sweep, tmp_path):
    home = joblib_sweep.parent
    runs = check_runs_match_files(joblib_sweep, f"sqlite:///{home / 'mlflow.db'}", "sweep", tmp_path)
    assert sorted(r.data.tags["status"] for r in runs.values()) == ["completed", "diverged"]
    # the default URI is MLflow's own, relative to where the command ran, with its artifacts beside it
    assert (home / "mlflow.db").is_file() and (home / "mlartifacts").is_dir()
    assert "not exported" not in (home / "stderr.txt").read_text()


@pytest.mark.integration
def test_vectorized_members_are_exported_as_jobs_run_alone(joblib_sweep, tmp_path):
    """Members of a batched model, and the records of jobs that train what another trains. The
    jobs run in their own folders (hydra.job.chdir): the default store is still where the
    command ran."""
    proc = run_wdsweep(["-m", *VECTORIZED, "hydra.job.chdir=true", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                       cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "training 2 jobs as one batched model" in proc.stderr + proc.stdout
    runs = check_runs_match_files(tmp_path / "sweep", f"sqlite:///{tmp_path / 'mlflow.db'}", "sweep", tmp_path / "dl")
    assert (tmp_path / "mlartifacts").is_dir() and not list((tmp_path / "sweep").rglob("mlflow.db"))
    assert sorted(r.data.tags["status"] for r in runs.values()) == ["completed", "completed", "diverged", "diverged"]
    trained = [r for r in runs.values() if "wdsweep.same_as" not in r.data.tags]
    assert len(trained) == 2 and all(r.data.tags["wdsweep.batched"] == "true" for r in trained)
    # The p=2 records hold the config of the joblib sweep's jobs, which ran alone: the same
    # params, and the same numbers to float rounding.
    alone = sweep_runs(f"sqlite:///{joblib_sweep.parent / 'mlflow.db'}", "sweep")[2]
    for run in alone:
        (twin,) = [r for r in runs.values() if r.data.params == run.data.params]
        for key in ("train_loss", "val_error", "test_error", "weight_norm"):
            a, b = twin.data.metrics[key], run.data.metrics[key]
            assert same_number(a, b) or math.isclose(a, b, rel_tol=1e-5), (key, a, b)


@pytest.mark.integration
def test_an_unreachable_tracking_server_fails_no_job_and_its_password_is_written_nowhere(tmp_path):
    """A tracking URI with a password, where nothing answers: every job keeps its result and
    the sweep exits 0, with a warning per job that names the URI masked; the password is in no
    file and no output. The warning's command then exports the sweep to a store that works."""
    uri = f"http://wdsweep:{SECRET}@127.0.0.1:1"
    sweep = tmp_path / "sweep"
    proc = run_wdsweep(["-m", "logger=mlflow", f"logger.tracking_uri={uri}", "trainer.steps=20", "seed=1,2",
                        f"hydra.sweep.dir={sweep}"], cwd=tmp_path, env_extra={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})
    assert proc.returncode == 0, proc.stderr
    output = proc.stdout + proc.stderr
    assert SECRET not in output
    assert output.count("not exported to MLflow") == 2
    assert "http://wdsweep:***@127.0.0.1:1" in output
    assert f"python -m wdsweep.mlflow_export {sweep}" in output
    jobs = job_dirs(sweep)
    assert len(jobs) == 2 and all(read_metrics(j)["status"] == "completed" for j in jobs)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert [p for p in files if SECRET.encode() in p.read_bytes()] == []
    assert all(read_metrics(j)["config"]["logger"]["tracking_uri"] == "http://wdsweep:***@127.0.0.1:1" for j in jobs)

    later = f"sqlite:///{tmp_path / 'later.db'}"
    assert export_folders([sweep], uri_setting=later) == 0
    _, parents, children = sweep_runs(later, "sweep")
    assert len(parents) == 1 and len(children) == 2
    assert export_folders([sweep], uri_setting=later) == 0  # a second time adds nothing
    assert len(sweep_runs(later, "sweep")[2]) == 2


def test_params_past_mlflows_limits_are_cut_and_sent_in_chunks(tmp_path, monkeypatch):
    """250 params (MLflow takes 100 a request) and a value longer than its 6000 characters."""
    job = tmp_path / "job"
    (job / ".hydra").mkdir(parents=True)
    config = {"data": {f"k{i:03d}": i for i in range(249)}, "long": "x" * 7000}
    (job / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(config))
    (job / "history.csv").write_text("step,val_error,seconds\n0,0.5,0.1\n10,0.25,0.2\n")
    record = {"status": "completed", "run_id": "r1", "started_at": "2026-12-02T10:00:00+00:00",
              "finished_at": "2026-12-02T10:00:01+00:00", "steps": 10, "val_error": 0.25, "config": config}
    (job / "metrics.json").write_text(json.dumps(record))
    monkeypatch.chdir(tmp_path)
    assert export_folders([job], uri_setting="sqlite:///limits.db") == 0
    _, _, runs = sweep_runs(f"sqlite:///{tmp_path / 'limits.db'}", "wdsweep")
    (run,) = runs
    assert len(run.data.params) == 250
    assert run.data.params["data.k248"] == "248"
    assert len(run.data.params["long"]) == 6000 and run.data.params["long"].startswith("x" * 5000)
    assert "whole value is in the artifact .hydra/config.yaml" in run.data.params["long"]
    assert run.data.metrics["val_error"] == 0.25


def test_a_password_on_the_command_line_is_masked_before_hydra_sees_it(monkeypatch):
    monkeypatch.setenv(ENV_PASSWORD, "restored-to-unset-after-the-test")
    argv = ["-m", f"logger.tracking_uri=http://me:{SECRET}@host:5000", "reg.p=1,2"]
    assert mask_command_line(argv) == ["-m", "logger.tracking_uri=http://me:***@host:5000", "reg.p=1,2"]
    assert tracking_uri("http://me:***@host:5000", Path("/x")) == f"http://me:{SECRET}@host:5000"


def test_relative_tracking_uris_are_taken_from_the_directory_the_command_ran_in(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cwd = Path("/home/me/project")
    assert tracking_uri(None, cwd) == "sqlite:////home/me/project/mlflow.db"
    assert tracking_uri("sqlite:///runs/m.db", cwd) == "sqlite:////home/me/project/runs/m.db"
    assert tracking_uri("sqlite:////abs/m.db", cwd) == "sqlite:////abs/m.db"
    assert tracking_uri("mlruns", cwd) == "/home/me/project/mlruns"
    assert tracking_uri("http://host:5000", cwd) == "http://host:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://from-env:5000")
    assert tracking_uri(None, cwd) == "http://from-env:5000"


def test_logger_mlflow_is_validated_in_one_line(compose_cfg, monkeypatch):
    validate(compose_cfg(["logger=mlflow"]))
    with pytest.raises(ConfigError, match=r"logger\.experiment='' is not allowed: an MLflow experiment name"):
        validate(compose_cfg(["logger=mlflow", "logger.experiment=''"]))
    # a password that reached the config (from a config file: the command line's is masked first)
    with pytest.raises(ConfigError) as err:
        validate(compose_cfg(["logger=mlflow", f"logger.tracking_uri=http://me:{SECRET}@host"]))
    assert SECRET not in str(err.value) and "logger.tracking_uri='http://me:***@host' is not allowed" in str(err.value)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # Python's own way to make a package unimportable
    with pytest.raises(ConfigError, match=r"logger='mlflow' is not allowed: needs the mlflow package: "
                                          r"pip install 'wdsweep\[mlflow\]'"):
        validate(compose_cfg(["logger=mlflow"]))


def test_jobs_finishing_together_make_one_parent_run(tmp_path):
    """The sweep's parent run is made under a lock in the sweep folder: jobs of parallel
    processes that finish at once all find the one parent. (flock excludes threads that open
    the file themselves as it excludes processes; the joblib sweep above is the real case.)"""
    import threading

    from wdsweep.tracking.mlflow_client import Place
    from wdsweep.tracking.mlflow_client import Tracker as _Tracker

    uri, sweep = f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "sweep"
    sweep.mkdir()
    experiment_id = _Tracker(uri).experiment_id("sweep")
    trackers = [_Tracker(uri) for _ in range(4)]  # each its own, as in its own process
    start, found = threading.Barrier(len(trackers)), []

    def job(tracker) -> None:
        start.wait()
        found.append(tracker.parent_run(experiment_id, "sweep", Place(tmp_path, sweep, "job"), 0))

    threads = [threading.Thread(target=job, args=(t,)) for t in trackers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _, parents, _ = sweep_runs(uri, "sweep")
    assert len(parents) == 1 and found == [parents[0].info.run_id] * len(trackers)
