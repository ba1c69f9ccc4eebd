"""What trained a job besides its config: the source of the user's own code (the `_target_`
modules of model and data that are not wdsweep's, and the user's modules they import) and the
files it read. Recorded in metrics.json (`fingerprint`), so that resume can tell a finished job
from one whose code or data changed since: the config hash alone would keep the old results and
mix them with new ones.

The rule: a finished job whose recorded fingerprint differs from the current one is trained
again, and the log and the dry run say why ("model code changed (mynet.py)", "data changed
(train.csv)"). A record without a fingerprint (made before it was recorded) is taken as it is.

What is read, cheaply enough to run for every job of a sweep:
- code: each `_target_` module's source file, and, found from its imports transitively (`import
  helper`, `from .layers import Block`, read from the source, not run), every module whose file
  is the user's: not in the standard library or an installed package (site-packages,
  dist-packages), not wdsweep's own. Each file is hashed (sha256); its imports are parsed once per
  process and file version;
- data: every string value of the data and model groups (nested ones included; not `_target_`)
  that names an existing file or folder, as the loaders read it (relative to where the command
  ran): `data.path`, `data.root`, a loader's `file=d.npz`, a model's `weights: init.pt`. A file by
  its size and modification time, and its content hash up to CONTENT_HASH_BYTES; a folder by
  every file's relative path, size and modification time (a folder of 50,000 images is listed,
  not read). A key other than path and root naming the folder the command ran in, or one above
  it, or a sweep's or run's output folder, is left out: those hold the outputs, which change
  with every job (and `name`, a label, is no path).
Each is cached per process by the file's size and time.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import os
import site
import sys
import sysconfig
from pathlib import Path
from typing import Dict, List, Optional

from omegaconf import DictConfig, OmegaConf

CONTENT_HASH_BYTES = 64 * 2**20


def fingerprint(cfg: DictConfig) -> Dict[str, Dict[str, str]]:
    """{"code": {file name: digest}, "data": {as given: digest}} of this job config."""
    code: Dict[str, str] = {}
    for group in ("model", "data"):
        target = str(cfg[group].get("_target_") or "") if group in cfg else ""
        module = target.rsplit(".", 1)[0]
        if not module or module.split(".")[0] in OWN_PACKAGES:
            continue
        for name, source in _user_modules(module):
            key = Path(source).name if name == module else _module_key(name, source)
            code.setdefault(key, _file_digest(*_stamp(source)))
    data: Dict[str, str] = {}
    for group in ("data", "model"):
        for key, value in _string_values(cfg[group] if group in cfg else None):
            if value in data:
                continue
            digest = _path_digest(value, anywhere=group == "data" and key in ("path", "root"))
            if digest is not None:
                data[value] = digest
    return {"code": code, "data": data}


# Packages whose code is wdsweep's or torch's, never the user's.
OWN_PACKAGES = ("wdsweep", "hydra_plugins", "analysis", "torch", "torchvision")


def _string_values(node, key: str = ""):
    """(key, value) of every string value under a config node, nested ones included; keys
    starting with _ (`_target_`) and the group's `name` (a label: data.name=digits) are left out."""
    if node is None:
        return []
    try:
        tree = OmegaConf.to_container(node, resolve=True, throw_on_missing=False) if OmegaConf.is_config(node) else node
    except Exception:  # noqa: BLE001 - an interpolation that does not resolve: validation's to report
        tree = OmegaConf.to_container(node, resolve=False, throw_on_missing=False)
    found = []
    if isinstance(tree, dict):
        for k, v in tree.items():
            if not str(k).startswith("_") and not (k == "name" and not key):  # a group's name is a label
                found.extend(_string_values(v, str(k)))
    elif isinstance(tree, list):
        for v in tree:
            found.extend(_string_values(v, key))
    elif isinstance(tree, str) and tree and tree != "???":
        found.append((key, tree))
    return found


def _path_digest(value: str, anywhere: bool) -> Optional[str]:
    """The digest of the file or folder `value` names, or None if it names none. Unless
    `anywhere` (data.path and data.root, named as paths), a folder holding the folder the command
    ran in is left out: the sweep writes its outputs under it."""
    from wdsweep.train.datasets import user_path

    try:
        path = user_path(value)
        if path.is_file():
            return _file_digest(*_stamp(str(path)), content=True)
        if not path.is_dir():
            return None
        if not anywhere:
            here = user_path(".").resolve()
            if here == path.resolve() or path.resolve() in here.parents or _holds_outputs(path):
                return None
        return _folder_digest(str(path))
    except (OSError, ValueError):  # a name too long, a NUL: no file
        return None


def _holds_outputs(folder: Path) -> bool:
    """Whether a folder is a sweep's or a run's output (multirun.yaml, .hydra/ at its top), whose
    files change with every job: `hydra.sweep.dir=mlp` beside a `name: mlp`."""
    return (folder / "multirun.yaml").is_file() or (folder / ".hydra").is_dir()


def _user_modules(module: str) -> List[tuple]:
    """(module name, source file) of `module` and of every module of the user's it imports,
    transitively, `module` first; [] if `module` is not the user's."""
    found, queue, seen = [], [module], set()
    while queue:
        name = queue.pop(0)
        if name in seen:
            continue
        seen.add(name)
        source = _user_source(name)
        if source is None:
            continue
        found.append((name, source))
        package = name if Path(source).name == "__init__.py" else name.rpartition(".")[0]
        queue.extend(_absolute(imported, package) for imported in _imports_of(*_stamp(source)))
    return found


def _user_source(module: str) -> Optional[str]:
    """`module`'s source file if it is the user's: a .py file outside the standard library and the
    installed packages, and not wdsweep's or torch's. Its top package is looked at first, so that no
    installed package is imported to find a submodule of it."""
    if not module or module.split(".")[0] in OWN_PACKAGES:
        return None
    top = module.split(".")[0]
    if top != module:
        if top in sys.builtin_module_names:
            return None
        top_source = _source_of(top)  # None for a namespace package: its module's own file decides
        if top_source is not None and not _is_users(top_source):
            return None
    source = _source_of(module)
    return source if source is not None and source.endswith(".py") and _is_users(source) else None


@functools.lru_cache(maxsize=1)
def _installed_roots() -> tuple:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if paths.get(k)}
    roots.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    return tuple(str(Path(r).resolve()) for r in roots)


def _is_users(source: str) -> bool:
    """Whether a module's file is the user's: not under the standard library or a site-packages
    or dist-packages folder (of this environment or another)."""
    resolved = Path(source).resolve()
    if any(part in ("site-packages", "dist-packages") for part in resolved.parts):
        return False
    return not any(resolved.is_relative_to(root) for root in _installed_roots())


def _absolute(imported: tuple, package: str) -> str:
    """An import's module name made absolute: (level, name) as the ast gives it."""
    level, name = imported
    if not level:
        return name
    base = package.split(".") if package else []
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, name] if name else base)


@functools.lru_cache(maxsize=256)
def _imports_of(path: str, size: int, mtime_ns: int) -> tuple:
    """(level, module name) of every import in a source file, read once per file version:
    `import a.b` gives a.b (and a); `from a import b` gives a and a.b (b may be a module)."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return ()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                found.extend((0, ".".join(parts[:i])) for i in range(1, len(parts) + 1))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            found.append((node.level, base))
            found.extend((node.level, f"{base}.{alias.name}" if base else alias.name)
                         for alias in node.names if alias.name != "*")
    return tuple(dict.fromkeys(f for f in found if f[0] or f[1]))


def _module_key(name: str, source: str) -> str:
    """A helper module's name in the record: its dotted name as a path (pkg/helper.py)."""
    leaf = "__init__.py" if Path(source).name == "__init__.py" else Path(source).name
    parts = name.split(".")
    return "/".join([*parts, leaf] if leaf == "__init__.py" else [*parts[:-1], leaf])


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
    except (ImportError, ValueError, AttributeError):  # AttributeError: a parent that is no package
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
