"""Where the report goes, whole or not at all: every file is made in a hidden staging folder
inside the report folder, and moved into place only once the whole report is made.

A full disk or a read-only folder then costs one line (OutputError), never a half-written PNG,
report.md or runs.csv: the staging folder, with whatever it holds, is removed, and the files an
earlier run left in the report folder are as they were (not one of them replaced, so never a
new runs.csv beside an old report.md). The staging folder is in the report folder itself, so
that the moves are renames on one file system, which need no room for the data. report.md is
moved last, so that a report never links to a figure not yet there. A kill -9 (which runs no
cleanup) can leave a `.analysis-*.tmp` folder behind: it is hidden, and safe to delete.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

REPORT = "report.md"


class OutputError(Exception):
    """The report folder cannot take the report: one line naming the folder and the reason."""

    def __init__(self, out: Path, err: OSError, moving: bool = False) -> None:
        reason = err.strerror or " ".join(str(err).split())
        # A rename that fails (rare: no room for a directory entry) leaves some new files beside
        # the old report.md, which is moved last.
        kept = "some files were replaced, report.md was not" if moving else "nothing there was changed"
        super().__init__(f"cannot write the report into {out}: {reason}; {kept}")


@contextlib.contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A fresh staging folder inside `out` (made if missing) to write the report into; its files
    are moved into `out` (subfolders kept) when the block ends, and it is removed either way. An
    OSError on the way (ENOSPC, EROFS, EACCES, EDQUOT, ...) is raised as OutputError."""
    made = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out, prefix=".analysis-", suffix=".tmp"))
    except OSError as err:
        _remove_if_empty(out, made)
        raise OutputError(out, err) from err
    try:
        try:
            yield staging
        except OSError as err:
            shutil.rmtree(staging, ignore_errors=True)
            _remove_if_empty(out, made)  # a folder this run made, and nothing came of it
            raise OutputError(out, err) from err
        try:
            _move_into(staging, out)
        except OSError as err:
            raise OutputError(out, err, moving=True) from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_if_empty(out: Path, made: bool) -> None:
    if made:
        with contextlib.suppress(OSError):
            out.rmdir()


def _move_into(staging: Path, out: Path) -> None:
    """Every file of `staging` to the same place under `out`; the reports last, the top one the
    very last."""
    files = sorted((p for p in staging.rglob("*") if p.is_file()),
                   key=lambda p: (p.name == REPORT, p.parent == staging, str(p)))
    for path in files:
        target = out / path.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
