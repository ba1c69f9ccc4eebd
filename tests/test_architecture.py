"""The shape of the code: no import cycle anywhere in the project, imports inside functions
included (a cycle there is a cycle all the same, only found later); ConfigError at the bottom,
importing nothing of ours; wdsweep's wings importing one way only, as their docstrings say."""
from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from typing import Dict, List, Optional, Set

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("wdsweep", "analysis", "hydra_plugins")


def modules() -> Dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def import_graph() -> Dict[str, Set[str]]:
    """Each module of ours -> the modules of ours it imports, at any level of its code."""
    mods = modules()

    def ours(name: str) -> Optional[str]:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: Dict[str, Set[str]] = {name: set() for name in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: List[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            for target in targets:
                found = ours(target)
                if found and found != name:
                    graph[name].add(found)
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    groups: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_the_graph_sees_imports_at_every_level():
    """The finder itself: a module-level, a function-level and a relative import."""
    graph = import_graph()
    assert "wdsweep.errors" in graph["wdsweep.train.data"]  # module level
    assert "wdsweep.jobs.run" in graph["wdsweep.app"]  # inside task()
    assert "wdsweep.search.loop" in graph["hydra_plugins.wdsweep_optuna.optuna_sweeper"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_anywhere():
    assert cycles(import_graph()) == []


def test_config_error_sits_at_the_bottom():
    assert import_graph()["wdsweep.errors"] == set()


# wdsweep's wings, top to bottom: a wing imports only the wings below it (and wdsweep.errors, and
# the package itself for its version). Above them all: wdsweep.app, wdsweep.hydra_callbacks, the
# public paths kept at the top (wdsweep.models, ...), hydra_plugins and analysis.
WINGS = ["search", "cluster", "batched", "jobs", "tracking", "config", "train"]
ANYWHERE = {"wdsweep", "wdsweep.errors"}


def wing_of(module: str) -> Optional[str]:
    parts = module.split(".")
    return parts[1] if parts[0] == "wdsweep" and len(parts) > 1 and parts[1] in WINGS else None


def allowed_wings(wing: str) -> Set[str]:
    """The wings named on the "May import:" line of the wing's docstring."""
    doc = importlib.import_module(f"wdsweep.{wing}").__doc__ or ""
    found = re.search(r"May import: (.+?)\.(?:\s|$)", doc, re.S)
    assert found, f"wdsweep.{wing}'s docstring has no 'May import:' line"
    return set(re.findall(r"wdsweep\.(\w+)", found[1])) - {"errors"}


def test_each_wing_may_import_only_wings_below_it():
    for index, wing in enumerate(WINGS):
        assert allowed_wings(wing) <= set(WINGS[index + 1:]), wing


def test_wings_import_only_what_their_docstrings_allow():
    wrong = []
    for module, imported in import_graph().items():
        wing = wing_of(module)
        if wing is None:
            continue
        allowed = allowed_wings(wing) | {wing}
        wrong += [f"{module} -> {dep}" for dep in sorted(imported)
                  if dep not in ANYWHERE and wing_of(dep) not in allowed]
    assert wrong == []


def test_the_public_paths_are_the_modules_themselves():
    """Old import paths that configs, sweep folders and the docs name: each is the wing's module
    itself under a second name (so a `_target_`, a monkeypatch or a pickle sees one module)."""
    for public, home in [("wdsweep.models", "wdsweep.train.models"), ("wdsweep.datasets", "wdsweep.train.datasets"),
                         ("wdsweep.search_spaces", "wdsweep.config.search_spaces"),
                         ("wdsweep.mlflow_export", "wdsweep.tracking.mlflow_export")]:
        assert importlib.import_module(public) is importlib.import_module(home)


def test_the_export_command_keeps_its_public_name(tmp_path):
    """`python -m wdsweep.mlflow_export` (the docs' command) runs the tracking wing's main: a
    folder without jobs is one line and exit status 1."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "wdsweep.mlflow_export", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.strip() == f"{tmp_path}: no job folder (none holds metrics.json)"
