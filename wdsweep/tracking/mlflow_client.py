"""The MLflow side of `logger=mlflow` (see wdsweep.tracking.mlflow_export for what a run holds
and where it goes): a connected client per tracking URI, the experiment and the sweep's parent
run, and one finished job's files written as one run (params, metrics, tags, artifacts).
mlflow is imported here only when a job exports.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import logging
import math
import os
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from wdsweep.config.urls import shown_url
from wdsweep.tracking.mlflow_sqlite import open_or_remake
from wdsweep.tracking.results import HISTORY_FILE, METRICS_FILE, MODEL_FILE, atomic_write

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

_TRACKERS: Dict[str, "Tracker"] = {}  # per process: a connected tracker per URI


def _sqlite_file(uri: str) -> Optional[Path]:
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?")[0]
    return Path(path) if path.startswith("/") else None


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
        return shown_path(self.sweep_dir, self.cwd) if self.sweep_dir else SINGLE_RUN_EXPERIMENT


def shown_path(path: Path, cwd: Path) -> str:
    """`path` relative to `cwd` when inside it, else absolute."""
    path = Path(cwd, path).resolve()
    try:
        return str(path.relative_to(Path(cwd).resolve()))
    except ValueError:
        return str(path)


def connected(uri: str) -> "Tracker":
    if uri not in _TRACKERS:
        _TRACKERS[uri] = Tracker(uri)
    return _TRACKERS[uri]


class Tracker:
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
            # A store whose creation was cut short (a full disk) is made anew (mlflow_sqlite).
            self.client = open_or_remake(db, uri, lambda: _opened(MlflowClient(tracking_uri=uri)))

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
        entry = f"{shown_url(self.uri)} experiment {experiment_id}"  # never the password
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


def _opened(client):
    """The client, its store opened (MLflow opens it at the first request)."""
    client.search_experiments(max_results=1)
    return client


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive flock on `path`: a lock file (made if missing) or a folder."""
    fd = os.open(path, os.O_RDONLY) if Path(path).is_dir() else os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
