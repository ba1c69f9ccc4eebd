"""Collect: sweep folders and Optuna storages -> one tidy pandas DataFrame, one row per run.

Each job folder (one holding .hydra/config.yaml) gives a row: the flattened config keys
(`reg.lam`, `reg.p`, `optimizer.name`, `seed`, ...), every metric of its metrics.json, its
status and where it lives. A job with no metrics.json (still running, or killed) is a row with
status `incomplete`; a corrupt metrics.json is a row with status `unreadable` and a one-line
message; a job whose config cannot be read is left out, with a one-line message. A source with
no runs at all is a one-line message too. An Optuna study, named by its storage (a journal file
or a storage URL) or by any of its sweep folders, gives one row per trial of every invocation,
joined with that trial's job folder (analysis/study.py says how a folder finds its study and a
trial its folder). Each job folder and each trial counts once, however many sources name it.
A storage URL's password is used to connect and nowhere else: rows and messages name the URL
with the password masked (postgresql://me:***@host/db).
Rows from sweeps with different config keys merge; keys a run lacks are empty (NaN).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence

import pandas as pd
import yaml

from wdsweep.search.finalists import FINALISTS_DIR

# What a job that is not a trial's own run is to its trial (wdsweep.tracking.trial_link.ROLES): a seed of
# a replicated trial (hydra.sweeper.seeds) or a fresh-seed run of a finalist.
ROLES = ("replicate", "finalist")
STATUSES = ("completed", "diverged", "failed", "pruned", "incomplete", "unreadable")
# Metrics copied from metrics.json into each row, when present.
METRICS = ("objective", "train_loss", "train_error", "val_loss", "val_error", "test_loss", "test_error",
           "reg_loss", "weight_norm", "sparsity", "train_seconds", "steps", "steps_planned",
           "diverged_at_step", "error", "config_hash", "same_as", "torch_threads", "thread_independent", "task",
           "error_metric", "batched")


@dataclass
class Collection:
    runs: pd.DataFrame
    problems: List[str] = field(default_factory=list)  # one line each, naming the file
    studies: List[Any] = field(default_factory=list)  # analysis.study.LoadedStudy, each once


def flatten(tree: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """{'reg': {'lam': 0.1}} -> {'reg.lam': 0.1}; lists stay values."""
    flat: Dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def collect(sources: Iterable[str]) -> Collection:
    from analysis import study as studies_of

    folders: Dict[Path, Dict[str, Any]] = {}  # resolved job folder -> its row: each folder once
    refs: List[Any] = []
    problems: List[str] = []
    for source in map(str, sources):
        path = Path(source)
        if path.is_dir():
            found = collect_sweep(path, problems)
            if not found:
                problems.append(f"{path}: no runs found (no folder with .hydra/config.yaml below it)")
            for row in found:
                folders.setdefault(row["_path"], row)
            refs += studies_of.refs_of_folder(path, problems)
        elif path.suffix == ".journal" and not path.is_file():
            # Opening a journal that is not there would create it, empty.
            problems.append(f"{source}: no such journal file")
        elif path.suffix == ".journal" or "://" in source:
            refs.append(studies_of.StudyRef(source, None))
        else:
            problems.append(f"{source}: not a sweep folder, a .journal file or a storage URL")
    # Storages given as sources first: a study also named by a folder is read from them.
    refs = [r for r in refs if not r.sweeps] + [r for r in refs if r.sweeps]
    studies = studies_of.load_studies(refs, problems) if refs else []
    trial_rows = studies_of.join_trials(studies, folders, lambda job: _job_row(job, job.parent, problems),
                                        problems)
    for row in folders.values():  # a trial of a study that could not be read, or a seed run of a
        if row.get("_study") is not None:  # replicated trial or a finalist: named by its folder
            job = Path(row["job"]).parent if row.get("role") else Path(row["job"])  # trial-NNNNN/seed-S
            row.update(study=row["_study"], trial=studies_of.trial_number_of_folder(str(job)))
    rows = [*folders.values(), *trial_rows]
    for row in rows:
        for key in ("_path", "_study", "_trial_id"):
            row.pop(key, None)
    frame = _as_text_lists(_split_objectives(pd.DataFrame(rows)))
    if not frame.empty:
        frame = frame[[c for c in _leading(frame)] + [c for c in frame.columns if c not in _leading(frame)]]
    return Collection(frame, problems, studies)


def _as_text_lists(frame: pd.DataFrame) -> pd.DataFrame:
    """A list-valued config key (optimizer.betas, model.channels) as its text, "[0.9, 0.999]":
    a sweep over it then groups, compares and draws like any other key (lists cannot be
    grouped on)."""
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object and values.map(lambda v: isinstance(v, (list, tuple))).any():
            frame[column] = values.map(lambda v: str(list(v)) if isinstance(v, (list, tuple)) else v)
    return frame


def _split_objectives(frame: pd.DataFrame) -> pd.DataFrame:
    """A multi-objective run's objective is a list: it goes to `objectives` (as text), and
    `objective`, which the charts and the report rank by, stays empty for it."""
    if frame.empty or "objective" not in frame:
        return frame
    several = frame["objective"].map(lambda v: isinstance(v, (list, tuple)))
    if several.any():
        frame = frame.copy()
        frame["objectives"] = frame["objective"].where(several).map(
            lambda v: " ".join(f"{x:.6g}" if isinstance(x, (int, float)) else str(x) for x in v)
            if isinstance(v, (list, tuple)) else None)
        frame["objective"] = pd.to_numeric(frame["objective"].where(~several), errors="coerce")
    return frame


# What a wdsweep job's config holds at its top level: a folder without them is another tool's.
JOB_GROUPS = ("model", "data", "optimizer", "reg", "trainer")


def _leading(frame: pd.DataFrame) -> List[str]:
    return [c for c in ("sweep", "job", "status", "seed", "reg.lam", "reg.p", "reg.mode", "reg.scope")
            if c in frame.columns]


def collect_sweep(root: Path, problems: List[str]) -> List[Dict[str, Any]]:
    rows = []
    for config_file in sorted(root.rglob(".hydra/config.yaml")):
        row = _job_row(config_file.parent.parent, root, problems)
        if row is not None:
            rows.append(row)
    return rows


def _job_row(job: Path, root: Path, problems: List[str]) -> Dict[str, Any] | None:
    """One job folder's row (`sweep` = root, `job` = the folder below it); None, with a line in
    `problems`, when its config cannot be read or is not a wdsweep job's. Private keys for the
    join with a study: `_path` (the resolved folder), `_study` and `_trial_id` (its metrics.json's
    trial link), popped by collect()."""
    config_file = job / ".hydra" / "config.yaml"
    row: Dict[str, Any] = {"sweep": str(root), "job": str(job.relative_to(root)) or "."}
    try:
        config = yaml.safe_load(config_file.read_text())
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as err:
        config = _one_line(err)
    if not isinstance(config, dict):
        problems.append(f"{config_file}: unreadable config ({config}); job skipped")
        return None
    missing = [g for g in JOB_GROUPS if not isinstance(config.get(g), dict)]
    if missing:  # another tool's job folder, or a config cut short
        problems.append(f"{config_file}: not a wdsweep job's config (no {', '.join(missing)}); job skipped")
        return None
    row.update(flatten(config))
    overrides = _read_overrides(job / ".hydra" / "overrides.yaml", problems)
    if overrides is not None:
        row["overrides"] = overrides
    row.update(_read_metrics(job / "metrics.json", problems))
    if "role" not in row and _grid_finalist(job):
        row["role"] = "finalist"
    row["_path"] = job.resolve()
    return row


def _grid_finalist(job: Path) -> bool:
    """A grid finalist's fresh-seed run (the grid sweeper's hydra.sweeper.finalists): it lives in
    <sweep>/finalists/<configuration>/seed-<s> (wdsweep.search.finalists.FINALISTS_DIR), and its
    metrics.json names no trial. It must never count as one more seed of the grid's own."""
    return job.name.startswith("seed-") and job.parent.parent.name == FINALISTS_DIR


def _read_overrides(path: Path, problems: list[str]) -> str | None:
    """The job's overrides as one string; None if there is no file or it cannot be read."""
    if not path.is_file():
        return None
    try:
        overrides = yaml.safe_load(path.read_text()) or []
        return " ".join(map(str, overrides)) if isinstance(overrides, list) else str(overrides)
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as err:
        problems.append(f"{path}: unreadable overrides.yaml ({_one_line(err)})")
        return None


def _read_metrics(path: Path, problems: list[str]) -> dict[str, Any]:
    """The status and metrics of one job. A missing file is a job still running or killed;
    a corrupt one (half-written, edited, not a JSON object) is reported and the run kept as
    `unreadable`, so one bad file never stops the analysis. `_study` and `_trial_id` name an
    Optuna trial's study and trial (the caller pops them)."""
    if not path.is_file():
        return {"status": "incomplete"}
    try:
        metrics = json.loads(path.read_text())
        problem = None if isinstance(metrics, dict) else f"a JSON {type(metrics).__name__}, not an object"
    except (ValueError, OSError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        problem = _one_line(err)
    if problem is not None:
        problems.append(f"{path}: corrupt metrics.json ({problem}); run kept as unreadable")
        return {"status": "unreadable"}
    link = metrics.get("optuna")  # an Optuna trial's job names its trial (see study.join_trials)
    link = link if isinstance(link, dict) else {}
    # A seed of a replicated trial, or a finalist's fresh-seed run, names its trial too, but is
    # not the trial's own job: its `role` keeps it out of the trial's row (study.join_trials).
    role = {"role": link["role"]} if link.get("role") in ROLES else {}
    decay = metrics.get("decay") if isinstance(metrics.get("decay"), dict) else {}
    counts = {k: decay[k] for k in ("decayed_params", "kept_params", "stepped_params") if isinstance(decay.get(k), int)}
    return {"status": metrics.get("status", "unreadable"), **{k: metrics[k] for k in METRICS if k in metrics},
            **counts, "_study": link.get("study"), "_trial_id": link.get("trial_id"), **role}


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def sweep_commands(frame: pd.DataFrame) -> List[str]:
    """The command line of each sweep the runs come from, as its multirun.yaml recorded it
    (Hydra's overrides: the task's, then the hydra ones given), passwords masked; every
    invocation that wrote into a folder, oldest first (wdsweep.jobs.sweep_record)."""
    from wdsweep.config.urls import hide_password
    from wdsweep.jobs.sweep_record import sweep_records

    commands = []
    for sweep in dict.fromkeys(frame["sweep"].dropna().map(str)) if "sweep" in frame else []:
        for path in (*sweep_records(Path(sweep)), *Path(sweep).glob("*/multirun.yaml")):
            try:
                overrides = (yaml.safe_load(path.read_text()) or {})["hydra"]["overrides"]
            except (OSError, yaml.YAMLError, KeyError, TypeError):
                continue
            given = [*overrides.get("task", []), *[o for o in overrides.get("hydra", []) if o != "hydra.mode=MULTIRUN"]]
            commands.append("python -m wdsweep -m " + " ".join(hide_password(str(o)) for o in given))
    return list(dict.fromkeys(commands))


def status_counts(frame: pd.DataFrame) -> Dict[str, int]:
    counts = frame["status"].value_counts() if "status" in frame else pd.Series(dtype=int)
    return {status: int(counts.get(status, 0)) for status in STATUSES}


def varying_keys(frame: pd.DataFrame, exclude: Sequence[str] = ("seed", "reg.lam")) -> List[str]:
    """Config keys (flattened, so dotted, or `seed`) whose value differs between runs, besides
    `exclude`: each of their values is a setting of its own, never to be averaged like seeds."""
    keys = []
    for column in frame.columns:
        if ("." in column or column == "seed") and column not in exclude:
            if frame[column].map(str).nunique() > 1:  # as text: lists are not hashable
                keys.append(column)
    return keys


def matching(frame: pd.DataFrame, row: pd.Series, keys: List[str]) -> pd.Series:
    """Rows of `frame` equal to `row` on `keys` (compared as text: lists and NaN included)."""
    mask = pd.Series(True, index=frame.index)
    for key in keys:
        mask &= frame[key].map(str) == str(row[key])
    return mask
