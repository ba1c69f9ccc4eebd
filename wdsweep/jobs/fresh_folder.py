"""A single run's own output folder, claimed atomically.

Hydra names a single run's folder by the clock (outputs/<date>/<time>), to the second. Runs
started in the same second (a shell loop that puts each in the background) would share it, each
overwriting the last one's files. So a run whose folder is named by the clock (its
hydra.run.dir holds ${now:...}) claims it with mkdir, which only one process can win; a run
that finds it taken takes <folder>-2, -3, ... instead. A folder the user named (no ${now:...})
is theirs: a rerun writes into it again (a resume), and a run started while another is writing
there is refused in one line naming that run (wdsweep.jobs.run, through the folder's lock).
"""
from __future__ import annotations

from pathlib import Path

MAX_TRIES = 1000


def is_clock_named(unresolved_dir: str) -> bool:
    return "${now:" in unresolved_dir


def claim_fresh(folder: Path) -> Path:
    """Create `folder`, or the first free `folder-k` (k = 2, 3, ...), and return the one made.
    OSError (a parent that cannot be made, a full disk) passes through."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    for k in range(1, MAX_TRIES + 1):
        candidate = folder if k == 1 else folder.with_name(f"{folder.name}-{k}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{folder} and {MAX_TRIES - 1} numbered folders beside it are all taken")
