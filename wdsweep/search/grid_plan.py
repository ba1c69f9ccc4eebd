"""The grid sweeper's plan, apart from Hydra: each job with its folder, config hash, thread count
and canonical hash; the checks on the whole grid (one folder per job); which jobs are twins of
an earlier one; the dry run's printout; and the closing count of how the launched jobs ended.
The Hydra plugin (hydra_plugins/wdsweep_sweeper) composes, validates and launches.
"""
from __future__ import annotations

import logging
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

from wdsweep.errors import ConfigError
from wdsweep.jobs.checkpoints import checkpoint_step
from wdsweep.jobs.resume import DONE_STATUSES, changed_since, read_record

log = logging.getLogger(__name__)

SAME_AS_LABEL = "same as another job (not trained)"


@dataclass
class GridJob:
    index: int  # the job's number in the full grid, kept when others are skipped
    overrides: List[str]
    folder: Path
    config_hash: str
    threads: int  # the count a thread-dependent model would run with (wdsweep.jobs.threads)
    canonical: str  # equal for jobs that would train the same thing (wdsweep.jobs.canonical)
    fingerprint: Optional[dict] = None  # its code and data now (wdsweep.tracking.fingerprint)
    seed: Optional[int] = None  # its config's seed (finalist seeds must be others)


def check_distinct_folders(jobs: List[GridJob]) -> None:
    """Two jobs of different configs in one folder would overwrite each other, and each
    resume would run the other again (hydra.job.config.override_dirname.exclude_keys=[seed]
    with -m seed=0,1, say): refuse before anything runs."""
    first: Dict[Path, GridJob] = {}
    for job in jobs:
        other = first.setdefault(job.folder, job)
        if other.config_hash != job.config_hash:
            ConfigError(f"invalid config: hydra.sweep.subdir={job.folder.name!r} is not allowed: "
                        f"one folder per job, but jobs [{' '.join(other.overrides)}] and "
                        f"[{' '.join(job.overrides)}] would share it (hydra.sweep.subdir or "
                        "override_dirname.exclude_keys leaves out what tells them apart)").exit()


def check_subdir_not_numbered(hydra_cfg) -> None:
    """hydra.sweep.subdir=${hydra.job.num} (Hydra's own default): a job's folder would hang on
    its position in the grid, which moves when the grid grows, and resume finds a job by its
    folder (wdsweep.config.job_folder.numbered_subdir). Refused before any job is composed."""
    from wdsweep.config.job_folder import numbered_subdir

    subdir = numbered_subdir(hydra_cfg)
    if subdir is not None:
        ConfigError(f"invalid config: hydra.sweep.subdir={subdir!r} is not allowed: a folder name that "
                    "does not use the job's number, which moves when the grid changes (the default "
                    "${wdsweep.job_dir:${hydra.job.override_dirname}} names a job's folder by its "
                    "overrides, so a resumed or grown grid finds it)").exit()


def check_folder_names(jobs: List[GridJob], sweep_dir: Path) -> None:
    """Every folder the grid will make, checked as text before any is (a name over 255 bytes
    is refused by the file system: wdsweep.config.path_limits)."""
    from wdsweep.config.path_limits import long_name_problem

    problem = long_name_problem(sweep_dir)
    if problem:
        ConfigError(f"invalid config: hydra.sweep.dir={str(sweep_dir)!r} is not allowed: {problem}").exit()
    for job in jobs:
        subdir = job.folder.relative_to(sweep_dir) if job.folder.is_relative_to(sweep_dir) else job.folder
        problem = long_name_problem(subdir)
        if problem:
            ConfigError(f"invalid config: hydra.sweep.subdir={str(subdir)!r} is not allowed: {problem} "
                        f"[job: {' '.join(job.overrides)}]").exit()


def find_twins(jobs: List[GridJob]) -> Dict[int, GridJob]:
    """index -> the earlier job that trains the same canonical config, for every job that
    has one."""
    first: Dict[str, GridJob] = {}
    twin_of: Dict[int, GridJob] = {}
    for job in jobs:
        if job.canonical in first and first[job.canonical].folder != job.folder:
            twin_of[job.index] = first[job.canonical]
        elif job.canonical in first:
            continue  # the same job twice (seed=1,1): one folder, resume runs it once
        else:
            first[job.canonical] = job
    return twin_of


def print_plan(jobs: List[GridJob], twin_of: Dict[int, GridJob], done: Callable[[GridJob], bool], sweep_dir: Path,
               finalists: int, one_by_one: bool = False) -> None:
    """hydra.sweeper.dry_run: one line per job, what the sweep would do with it and why,
    and a summary; on stdout, since it is the command's answer rather than a log."""
    counts: Counter = Counter()
    lines = []
    width = max((len(job.folder.name) for job in jobs), default=0)
    for job in jobs:
        if done(job):
            action = "skip: done (its metrics.json holds the same config hash)"
        elif job.index in twin_of:
            action = f"record: trains nothing, same as {twin_of[job.index].folder.name}"
        else:
            step = checkpoint_step(job.folder, job.config_hash)
            why = changed_since(job.folder, job.config_hash, job.fingerprint, one_by_one)
            action = "train" + (f": resume at step {step} (its checkpoint)" if step else f": {why}" if why else "")
        counts[action.split(":")[0]] += 1
        lines.append(f"  #{job.index:<4d} {job.folder.name:<{width}s}  {action}")
    print(f"dry run: {len(jobs)} jobs in {sweep_dir} ({'exists' if sweep_dir.is_dir() else 'not made yet'}): "
          f"{counts['train']} would train, {counts['skip']} already done, {counts['record']} would be "
          "records of another job's result; nothing trained or written")
    print("\n".join(lines))
    if finalists:
        print(f"then the {finalists} best configurations would train again on fresh seeds "
              "(hydra.sweeper.finalists), picked from the results")


def report(jobs: List[GridJob], pending: List[GridJob]) -> None:
    """Count how the launched jobs ended, from their metrics.json; exit 1 if any failed
    (a job whose metrics.json is missing or unreadable did not succeed either)."""
    statuses = {job.folder: _status(read_record(job.folder)) for job in pending}
    counts = Counter(statuses.values())
    skipped = len(jobs) - len(pending)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    log.info("sweep over: %s%s", summary or "nothing run",
             f", {skipped} skipped (already done)" if skipped else "")
    failed = [str(folder) for folder, status in statuses.items()
              if status not in ("completed", "diverged", SAME_AS_LABEL)]
    if failed:
        more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
        sys.exit(f"wdsweep: {len(failed)} of {len(jobs)} jobs failed, the others are kept "
                 f"(each one's metrics.json or log, or this sweep's log for one that could not start, says why): "
                 f"{', '.join(failed[:3])}{more}")


def _status(record: Optional[dict]) -> str:
    if record is None:
        return "no result"
    if record.get("same_as") and record.get("status") in DONE_STATUSES:
        return SAME_AS_LABEL
    return str(record.get("status", "no result"))
