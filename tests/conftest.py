"""Shared fixtures: Hydra `compose` for in-process tests, `python -m wdsweep` inside the test
process (run_wdsweep: what a sweep computes and writes) and in a subprocess (run_cli: where the
process is the point: exit codes, signals, limits, other processes)."""
from __future__ import annotations

import os

# One thread per process, in this process and in every subprocess it starts: the suite runs on
# two xdist workers that launch sweeps of their own, and OpenMP threads competing for two cores
# slow everything down many times over. (Set before anything imports torch.)
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The tests that do run 2 threads (the thread rule's) share the 2 cores with the other worker's
# sweeps: a thread spinning at an OpenMP barrier holds a core they need (measured: the
# regression1d thread test took 24 s in the suite, 1.8 s beside one busy process with passive
# waiting, 2.8 s with spinning). The waiting policy changes no number.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator, List, Sequence

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from wdsweep.app import CONFIG_DIR

from in_process import run_in_process as run_wdsweep  # noqa: F401 - for the tests to import


@pytest.fixture
def compose_cfg():
    """compose_cfg(overrides) -> the composed job config, as `python -m wdsweep` would build it."""

    def _compose(overrides: Sequence[str] = ()) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))

    return _compose


# An address-space limit under which a model of width 20000 (1.6 GB per weight matrix) cannot be
# allocated, while the up-front memory check (which reads the machine's free memory) passes it:
# a real allocation failure after validation.
SMALL_ADDRESS_SPACE = 3 * 2**30
BIG_MODEL = ["model.depth=2", "model.width=20000"]


def run_cli(args: Sequence[str], cwd: Path, timeout: float = 240, env_extra: dict | None = None,
            address_space: int | None = None) -> subprocess.CompletedProcess:
    """`python -m wdsweep ARGS` as a real process: for tests of the process itself (its exit
    status and one-line errors, signals, an address-space limit, processes it starts). Every
    other test runs the program in-process with run_wdsweep (tests/in_process.py), seconds
    faster: a start imports torch, Hydra and the optimizers."""
    env = {**os.environ, "PYTHONHASHSEED": "0", **(env_extra or {})}
    env.pop("HYDRA_FULL_ERROR", None)

    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    return subprocess.run([sys.executable, "-m", "wdsweep", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limit if address_space else None)


def job_dirs(sweep_root: Path) -> List[Path]:
    """Job folders under a sweep root (those holding a .hydra/ config), sorted."""
    return sorted(p.parent.parent for p in sweep_root.rglob(".hydra/config.yaml"))


def read_metrics(job_dir: Path) -> dict:
    return json.loads((job_dir / "metrics.json").read_text())


# What differs between two executions of one job, however it runs: the clock and the run's id.
# what a job's metrics.json records of its execution rather than of what it computed: when, how
# fast, and which launcher ran it (the same numbers under any launcher that trains jobs alone)
PER_EXECUTION = {"train_seconds", "eval_seconds", "started_at", "finished_at", "run_id", "throughput", "launcher"}
# history.csv's wall-clock columns: when, and how fast (the rest is what the run computed)
WALL_CLOCK = ("seconds", "samples_per_s", "step_ms", "data_wait")


def metrics_without_timing(sweep: Path) -> dict:
    """Each job's metrics.json without its per-execution fields, by the job's folder name."""
    return {job.name: {k: v for k, v in read_metrics(job).items() if k not in PER_EXECUTION} for job in job_dirs(sweep)}


def history_without_seconds(job: Path) -> List[dict]:
    """The job's history.csv rows without the wall-clock columns."""
    import csv

    return [{k: v for k, v in row.items() if k not in WALL_CLOCK}
            for row in csv.DictReader(io.StringIO((job / "history.csv").read_text()))]


def run_analysis(*args: str) -> SimpleNamespace:
    """`python -m analysis ARGS` in this process: its exit status and what it printed. The
    command line itself (a fresh process, its one-line errors) is tested in test_bad_inputs.py
    and test_install.py; here a process start (seconds, for pandas, seaborn and torch) would
    buy nothing."""
    from analysis.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def shared_folder(tmp_path_factory, worker_id: str, name: str, build) -> Path:
    """A folder built by `build(folder)` once per test session, whichever xdist worker asks
    first (a module fixture runs once per worker under --dist worksteal, and a sweep is
    seconds of CLI start-up): the workers' base folders share a parent that is the session's
    own; without xdist, the base folder is."""
    import shutil

    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = (base if worker_id == "master" else base.parent) / f"shared-{name}"
    with FileLock(str(root) + ".lock"):
        if not (root / "built").is_file():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            build(root)
            (root / "built").write_text("")
    return root


# The weight-decay article's experiment as test_cli.py checks it and test_analysis.py draws it:
# one shared sweep (shared_sweep) for both.
SEED_REGRESSION_SWEEP = ["experiment=seed_regression", "seed=1,2"]


def shared_sweep(tmp_path_factory: pytest.TempPathFactory, name: str, args: Sequence[str],
                 process: bool = False) -> Path:
    """`python -m wdsweep -m ARGS hydra.sweep.dir=...` run once for the whole test session
    (shared_folder): for tests that only read a sweep's results. Tests must not change it (copy
    it first). The same `name` must always come with the same `args`. In-process, unless
    `process` (a launcher that starts processes of its own, joblib's: its workers outlive the
    run, and belong to a sweep process, not to the test's)."""

    def build(home: Path) -> None:
        run = run_cli if process else run_wdsweep
        proc = run(["-m", *args, f"hydra.sweep.dir={home / 'sweep'}"], cwd=home)
        assert proc.returncode == 0, proc.stderr
        (home / "stdout.txt").write_text(proc.stdout)
        (home / "stderr.txt").write_text(proc.stderr)
        (home / "args.json").write_text(json.dumps(list(args)))

    home = shared_folder(tmp_path_factory, os.environ.get("PYTEST_XDIST_WORKER", "master"), f"sweep-{name}", build)
    assert json.loads((home / "args.json").read_text()) == list(args), f"shared sweep {name!r} asked with other args"
    return home / "sweep"


@contextlib.contextmanager
def mounted_tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A real file system of `size` (tmpfs) at `mount`, for a full disk; the test is skipped
    where this process may not mount one (root on Linux)."""
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
