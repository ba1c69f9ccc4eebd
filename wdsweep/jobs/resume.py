"""Resuming a sweep: is a job already done, and one process at a time in a job's folder.

A job is done when its metrics.json is whole, says a final status (`completed`, or `diverged`,
which a re-run would only repeat) and carries the config_hash of the config about to run. A
`failed` job is run again (its cause may have been the machine), as is one whose config
changed or whose metrics.json is missing: metrics.json is written last, so a job killed
part-way has none.

No torch here: the grid sweeper calls this for every job before launching any.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator, Optional

from wdsweep.jobs import lock_holder
from wdsweep.tracking.fingerprint import changes
from wdsweep.tracking.results import HISTORY_FILE, METRICS_FILE

DONE_STATUSES = ("completed", "diverged")
LOCK_FILE = ".wdsweep.lock"


def read_record(job_dir: Path) -> Optional[dict]:
    """The job's metrics.json, or None if it is missing or not a whole JSON object."""
    try:
        record = json.loads((Path(job_dir) / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def done_record(job_dir: Path, cfg_hash: str, fixed_threads: Optional[int] = None,
                fingerprint: Optional[dict] = None, one_by_one: bool = False) -> Optional[dict]:
    """The record of this exact config's finished run in job_dir, or None if it must run.

    A model whose numbers depend on the thread count (the record says thread_independent:
    false) is done only if it ran with `fixed_threads`, the count it would run with now
    (wdsweep.jobs.threads.fixed_threads): a sweep resumed under another launcher or OMP_NUM_THREADS
    runs it again rather than mix two kinds of numbers. A thread-independent record is done
    at any count. With `fingerprint` (the job's code and data now: wdsweep.tracking.fingerprint)
    a record whose code or data differ is not done either. With `one_by_one` (a launcher that
    trains each job alone: every launcher but the vectorized ones), a record of a job trained
    as a member of a vectorized batch is not done: its numbers differ from the job's alone by
    float rounding that grows with the steps, and a resumed sweep must not mix the two kinds.
    (The vectorized launchers batch what they can and run the rest alone: both kinds count
    there, and the report names a mix.)"""
    record = read_record(job_dir)
    if record is None or record.get("status") not in DONE_STATUSES:
        return None
    if record.get("config_hash") != cfg_hash:
        return None
    if not _history_whole(Path(job_dir), record):
        return None
    if (fixed_threads is not None and record.get("thread_independent") is False
            and record.get("torch_threads") != fixed_threads):
        return None
    if fingerprint is not None and changes(record.get("fingerprint"), fingerprint):
        return None  # its code or data changed since (wdsweep.tracking.fingerprint)
    if one_by_one and record.get("batched") is True:
        return None
    return record


def trains_one_by_one(launcher: Any) -> bool:
    """Whether a launcher (its hydra.launcher config) trains each job alone: all but ours that
    batch jobs into one vectorized model."""
    target = str(launcher.get("_target_", "")) if hasattr(launcher, "get") else ""
    return "wdsweep_vectorized" not in target


def changed_since(job_dir: Path, cfg_hash: str, prints: Optional[dict], one_by_one: bool = False) -> str:
    """What changed in the code or data of the finished job of this very config in job_dir, or
    in how it would be trained (done_record's `one_by_one`), in words ("model code changed
    (mynet.py)"); "" when nothing did, or there is no such job."""
    record = read_record(job_dir) or {}
    if record.get("config_hash") != cfg_hash or record.get("status") not in DONE_STATUSES:
        return ""
    said = changes(record.get("fingerprint"), prints) if prints is not None else []
    if one_by_one and record.get("batched") is True:
        said.append("it was trained in a vectorized batch, and this launcher trains each job alone")
    return "; ".join(said)


def _history_whole(job_dir: Path, record: dict) -> bool:
    """Whether history.csv still holds the rows metrics.json counted (records from before
    history_rows was written pass): a file cut short by hand or by a disk makes the job run
    again rather than be taken as done."""
    rows = record.get("history_rows")
    if rows is None:
        return True
    try:
        with open(job_dir / HISTORY_FILE, "rb") as history:
            lines = history.read().splitlines()
    except OSError:
        return False
    return len(lines) == rows + 1 and all(line.count(b",") == lines[0].count(b",") for line in lines)


@contextlib.contextmanager
def job_lock(job_dir: Path, wait: bool = True) -> Iterator[None]:
    """Hold the job folder's lock: a second process running the same job (two sweeps over
    overlapping grids) waits here, then finds the job done. The kernel releases the lock when
    its holder dies, even by SIGKILL, so a killed sweep never leaves a job locked.

    A job that ends done (completed, diverged) takes its lock file away, still holding it:
    a process that was waiting on the old file, or opens a new one, finds the job done and
    leaves it. A failed or interrupted job keeps the file, as the next run of it will.
    The holder's pid, host and command are in the file: a waiter names them
    (wdsweep.jobs.lock_holder). Unless `wait`, a held lock raises lock_holder.FolderBusy
    instead: a single run does not write into a folder another run is writing."""
    path = Path(job_dir) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        lock_holder.take(fd, path, wait)  # a wait says for whom, and how to stop it
        yield
        record = read_record(job_dir)
        if record is not None and record.get("status") in DONE_STATUSES:
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)  # closing releases the lock


def remove_stale_temp_files(job_dir: Path) -> None:
    """Drop the temporary files of a write that was killed before its rename. Call it only
    under job_lock, so no live writer's file is taken away."""
    for tmp in Path(job_dir).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def output_folder_problem(folder: Path) -> Optional[str]:
    """Why results cannot be written under `folder`, or None if they can. The test is to
    create the folder and a file in it, since permission bits do not tell the whole story
    (read-only mounts, a file where a folder should be, root ignoring modes). On failure the
    folders it made are removed again. A name too long for the file system is found from the
    text alone (wdsweep.config.path_limits), before anything is made."""
    from wdsweep.config.path_limits import long_name_problem

    folder = Path(folder).absolute()
    too_long = long_name_problem(folder)
    if too_long:
        return too_long
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".wdsweep-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        for made in missing:  # deepest first
            with contextlib.suppress(OSError):
                made.rmdir()
        return f"{type(err).__name__}: {err.strerror or err}"
    return None
