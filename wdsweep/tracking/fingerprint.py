"""What trained a job besides its config: the source of the user's own code (the `_target_`
modules of model and data that are not wdsweep's) and the data files it read. Recorded in
metrics.json (`fingerprint`), so that resume can tell a finished job from one whose code or data
changed since: the config hash alone would keep the old results and mix them with new ones.

The rule: a finished job whose recorded fingerprint differs from the current one is trained
again, and the log and the dry run say why ("model code changed (mynet.py)", "data changed
(train.csv)"). A record without a fingerprint (made before it was recorded) is taken as it is.

What is read, cheaply enough to run for every job of a sweep:
- code: each module's source file, hashed (sha256);
- data: `data.path` and `data.root` as the loaders read them; a file by its size and
  modification time, and its content hash up to CONTENT_HASH_BYTES; a folder by every file's
  relative path, size and modification time (a folder of 50,000 images is listed, not read).
Each is cached per process by the file's size and time.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Dict, List, Optional

from omegaconf import DictConfig

CONTENT_HASH_BYTES = 64 * 2**20


def fingerprint(cfg: DictConfig) -> Dict[str, Dict[str, str]]:
    """{"code": {file name: digest}, "data": {as given: digest}} of this job config."""
    code: Dict[str, str] = {}
    for group in ("model", "data"):
        target = str(cfg[group].get("_target_") or "") if group in cfg else ""
        module = target.rsplit(".", 1)[0]
        if not module or module.split(".")[0] in ("wdsweep", "torch", "torchvision"):
            continue
        source = _source_of(module)
        if source is not None:
            code[Path(source).name] = _file_digest(*_stamp(source))
    data: Dict[str, str] = {}
    for key in ("path", "root"):
        value = cfg.data.get(key) if "data" in cfg else None
        if isinstance(value, str) and value:
            from wdsweep.train.datasets import user_path

            path = user_path(value)
            if path.is_file():
                data[value] = _file_digest(*_stamp(str(path)), content=True)
            elif path.is_dir():
                data[value] = _folder_digest(str(path))
    return {"code": code, "data": data}


def changes(recorded: Optional[dict], current: dict) -> List[str]:
    """What changed between a record's fingerprint and the current one, in words; [] if nothing
    did, or the record has none."""
    if not isinstance(recorded, dict):
        return []
    said = []
    for part, words in (("code", "model code changed"), ("data", "data changed")):
        before, now = recorded.get(part) or {}, current.get(part) or {}
        names = sorted(name for name in set(before) | set(now) if before.get(name) != now.get(name))
        if names:
            said.append(f"{words} ({', '.join(Path(n).name for n in names)})")
    return said


def _source_of(module: str) -> Optional[str]:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None) if spec else None
    return origin if origin and os.path.isfile(origin) else None


def _stamp(path: str) -> tuple:
    stat = os.stat(path)
    return path, stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int, content: bool = True) -> str:
    if content and size <= CONTENT_HASH_BYTES:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(2**20), b""):
                digest.update(block)
        return "sha256:" + digest.hexdigest()[:16]
    return f"size:{size},mtime:{mtime_ns}"


@functools.lru_cache(maxsize=16)
def _folder_digest(root: str) -> str:
    """Every file's relative path, size and time, digested (cached for the process: a sweep
    plans every job with the same folder)."""
    entries = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue
            entries.append(f"{os.path.relpath(path, root)}\0{stat.st_size}\0{stat.st_mtime_ns}")
    return f"files:{len(entries)}," + hashlib.sha256("\n".join(entries).encode()).hexdigest()[:16]
