"""One Optuna study per sweep folder, claimed atomically.

A study names its trial folders by trial number (trial-00000, ...), so two studies in one sweep
folder would overwrite each other's trials while their storages still point there. Looking
first and writing later is not enough: two searches started in the same second share the
clock-named default folder, and both look before either writes. So a search claims its folder
by creating the owner file OWNER_FILE with the study's name in one step (a hard link of a
whole temporary file: it appears complete or not at all, and only one process can create it).

- The folder is this study's (its owner file names it, or the folder holds none of another
  study's results): go on; cooperating sweeps and workers of one study share it.
- It is another study's, and the folder was named by the clock (hydra.sweep.dir holds
  ${now:...}): the search takes <folder>-2, -3, ... instead and says so.
- It is another study's, and the user named it: refused in one line.
- A claim whose process (on this host) is gone, in a folder without any trial, is stale (a search
  killed between its claim and its first trial): the next search takes the folder.
Folders from before owner files existed are read as they were: their optimization_results.yaml
and trials' metrics.json name their study.
"""
from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

OWNER_FILE = ".wdsweep-study"
MAX_TRIES = 1000
_MADE: Dict[str, List[Path]] = {}  # the folders each claim of this process made, deepest first


class TakenByAnotherStudy(Exception):
    def __init__(self, folder: Path, owner: str) -> None:
        super().__init__(f"{folder} holds study {owner!r}")
        self.folder, self.owner = folder, owner


def claim(sweep_dir: Path, study_name: str) -> bool:
    """Claim `sweep_dir` for `study_name`; return whether this call created its owner file
    (release() undoes that). Raises TakenByAnotherStudy, or OSError where the folder cannot
    be made or written."""
    sweep_dir = Path(sweep_dir)
    owner = recorded_owner(sweep_dir)
    if owner and owner != study_name and _abandoned(sweep_dir):
        # claimed by a search that died before its first trial: nothing of it to protect
        (sweep_dir / OWNER_FILE).unlink(missing_ok=True)
        owner = None
    others = sorted(({owner} if owner else _owners_from_results(sweep_dir)) - {study_name})
    if others:
        raise TakenByAnotherStudy(sweep_dir, others[0])
    if (sweep_dir / OWNER_FILE).is_file():
        return False
    made = [p for p in (sweep_dir, *sweep_dir.absolute().parents) if not p.exists()]
    sweep_dir.mkdir(parents=True, exist_ok=True)
    _MADE[str(sweep_dir)] = made
    fd, tmp = tempfile.mkstemp(dir=sweep_dir, prefix=f"{OWNER_FILE}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            # the study, then who claimed it: a claim whose process died before any trial is stale
            handle.write(f"{study_name}\n{os.getpid()}\n{socket.gethostname()}\n")
        try:
            os.link(tmp, sweep_dir / OWNER_FILE)
        except FileExistsError:  # another search won the race: whose is it?
            owner = recorded_owner(sweep_dir)
            if owner != study_name:
                raise TakenByAnotherStudy(sweep_dir, str(owner)) from None
            return False
    finally:
        Path(tmp).unlink(missing_ok=True)
    return True


def claim_fresh(sweep_dir: Path, study_name: str) -> Tuple[Path, bool]:
    """claim() on `sweep_dir`, else on the first of <sweep_dir>-2, -3, ... that is free or this
    study's: (the folder claimed, whether the owner file was made here)."""
    for k in range(1, MAX_TRIES + 1):
        candidate = sweep_dir if k == 1 else sweep_dir.with_name(f"{sweep_dir.name}-{k}")
        try:
            return candidate, claim(candidate, study_name)
        except TakenByAnotherStudy:
            continue
    raise TakenByAnotherStudy(sweep_dir, f"one of {MAX_TRIES} studies")


def release(sweep_dir: Path) -> None:
    """Undo a claim this process made, for a search that stopped before writing anything:
    the owner file, and the folders the claim made (multirun/<date>/<time>) where nothing else
    is in them."""
    (Path(sweep_dir) / OWNER_FILE).unlink(missing_ok=True)
    for folder in _MADE.pop(str(sweep_dir), [Path(sweep_dir)]):  # deepest first
        try:
            folder.rmdir()
        except OSError:
            return  # not empty, or not ours to remove


def recorded_owner(sweep_dir: Path) -> Optional[str]:
    try:
        lines = (Path(sweep_dir) / OWNER_FILE).read_text().splitlines()
    except OSError:
        return None
    return lines[0].strip() or None if lines else None


def _abandoned(sweep_dir: Path) -> bool:
    """Whether the folder's claim was made by a process on this host that is gone, and no trial
    of its study ever started there (a search killed between its claim and its first trial)."""
    try:
        _, pid, host = (Path(sweep_dir) / OWNER_FILE).read_text().splitlines()[:3]
        pid_number = int(pid)
    except (OSError, ValueError):
        return False  # an owner file of another form: kept as it is
    if host != socket.gethostname() or any(Path(sweep_dir).glob("trial-*")):
        return False
    try:
        os.kill(pid_number, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


def _owners_from_results(sweep_dir: Path) -> set:
    """The study a folder without an owner file holds trials of, if any: its results file, or
    its trials' metrics.json (the first 20 suffice: one study per folder)."""
    import yaml

    from wdsweep.search.results_file import RESULTS_FILE

    owners = set()
    try:
        owners.add((yaml.safe_load((sweep_dir / RESULTS_FILE).read_text()) or {}).get("study_name"))
    except (OSError, yaml.YAMLError, AttributeError):
        pass
    for metrics in sorted(sweep_dir.glob("trial-*/metrics.json"))[:20]:
        try:
            owners.add((json.loads(metrics.read_text()).get("optuna") or {}).get("study"))
        except (OSError, ValueError, AttributeError):
            continue
    return {o for o in owners if isinstance(o, str)}
