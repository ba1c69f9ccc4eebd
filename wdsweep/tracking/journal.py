"""Optuna journal files that survive a torn last line.

A journal (the default storage, <storage_dir>/<study>.journal) is one JSON record per line,
appended by every process that works on the study. A write cut short (a full disk, a kill
mid-append) leaves a last line without its newline, or one that is not JSON. Optuna reads past
such a line, but appends after it: the torn bytes and the next record then make one line that
is not JSON, and from then on every read of the journal fails, so every trial of the study is
out of reach.

So every append here first looks at the journal's last line, under the journal's own lock (the
symlink lock Optuna's JournalFileBackend takes by default: another process appending to the
same journal, wdsweep's or optuna-dashboard's, waits for it). A torn line is cut off and its
bytes kept beside the journal as <journal>.torn-<UTC time>, with one warning line. Optuna never
read that record (it was not whole), so cutting it loses nothing the study held. Reading alone
(the analysis) never changes the file.

No torch here: the sweeper plugin, the jobs and the analysis all open journals this way.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator, List, Optional

from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

_BLOCK = 64 * 1024  # how far back to look per read for the start of the last line


class TailSafeJournalBackend(JournalFileBackend):
    """Optuna's JournalFileBackend whose appends first cut a torn last line (see the module)."""

    def __init__(self, path: str) -> None:
        # Optuna's own default lock, kept here so that the check and the append are one step.
        self._tail_lock = JournalFileSymlinkLock(path)
        super().__init__(path, lock_obj=self._tail_lock)
        self._journal = Path(path)

    def append_logs(self, logs: List[dict[str, Any]]) -> None:
        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode("utf-8")
        with _held(self._tail_lock):
            repair_torn_tail(self._journal)
            # As JournalFileBackend.append_logs writes, but inside the lock already held.
            with open(self._journal, "ab") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())


@contextlib.contextmanager
def _held(lock: JournalFileSymlinkLock) -> Iterator[None]:
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def torn_tail_start(journal: Path) -> Optional[int]:
    """The offset at which the journal's torn last line starts, or None if it ends with a whole
    record (or is empty). Torn: no final newline, or a last line that is not JSON."""
    with open(journal, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return None
        start = _last_line_start(handle, size)
        handle.seek(start)
        last = handle.read()
    if last.endswith(b"\n"):
        try:
            json.loads(last)
            return None
        except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            pass
    return start


def _last_line_start(handle, size: int) -> int:
    """The offset just past the newline before the last byte (0 if there is none)."""
    end = size - 1  # the last byte may be the last line's own newline
    while end > 0:
        lo = max(0, end - _BLOCK)
        handle.seek(lo)
        at = handle.read(end - lo).rfind(b"\n")
        if at >= 0:
            return lo + at + 1
        end = lo
    return 0


def repair_torn_tail(journal: Path) -> Optional[Path]:
    """Cut a torn last line off the journal, keep its bytes in <journal>.torn-<time>, and say
    so on one line. Returns the copy (None if nothing was torn or no copy could be written).
    The caller holds the journal's lock."""
    start = torn_tail_start(journal)
    if start is None:
        return None
    with open(journal, "r+b") as handle:
        handle.seek(start)
        torn = handle.read()
        copy, problem = _keep_copy(journal, torn)
        # Cut even without a copy (a full disk): the record was never whole, Optuna never read
        # it, and leaving it would make the next append unreadable.
        handle.truncate(start)
        handle.flush()
        os.fsync(handle.fileno())
    kept = f"kept in {copy}" if copy else f"no copy kept ({problem})"
    print(f"wdsweep: warning: the Optuna journal {journal} ended in a torn record ({len(torn)} bytes: "
          f"a write cut short by a full disk or a kill); cut off, {kept}; the study goes on from the "
          f"records before it", file=sys.stderr, flush=True)
    return copy


def _keep_copy(journal: Path, torn: bytes) -> tuple[Optional[Path], Optional[str]]:
    """Write the torn bytes to a new file beside the journal; (path, None) or (None, why not)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for n in range(100):
        copy = journal.with_name(f"{journal.name}.torn-{stamp}" + (f"-{n}" if n else ""))
        try:
            with open(copy, "xb") as handle:
                handle.write(torn)
                handle.flush()
                os.fsync(handle.fileno())
            return copy, None
        except FileExistsError:
            continue
        except OSError as err:
            with contextlib.suppress(OSError):
                copy.unlink()
            return None, f"{type(err).__name__}: {err.strerror or err}"
    return None, "too many copies from this second"
