"""Worker mode of the Optuna sweeper (hydra.sweeper.workers=N): a search without round barriers.

In round mode (the default) the sweeper asks n_jobs trials, launches them as one batch and asks
again only when the slowest of them has ended: a diverged or pruned trial leaves its slot idle
until the round ends. In worker mode the sweeper (the coordinator) opens the study, writes the
sweep's multirun.yaml and starts N workers. Each worker is the same command run again as its
own process, with the same sweep folder, the same study and one trial in flight: it asks a
trial, runs its job in its own process, tells it, and asks the next one at once, until the study
holds n_trials finished trials. Budgets stay exact and trial numbers unique because every worker
counts and asks under the study's ask lock (wdsweep.search.study.AskLock); each worker writes the heartbeat on
its trial, and a trial whose worker died is settled by the others as in any multi-process
study (told from its metrics.json if its job had ended, else failed once stale). When the
workers are done the coordinator writes optimization_results.yaml and runs the finalists.

Where the workers run follows hydra/launcher:
- basic or vectorized (jobs in the sweeper's own process): local processes. Each runs its
  jobs with the same launcher in its own process (vectorized batches a replicated trial's seeds).
- joblib (processes of its own): local processes too; each worker runs its jobs in-process,
  as the worker already is the separate process joblib would have started.
- submitit_local or submitit_slurm: one submitit job per worker (on Slurm a job array with
  hydra.launcher's partition, time, cpus, ...), each running the worker command in-process.

A worker is told apart by ENV_WORKER in its environment. Local workers share the cores: each
one's jobs take their share of the threads (wdsweep.jobs.threads.ENV_PARALLEL_JOBS), as joblib's
workers would. The coordinator passes its own command line to the workers (worker_argv),
with the sweep folder made absolute, the launcher replaced where needed, and a storage password
masked: the workers read it from the environment (wdsweep.tracking.trial_link.ENV_PASSWORD), as jobs do.
Their output is printed line by line with a `[worker i]` prefix and kept in
<sweep dir>/workers/worker-i.log.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

from wdsweep.config.urls import hide_password
from wdsweep.errors import ConfigError
from wdsweep.train.device import ENV_GPU_SLOT

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

ENV_WORKER = "WDSWEEP_SWEEP_WORKER"  # the worker's index, in a worker process's environment
WORKERS_DIR = "workers"
# Launchers that run a sweep's jobs in the sweeper's own process: a worker keeps them.
IN_PROCESS_LAUNCHERS = ("basic", "vectorized")
# Command-line entries the coordinator sets itself for its workers.
_REPLACED_PREFIXES = ("hydra.sweep.dir=", "hydra.sweeper.workers=", "hydra.sweeper.dry_run=")
_LAUNCHER_PREFIXES = ("hydra/launcher=", "hydra.launcher.")


def worker_index() -> Optional[int]:
    """This process's index if it is a worker of a worker-mode search, else None."""
    value = os.environ.get(ENV_WORKER, "")
    return int(value) if value.isdigit() else None


def launcher_kind(launcher_conf) -> str:
    """basic, vectorized, joblib, submitit_local, submitit_slurm or other, from hydra.launcher."""
    target = str(launcher_conf.get("_target_", ""))
    if target.endswith("BasicLauncher"):
        return "basic"
    if "wdsweep_vectorized" in target:
        return "vectorized"
    if "joblib" in target:
        return "joblib"
    if "submitit" in target:
        return "submitit_slurm" if target.endswith("SlurmLauncher") else "submitit_local"
    return "other"


def worker_argv(program: Sequence[str], args: Sequence[str], sweep_dir: Path, kind: str,
                password: Optional[str]) -> List[str]:
    """The coordinator's command line as a worker's: the same program (`program`: the
    interpreter and `-m wdsweep`, or a script), the same options and overrides (`args`, what
    Hydra parses), the absolute sweep folder, one worker (itself), and the launcher it runs
    jobs with.

    Rebuilt from what Hydra's own argument parser reads, not appended to: argparse takes the
    overrides as one run of positional words, so an override added after an option that ends
    the command (`... reg.lam=... -m`, `--config-dir conf`) would be refused as an unrecognized
    argument. The options come first, as `--name=value`, then the overrides; the sweep folder
    is quoted for Hydra's grammar (a comma in it would make a sweep of two folders)."""
    from hydra._internal.utils import get_args_parser

    from wdsweep.search.trials import quote

    parser = get_args_parser()
    parsed = parser.parse_args(list(args))
    options = []
    for action in parser._actions:  # Hydra's options, in its order; each as given, or left out
        value = getattr(parsed, action.dest, None)
        if not action.option_strings or action.dest in ("help", "version") or value == action.default:
            continue
        name = max(action.option_strings, key=len)  # the long form: --multirun, --config-dir
        options.append(name if action.nargs == 0 else f"{name}={value}")
    strip = lambda a: a.lstrip("+~")  # noqa: E731 - +key=, ++key= and ~key are the same key
    keep_launcher = kind in IN_PROCESS_LAUNCHERS
    overrides = [a for a in parsed.overrides if not strip(a).startswith(_REPLACED_PREFIXES)
                 and (keep_launcher or not strip(a).startswith(_LAUNCHER_PREFIXES))]
    overrides += [f"hydra.sweep.dir={quote(str(sweep_dir))}", "hydra.sweeper.workers=1"]
    if not keep_launcher:
        overrides.append("hydra/launcher=basic")
    return [*program, *(hide_password(a, password) for a in [*options, *overrides])]


def this_command_line() -> tuple[List[str], List[str]]:
    """This process's command line as (program, args): the interpreter with its own options and
    `-m wdsweep` (or the script), then what follows, as Hydra reads it from sys.argv (where
    wdsweep.app masked an MLflow URI's password)."""
    n_args = len(sys.argv) - 1
    program = sys.orig_argv[:len(sys.orig_argv) - n_args] if n_args else list(sys.orig_argv)
    return program, sys.argv[1:]


class LocalWorkers:
    """N worker processes on this machine, their output prefixed and kept in files."""

    def __init__(self, argv: List[str], n: int, sweep_dir: Path) -> None:
        self.argv, self.n = argv, n
        self.log_dir = sweep_dir / WORKERS_DIR
        self.procs: List[subprocess.Popen] = []
        self.readers: List[threading.Thread] = []
        self.last_lines: Dict[int, str] = {}

    def start(self) -> None:
        from wdsweep.jobs.threads import ENV_PARALLEL_JOBS

        self.log_dir.mkdir(parents=True, exist_ok=True)
        for i in range(self.n):
            # ENV_GPU_SLOT: with several GPUs, worker i trains on GPU i mod their count
            env = dict(os.environ, **{ENV_WORKER: str(i), ENV_PARALLEL_JOBS: str(self.n), ENV_GPU_SLOT: str(i)})
            proc = subprocess.Popen(self.argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1)
            self.procs.append(proc)
            reader = threading.Thread(target=self._relay, args=(i, proc), daemon=True)
            reader.start()
            self.readers.append(reader)
            log.info("worker %d: process %d (its log: %s)", i, proc.pid, self.log_dir / f"worker-{i}.log")

    def _relay(self, i: int, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        with open(self.log_dir / f"worker-{i}.log", "a") as kept:
            shown = True
            for line in proc.stdout:  # read to the end, whatever happens to ours: a full pipe would block it
                try:
                    kept.write(line)
                    kept.flush()
                except OSError:  # a full disk: the line is still shown
                    pass
                if line.strip():
                    self.last_lines[i] = line.strip()
                if shown:
                    try:
                        sys.stdout.write(f"[worker {i}] {line}")
                        sys.stdout.flush()
                    except (OSError, ValueError):  # our stdout closed (| head): the log file keeps it
                        shown = False

    def wait(self) -> List[int]:
        """Every worker's exit status, once all have ended. A coordinator stopped by Ctrl-C or
        SIGTERM (wdsweep.app raises either where the process is) stops its workers first: a
        search stopped by hand stops."""
        try:
            codes = [proc.wait() for proc in self.procs]
        except BaseException:
            for proc in self.procs:
                if proc.poll() is None:
                    proc.terminate()
            for proc in self.procs:
                proc.wait()
            raise
        for reader in self.readers:
            reader.join(timeout=5)
        return codes


class SubmititWorkers:
    """N workers as submitit jobs (a job array on Slurm), with hydra.launcher's resources,
    submitted and collected as wdsweep.cluster.submitit_launch submits a sweep's jobs."""

    def __init__(self, argv: List[str], n: int, sweep_dir: Path, launcher_conf, kind: str) -> None:
        from omegaconf import OmegaConf

        self.argv, self.n = argv, n
        self.cluster = "slurm" if kind == "submitit_slurm" else "local"
        self.params = OmegaConf.to_container(launcher_conf, resolve=True)
        self.params.pop("_target_", None)
        # a worker is one process, its files beside the workers' logs
        self.params.update(tasks_per_node=1, submitit_folder=str(sweep_dir / WORKERS_DIR / ".submitit"))
        self.jobs: list = []
        self.last_lines: Dict[int, str] = {}

    def start(self) -> None:
        from wdsweep.cluster.submitit_launch import submit

        env = {}
        if self.cluster == "local":  # one machine: the workers share its cores
            from wdsweep.jobs.threads import ENV_PARALLEL_JOBS

            env[ENV_PARALLEL_JOBS] = str(self.n)
        self.jobs = submit(self.params, self.cluster, run_worker, [(self.argv, i, env) for i in range(self.n)])
        for i, job in enumerate(self.jobs):
            log.info("worker %d: submitit job %s (its output: %s)", i, job.job_id, job.paths.stdout)

    def wait(self) -> List[int]:
        from wdsweep.cluster.submitit_launch import result_or_lost

        codes = []
        try:
            for i, job in enumerate(self.jobs):
                code = result_or_lost(job, f"worker {i}", lambda reason: reason)
                if not isinstance(code, int):  # lost: killed, timed out, node failure
                    self.last_lines[i] = str(code)
                    code = 1
                codes.append(code)
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (wdsweep.app raises it as one)
            for job in self.jobs:
                job.cancel(check=False)
            raise
        return codes


def run_worker(argv: List[str], index: int, extra_env: Dict[str, str]) -> int:
    """A submitit job's body: the worker command, in this job's process tree."""
    env = dict(os.environ, **extra_env, **{ENV_WORKER: str(index), ENV_GPU_SLOT: str(index)})
    return subprocess.run(argv, env=env, stdin=subprocess.DEVNULL).returncode


class Workers:
    """The coordinator's side of worker mode; uses config, workers, n_trials and password."""

    def _run_workers(self, study: optuna.Study, sweep_dir: Path) -> None:
        """Worker mode: start the workers, wait for them, and stop with one line if they all
        ended before the study held n_trials finished trials."""
        from wdsweep.search.trials import FINISHED, count_trials

        kind = launcher_kind(self.config.hydra.launcher)
        argv = worker_argv(*this_command_line(), sweep_dir.resolve(), kind, self.password)
        pool = (SubmititWorkers(argv, self.workers, sweep_dir, self.config.hydra.launcher, kind)
                if kind.startswith("submitit") else LocalWorkers(argv, self.workers, sweep_dir))
        log.info("worker mode: %d workers (%s) ask, run and tell one trial at a time until study %r "
                 "holds %d finished trials", self.workers,
                 "submitit jobs" if kind.startswith("submitit") else "local processes",
                 study.study_name, self.n_trials)
        pool.start()
        codes = pool.wait()
        failed = [(i, code) for i, code in enumerate(codes) if code != 0]
        for i, code in failed:
            log.warning("worker %d exited with status %d: %s", i, code, pool.last_lines.get(i, "(no output)"))
        finished = count_trials(study, FINISHED)
        if failed and finished < self.n_trials:
            self._write_results(study, sweep_dir)
            i, code = failed[0]
            ConfigError(f"search stopped: {len(failed)} of {self.workers} workers exited with an error "
                        f"(worker {i}, status {code}: {pool.last_lines.get(i, '(no output)')}); the study "
                        f"holds {finished} of n_trials={self.n_trials} finished trials: run the same command "
                        "again to resume").exit()
