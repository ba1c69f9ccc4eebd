"""Worker mode of the Optuna sweeper (hydra.sweeper.workers=N, wdsweep/search/workers.py):
real worker processes pulling trials from one journal study, read back with Optuna's own study.

The workload makes a round barrier visible: trial 0 is slow (3000 steps), trials 1-4 fast (20
steps), all enqueued in that order. With 2 workers and no barrier, one worker holds trial 0
while the other runs 1, 2, 3 and 4; in rounds of 2, trial 2 could not start before trial 0 ended.
"""
import json
import os
import signal
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from wdsweep.jobs.threads import usable_cores

from conftest import run_cli
from sweep_processes import start_sweep

pytestmark = pytest.mark.integration

SLOW_FIRST = ["search=optuna", "trainer.steps=choice(20,3000)", "trainer.eval_every=10",
              "hydra.sweeper.n_trials=5", "hydra.sweeper.workers=2", "hydra.sweeper.storage_dir=studies",
              "hydra.sweeper.study_name=pull",
              # distinct points: Optuna enqueues a point once
              "hydra.sweeper.enqueue=[{trainer.steps:3000},{trainer.steps:20,reg.lam:1e-5},"
              "{trainer.steps:20,reg.lam:1e-4},{trainer.steps:20,reg.lam:1e-3},{trainer.steps:20,reg.lam:1e-2}]"]


def study_of(home: Path) -> optuna.Study:
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(home / "studies" / "pull.journal")))
    return optuna.load_study(study_name="pull", storage=storage)


def started(job: Path) -> float:
    return (job / ".hydra" / "config.yaml").stat().st_mtime


def ended(job: Path) -> float:
    return (job / "metrics.json").stat().st_mtime


def test_workers_pull_trials_without_a_round_barrier_and_keep_the_budget_exact(tmp_path):
    # The command line of the README's "Your model" (ending with --config-dir), -m last, and a
    # sweep folder with a comma: the workers' command lines are rebuilt from what Hydra's parser
    # read (every worker used to exit at once: 0 trials).
    (tmp_path / "conf").mkdir()
    sweep = tmp_path / "a,b"
    # OMP_NUM_THREADS unset: the jobs' thread count comes from the thread rule, which must give
    # each of the 2 workers its share of the cores, as joblib's n_jobs=2 would.
    proc = run_cli([*SLOW_FIRST, f"hydra.sweep.dir='{sweep}'", "-m", "--config-dir", "conf"], cwd=tmp_path,
                   env_extra={"OMP_NUM_THREADS": ""})
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()

    trials = study_of(tmp_path).get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3, 4]  # exactly n_trials, no number twice
    assert all(t.state == TrialState.COMPLETE for t in trials)
    for t in trials:
        record = json.loads((sweep / f"trial-{t.number:05d}" / "metrics.json").read_text())
        assert record["optuna"]["trial_id"] == t._trial_id
        assert t.value == pytest.approx(record["objective"], rel=1e-12)
        assert record["config"]["trainer"]["steps"] == (3000 if t.number == 0 else 20)
        # each worker's jobs keep to its share of the cores (thread-independent ones may take fewer)
        assert record["torch_threads"] <= max(1, usable_cores() // 2)

    jobs = {t.number: sweep / f"trial-{t.number:05d}" for t in trials}
    # No barrier: later fast trials started while the slow trial 0 still ran.
    assert started(jobs[2]) < ended(jobs[0]) and started(jobs[3]) < ended(jobs[0]), \
        {n: (started(j), ended(j)) for n, j in jobs.items()}

    # One sweep folder: the coordinator's multirun.yaml and results, each worker's log.
    assert (sweep / "multirun.yaml").is_file()
    results = (sweep / "optimization_results.yaml").read_text()
    assert "n_trials: 5" in results and "COMPLETE: 5" in results
    logs = sorted(p.name for p in (sweep / "workers").iterdir())
    assert logs == ["worker-0.log", "worker-1.log"]
    assert "[worker 0]" in proc.stdout and "[worker 1]" in proc.stdout


def _pids(out: Path, n: int, timeout: float = 60) -> dict:
    """Worker index -> pid, from the coordinator's 'worker i: process PID' lines."""
    import re

    deadline = time.time() + timeout
    while time.time() < deadline:
        found = {int(i): int(pid) for i, pid in re.findall(r"worker (\d+): process (\d+)", out.read_text())}
        if len(found) == n:
            return found
        time.sleep(0.2)
    raise AssertionError(out.read_text())


def test_a_killed_worker_s_trial_is_failed_once_stale_and_the_others_finish_the_budget(tmp_path):
    sweep = tmp_path / "sweep"
    out = tmp_path / "out.txt"
    coordinator = start_sweep([*SLOW_FIRST, f"hydra.sweep.dir={sweep}", "hydra.sweeper.heartbeat_seconds=1",
                               "hydra.sweeper.stale_after_seconds=4"], tmp_path, out.name)
    try:
        pids = _pids(out, 2)
        # the worker that runs the slow trial 0: kill it mid-job
        deadline = time.time() + 120
        victim = None
        while victim is None and time.time() < deadline:
            for i in pids:
                log = sweep / "workers" / f"worker-{i}.log"
                if log.is_file() and "trainer.steps=3000" in log.read_text():
                    victim = i
            time.sleep(0.1)
        assert victim is not None, out.read_text()
        os.kill(pids[victim], signal.SIGKILL)
        code = coordinator.wait(timeout=180)
    finally:
        coordinator.kill()
    text = out.read_text()
    assert code == 0, text
    assert f"worker {victim} exited with status -9" in text

    trials = {t.number: t for t in study_of(tmp_path).get_trials()}
    assert sorted(trials) == [0, 1, 2, 3, 4]
    assert trials[0].state == TrialState.FAIL and "stale" in trials[0].user_attrs["wdsweep_fail_reason"]
    assert all(trials[n].state == TrialState.COMPLETE for n in (1, 2, 3, 4))
    assert not (sweep / "trial-00000" / "metrics.json").exists()  # killed mid-job: no result


def test_stopping_the_coordinator_stops_its_workers(tmp_path):
    """SIGTERM (a scheduler's stop, `kill`) on the coordinator: its workers stop too, nothing is
    left running, and it exits as a stopped sweep does."""
    out = tmp_path / "out.txt"
    coordinator = start_sweep([*SLOW_FIRST, f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path, out.name)
    try:
        pids = _pids(out, 2)
        deadline = time.time() + 120
        while not (tmp_path / "sweep" / "trial-00000" / ".hydra").is_dir() and time.time() < deadline:
            time.sleep(0.1)
        coordinator.send_signal(signal.SIGTERM)  # the coordinator alone, not its process group
        code = coordinator.wait(timeout=60)
    finally:
        coordinator.kill()
    assert code == 143, out.read_text()
    assert "stopped by SIGTERM" in out.read_text()
    # stopped mid-job, not left to run the search to its end
    assert not (tmp_path / "sweep" / "trial-00000" / "metrics.json").exists()
    assert not (tmp_path / "sweep" / "optimization_results.yaml").exists()
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# --- the workers' command line (worker_argv) -------------------------------------------------

PROGRAM = ["/usr/bin/python3", "-X", "faulthandler", "-m", "wdsweep"]


def _as_hydra_reads_it(argv):
    """What a worker's Hydra makes of its command line: the options, and each override parsed."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    assert argv[:len(PROGRAM)] == PROGRAM
    args = get_args_parser().parse_args(argv[len(PROGRAM):])  # argparse exits on what it refuses
    return args, {o.key_or_group: o for o in OverridesParser.create().parse_overrides(args.overrides)}


@pytest.mark.parametrize("args", [
    ["search=optuna", "hydra.sweeper.workers=2", "-m"],  # the overrides first, the option last
    ["-m", "search=optuna", "hydra.sweeper.workers=2", "--config-dir", "conf"],  # as the README's "Your model"
    ["--config-dir=conf", "-m", "search=optuna", "hydra.sweeper.workers=2"],
], ids=["ends-with-m", "ends-with-config-dir", "options-first"])
def test_a_worker_s_command_line_parses_whatever_order_the_coordinator_s_took(args):
    from wdsweep.search.workers import worker_argv

    argv = worker_argv(PROGRAM, args, Path("/runs/sweep"), "basic", None)
    parsed, overrides = _as_hydra_reads_it(argv)
    assert parsed.multirun
    assert parsed.config_dir == ("conf" if "conf" in " ".join(args) else None)
    assert overrides["search"].value() == "optuna"
    assert overrides["hydra.sweeper.workers"].value() == 1  # the worker is one worker
    assert overrides["hydra.sweep.dir"].value() == "/runs/sweep"


@pytest.mark.parametrize("folder", ["/runs/a,b", "/runs/it's here", "/runs/${x}", "/runs/back\\slash\\"])
def test_a_worker_s_sweep_folder_is_the_coordinator_s_exactly(folder):
    """A comma would make Hydra read a sweep of two folders; a quote, an interpolation or a
    backslash would change the path."""
    from omegaconf import OmegaConf

    from wdsweep.search.workers import worker_argv

    argv = worker_argv(PROGRAM, ["-m", "search=optuna", "hydra.sweep.dir=elsewhere"], Path(folder), "joblib", None)
    _, overrides = _as_hydra_reads_it(argv)
    override = overrides["hydra.sweep.dir"]
    assert not override.is_sweep_override()
    assert OmegaConf.create({"dir": override.value()}).dir == folder  # as the config will read it
    assert overrides["hydra/launcher"].value() == "basic"
    assert [a for a in argv if a.startswith("hydra.sweep.dir=")] == [argv[-3]]  # the coordinator's is gone
