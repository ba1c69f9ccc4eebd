"""Passwords in every form they can take (wdsweep/config/urls.py): in a storage URL's or a
tracking URI's user part or query, on the command line or in a config file, or read by the
driver itself (PGPASSWORD, ~/.pgpass, MLFLOW_TRACKING_PASSWORD). Each test runs a real sweep
and greps every file written under its folder (the sweep, the storage, the MLflow store) and
every line printed for the password."""
from __future__ import annotations

import importlib.util
import os
import uuid
from pathlib import Path

import optuna
import pytest
import yaml

from wdsweep.config.urls import UnsafePassword, hide_password, split_password, with_password
from wdsweep.tracking.trial_link import ENV_PASSWORD

from conftest import job_dirs, run_analysis, run_cli, run_wdsweep, shared_folder

QUICK = ["trainer.steps=5", "trainer.eval_every=5", "model.depth=1", "model.width=8"]


def secret() -> str:
    return f"pw-{uuid.uuid4().hex}"


def search(tmp_path: Path, *args: str, n_trials: int = 2, process: bool = False, env_extra=None):
    argv = ["-m", "search=optuna", f"hydra.sweeper.n_trials={n_trials}", "hydra.sweeper.study_name=secret",
            "hydra.sweep.dir=S", *QUICK, *args]
    return (run_cli if process else run_wdsweep)(argv, cwd=tmp_path, env_extra=env_extra)


def config_file(tmp_path: Path, group: str, name: str, text: str) -> str:
    """An option of a config group in a folder of the user's own, and the override that adds
    that folder to Hydra's search path."""
    folder = tmp_path / "myconf" / group
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(text)
    return f"hydra.searchpath=[file://{tmp_path / 'myconf'}]"


def assert_nowhere(password: str, tmp_path: Path, *procs) -> None:
    """The password is in no line printed and no file under tmp_path (sweep folder, storage,
    MLflow store, logs, submitit's pickles)."""
    for proc in procs:
        assert password not in proc.stdout + proc.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files
    assert [p for p in files if password.encode() in p.read_bytes()] == []


def completed_with_results_recorded(storage: str) -> bool:
    """Every trial COMPLETE, with the results its job recorded on it (so the jobs connected)."""
    summaries = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summaries[0].study_name, storage=storage)
    return bool(study.trials) and all(t.state == optuna.trial.TrialState.COMPLETE
                                      and "wdsweep_test_error" in t.user_attrs for t in study.trials)


# ------------------------------------------------------------------ URL forms, without a server
@pytest.mark.parametrize("url,public,password", [
    ("postgresql://me@host/db?password=pw", "postgresql://me@host/db?password=***", "pw"),
    ("postgresql://me@host/db?sslmode=require&password=p%26w#x",
     "postgresql://me@host/db?sslmode=require&password=***", "p%26w#x"),
    ("mysql://me@host/db?passwd=pw&charset=utf8", "mysql://me@host/db?passwd=***&charset=utf8", "pw"),
    ("sqlite:////runs/s.db?password=pw", "sqlite:////runs/s.db?password=***", "pw"),
    ("http://me:pw@host:5000", "http://me:***@host:5000", "pw"),
    ("postgresql://me:pw@host/db?password=pw", "postgresql://me:***@host/db?password=***", "pw"),
])
def test_a_query_password_is_masked_and_put_back_only_in_memory(monkeypatch, url, public, password):
    assert split_password(url) == (public, password)
    assert hide_password(f"x='{url}' and more") == f"x='{public}' and more"
    monkeypatch.setenv(ENV_PASSWORD, password)
    assert with_password(public, ENV_PASSWORD) == url


@pytest.mark.parametrize("url", [
    "postgresql://me:Pw@Xq@host/db",               # an "@" not percent-encoded: "Xq" would show
    "postgresql://me:Pw Xq@host/db",               # whitespace
    "postgresql://me:PwXq@host/db?password=PwYq",  # two passwords, one environment variable
    "postgresql://me@host/db?password=Pw'Xq",      # a quote, where a log line's URL would end
])
def test_a_password_that_cannot_be_masked_whole_is_refused(url):
    with pytest.raises(UnsafePassword) as err:
        split_password(url)
    assert "Pw" not in str(err.value) and "Xq" not in str(err.value)


def test_a_storage_password_that_cannot_be_masked_stops_the_search_in_one_line(tmp_path):
    proc = search(tmp_path, "hydra.sweeper.storage=postgresql://me:p@ss@127.0.0.1:1/db")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "wdsweep: invalid config: hydra.sweeper.storage='postgresql://...' is not allowed: a URL whose "
        "password can be masked")
    assert "p@ss" not in proc.stdout + proc.stderr and not (tmp_path / "S").exists()
    # unquoted, "=" in the value is not Hydra's syntax: the line that says so masks the password
    proc = search(tmp_path, "hydra.sweeper.storage=postgresql://me@127.0.0.1:1/db?password=Pw-Xq")
    assert proc.returncode == 1 and "Pw-Xq" not in proc.stdout + proc.stderr
    assert proc.stderr.strip().startswith("wdsweep: invalid override 'hydra.sweeper.storage=postgresql://me@"
                                          "127.0.0.1:1/db?password=***' is not allowed")


# ------------------------------------------------------------------ Optuna storages
def sqlite_storage(tmp_path: Path, key: str, password: str) -> str:
    """An SQLite storage URL with a password in its query: SQLite ignores it (with a warning),
    which makes it a real storage to test the masking on without a server."""
    return f"sqlite:///{tmp_path / 'study.db'}?{key}={password}"


@pytest.mark.parametrize("where,key", [("command-line", "password"), ("config-file", "passwd")])
def test_a_query_password_of_the_storage_is_in_no_file_and_no_output(tmp_path, where, key):
    password = secret()
    url = sqlite_storage(tmp_path, key, password)
    if where == "command-line":
        args = [f"hydra.sweeper.storage='{url}'"]  # quoted: "=" in a value is Hydra's syntax
    else:  # an experiment of the user's own that names the storage
        args = [config_file(tmp_path, "experiment", "mine", f"# @package _global_\nhydra:\n  sweeper:\n"
                            f"    storage: '{url}'\n"), "experiment=mine"]
    proc = search(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr
    assert completed_with_results_recorded(url)
    masked = url.replace(password, "***")
    assert yaml.safe_load((tmp_path / "S" / "optimization_results.yaml").read_text())["storage"] == masked
    jobs = job_dirs(tmp_path / "S")
    assert len(jobs) == 2
    for job in jobs:
        assert yaml.safe_load((job / ".hydra" / "hydra.yaml").read_text())["hydra"]["sweeper"]["storage"] == masked
    _drop_config_files(tmp_path)
    assert_nowhere(password, tmp_path, proc)


def _drop_config_files(tmp_path: Path) -> None:
    """The user's own config file holds the password: it is not a file wdsweep wrote."""
    import shutil

    shutil.rmtree(tmp_path / "myconf", ignore_errors=True)


# ------------------------------------------------------------------ a real PostgreSQL server
@pytest.fixture
def postgres_role():
    """(admin URL, role, password, database) of a role of its own with a password, owning a
    database of its own, on the CI server; both dropped afterwards."""
    admin = os.environ.get("WDSWEEP_TEST_POSTGRES_URL")
    if not admin:
        pytest.skip("no PostgreSQL server: set WDSWEEP_TEST_POSTGRES_URL (.ci/run starts one)")
    import psycopg

    name, password = f"wds_{uuid.uuid4().hex[:10]}", secret()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        conn.execute(f"CREATE DATABASE {name} OWNER {name}")
    try:
        yield admin, name, password
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"DROP ROLE IF EXISTS {name}")


def role_url(admin: str, name: str, password=None, query: str = "") -> str:
    from sqlalchemy.engine import URL, make_url

    server = make_url(admin)
    url = URL.create(server.drivername, username=name, password=password, host=server.host, port=server.port,
                     database=name)
    return url.render_as_string(hide_password=False) + query


@pytest.mark.integration
@pytest.mark.parametrize("form", ["user-part-in-a-config-file", "query-on-the-command-line"])
def test_a_postgres_password_is_in_no_file_and_no_output(tmp_path, postgres_role, form):
    admin, name, password = postgres_role
    if form == "query-on-the-command-line":
        url = role_url(admin, name, query=f"?password={password}")
        args = [f"hydra.sweeper.storage='{url}'"]
    else:
        url = role_url(admin, name, password)
        args = [config_file(tmp_path, "experiment", "mine", f"# @package _global_\nhydra:\n  sweeper:\n"
                            f"    storage: '{url}'\n"), "experiment=mine"]
    proc = search(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr
    assert completed_with_results_recorded(url)
    _drop_config_files(tmp_path)
    procs = [proc]
    if form == "query-on-the-command-line":  # the analysis, given the URL, writes it masked
        procs.append(run_analysis(url, "--out", tmp_path / "report"))
        assert procs[-1].returncode == 0, procs[-1].stderr
        assert url.replace(password, "***") in (tmp_path / "report" / "report.md").read_text()
    assert_nowhere(password, tmp_path, *procs)


@pytest.mark.integration
@pytest.mark.parametrize("source", [
    # each job a submitit process: its pickles and logs, and the environment it is given
    pytest.param("PGPASSWORD", marks=pytest.mark.skipif(importlib.util.find_spec("submitit") is None,
                                                        reason="needs the submitit extra")),
    "pgpass",
])
def test_a_password_the_driver_reads_itself_is_copied_nowhere(tmp_path, postgres_role, source):
    """PGPASSWORD or ~/.pgpass: no environment dump, pickle, log or file of ours holds it."""
    admin, name, password = postgres_role
    url = role_url(admin, name)
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home)}
    if source == "PGPASSWORD":
        env["PGPASSWORD"] = password
        proc = search(tmp_path, f"hydra.sweeper.storage={url}", "hydra/launcher=submitit_local",
                      n_trials=1, process=True, env_extra=env)  # one submitit job: a process start each
        assert list((tmp_path / "S").rglob("*.pkl"))  # submitit pickled each job
    else:
        pgpass = home / ".pgpass"
        pgpass.write_text(f"*:*:{name}:{name}:{password}\n")
        pgpass.chmod(0o600)
        proc = search(tmp_path, f"hydra.sweeper.storage={url}", env_extra=env)
    assert proc.returncode == 0, proc.stderr
    assert completed_with_results_recorded(role_url(admin, name, password))
    if source == "pgpass":
        pgpass.unlink()  # the user's own file
    assert_nowhere(password, tmp_path, proc)


# ------------------------------------------------------------------ MLflow
@pytest.fixture
def empty_mlflow_store(tmp_path_factory, tmp_path) -> Path:
    """tmp_path/store/m.db: a copy of an MLflow SQLite store made once per session (its ~40
    migrations take seconds), holding no run."""
    import shutil

    from mlflow.tracking import MlflowClient

    def build(folder: Path) -> None:
        MlflowClient(tracking_uri=f"sqlite:///{folder / 'm.db'}").search_experiments(max_results=1)

    shared = shared_folder(tmp_path_factory, os.environ.get("PYTEST_XDIST_WORKER", "master"), "mlflow-empty-store",
                           build)
    (tmp_path / "store").mkdir()
    return Path(shutil.copy(shared / "m.db", tmp_path / "store" / "m.db"))


@pytest.mark.integration
@pytest.mark.parametrize("where", ["command-line", "MLFLOW_TRACKING_URI"])
def test_a_tracking_uri_query_password_is_in_no_file_no_output_and_not_in_the_mlflow_store(tmp_path, where,
                                                                                          empty_mlflow_store):
    """A query password in the tracking URI (SQLite ignores it, which makes it a real store to
    test on); MLflow's own MLFLOW_TRACKING_PASSWORD beside it, which nothing of ours copies."""
    from mlflow.tracking import MlflowClient

    password, mlflow_password = secret(), secret()
    uri = f"sqlite:///{empty_mlflow_store}?passwd={password}"
    env = {"MLFLOW_TRACKING_PASSWORD": mlflow_password}
    args = ["-m", "logger=mlflow", *QUICK, "seed=1", "hydra.sweep.dir=S"]
    if where == "command-line":
        args.append(f"logger.tracking_uri='{uri}'")
    else:
        env["MLFLOW_TRACKING_URI"] = uri
    proc = run_wdsweep(args, cwd=tmp_path, env_extra=env)
    assert proc.returncode == 0, proc.stderr
    assert "not exported" not in proc.stdout + proc.stderr
    client = MlflowClient(tracking_uri=uri)
    (run,) = [r for r in client.search_runs([client.get_experiment_by_name("S").experiment_id])
              if r.data.tags.get("wdsweep.role") != "sweep"]
    assert run.data.params["logger.tracking_uri"] == (uri.replace(password, "***") if where == "command-line"
                                                      else "null")
    assert_nowhere(password, tmp_path, proc)
    assert_nowhere(mlflow_password, tmp_path, proc)


def test_a_tracking_uri_password_that_cannot_be_masked_is_refused_in_one_line(tmp_path, compose_cfg, monkeypatch):
    from wdsweep.config.validation import ConfigError, validate

    # in a config file, a query password in clear, as the user part's
    with pytest.raises(ConfigError, match=r"logger\.tracking_uri='http://host/x\?password=\*\*\*' is not allowed"):
        validate(compose_cfg(["logger=mlflow", "logger.tracking_uri='http://host/x?password=Pw-Xq'"]))
    # in the environment, one that masking would not hide whole
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://me:Pw@Xq@host:5000")
    with pytest.raises(ConfigError) as err:
        validate(compose_cfg(["logger=mlflow"]))
    assert str(err.value).startswith("invalid config: MLFLOW_TRACKING_URI='http://...' is not allowed: a URI whose "
                                     "password can be masked") and "Xq" not in str(err.value)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    # on the command line
    proc = run_wdsweep(["logger=mlflow", "logger.tracking_uri=http://me:Pw@Xq@host:5000"], cwd=tmp_path)
    assert proc.returncode == 1 and "Xq" not in proc.stdout + proc.stderr
    assert proc.stderr.strip() == ("wdsweep: invalid override logger.tracking_uri='http://...' is not allowed: a URI "
                                   "whose password can be masked (its password is not cleanly delimited: "
                                   "percent-encode '@', ':', '/', '&', quotes and whitespace in it), or none in "
                                   "it: MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, which MLflow "
                                   "reads itself")
