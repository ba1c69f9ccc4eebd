"""File-system limits on the folders and files a run will create, checked as text before any of
them is made: a name (one path component) of more than 255 bytes is refused by Linux, macOS and
Windows file systems alike (ENAMETOOLONG), and would otherwise surface as a traceback, or as
every job failing, once the work has started.

No torch, no Hydra: the sweepers and the single run's callback call this before anything is
written.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

# The longest file or folder name common file systems take (ext4, xfs, btrfs, APFS, NTFS), in
# bytes of its encoded form.
NAME_MAX = 255


def name_bytes(name: str) -> int:
    """The length the file system sees: bytes, not characters (one 'é' is two)."""
    return len(os.fsencode(name))


def long_name_problem(path: Path | str, suffix: str = "") -> Optional[str]:
    """Why `path` (with `suffix` added to its last name, for a file made beside it, such as a
    lock file) cannot be created: the first name longer than NAME_MAX bytes. None if none is."""
    parts = list(Path(path).parts)
    if parts:
        parts[-1] += suffix
    for part in parts:
        size = name_bytes(part)
        if size > NAME_MAX:
            return (f"folder and file names of at most {NAME_MAX} bytes each (the file system's "
                    f"limit); {part[:24]}...{part[-8:]} has {size}")
    return None
