"""`python -m wdsweep ARGS` inside the test process, as a fresh process would run it.

Most tests check what a sweep computes or writes, not how a process starts, exits or dies; a
process start costs seconds (torch, Hydra, the optimizers' torch._dynamo import) and the suite
has hundreds of them. So `run_in_process` calls the program's own entry point
(wdsweep.app.main, the one `python -m wdsweep` calls) with the arguments as argv, and hands
back what a subprocess would: the exit status, stdout and stderr.

What a process would have to itself is set up and undone around the call, so that a run here
behaves as a first run in a new process and leaves the test process as it found it:
- the working directory, sys.argv, os.environ (plus the run's own variables), sys.path;
- Hydra's singletons of a run (GlobalHydra, HydraConfig, JobRuntime) as they were. Not as
  Hydra's own hydra_restore_singletons does it: its set_state scans the plugins again, which
  executes their modules a second time, and the classes it makes anew then no longer pickle
  (joblib's and submitit's launchers pickle a config loader). The registries (plugins, config
  sources, the ConfigStore) stay as the run left them, as module state does: what a module
  registers when imported is registered once per process;
- the SIGTERM handler main() installs, the root logger's handlers and level, torch's thread
  count, denormal flushing and deterministic algorithms (jobs set them process-wide), the
  garbage collector's thresholds (a sweep raises them). What a sweep imports once per process
  (torch, the training modules, wdsweep.jobs.inprocess.prepare_for_many_jobs's frozen heap)
  stays, as it would for the next sweep of a worker process: it changes no number;
- wdsweep's once-per-process state (PER_PROCESS below) and its caches of user code and files;
- modules the run imported from outside the installed packages (a user's model or loader in
  the test's folder: another test's file of the same name must be imported afresh).

Where the process itself is the point (exit codes and one-line errors on the command line,
signals and kill -9, address-space limits, joblib, submitit and worker processes, the wheel),
tests use conftest.run_cli, a real subprocess. tests/test_in_process.py proves the two give
the same metrics.json bit for bit, once per launcher.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import gc
import io
import logging
import os
import signal
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence

# The process-wide flags of wdsweep that a new process starts without: (module, attribute,
# its value in a fresh process). Containers are emptied in place instead.
PER_PROCESS = (
    ("wdsweep.jobs.threads", "_free_cores", None),
    ("wdsweep.jobs.threads", "_warned", False),
    ("wdsweep.jobs.lifeline", "_watching", False),
)
PER_PROCESS_CONTAINERS = (
    ("wdsweep.tracking.mlflow_export", "_FAILED"),
    ("wdsweep.tracking.mlflow_client", "_TRACKERS"),
    ("wdsweep.tracking.mlflow_export", "_ANNOUNCED"),
)
# Caches that depend only on what they are given, not on a user's files or modules: kept
# across runs, as they would be across the jobs of one sweep (the digits data set parses in
# 0.3 s; MKL's mode is read once per process anyway).
PURE_CACHES = {("wdsweep.train.data", "_digits_arrays"), ("wdsweep.jobs.threads", "gemm_is_strict")}
OUR_PACKAGES = ("wdsweep", "analysis", "hydra_plugins")


@dataclass
class Completed:
    """What subprocess.run would give back: the exit status and the two streams."""

    args: list
    returncode: int
    stdout: str
    stderr: str


def run_in_process(args: Sequence[str], cwd: Path, env_extra: Optional[Dict[str, str]] = None) -> Completed:
    """`python -m wdsweep ARGS` run in `cwd` inside this process (see the module docstring)."""
    from wdsweep.app import main

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with fresh_process(cwd, argv, env_extra or {}):
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = _exit_status(main)
    return Completed(["wdsweep", *argv], code, out.getvalue(), err.getvalue())


def _exit_status(main) -> int:
    """main()'s exit status as the interpreter would make it: 0 when it returns, the code of
    a SystemExit (its message, if any, printed to stderr with status 1), 1 after a traceback."""
    try:
        main()
    except SystemExit as stop:
        if stop.code is None:
            return 0
        if isinstance(stop.code, int):
            return stop.code
        print(stop.code, file=sys.stderr)
        return 1
    except Exception:  # noqa: BLE001 - an uncaught exception: the interpreter prints it, exit 1
        import traceback

        traceback.print_exc()
        return 1
    return 0


@contextlib.contextmanager
def fresh_process(cwd: Path, argv: Sequence[str], env_extra: Dict[str, str]) -> Iterator[None]:
    import torch
    from hydra.core.singleton import Singleton

    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    saved_modules = set(sys.modules)
    saved_singletons = _hydra_singletons()
    saved_sigterm = signal.getsignal(signal.SIGTERM)
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    saved_threads = torch.get_num_threads()
    saved_deterministic = torch.are_deterministic_algorithms_enabled()
    saved_gc = gc.get_threshold()
    os.environ.pop("HYDRA_FULL_ERROR", None)  # as conftest.run_cli: the program's own errors
    os.environ.update(env_extra)
    _start_like_a_new_process()
    os.chdir(cwd)
    # As `python -m` puts it there: the working directory first on the path.
    sys.argv = [str(Path(sys.modules["wdsweep"].__file__).parent / "__main__.py"), *argv]
    sys.path.insert(0, os.getcwd())
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        sys.argv, sys.path[:] = saved_argv, saved_path
        os.environ.clear()
        os.environ.update(saved_env)
        Singleton._instances = {**saved_singletons, **_hydra_singletons(registries=True)}
        signal.signal(signal.SIGTERM, saved_sigterm)
        root.handlers[:] = saved_root[0]
        root.setLevel(saved_root[1])
        torch.set_num_threads(saved_threads)
        torch.set_flush_denormal(False)  # torch's default; it has no getter
        torch.use_deterministic_algorithms(saved_deterministic)
        gc.set_threshold(*saved_gc)
        _forget_user_modules(saved_modules)


def _hydra_singletons(registries: bool = False) -> dict:
    """Copies of the Hydra singletons a run sets up (GlobalHydra, HydraConfig, JobRuntime), or
    with `registries` every other one, live (the plugins, config sources, the ConfigStore)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.singleton import Singleton
    from hydra.core.utils import JobRuntime

    run_state = (GlobalHydra, HydraConfig, JobRuntime)
    return {cls: (instance if registries else copy.deepcopy(instance))
            for cls, instance in Singleton._instances.items() if (cls not in run_state) == registries}


def _start_like_a_new_process() -> None:
    """wdsweep's per-process flags and caches as a new process has them."""
    import importlib

    for module, name, value in PER_PROCESS:
        setattr(importlib.import_module(module), name, value)
    for module, name in PER_PROCESS_CONTAINERS:
        getattr(importlib.import_module(module), name).clear()
    for module_name, module in list(sys.modules.items()):
        if module is None or not module_name.startswith(OUR_PACKAGES):
            continue
        for name, value in list(vars(module).items()):
            if (isinstance(value, functools._lru_cache_wrapper) and getattr(value, "__module__", None) == module_name
                    and (module_name, name) not in PURE_CACHES):
                value.cache_clear()


@functools.lru_cache(maxsize=1)
def _installed_roots() -> tuple:
    """Where modules come from that every process imports alike: the standard library, the
    installed packages and this project."""
    paths = sysconfig.get_paths()
    roots = {paths["stdlib"], paths["platstdlib"], paths["purelib"], paths["platlib"], sys.prefix,
             sys.base_prefix, str(Path(__file__).resolve().parent.parent)}
    return tuple(str(Path(r).resolve()) for r in roots)


def _forget_user_modules(before: set) -> None:
    """Drop the modules the run imported from elsewhere (a user's model file in the test's
    folder), so that the next run imports its own file of that name."""
    roots = _installed_roots()
    for name in set(sys.modules) - before:
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        if file and not str(Path(file).resolve()).startswith(roots):
            del sys.modules[name]
