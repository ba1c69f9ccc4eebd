"""multirun.yaml: the config of the sweep command that wrote into a sweep folder, one per
invocation.

Hydra writes it anew at every sweep, so a second sweep into a used folder (a grown grid, a
resume with other settings, another grid into the same named folder) would replace the record of
the first. Here the folder keeps every invocation's: multirun.yaml is the latest, and each
earlier one that differs from the next is kept as multirun-history/<n>.yaml, n counting up
from 1 in order. A resume by the same command leaves the file as it is (the same text), so the
history holds what changed. The analysis reads them all for the report's "Sweep:" commands.
"""
from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import List

from omegaconf import DictConfig, OmegaConf

from wdsweep.tracking.results import atomic_write

log = logging.getLogger(__name__)

RECORD_FILE = "multirun.yaml"
HISTORY_DIR = "multirun-history"
LOCK_FILE = ".multirun.lock"


def save_sweep_config(config: DictConfig, sweep_dir: Path) -> None:
    """Write `config` as the sweep folder's multirun.yaml, keeping the one it replaces."""
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    text = OmegaConf.to_yaml(config)
    path = sweep_dir / RECORD_FILE
    # two sweeps started together into one folder: each keeps the other's record, none is lost
    with open(sweep_dir / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            before = path.read_text()
        except OSError:
            before = None
        if before == text:
            return
        if before is not None:
            kept = _keep(path)
            log.info("%s held another sweep command's config: kept as %s", path, kept)
        atomic_write(path, lambda f: f.write(text))


def _keep(path: Path) -> Path:
    """Link the current record into the history under the next free number (a hard link made
    with O_EXCL semantics: two sweeps at once never take one number)."""
    history = path.parent / HISTORY_DIR
    history.mkdir(exist_ok=True)
    n = len(list(history.glob("*.yaml"))) + 1
    while True:
        target = history / f"{n}.yaml"
        try:
            os.link(path, target)
            return target
        except FileExistsError:
            n += 1


def sweep_records(sweep_dir: Path) -> List[Path]:
    """The sweep folder's records, oldest first, multirun.yaml last."""
    sweep_dir = Path(sweep_dir)
    history = sorted((sweep_dir / HISTORY_DIR).glob("*.yaml"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0)
    current = sweep_dir / RECORD_FILE
    return history + ([current] if current.is_file() else [])
