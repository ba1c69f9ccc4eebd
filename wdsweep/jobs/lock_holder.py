"""Who holds a job folder's lock, and waiting for it out loud.

A sweep that finds a job's folder locked waits for the process holding it (two sweeps over
overlapping grids share their jobs that way). That process may be stuck: suspended with Ctrl-Z
or SIGSTOP, say, where the kernel keeps its lock for as long as it lives. So the holder writes
who it is into the lock file (pid, host, command, since when), and a waiter says at once whom it
waits for and how to stop waiting, then again every WAIT_REPORT_SECONDS; a stopped holder is
named as stopped, with the command that resumes it.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)

WAIT_REPORT_SECONDS = 60.0
# The waiter polls (flock has no timeout): from 20 ms, doubling up to 1 s, so that the usual
# hand-over from a finishing job costs little and a long wait costs no CPU.
_FIRST_POLL, _LAST_POLL = 0.02, 1.0


class FolderBusy(Exception):
    """The job folder is locked by another live process, and this one may not wait for it."""


def take(fd: int, path: Path, wait: bool = True) -> None:
    """Lock `fd` (the open lock file at `path`), waiting for its holder if there is one (or,
    unless `wait`, raising FolderBusy naming it), then write this process in as the holder."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise
        if not wait:
            raise FolderBusy(holder_text(read_holder(path))) from None
        _wait(fd, path)
    _write_holder(fd)


def _wait(fd: int, path: Path) -> None:
    started = last_report = time.monotonic()
    log.warning("%s", waiting_line(path, 0.0))
    poll = _FIRST_POLL
    while True:
        time.sleep(poll)
        poll = min(2 * poll, _LAST_POLL)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
        now = time.monotonic()
        if now - last_report >= WAIT_REPORT_SECONDS:
            last_report = now
            log.warning("%s", waiting_line(path, now - started))


def waiting_line(path: Path, waited: float) -> str:
    """One line: which job waits, for whom, since when, and the ways out."""
    holder = read_holder(path)
    folder = Path(path).parent
    waited_text = f" (waited {waited / 60:.0f} min)" if waited >= 60 else ""
    who = holder_text(holder)
    state = _process_state(holder) if holder else None
    if state == "stopped":
        way_out = (f"that process is stopped (suspended): `kill -CONT {holder['pid']}` resumes it, "
                   f"`kill {holder['pid']}` ends it and frees the job")
    else:
        way_out = "this waits until that job is done (Ctrl-C stops it; finished jobs are kept)"
    return f"job folder {folder} is locked{waited_text} by {who}; {way_out}"


def holder_text(holder: Optional[dict]) -> str:
    if holder is None:
        return "another process (it has not said which)"
    return f"pid {holder.get('pid')} on {holder.get('host')} ({holder.get('command')}) since {holder.get('since')}"


def read_holder(path: Path) -> Optional[dict]:
    try:
        holder = json.loads(Path(path).read_text() or "null")
    except (OSError, ValueError):
        return None  # written by a version that wrote nothing, or mid-write
    return holder if isinstance(holder, dict) else None


def _write_holder(fd: int) -> None:
    holder = {"pid": os.getpid(), "host": socket.gethostname(),
              "command": " ".join(["python", *sys.argv])[:300],
              "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    data = json.dumps(holder).encode()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    except OSError:
        pass  # a full disk: the lock holds all the same, only unnamed


def _process_state(holder: dict) -> Optional[str]:
    """"stopped" when the holder runs on this host and the kernel says it is stopped."""
    if holder.get("host") != socket.gethostname():
        return None
    try:
        stat = Path(f"/proc/{int(holder['pid'])}/stat").read_text()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    # the state letter follows the command name, which is in parentheses and may hold spaces
    state = stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else ""
    return "stopped" if state in ("T", "t") else None
