"""`logger=mlflow`: every finished job becomes one MLflow run, exported from the files it wrote.

Why after the job, from its files, and not as a per-step training callback: a job's record is
whole once metrics.json is written (last, atomically; history.csv, model.pt and .hydra/ come
before it), and MLflow's metrics are the evaluation history that history.csv already holds. So
the export costs the training nothing, and it is the same under every launcher: in-process,
joblib's workers, submitit's jobs, the Optuna sweeper's trials and `hydra/launcher=vectorized`,
whose members are written by the same code as a job run alone (wdsweep.jobs.run._finish), while a
per-step callback could not watch one member of a batched model. metrics.json stays the source
of truth: an export that fails (a tracking server down, a database that cannot be written) is
one warning line in the job's log, never a failed job, and `python -m wdsweep.mlflow_export
FOLDER` exports it later (runs already there are skipped).

What a run holds:
- params: the resolved job config flattened to dotted keys (`reg.lam`, `optimizer.betas`),
  strings as they are, other values as JSON (`0.01`, `true`, `null`, `[0.9, 0.999]`); a value
  longer than MLflow's limit (6000 characters) is cut with a note, since the whole config is an
  artifact. MLflow takes at most 100 params and 1000 metrics per request: they go in chunks.
- metrics: every history.csv column at its step (timestamps: started_at + the row's seconds),
  so the latest value of each is the final one metrics.json holds (a final value that differs
  from the last row is logged after it); and `objective`, `train_seconds`, `eval_seconds`,
  `steps` (and `diverged_at_step`) from metrics.json. (MLflow keeps +-inf as +-1.8e308.)
- tags: `status` (metrics.json's), `wdsweep.run_id` (set last: a run without it is an export
  cut short), `wdsweep.job_dir`, `wdsweep.overrides`, `wdsweep.config_hash`, and where they
  apply `wdsweep.same_as`, `wdsweep.batched`, `wdsweep.error`, `wdsweep.stop_reason`,
  `wdsweep.optuna_study`, `wdsweep.optuna_trial_id`. The run's status: completed FINISHED,
  pruned KILLED, diverged and failed FAILED. A job without metrics.json has no run.
- artifacts: metrics.json, history.csv, model.pt, .hydra/config.yaml and .hydra/overrides.yaml,
  in the job folder's own layout.

Grouping: a sweep's runs go to one experiment, `logger.experiment` or by default the sweep
folder's path relative to the directory the command ran in (`multirun/2026-12-03/10-00-00`),
each as a child (`mlflow.parentRunId`) of one parent run per sweep folder, named like the
experiment. Parallel jobs must not make two parents: the parent is made by the first job to
finish, under a lock file in the sweep folder (.mlflow.lock, flock: the kernel frees it if
its holder dies), and its id kept there (.mlflow-parent.json) for every later job, process and
resumed run of the sweep. Single runs (no -m) go to the experiment `wdsweep`, without parent.

Tracking URI: `logger.tracking_uri`, else $MLFLOW_TRACKING_URI, else `sqlite:///mlflow.db`
(MLflow 3's own default, so that `mlflow ui` finds it), with relative paths taken from the
directory the command ran in, not the job's folder. Artifacts of an experiment made here in a
local SQLite store go beside the database, in mlartifacts/. Each process opens a SQLite store
for the first time under a lock on the database's folder: two workers creating a new database
at once would both run its migrations and break it.

Secrets: a password in `logger.tracking_uri=http://me:pw@host` on the command line is taken
out before Hydra sees it (mask_command_line, called by wdsweep.app): configs, folder names,
files and log lines get `http://me:***@host`, and the jobs get the password through the
process environment (ENV_PASSWORD), put back into the URI in memory only, as the Optuna
sweeper does with its storage (wdsweep.tracking.trial_link). A password written in a config file is
refused by validation, since Hydra would copy it into every job's folder.

A tracking server that does not answer would make MLflow retry each request for minutes;
unless MLFLOW_HTTP_REQUEST_MAX_RETRIES / _TIMEOUT are set, 2 retries and 20 s are used, and
after one failed export a process does not try that URI again (each later job logs one line).

mlflow is imported only when a job exports (about 2.5 s once per process).
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import fcntl
import json
import logging
import math
import os
import re
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

from wdsweep.config.urls import hide_password, split_password, with_password
from wdsweep.tracking.results import HISTORY_FILE, METRICS_FILE, MODEL_FILE, atomic_write

log = logging.getLogger(__name__)

ENV_PASSWORD = "WDSWEEP_MLFLOW_PASSWORD"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
SINGLE_RUN_EXPERIMENT = "wdsweep"
LOCK_FILE = ".mlflow.lock"
PARENT_FILE = ".mlflow-parent.json"
ARTIFACT_DIR = "mlartifacts"
RUN_STATUS = {"completed": "FINISHED", "pruned": "KILLED", "diverged": "FAILED", "failed": "FAILED"}
# metrics.json numbers that are not history.csv columns.
RECORD_METRICS = ("objective", "train_seconds", "eval_seconds", "steps", "diverged_at_step")
ARTIFACTS = (METRICS_FILE, HISTORY_FILE, MODEL_FILE)
HYDRA_ARTIFACTS = ("config.yaml", "overrides.yaml")
CUT_NOTE = " ... (cut at MLflow's limit: the whole value is in the artifact .hydra/config.yaml)"
_BAD_KEY_CHARS = re.compile(r"[^\w\-. /:]")  # what MLflow allows in param and metric names
_URI_OVERRIDE = re.compile(r"^(?:\+\+|\+)?logger\.tracking_uri=")

# Per process: a tracking URI (as shown) whose export failed, and why; connected trackers.
_FAILED: Dict[str, str] = {}
_TRACKERS: Dict[str, "_Tracker"] = {}
_ANNOUNCED: set = set()


# ------------------------------------------------------------------ the URI and its password
def mask_command_line(argv: Sequence[str]) -> List[str]:
    """`argv` with the password of a `logger.tracking_uri=` override masked; the password goes
    to os.environ[ENV_PASSWORD], which every launcher's job processes inherit, so Hydra never
    holds it (not in .hydra/*.yaml, multirun.yaml, a folder name or a log line)."""
    masked = []
    for arg in argv:
        if _URI_OVERRIDE.match(arg):
            key, _, value = arg.partition("=")
            public, password = split_password(value)
            if password is not None:
                os.environ[ENV_PASSWORD] = password
                arg = f"{key}={public}"
        masked.append(arg)
    return masked


def tracking_uri(setting: Optional[str], cwd: Path) -> str:
    """The URI to connect to (its password back in place, in memory only): `setting`, else
    $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db; a local path relative to `cwd`, the
    directory the command ran in (a job may run in its own folder: hydra.job.chdir)."""
    uri = setting or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    uri = with_password(uri, ENV_PASSWORD)
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):]
        if path and not path.startswith("/") and not path.startswith(":memory:"):
            return "sqlite:///" + str(Path(cwd, path))  # sqlite:////abs/path
        return uri
    if uri.startswith("file:") and not uri.startswith("file:/"):
        return Path(cwd, uri[len("file:"):]).as_uri()
    if "://" not in uri and ":" not in uri.split("/")[0] and uri not in ("databricks", "databricks-uc", "uc"):
        return str(Path(cwd, uri))  # a plain path: MLflow's file store
    return uri


def _sqlite_file(uri: str) -> Optional[Path]:
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?")[0]
    return Path(path) if path.startswith("/") else None


# ------------------------------------------------------------------ where a job's run goes
@dataclass
class Place:
    """Where a job's run goes: `cwd` is the directory the command ran in, `sweep_dir` the
    sweep folder (None for a single run), `run_name` the job folder relative to it."""
    cwd: Path
    sweep_dir: Optional[Path]
    run_name: str

    def experiment(self, setting: Optional[str]) -> str:
        if setting:
            return setting
        return _shown_path(self.sweep_dir, self.cwd) if self.sweep_dir else SINGLE_RUN_EXPERIMENT


def _shown_path(path: Path, cwd: Path) -> str:
    """`path` relative to `cwd` when inside it, else absolute."""
    path = Path(cwd, path).resolve()
    try:
        return str(path.relative_to(Path(cwd).resolve()))
    except ValueError:
        return str(path)


def job_place(job_dir: Path) -> Place:
    """The job's place from Hydra's config of the running job (any launcher sets it for the job
    it runs); without Hydra (a `compose` user), a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    job_dir = Path(job_dir).resolve()
    if HydraConfig.initialized():
        hc = HydraConfig.get()
        if Path(hc.runtime.output_dir).resolve() == job_dir:  # not a stale config of another job
            cwd = Path(hc.runtime.cwd)
            if hc.mode == RunMode.MULTIRUN:
                sweep_dir = Path(cwd, hc.sweep.dir).resolve()
                return Place(cwd, sweep_dir, _shown_path(job_dir, sweep_dir))
            return Place(cwd, None, _shown_path(job_dir, cwd))
    return Place(Path.cwd(), None, job_dir.name)


# ------------------------------------------------------------------ the export of one job
def export_job(cfg: Any, job_dir: Path, record: dict) -> None:
    """Export the job just written in job_dir (record: its metrics.json) when its logger is
    mlflow. Never raises: a failed export is a warning line and the job's result stands."""
    logger = cfg.get("logger") if cfg is not None else None
    if logger is None or logger.get("name") != "mlflow":
        return
    job_dir = Path(job_dir)
    place = job_place(job_dir)
    uri = tracking_uri(logger.get("tracking_uri"), place.cwd)
    shown, password = split_password(uri)
    later = f"export it later with: python -m wdsweep.mlflow_export {place.sweep_dir or job_dir}"
    if shown in _FAILED:
        log.warning("not exported to MLflow: the export to %s failed earlier in this process (%s); "
                    "the result is in %s; %s", shown, _FAILED[shown], job_dir / METRICS_FILE, later)
        return
    experiment = place.experiment(logger.get("experiment"))
    try:
        run_id = _tracker(uri).export(job_dir, record, place, experiment)
    except Exception as err:  # noqa: BLE001 - any failure of the export leaves the job as it is
        reason = hide_password(" ".join(f"{type(err).__name__}: {err}".split()), password)[:500]
        _FAILED[shown] = reason
        log.warning("not exported to MLflow (%s): %s; the result is in %s; %s", shown, reason,
                    job_dir / METRICS_FILE, later)
        return
    # A job logs one line (its summary): where the runs go is said once per process.
    if (shown, experiment) not in _ANNOUNCED:
        _ANNOUNCED.add((shown, experiment))
        log.info("exporting each job to MLflow: experiment %r at %s", experiment, shown)
    log.debug("exported to MLflow: run %s", run_id)


def _tracker(uri: str) -> "_Tracker":
    if uri not in _TRACKERS:
        _TRACKERS[uri] = _Tracker(uri)
    return _TRACKERS[uri]


class _Tracker:
    """One tracking URI's client, with the experiments and parent runs this process knows."""

    def __init__(self, uri: str) -> None:
        if uri.startswith(("http://", "https://")):
            # MLflow's defaults (7 retries, 120 s) retry a dead server for minutes, per job.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        from mlflow.tracking import MlflowClient  # importing mlflow sets up its loggers: quieted here

        # "Creating initial MLflow database tables...": not a line a sweep's reader needs.
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.uri = uri
        self.experiments: Dict[str, str] = {}
        self.parents: Dict[tuple, str] = {}
        db = _sqlite_file(uri)
        if db is None:
            self.client = MlflowClient(tracking_uri=uri)
            return
        # Opening the store creates a new database's tables (about 40 migrations). Two
        # processes doing so at once break it, and the file exists from the first one's start:
        # so every process opens it in turn.
        db.parent.mkdir(parents=True, exist_ok=True)
        with _locked(db.parent):
            self.client = MlflowClient(tracking_uri=uri)
            self.client.search_experiments(max_results=1)

    # -------------------------------------------------------------- experiments and parents
    def experiment_id(self, name: str) -> str:
        if name in self.experiments:
            return self.experiments[name]
        from mlflow.exceptions import MlflowException

        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            try:
                experiment_id = self.client.create_experiment(name, artifact_location=self._artifacts(name))
            except MlflowException:  # made meanwhile by another process
                experiment = self.client.get_experiment_by_name(name)
                if experiment is None:
                    raise
                experiment_id = experiment.experiment_id
        else:
            if experiment.lifecycle_stage != "active":
                raise RuntimeError(f"the MLflow experiment {name!r} was deleted: restore it "
                                   "(mlflow experiments restore) or set logger.experiment")
            experiment_id = experiment.experiment_id
        self.experiments[name] = experiment_id
        return experiment_id

    def _artifacts(self, name: str) -> Optional[str]:
        """Beside a local SQLite database (MLflow would use ./mlruns of whatever directory the
        process is in); a server's or a file store's own default otherwise."""
        db = _sqlite_file(self.uri)
        if db is None:
            return None
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:80] or "experiment"
        return (db.parent / ARTIFACT_DIR / f"{slug}-{uuid.uuid4().hex[:8]}").as_uri()

    def parent_run(self, experiment_id: str, experiment: str, place: Place, start_ms: int) -> Optional[str]:
        """The sweep's parent run: made once, under the sweep folder's lock, by whichever job
        gets there first; its id kept in the sweep folder for every later job and process."""
        if place.sweep_dir is None:
            return None
        key = (experiment_id, str(place.sweep_dir))
        if key in self.parents:
            return self.parents[key]
        entry = f"{split_password(self.uri)[0]} experiment {experiment_id}"  # never the password
        path = place.sweep_dir / PARENT_FILE
        with _locked(place.sweep_dir / LOCK_FILE):
            known = _read_json(path)
            run_id = known.get(entry)
            if not (isinstance(run_id, str) and self._active(run_id, experiment_id)):
                run = self.client.create_run(
                    experiment_id, start_time=start_ms, run_name=experiment,
                    tags={"wdsweep.sweep_dir": str(place.sweep_dir), "wdsweep.role": "sweep"})
                run_id = run.info.run_id
                if (place.sweep_dir / "multirun.yaml").is_file():
                    self.client.log_artifact(run_id, str(place.sweep_dir / "multirun.yaml"))
                known[entry] = run_id
                atomic_write(path, lambda f: f.write(json.dumps(known, indent=2) + "\n"))
        self.parents[key] = run_id
        return run_id

    def _active(self, run_id: str, experiment_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            info = self.client.get_run(run_id).info
        except MlflowException:  # a database made anew, say
            return False
        return info.experiment_id == experiment_id and info.lifecycle_stage == "active"

    def exported(self, experiment_id: str, run_id: str) -> bool:
        """Whether the job execution `run_id` (metrics.json's) already has a whole run here."""
        found = self.client.search_runs([experiment_id], filter_string=f"tags.`wdsweep.run_id` = '{run_id}'",
                                        max_results=1)
        return len(found) > 0

    # -------------------------------------------------------------- one run
    def export(self, job_dir: Path, record: dict, place: Place, experiment: str) -> str:
        """Make the job's run; return its id. A run cut short by an error is deleted (best
        effort), so that a later export makes it whole."""
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH

        experiment_id = self.experiment_id(experiment)
        start_ms = _ms(record.get("started_at"))
        end_ms = max(_ms(record.get("finished_at")), start_ms)
        parent = self.parent_run(experiment_id, experiment, place, start_ms)
        tags = {"status": str(record.get("status")), "wdsweep.job_dir": str(Path(job_dir).resolve()),
                "wdsweep.overrides": " ".join(record.get("overrides") or []),
                "wdsweep.config_hash": str(record.get("config_hash"))}
        optuna = record.get("optuna") or {}
        for tag, value in (("wdsweep.same_as", record.get("same_as")), ("wdsweep.batched", record.get("batched")),
                           ("wdsweep.error", record.get("error")), ("wdsweep.stop_reason", record.get("stop_reason")),
                           ("wdsweep.optuna_study", optuna.get("study")),
                           ("wdsweep.optuna_trial_id", optuna.get("trial_id"))):
            if value is not None:
                tags[tag] = _cut(value if isinstance(value, str) else json.dumps(value), MAX_TAG_VAL_LENGTH)
        if parent is not None:
            tags["mlflow.parentRunId"] = parent
        run_id = self.client.create_run(experiment_id, start_time=start_ms, tags=tags,
                                        run_name=place.run_name).info.run_id
        try:
            params = [Param(_key(k), _cut(v, MAX_PARAM_VAL_LENGTH))
                      for k, v in flat_params(record.get("config") or {}).items()]
            metrics = [Metric(_key(k), v, ts, step) for k, v, ts, step in job_metrics(job_dir, record, start_ms)]
            for chunk in _chunks(params, 100):  # MLflow's limits per request
                self.client.log_batch(run_id, params=chunk)
            for chunk in _chunks(metrics, 1000):
                self.client.log_batch(run_id, metrics=chunk)
            for name in ARTIFACTS:
                if (Path(job_dir) / name).is_file():
                    self.client.log_artifact(run_id, str(Path(job_dir) / name))
            for name in HYDRA_ARTIFACTS:
                if (Path(job_dir) / ".hydra" / name).is_file():
                    self.client.log_artifact(run_id, str(Path(job_dir) / ".hydra" / name), ".hydra")
            # Last: the mark of a whole export (exported() looks for it).
            self.client.log_batch(run_id, tags=[RunTag("wdsweep.run_id", str(record.get("run_id")))])
            self.client.set_terminated(run_id, RUN_STATUS.get(record.get("status"), "FAILED"), end_time=end_ms)
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.delete_run(run_id)
            raise
        if parent is not None:  # the parent spans its sweep's exports so far
            self.client.set_terminated(parent, "FINISHED", end_time=max(end_ms, _now_ms()))
        return run_id


def flat_params(tree: dict, prefix: str = "") -> Dict[str, str]:
    """A config tree as MLflow params: dotted keys, strings as they are, other values as JSON."""
    params: Dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            params.update(flat_params(value, f"{prefix}{key}."))
        else:
            params[f"{prefix}{key}"] = value if isinstance(value, str) else json.dumps(value)
    return params


def job_metrics(job_dir: Path, record: dict, start_ms: int) -> List[tuple]:
    """(key, value, timestamp ms, step) for every history.csv cell, then metrics.json's own
    numbers at the last step, and any final value that is not the last row's."""
    metrics = []
    last: Dict[str, float] = {}
    last_step, last_ms = 0, start_ms
    for row in read_history(job_dir):
        step = int(row.pop("step"))
        ms = start_ms + int(1000 * row.get("seconds", 0.0)) if math.isfinite(row.get("seconds", 0.0)) else start_ms
        for key, value in row.items():
            metrics.append((key, value, ms, step))
        last, last_step, last_ms = row, step, ms
    step = int(record.get("steps") or last_step)
    final_ms = max(_ms(record.get("finished_at")), last_ms + 1)
    for key, value in last.items():
        final = record.get(key, value)
        if final is None and not math.isfinite(value):
            continue  # metrics.json writes a non-finite number as null
        final = math.nan if final is None else final
        if isinstance(final, (int, float)) and not _same(final, value):
            metrics.append((key, float(final), final_ms, step))
    for key in RECORD_METRICS:
        value = record.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics.append((key, float(value), final_ms, step))
    return metrics


def read_history(job_dir: Path) -> List[Dict[str, float]]:
    path = Path(job_dir) / HISTORY_FILE
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            numbers = {}
            for key, text in row.items():
                with contextlib.suppress(TypeError, ValueError):
                    numbers[key] = float(text)
            if "step" in numbers:
                rows.append(numbers)
    return rows


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _key(name: str) -> str:
    return _BAD_KEY_CHARS.sub("_", name)[:250]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - len(CUT_NOTE)] + CUT_NOTE


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _ms(stamp: Any) -> int:
    try:
        when = datetime.fromisoformat(str(stamp))
    except ValueError:
        return _now_ms()
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


def _now_ms() -> int:
    return int(datetime.now(timezone.utc).timestamp() * 1000)


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or cut short by a kill: a new parent then
        return {}
    return value if isinstance(value, dict) else {}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive flock on `path`: a lock file (made if missing) or a folder."""
    fd = os.open(path, os.O_RDONLY) if Path(path).is_dir() else os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# ------------------------------------------------------------------ export later
def export_folders(folders: Sequence[Path], uri_setting: Optional[str] = None,
                   experiment_setting: Optional[str] = None, out=None) -> int:
    """Export finished jobs that have no run yet: each folder is a job folder (it holds
    metrics.json) or a sweep folder (every job folder under it). The URI is `uri_setting`
    (relative paths from the current directory), else the one each job was run with (its
    config's logger.tracking_uri, relative to where its command ran), else the default; the
    experiment is `experiment_setting`, else the job's own, else the one the job would have
    had. Returns how many failed."""
    out = out or sys.stdout
    cwd = Path.cwd()
    failed = 0
    for folder in map(Path, folders):
        folder = folder.resolve()
        if (folder / METRICS_FILE).is_file():
            jobs, sweep_dir = [folder], None
        else:
            jobs = sorted(p.parent for p in folder.rglob(METRICS_FILE)
                          if not any(part.startswith(".") for part in p.relative_to(folder).parts))
            sweep_dir = folder
        if not jobs:
            print(f"{folder}: no job folder (none holds {METRICS_FILE})", file=out)
            failed += 1
        for job_dir in jobs:
            failed += not _export_later(job_dir, sweep_dir, cwd, uri_setting, experiment_setting, out)
    return failed


def _export_later(job_dir: Path, sweep_dir: Optional[Path], cwd: Path, uri_setting: Optional[str],
                  experiment_setting: Optional[str], out) -> bool:
    uri = None
    try:
        record = json.loads((job_dir / METRICS_FILE).read_text())
        logger = (record.get("config") or {}).get("logger") or {}
        mlflow_job = logger.get("name") == "mlflow"
        # The job's own URI and default experiment are relative to where its command ran.
        job_cwd = _command_dir(job_dir) or cwd
        uri = (tracking_uri(uri_setting, cwd) if uri_setting else
               tracking_uri(logger.get("tracking_uri") if mlflow_job else None, job_cwd))
        place = Place(job_cwd, sweep_dir, _shown_path(job_dir, sweep_dir) if sweep_dir else job_dir.name)
        tracker = _tracker(uri)
        experiment = place.experiment(experiment_setting or (logger.get("experiment") if mlflow_job else None))
        if tracker.exported(tracker.experiment_id(experiment), str(record.get("run_id"))):
            print(f"{job_dir}: already in MLflow", file=out)
            return True
        run_id = tracker.export(job_dir, record, place, experiment)
    except Exception as err:  # noqa: BLE001 - one line per job, then the next one
        shown, password = split_password(uri) if uri else ("", None)
        print(hide_password(f"{job_dir}: not exported: {type(err).__name__}: {' '.join(str(err).split())}",
                            password)[:600], file=out)
        return False
    print(f"{job_dir}: exported as run {run_id} to {split_password(uri)[0]}", file=out)
    return True


def _command_dir(job_dir: Path) -> Optional[Path]:
    """The directory the job's command ran in, as Hydra recorded it (.hydra/hydra.yaml)."""
    import yaml

    try:
        hydra = yaml.safe_load((job_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]
        return Path(hydra["runtime"]["cwd"])
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
        return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wdsweep.mlflow_export",
        description="Export finished wdsweep jobs to MLflow (those already there are skipped).")
    parser.add_argument("folders", nargs="+", type=Path, help="sweep folders or job folders")
    parser.add_argument("--tracking-uri", help="default: the URI each job ran with, else "
                        f"$MLFLOW_TRACKING_URI, else {DEFAULT_TRACKING_URI}")
    parser.add_argument("--experiment", help="default: the sweep folder's path (single jobs: "
                        f"{SINGLE_RUN_EXPERIMENT})")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    return 1 if export_folders(args.folders, args.tracking_uri, args.experiment) else 0


if __name__ == "__main__":
    sys.exit(main())
