"""Helpers for the tests that start sweeps as processes and kill them: start a sweep in its own
process group with its output in a log file, kill it (the whole group) once a condition holds,
find processes by a marker in their command line, and read what a sweep left."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

from conftest import job_dirs, read_metrics


def run_ids(sweep: Path) -> Dict[str, str]:
    return {job.name: read_metrics(job)["run_id"] for job in job_dirs(sweep)
            if (job / "metrics.json").exists()}


def skipped_before_launch(outputs: List[str]) -> int:
    """Jobs the sweepers found done before launching ("skipped k of N (already done)"; the
    closing "sweep over: ..., k skipped" line repeats that count and is not read)."""
    return sum(int(n) for out in outputs for n in re.findall(r"skipped (\d+) of \d+ \(already done\)", out))


def start_sweep(args: List[str], cwd: Path, log: str = "sweep.log", env_extra: dict | None = None,
                multirun: bool = True) -> subprocess.Popen:
    """Start a sweep (or with multirun=False a single run) in its own process group (so a kill
    reaches its workers too), its output in cwd/log (a pipe nobody reads would fill and stall it)."""
    env = {**os.environ, "PYTHONHASHSEED": "0", **(env_extra or {})}
    env.pop("HYDRA_FULL_ERROR", None)
    with open(cwd / log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "wdsweep", *(["-m"] if multirun else []), *args], cwd=cwd,
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def saved_step(job: Path) -> int:
    """The step of the job folder's checkpoint (its checkpoint.json), 0 if it has none yet."""
    try:
        return json.loads((job / "checkpoint.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return 0


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 180,
              group: bool = True) -> None:
    """SIGKILL the sweep's whole process group (or its main process alone) as soon as ready()
    says so."""
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, "the sweep ended before it was killed"
        assert time.time() < deadline, "the sweep made no progress"
        time.sleep(0.05)
    if group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.kill()
    proc.wait()


def kill_after(proc: subprocess.Popen, sweep: Path, finished: int, group: bool = True) -> None:
    """SIGKILL the sweep once `finished` jobs have written metrics.json."""
    kill_when(proc, lambda: len(list(sweep.glob("*/metrics.json"))) >= finished, group=group)


def processes_with(marker: str) -> List[int]:
    """The pids whose environment holds `marker` (a sweep's and its workers', inherited)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:  # gone meanwhile, or not ours to read
            pass
    return found


def result_files_whole(sweep: Path) -> None:
    """Every result file parses, and nothing half-written sits under a result file's name."""
    for path in sweep.rglob("metrics.json"):
        assert json.loads(path.read_text())["status"] == "completed", path
    for path in sweep.rglob("history.csv"):
        lines = path.read_text().splitlines()
        assert len(lines) > 1 and all(line.count(",") == lines[0].count(",") for line in lines), path
