"""Runs and sweeps started together never write into one folder, and a sweep that waits for
another says for whom (issue: nothing lost, round 2)."""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import job_dirs, read_metrics, run_wdsweep

TINY = ["trainer.steps=5", "model.width=8", "model.depth=1"]


def test_single_runs_named_by_the_same_clock_second_get_folders_of_their_own(tmp_path):
    # ${now:%Y} stands for two runs started in the same second: their folders' names are equal
    clock_named = "hydra.run.dir=out/${now:%Y}"
    first = run_wdsweep([*TINY, "reg.lam=0.01", clock_named], cwd=tmp_path)
    second = run_wdsweep([*TINY, "reg.lam=0.02", clock_named], cwd=tmp_path)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    year = time.strftime("%Y")
    folders = sorted((tmp_path / "out").iterdir())
    assert [f.name for f in folders] == [year, f"{year}-2"]
    assert [read_metrics(f)["config"]["reg"]["lam"] for f in folders] == [0.01, 0.02]


def test_a_folder_the_user_named_is_theirs(tmp_path):
    # no clock in the name: the same folder again (a rerun, a resume), not a numbered one
    for lam in ("0.01", "0.02"):
        assert run_wdsweep([*TINY, f"reg.lam={lam}", "hydra.run.dir=mine"], cwd=tmp_path).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    assert read_metrics(tmp_path / "mine")["config"]["reg"]["lam"] == 0.02


HOLD_AND_STOP = """
import os, signal, sys
from wdsweep.jobs.resume import job_lock
with job_lock(sys.argv[1]):
    print("holding", flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)
"""


def test_a_single_run_refuses_a_named_folder_another_run_is_writing(tmp_path):
    """Two runs into one folder the user named, at once: the second must not wait and then
    write over the first one's files; it refuses in one line, naming the run that holds it."""
    mine = tmp_path / "mine"
    mine.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_AND_STOP, str(mine)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        second = run_wdsweep([*TINY, "hydra.run.dir=mine"], cwd=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert second.returncode == 1
    (line,) = second.stderr.strip().splitlines()
    assert line.startswith("wdsweep: invalid config: hydra.run.dir=") and f"locked by pid {holder.pid}" in line
    assert not (mine / "metrics.json").exists()


def test_a_wait_for_a_suspended_lock_holder_names_it_and_the_way_out(tmp_path, caplog):
    from wdsweep.jobs.resume import job_lock

    job = tmp_path / "job"
    job.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_AND_STOP, str(job)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        for _ in range(200):  # until the kernel reports it stopped
            if Path(f"/proc/{holder.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T":
                break
            time.sleep(0.01)
        got = threading.Event()

        def wait_for_it() -> None:
            with job_lock(job):
                got.set()

        with caplog.at_level(logging.WARNING, logger="wdsweep.jobs.lock_holder"):
            waiter = threading.Thread(target=wait_for_it)
            waiter.start()
            for _ in range(200):
                if caplog.records:
                    break
                time.sleep(0.01)
            assert not got.is_set()
            line = caplog.records[0].getMessage()
            assert f"pid {holder.pid}" in line and "stopped" in line and f"kill -CONT {holder.pid}" in line, line
            assert "HOLD_AND_STOP" not in line and "python -c" in line  # the holder's command
            since = re.search(r"since (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00)", line)  # and since when
            assert since and abs(datetime.now(timezone.utc) - datetime.fromisoformat(since[1])) < timedelta(minutes=5)
            holder.send_signal(signal.SIGCONT)  # the way out it names: the holder ends, the lock is free
            waiter.join(timeout=30)
        assert got.is_set()
        assert json.loads((job / ".wdsweep.lock").read_text())["pid"] != holder.pid  # the waiter wrote itself in
    finally:
        holder.kill()
        holder.wait()


SEARCH = ["search=optuna", "hydra.sweeper.sampler.seed=0", "model.depth=1", "model.width=8",
          "trainer.eval_every=10"]


def test_two_searches_in_one_clock_named_folder_keep_their_trials_apart(tmp_path):
    """The first search has claimed the folder and is training its first trial (nothing of its
    own in the folder says whose it is yet); a second study started meanwhile into the same
    clock-named folder must not write its trial-00000 over the first one's."""
    from sweep_processes import start_sweep

    folder = "hydra.sweep.dir=multirun/${now:%Y}"
    first = start_sweep([*SEARCH, "hydra.sweeper.n_trials=1", "trainer.steps=1500", folder], cwd=tmp_path)
    try:
        trial = tmp_path / "multirun" / time.strftime("%Y") / "trial-00000"
        deadline = time.time() + 120
        while not (trial / ".hydra" / "config.yaml").is_file():
            assert first.poll() is None and time.time() < deadline, (tmp_path / "sweep.log").read_text()
            time.sleep(0.05)
        second = run_wdsweep(["-m", *SEARCH, "hydra.sweeper.n_trials=1", "trainer.steps=20",
                              "optimizer.lr=0.02", folder], cwd=tmp_path)
        assert second.returncode == 0, second.stderr
        assert "this search writes to" in second.stdout + second.stderr
    finally:
        assert first.wait(timeout=240) == 0, (tmp_path / "sweep.log").read_text()
    year = time.strftime("%Y")
    studies = {}
    for name in (year, f"{year}-2"):
        (metrics,) = (tmp_path / "multirun" / name).glob("trial-*/metrics.json")
        record = json.loads(metrics.read_text())
        studies[name] = (record["optuna"]["study"], record["config"]["trainer"]["steps"])
    assert studies[year][1] == 1500 and studies[f"{year}-2"][1] == 20
    assert studies[year][0] != studies[f"{year}-2"][0]


def test_every_sweep_command_into_one_folder_keeps_its_record(tmp_path):
    import pandas as pd
    import yaml

    from analysis.collect import sweep_commands

    def sweep(lam: str):
        proc = run_wdsweep(["-m", *TINY, f"reg.lam={lam}", "hydra.sweep.dir=S"], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr

    def task_overrides(path: Path):
        return yaml.safe_load(path.read_text())["hydra"]["overrides"]["task"]

    sweep("0.01")
    sweep("0.01")  # the same command resumes: nothing new to keep
    sweep("0.02,0.03")  # a grown grid
    records = tmp_path / "S"
    assert sorted(p.name for p in (records / "multirun-history").iterdir()) == ["1.yaml"]
    assert "reg.lam=0.01" in task_overrides(records / "multirun-history" / "1.yaml")
    assert "reg.lam=0.02,0.03" in task_overrides(records / "multirun.yaml")
    commands = sweep_commands(pd.DataFrame({"sweep": [str(records)]}))
    assert [c.split("reg.lam=")[1].split()[0] for c in commands] == ["0.01", "0.02,0.03"]


def _record_at_once(sweep_dir: str, n: int, start) -> None:
    from omegaconf import OmegaConf

    from wdsweep.jobs.sweep_record import save_sweep_config

    start.wait()
    save_sweep_config(OmegaConf.create({"command": n}), Path(sweep_dir))


def test_sweeps_recording_into_one_folder_at_once_each_keep_their_record(tmp_path):
    """Twelve sweep processes write their multirun.yaml into one folder at the same moment:
    every one of the twelve records is kept (eleven in the history, one current), none twice."""
    import multiprocessing

    import yaml

    from wdsweep.jobs.sweep_record import sweep_records

    context = multiprocessing.get_context("fork")
    start = context.Barrier(12)
    writers = [context.Process(target=_record_at_once, args=(str(tmp_path), n, start)) for n in range(12)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)
        assert writer.exitcode == 0
    kept = sorted(yaml.safe_load(path.read_text())["command"] for path in sweep_records(tmp_path))
    assert kept == list(range(12))


def test_resume_under_a_one_by_one_launcher_retrains_what_a_vectorized_batch_trained(tmp_path):
    """Batched and lone training differ by rounding that grows with the steps: a sweep resumed
    under the basic launcher must not keep the vectorized launcher's numbers as its own, and a
    table that holds both kinds says so."""
    from analysis.collect import collect
    from analysis.report import _training_kinds

    def sweep(seeds: str, *more: str):
        proc = run_wdsweep(["-m", *TINY, f"seed={seeds}", "hydra.sweep.dir=S", *more], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return proc

    def kinds():
        return {read_metrics(j)["seed"]: (read_metrics(j)["batched"], read_metrics(j)["launcher"])
                for j in job_dirs(tmp_path / "S")}

    sweep("0,1", "hydra/launcher=vectorized")
    sweep("2")  # a grown grid, under the basic launcher
    assert kinds() == {0: (True, "VectorizedLauncher"), 1: (True, "VectorizedLauncher"), 2: (False, "BasicLauncher")}
    (line, _) = _training_kinds(collect([str(tmp_path / "S")]).runs)
    assert line.startswith("Trained two ways: 2 runs as members of vectorized batches, 1 alone")

    plan = sweep("0,1", "hydra.sweeper.dry_run=true")
    why = "train: it was trained in a vectorized batch, and this launcher trains each job alone"
    assert plan.stdout.count(why) == 2
    sweep("0,1")
    assert set(kinds().values()) == {(False, "BasicLauncher")}
    assert _training_kinds(collect([str(tmp_path / "S")]).runs) == []
    # the vectorized launcher batches what it can and runs the rest alone: records of both kinds are done there
    again = sweep("0,1,2", "hydra/launcher=vectorized")
    assert "skipped 3 of 3 (already done)" in again.stdout + again.stderr


def test_a_claim_left_by_a_search_killed_before_its_first_trial_is_taken_over(tmp_path):
    """The owner file of a search killed between its claim and its first trial must not keep
    every later search out of the folder; a live claimer's, or one with trials, does."""
    import socket

    from wdsweep.search.sweep_claim import OWNER_FILE, TakenByAnotherStudy, claim, recorded_owner

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    for pid, trials, taken in ((gone.pid, False, False), (os.getpid(), False, True), (gone.pid, True, True)):
        folder = tmp_path / f"{pid}-{trials}"
        folder.mkdir()
        (folder / OWNER_FILE).write_text(f"wdsweep-killed\n{pid}\n{socket.gethostname()}\n")
        if trials:
            (folder / "trial-00000").mkdir()
        if taken:
            with pytest.raises(TakenByAnotherStudy):
                claim(folder, "wdsweep-next")
        else:
            assert claim(folder, "wdsweep-next") and recorded_owner(folder) == "wdsweep-next"
