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
at once would both run its migrations and break it. A local SQLite store whose creation was
cut short (a full disk) is made anew when it holds no run, else the export says in one line how
to recover it (wdsweep.tracking.mlflow_sqlite).

Secrets: a password in `logger.tracking_uri=http://me:pw@host` on the command line is taken
out before Hydra sees it (mask_command_line, called by wdsweep.app): configs, folder names,
files and log lines get `http://me:***@host`, and the jobs get the password through the
process environment (ENV_PASSWORD), put back into the URI in memory only, as the Optuna
sweeper does with its storage (wdsweep.tracking.trial_link); likewise a query password
(`'sqlite:///m.db?passwd=pw'`: every form wdsweep.config.urls knows). A password written in a
config file is refused by validation, since Hydra would copy it into every job's folder, and so is
one masking could not hide whole (on the command line or in $MLFLOW_TRACKING_URI, whose password
otherwise stays in the environment, every line showing the URI masked).

A tracking server that does not answer would make MLflow retry each request for minutes;
unless MLFLOW_HTTP_REQUEST_MAX_RETRIES / _TIMEOUT are set, 2 retries and 20 s are used, and
after one failed export a process does not try that URI again (each later job logs one line).

mlflow is imported only when a job exports (about 2.5 s once per process).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from wdsweep.config.urls import UnsafePassword, hide_password, shown_scheme, split_password, with_password
from wdsweep.errors import ConfigError
from wdsweep.tracking.mlflow_client import SINGLE_RUN_EXPERIMENT, Place, connected, shown_path
from wdsweep.tracking.results import METRICS_FILE

log = logging.getLogger(__name__)

ENV_PASSWORD = "WDSWEEP_MLFLOW_PASSWORD"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
_URI_OVERRIDE = re.compile(r"^(?:\+\+|\+)?logger\.tracking_uri=")

# Per process: a tracking URI (as shown) whose export failed, and why; connected trackers.
_FAILED: Dict[str, str] = {}
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
            # Hydra's quotes around the value ('...?password=pw', where "=" needs them) stay
            # around the masked value.
            quote = value[0] if len(value) > 1 and value[0] in "'\"" and value[-1] == value[0] else ""
            try:
                public, password = split_password(value[len(quote):len(value) - len(quote)])
            except UnsafePassword as err:
                ConfigError(f"invalid override logger.tracking_uri={shown_scheme(value.strip(quote))!r} "
                            f"is not allowed: {unsafe_uri_advice(err)}").exit()
            public = quote + public + quote
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


def unsafe_uri_advice(err: UnsafePassword) -> str:
    """What to do about a tracking URI whose password cannot be masked (urls.UnsafePassword)."""
    return (f"a URI whose password can be masked ({err}), or none in it: MLFLOW_TRACKING_USERNAME "
            "and MLFLOW_TRACKING_PASSWORD, which MLflow reads itself")


def shown_uri(uri: str) -> Tuple[str, Optional[str]]:
    """(the URI as lines may show it, its password); a URI whose password cannot be masked
    (from $MLFLOW_TRACKING_URI: validation refuses the config's) shows only its scheme."""
    try:
        return split_password(uri)
    except UnsafePassword:
        return shown_scheme(uri), None


# ------------------------------------------------------------------ where a job's run goes
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
                return Place(cwd, sweep_dir, shown_path(job_dir, sweep_dir))
            return Place(cwd, None, shown_path(job_dir, cwd))
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
    try:
        shown, password = split_password(uri)
    except UnsafePassword as err:  # $MLFLOW_TRACKING_URI's, set after validation refused it
        log.warning("not exported to MLflow (%s): %s", shown_scheme(uri), unsafe_uri_advice(err))
        return
    later = f"export it later with: python -m wdsweep.mlflow_export {place.sweep_dir or job_dir}"
    if shown in _FAILED:
        log.warning("not exported to MLflow: the export to %s failed earlier in this process (%s); "
                    "the result is in %s; %s", shown, _FAILED[shown], job_dir / METRICS_FILE, later)
        return
    experiment = place.experiment(logger.get("experiment"))
    try:
        run_id = connected(uri).export(job_dir, record, place, experiment)
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
        place = Place(job_cwd, sweep_dir, shown_path(job_dir, sweep_dir) if sweep_dir else job_dir.name)
        tracker = connected(uri)
        experiment = place.experiment(experiment_setting or (logger.get("experiment") if mlflow_job else None))
        if tracker.exported(tracker.experiment_id(experiment), str(record.get("run_id"))):
            print(f"{job_dir}: already in MLflow", file=out)
            return True
        run_id = tracker.export(job_dir, record, place, experiment)
    except Exception as err:  # noqa: BLE001 - one line per job, then the next one
        shown, password = shown_uri(uri) if uri else ("", None)
        print(hide_password(f"{job_dir}: not exported: {type(err).__name__}: {' '.join(str(err).split())}",
                            password)[:600], file=out)
        return False
    print(f"{job_dir}: exported as run {run_id} to {shown_uri(uri)[0]}", file=out)
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
    given = (("--tracking-uri", args.tracking_uri), ("MLFLOW_TRACKING_URI", os.environ.get("MLFLOW_TRACKING_URI")))
    for source, uri in given:
        try:
            split_password(uri or "")
        except UnsafePassword as err:
            print(f"wdsweep.mlflow_export: {source}={shown_scheme(uri)!r} is not allowed: {unsafe_uri_advice(err)}",
                  file=sys.stderr)
            return 1
    return 1 if export_folders(args.folders, args.tracking_uri, args.experiment) else 0


if __name__ == "__main__":
    sys.exit(main())
