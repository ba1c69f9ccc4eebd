"""Collect: sweep folders and Optuna storages -> one tidy pandas DataFrame, one row per run.

Each job folder (one holding .hydra/config.yaml) gives a row: the flattened config keys
(`reg.lam`, `reg.p`, `optimizer.name`, `seed`, ...), every metric of its metrics.json, its
status and where it lives. A job with no metrics.json (still running, or killed) is a row with
status `incomplete`; a corrupt metrics.json is a row with status `unreadable` and a one-line
message; a job whose config cannot be read is left out, with a one-line message. A source with
no runs at all is a one-line message too. An Optuna storage (a journal file or a storage URL) gives one row per trial.
A storage URL's password is used to connect and nowhere else: rows and messages name the URL
with the password masked (postgresql://me:***@host/db).
Rows from sweeps with different config keys merge; keys a run lacks are empty (NaN).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence

import pandas as pd
import yaml

from wdsweep.trial_link import hide_password

log = logging.getLogger(__name__)

STATUSES = ("completed", "diverged", "failed", "pruned", "incomplete", "unreadable")
# Metrics copied from metrics.json into each row, when present.
METRICS = ("objective", "train_loss", "train_error", "val_loss", "val_error", "test_loss", "test_error",
           "reg_loss", "weight_norm", "sparsity", "train_seconds", "steps", "steps_planned",
           "diverged_at_step", "error", "config_hash", "same_as", "torch_threads", "thread_independent")


@dataclass
class Collection:
    runs: pd.DataFrame
    problems: List[str] = field(default_factory=list)  # one line each, naming the file


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
    rows: List[Dict[str, Any]] = []
    problems: List[str] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found = collect_sweep(path, problems)
            if not found:
                problems.append(f"{path}: no runs found (no folder with .hydra/config.yaml below it)")
            rows.extend(found)
        elif path.suffix == ".journal" and not path.is_file():
            # Opening a journal that is not there would create it, empty.
            problems.append(f"{source}: no such journal file")
        elif path.suffix == ".journal" or "://" in source:
            found = collect_optuna(source, problems)
            shown = hide_password(source)
            if not found and not any(p.startswith(f"{shown}: ") for p in problems):
                problems.append(f"{shown}: no trials found (no study in this storage)")
            rows.extend(found)
        else:
            problems.append(f"{source}: not a sweep folder, a .journal file or a storage URL")
    rows = _once_per_trial(rows)
    frame = _split_objectives(pd.DataFrame(rows))
    if not frame.empty:
        frame = frame[[c for c in _leading(frame)] + [c for c in frame.columns if c not in _leading(frame)]]
    return Collection(frame, problems)


def _once_per_trial(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """A trial given twice, as a job folder and as a trial of its study's storage (the sweep
    folder and its journal), is one row: the folder's, with the study's trial number and state."""
    # (decided before the loop: a folder row takes a trial_state from its twin in it)
    from_storage = {id(row) for row in rows if "trial_state" in row}
    folders = {row["_trial_key"]: row for row in rows if row.get("_trial_key") and id(row) not in from_storage}
    merged, kept = 0, []
    for row in rows:
        twin = folders.get(row.get("_trial_key")) if id(row) in from_storage else None
        if twin is not None:
            twin.update({k: row[k] for k in ("study", "trial", "trial_state")})
            merged += 1
        else:
            kept.append(row)
    if merged:
        log.info("%d trials found both in a sweep folder and in their study's storage: counted once", merged)
    for row in kept:
        row.pop("_trial_key", None)
    return kept


def _trial_key(job_dir: Path, study: Any) -> Any:
    """What names one trial's job in both sources: its study and the last two parts of its
    folder (the sweep folder's name and trial-NNNNN). The whole path would not do: the sweep
    may have stored it relative to where it ran, and the analysis may run elsewhere."""
    return (str(study), *Path(job_dir).parts[-2:]) if study else None


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
        job = config_file.parent.parent
        row: Dict[str, Any] = {"sweep": str(root), "job": str(job.relative_to(root)) or "."}
        try:
            config = yaml.safe_load(config_file.read_text())
        except (yaml.YAMLError, OSError, UnicodeDecodeError) as err:
            config = _one_line(err)
        if not isinstance(config, dict):
            problems.append(f"{config_file}: unreadable config ({config}); job skipped")
            continue
        missing = [g for g in JOB_GROUPS if not isinstance(config.get(g), dict)]
        if missing:  # another tool's job folder, or a config cut short
            problems.append(f"{config_file}: not a wdsweep job's config (no {', '.join(missing)}); job skipped")
            continue
        row.update(flatten(config))
        overrides = _read_overrides(job / ".hydra" / "overrides.yaml", problems)
        if overrides is not None:
            row["overrides"] = overrides
        metrics = _read_metrics(job / "metrics.json", problems)
        row["_trial_key"] = _trial_key(job, metrics.pop("_study", None))
        row.update(metrics)
        rows.append(row)
    return rows


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
    `unreadable`, so one bad file never stops the analysis. `_study` names an Optuna trial's
    study (the caller pops it)."""
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
    link = metrics.get("optuna")  # an Optuna trial's job names its study (see _once_per_trial)
    return {"status": metrics.get("status", "unreadable"), **{k: metrics[k] for k in METRICS if k in metrics},
            "_study": link.get("study") if isinstance(link, dict) else None}


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def collect_optuna(spec: str, problems: List[str]) -> List[Dict[str, Any]]:
    """One row per trial of every study in an Optuna storage."""
    import optuna

    from wdsweep.trial_link import open_storage, split_password

    shown, password = split_password(spec)  # rows and messages never hold the password
    try:
        storage = open_storage(spec)
        summaries = optuna.get_all_study_summaries(storage)
    except Exception as err:  # noqa: BLE001 - a bad storage is a message, not a crash
        err = getattr(err, "orig", None) or err  # SQLAlchemy's wrapper: the driver says it best
        line = hide_password(f"{type(err).__name__}: {_one_line(err)}", password)
        problems.append(f"{shown}: cannot read the Optuna storage ({line})")
        return []
    rows = []
    for summary in summaries:
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        for trial in study.get_trials(deepcopy=False):
            row: Dict[str, Any] = {"sweep": shown, "job": f"{summary.study_name}/trial-{trial.number:05d}",
                                   "study": summary.study_name, "trial": trial.number,
                                   "trial_state": trial.state.name}
            row.update(trial.params)
            attrs = trial.user_attrs
            if attrs.get("wdsweep_job_dir"):
                row["_trial_key"] = _trial_key(Path(attrs["wdsweep_job_dir"]), summary.study_name)
            row["status"] = attrs.get("wdsweep_status") or {"RUNNING": "incomplete", "WAITING": "incomplete",
                                                             "PRUNED": "pruned", "FAIL": "failed"}.get(
                                                                 trial.state.name, "completed")
            for key in ("test_error", "val_error", "steps", "diverged_at_step", "error"):
                if f"wdsweep_{key}" in attrs:
                    row[key] = attrs[f"wdsweep_{key}"]
            # A pruned trial's value is its last intermediate one, not a finished run's.
            if trial.state.name == "COMPLETE" and trial.values is not None:
                row["objective"] = trial.values[0] if len(trial.values) == 1 else list(trial.values)
            rows.append(row)
    return rows


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
