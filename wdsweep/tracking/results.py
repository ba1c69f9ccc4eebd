"""What a job leaves behind: metrics.json, history.csv and model.pt, each written atomically
(a temporary file in the same folder, then a rename) so that a killed job never leaves a
half-written file that looks whole."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, List

from omegaconf import DictConfig, OmegaConf

# metrics.json's layout; it changes only by adding keys, and then this goes up.
SCHEMA_VERSION = 1

METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
MODEL_FILE = "model.pt"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def atomic_write(path: Path, write: Callable[[Any], None], binary: bool = False) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; results are ordinary files
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": ""})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def finite_or_none(value: Any) -> Any:
    """JSON has no NaN or infinity; a diverged run's metrics become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_none(v) for v in value]
    return value


def write_metrics(job_dir: Path, record: dict) -> Path:
    path = Path(job_dir) / METRICS_FILE
    text = json.dumps(finite_or_none(record), indent=2, sort_keys=False, allow_nan=False)
    atomic_write(path, lambda f: f.write(text + "\n"))
    return path


def write_history(job_dir: Path, rows: List[dict]) -> Path:
    path = Path(job_dir) / HISTORY_FILE
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return path


def save_model(job_dir: Path, state_dict: dict) -> Path:
    import torch

    path = Path(job_dir) / MODEL_FILE
    atomic_write(path, lambda f: torch.save(state_dict, f), binary=True)
    return path


def resolved_config(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def job_tree(cfg: DictConfig) -> dict:
    """The resolved job config as plain Python. A `hydra` node is left out, so the sweeper can
    hash a full config without copying it and get what the job, which is handed the config
    without that node, will compute."""
    return {key: OmegaConf.to_container(value, resolve=True, throw_on_missing=True)
            if OmegaConf.is_config(value) else value
            for key, value in cfg.items() if key != "hydra"}


# Keys added after sweeps were already on disk, with the default they were added with. At that
# default a key is left out of the digest: a config that does not use it hashes as it did before
# the key existed, so older sweep folders still resume (tests/jobs/test_old_sweeps_resume.py).
ADDED_KEYS = {("trainer", "device"): "auto", ("trainer", "deterministic"): False, ("trainer", "precision"): "32",
              ("trainer", "epochs"): None}


# Keys that change when and where a job saves its state, or who reads its data, never what it computes: left out of
# the digest, so changing them does not make a finished job run again.
NEUTRAL_KEYS = (("trainer", "checkpoint_every"), ("trainer", "checkpoint_seconds"), ("trainer", "keep_checkpoint"),
                # who reads the rows, not which (wdsweep.train.streaming)
                ("data", "num_workers"), ("data", "pin_memory"), ("data", "persistent_workers"))


def digest(tree: dict) -> str:
    """A short, stable digest of a plain config tree (key order does not matter; keys added
    since, at their defaults, do not count: ADDED_KEYS; nor do NEUTRAL_KEYS)."""
    for group, key in NEUTRAL_KEYS:
        node = tree.get(group)
        if isinstance(node, dict) and key in node:
            tree = {**tree, group: {k: v for k, v in node.items() if k != key}}
    for (group, key), default in ADDED_KEYS.items():
        node = tree.get(group)
        if isinstance(node, dict) and key in node and node[key] == default and type(node[key]) is type(default):
            tree = {**tree, group: {k: v for k, v in node.items() if k != key}}
    text = json.dumps(tree, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_hash(cfg: DictConfig) -> str:
    """The digest of the resolved job config: what resume compares."""
    return digest(job_tree(cfg))
