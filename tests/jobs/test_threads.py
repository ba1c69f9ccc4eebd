"""The thread rule (wdsweep.jobs.threads): dense-layer models give the same bits at any thread
count, the rule sees busy neighbours, and resume never mixes thread-dependent numbers."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from wdsweep.jobs.run import run
from wdsweep.jobs.threads import FreeCores, usable_cores

from conftest import WALL_CLOCK, history_without_seconds, job_dirs, read_metrics, run_wdsweep

# What may differ between the two runs: timings, ids, and the thread count itself.
TIMINGS = ("train_seconds", "eval_seconds", "started_at", "finished_at", "run_id", "torch_threads",
           "config", "config_hash", "overrides", "throughput")


def _numbers(job_dir) -> tuple:
    record = read_metrics(job_dir)
    history = history_without_seconds(job_dir)
    assert "sparsity" in history[0] and "seconds" not in history[0]
    return {k: v for k, v in record.items() if k not in TIMINGS}, history


@pytest.mark.parametrize("overrides", [
    ["trainer.steps=500"],  # the weight-decay article's net, whose numbers moved with the thread count
    ["data=digits", "reg.p=1", "trainer.steps=100", "data.n_train=300"],
    ["data=digits", "reg=global", "optimizer=adam", "trainer.steps=100", "data.n_train=300"],
    ["data=digits", "reg=l1_prox", "reg.scope=all", "trainer.steps=100", "data.n_train=300"],
], ids=["regression1d", "digits-l1", "digits-adam-global", "digits-proximal"])
def test_dense_models_give_the_same_bits_at_any_thread_count(compose_cfg, tmp_path, overrides):
    results = {}
    for threads in (1, 2):
        cfg = compose_cfg([*overrides, f"trainer.threads={threads}"])
        run(cfg, tmp_path / str(threads))
        assert read_metrics(tmp_path / str(threads))["torch_threads"] == threads
        results[threads] = _numbers(tmp_path / str(threads))
    assert results[1][0]["thread_independent"] is True
    assert results[1] == results[2]


def test_a_batched_model_gives_the_same_bits_at_any_thread_count(compose_cfg):
    from wdsweep.batched.vectorized import train_batched

    finals = {}
    for threads in (1, 2):
        cfgs = [compose_cfg(["data=digits", f"reg.p={p}", "trainer.steps=100", "data.n_train=300",
                             f"trainer.threads={threads}"]) for p in (1, 2, 3)]
        trained = train_batched(cfgs)
        assert {t.threads for t in trained} == {threads}
        finals[threads] = [[{k: v for k, v in row.items() if k not in WALL_CLOCK}
                            for row in (t.result.final, *t.result.history)] for t in trained]
    assert finals[1] == finals[2]


def test_a_convnet_is_recorded_as_thread_dependent(compose_cfg, tmp_path):
    cfg = compose_cfg(["data=digits", "model=cnn", "trainer.steps=2", "trainer.eval_every=2",
                       "trainer.threads=1"])
    run(cfg, tmp_path)
    assert read_metrics(tmp_path)["thread_independent"] is False


def _hog(seconds: float) -> subprocess.Popen:
    """A process that keeps one core busy for `seconds`."""
    return subprocess.Popen([sys.executable, "-c",
                             f"import time\nend = time.monotonic() + {seconds}\n"
                             "while time.monotonic() < end: pass"])


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux's /proc/stat")
def test_free_cores_see_busy_neighbours():
    """With a spinning process on every usable core, no core is free: the job gets one thread.
    (Whether a core counts as free on an idle machine is the benchmark's to show: the test
    suite's other worker keeps this machine busy.)"""
    cores = usable_cores()
    watcher = FreeCores()
    hogs = [_hog(1.5) for _ in range(cores)]
    try:
        time.sleep(1.0)
        assert watcher.count() == 1
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def test_free_cores_leave_out_this_process_and_light_load():
    """The arithmetic on two /proc/stat snapshots: 2 cores, 1 s window."""
    from wdsweep.jobs.threads import _Snapshot, free_between

    def free(busy: float, own: float) -> int:
        return free_between(_Snapshot(0.0, 100.0, 10.0), _Snapshot(1.0, 100.0 + busy, 10.0 + own), 2)

    assert free(busy=2.0, own=2.0) == 2  # all of it was this process's own training
    assert free(busy=0.2, own=0.0) == 2  # a light neighbour (a shell, a logger)
    assert free(busy=1.0, own=0.0) == 1  # one busy neighbour
    assert free(busy=1.9, own=0.9) == 1  # ... beside our own single thread
    assert free(busy=2.0, own=0.0) == 1  # every core busy: still one thread, never zero


@pytest.mark.integration
def test_resume_runs_a_thread_dependent_job_again_under_another_thread_count(tmp_path):
    """A convnet done with 1 thread is run again when the resumed sweep would give it 2; a
    dense net's result stands at any count."""
    sweep = ["hydra.sweep.dir=sweep", "data=digits", "trainer.steps=2", "trainer.eval_every=2",
             "data.n_train=200", "model=cnn,mlp"]
    first = run_wdsweep(["-m", *sweep], tmp_path, env_extra={"OMP_NUM_THREADS": "1"})
    assert first.returncode == 0, first.stderr
    def by_model() -> dict:
        return {read_metrics(d)["config"]["model"]["name"]: read_metrics(d) for d in job_dirs(tmp_path / "sweep")}

    before = by_model()
    again = run_wdsweep(["-m", *sweep], tmp_path, env_extra={"OMP_NUM_THREADS": "2"})
    assert again.returncode == 0, again.stderr
    after = by_model()
    assert "skipped 1 of 2" in again.stdout
    cnn, mlp = "cnn", "mlp"
    assert after[cnn]["run_id"] != before[cnn]["run_id"] and after[cnn]["torch_threads"] == 2
    assert after[mlp]["run_id"] == before[mlp]["run_id"] and after[mlp]["torch_threads"] == 1
    assert after[cnn]["thread_independent"] is False and after[mlp]["thread_independent"] is True
