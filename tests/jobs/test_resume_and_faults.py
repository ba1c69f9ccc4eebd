"""Nothing lost: resumable grids, and faults injected into real sweeps (SIGKILL, two sweeps in one
folder, divergence, exceptions, unwritable results). A sweep that is killed, signalled, or run
beside another is a real `python -m wdsweep -m ...` process (the kills are real signals to its
process group); the rest, and the runs that resume after a kill, run in-process (run_wdsweep)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from conftest import PER_EXECUTION, job_dirs, mounted_tmpfs, read_metrics, run_cli, run_wdsweep
from sweep_processes import (
    kill_after,
    kill_when,
    processes_with,
    result_files_whole,
    run_ids,
    skipped_before_launch,
    start_sweep,
)

pytestmark = pytest.mark.integration

# Six jobs of about half a second each, so that a kill lands mid-sweep.
GRID = ["reg.p=1,2,3", "seed=0,1", "trainer.steps=300", "trainer.eval_every=100"]
TIMING = PER_EXECUTION


def test_killed_grids_lose_nothing_rerun_only_the_rest_and_agree_across_launchers(tmp_path):
    """The same grid is killed mid-sweep under the basic launcher and under joblib with two
    workers, then re-run; the two sweeps then agree job by job, bit for bit. Under joblib only
    the main process is killed, as SIGKILL from outside would: no handler runs, and its workers
    must notice that they were orphaned and end (wdsweep.jobs.lifeline), not train on beside the
    re-run."""
    launchers = {"basic": [], "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]}
    for name, launcher in launchers.items():
        sweep = tmp_path / name
        args = [*GRID, *launcher, f"hydra.sweep.dir={sweep}"]
        marker = f"WDSWEEP_TEST_MARK=killed-{name}-{os.getpid()}-{time.monotonic_ns()}"
        proc = start_sweep(args, tmp_path, env_extra=dict([marker.split("=")]))
        kill_after(proc, sweep, finished=2, group=name == "basic")
        deadline = time.monotonic() + 30
        while processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = processes_with(marker)
        for pid in left:  # not left to the next test
            os.kill(pid, signal.SIGKILL)
        assert not left, f"workers still running after their sweep was killed: {left}"
        result_files_whole(sweep)
        before = run_ids(sweep)
        assert 2 <= len(before) < 6

        # Under joblib the re-run is a process too: its launcher starts worker processes.
        rerun = (run_wdsweep if name == "basic" else run_cli)(["-m", *args], cwd=tmp_path)
        assert rerun.returncode == 0, rerun.stderr
        assert f"skipped {len(before)} of 6 (already done)" in rerun.stdout + rerun.stderr
        after = run_ids(sweep)
        assert len(after) == 6 and len(job_dirs(sweep)) == 6  # every job once, one folder each
        assert {job: after[job] for job in before} == before  # the finished ones were not rerun
        assert not list(sweep.rglob("*.tmp"))  # a write cut short by the kill was cleared away
        result_files_whole(sweep)

    def metrics(sweep: Path) -> dict:
        return {job.name: {k: v for k, v in read_metrics(job).items() if k not in TIMING}
                for job in job_dirs(sweep)}

    assert metrics(tmp_path / "basic") == metrics(tmp_path / "joblib")


def test_resume_skips_what_is_done_reruns_what_changed_and_can_be_forced(tmp_path):
    # A user preset in a config dir of their own: editing it changes a job's config but not its
    # overrides, so the job keeps its folder and must be run again.
    preset = tmp_path / "myconf" / "experiment" / "short.yaml"
    preset.parent.mkdir(parents=True)
    preset.write_text("# @package _global_\ntrainer:\n  steps: 20\n  eval_every: 10\n")
    base = ["experiment=short", "hydra.sweep.dir=S"]

    def sweep(*args: str) -> subprocess.CompletedProcess:
        return run_wdsweep(["-m", "--config-dir", str(tmp_path / "myconf"), *args, *base], cwd=tmp_path)

    assert sweep("reg.p=1,2,3,4").returncode == 0
    first = run_ids(tmp_path / "S")
    assert len(first) == 4

    # An incomplete job (no metrics.json), a failed one and one whose history.csv was cut
    # short run again; the done one does not.
    def folder(p: int) -> Path:
        (job,) = [j for j in job_dirs(tmp_path / "S") if f"reg.p={p}" in j.name.split(",")]
        return job

    p1, p2, p3, p4 = map(folder, (1, 2, 3, 4))
    (p1 / "metrics.json").unlink()
    failed = read_metrics(p2) | {"status": "failed"}
    (p2 / "metrics.json").write_text(json.dumps(failed))
    history = (p3 / "history.csv").read_bytes()
    (p3 / "history.csv").write_bytes(history[: len(history) // 2])
    # Same jobs in another order, plus a new one: the done job is found by its overrides.
    grown = sweep("reg.p=5,4,3,2,1")
    assert grown.returncode == 0, grown.stderr
    assert "skipped 1 of 5 (already done)" in grown.stdout + grown.stderr
    third = run_ids(tmp_path / "S")
    assert len(third) == 5 and third[p4.name] == first[p4.name]
    assert all(third[job.name] != first[job.name] for job in (p1, p2, p3))
    assert len((p3 / "history.csv").read_text().splitlines()) == read_metrics(p3)["history_rows"] + 1

    # The preset changes: every job's config hash changes, so every job runs again.
    preset.write_text("# @package _global_\ntrainer:\n  steps: 30\n  eval_every: 10\n")
    assert sweep("reg.p=1,2,3,4,5").returncode == 0
    fourth = run_ids(tmp_path / "S")
    assert all(fourth[job] != third[job] for job in third)
    assert all(read_metrics(job)["steps"] == 30 for job in job_dirs(tmp_path / "S"))

    forced = sweep("reg.p=1,2,3,4,5", "hydra.sweeper.resume=false")
    assert forced.returncode == 0 and "skipped" not in forced.stdout + forced.stderr
    assert all(v != fourth[job] for job, v in run_ids(tmp_path / "S").items())


def test_two_sweeps_over_overlapping_grids_in_one_folder_run_each_job_once(tmp_path):
    common = ["trainer.steps=400", "trainer.eval_every=100", "hydra.sweep.dir=S"]
    procs = [start_sweep(["reg.p=1,2,3", *common], tmp_path, "a.log"),
             start_sweep(["reg.p=3,2,4", *common], tmp_path, "b.log")]
    assert all(proc.wait(timeout=240) == 0 for proc in procs)
    outputs = [(tmp_path / log).read_text() for log in ("a.log", "b.log")]
    runs = [read_metrics(job) for job in job_dirs(tmp_path / "S")]
    assert sorted(r["config"]["reg"]["p"] for r in runs) == [1, 2, 3, 4]
    assert all(r["status"] == "completed" for r in runs)
    trained = sum(out.count("| completed |") for out in outputs)
    waited = sum(out.count("already done (completed), not run again") for out in outputs)
    skipped_up_front = skipped_before_launch(outputs)
    # p=2 and p=3 are in both grids: each trained by one sweep, found done by the other.
    assert trained == 4 and waited + skipped_up_front == 2


def test_a_job_whose_results_cannot_be_written_fails_and_the_sweep_says_so(tmp_path):
    sweep = tmp_path / "S"
    blocked = sweep / "reg.p=2,trainer.steps=20"
    (blocked / "metrics.json").mkdir(parents=True)  # the result's path is taken by a folder
    proc = run_wdsweep(["-m", "reg.p=1,2", "trainer.steps=20", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("wdsweep: 1 of 2 jobs failed") and str(blocked) in last
    assert f"could not write {blocked / 'metrics.json'}" in proc.stdout + proc.stderr
    assert "reg.p=2 trainer.steps=20 | completed" not in proc.stdout + proc.stderr
    assert read_metrics(sweep / "reg.p=1,trainer.steps=20")["status"] == "completed"
    assert not list(blocked.glob("*.tmp"))


@pytest.mark.parametrize("mode", ["-m", "single"])
def test_an_unwritable_output_folder_is_one_line_before_anything_runs(tmp_path, mode):
    (tmp_path / "afile").write_text("a file where a folder should be\n")
    key = "hydra.sweep.dir" if mode == "-m" else "hydra.run.dir"
    target = tmp_path / "afile" / "out"
    args = ["-m", "reg.p=1,2"] if mode == "-m" else []
    proc = run_cli([*args, "trainer.steps=5", f"{key}={target}"], cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"wdsweep: invalid config: {key}='{target}' is not allowed: a folder this "
                     "process can write (NotADirectoryError: Not a directory)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_a_killed_optuna_search_loses_no_finished_trial(tmp_path):
    args = ["search=optuna", "hydra.sweeper.n_trials=6", "hydra.sweeper.study_name=k",
            "hydra.sweeper.heartbeat_seconds=0.5", "hydra.sweeper.stale_after_seconds=2",
            "trainer.steps=400", "trainer.eval_every=100", "hydra.sweep.dir=S"]
    journal = tmp_path / "multirun" / "optuna" / "k.journal"

    def complete_trials() -> dict:
        if not journal.exists():
            return {}
        storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
        try:
            trials = optuna.load_study(study_name="k", storage=storage).trials
        except KeyError:  # the study is not created yet
            return {}
        return {t.number: t.value for t in trials if t.state == TrialState.COMPLETE}

    kill_when(start_sweep(args, tmp_path), lambda: len(complete_trials()) >= 2)
    before = complete_trials()
    assert len(before) >= 2
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    time.sleep(2.5)  # longer than stale_after_seconds: the killed trial, if any, is now stale

    rerun = run_wdsweep(["-m", *args], cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    trials = optuna.load_study(study_name="k", storage=storage).trials
    assert [t.number for t in trials] == list(range(len(trials)))  # none lost, none twice
    assert all(trials[n].state == TrialState.COMPLETE and trials[n].value == v
               for n, v in before.items())
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 5
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert sum(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials) == 6
    result_files_whole(tmp_path / "S")


@pytest.fixture
def small_disk(tmp_path):
    """A real 256 KiB file system (tmpfs), when this process may mount one (root on Linux)."""
    with mounted_tmpfs(tmp_path / "small", "256k") as mount:
        yield mount


def test_a_full_disk_fails_the_job_not_the_sweep(tmp_path, small_disk):
    """model.pt of the default net (about 330 KB) cannot fit: torch.save raises a RuntimeError
    on the short write. Each job is recorded failed, the sweep runs them all and ends with its
    summary and the failed folders, without a traceback; nothing half-written stays."""
    sweep = small_disk / "S"
    proc = run_wdsweep(["-m", "seed=0,1", "trainer.steps=5", "trainer.eval_every=5",
                        f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "sweep over: 2 failed" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1].startswith("wdsweep: 2 of 2 jobs failed")
    for job in job_dirs(sweep):
        record = read_metrics(job)
        assert record["status"] == "failed" and record["objective"] is None
        assert "RuntimeError" in record["error"] or "No space left" in record["error"]
        assert not (job / "model.pt").exists() and not list(job.glob(".*.tmp"))


def test_two_vectorized_sweeps_in_one_folder_train_each_job_once(tmp_path):
    """The vectorized launcher holds its members' folder locks through training and writing:
    the second sweep waits, then finds every job done; a stale temp file of a killed write
    is cleared."""
    grid = ["hydra/launcher=vectorized", "reg.p=1,2,3", "seed=0,1", "trainer.steps=1500",
            "trainer.eval_every=500", "hydra.sweep.dir=S"]
    stale = tmp_path / "S" / "reg.p=1,seed=0,trainer.eval_every=500,trainer.steps=1500"
    stale.mkdir(parents=True)
    (stale / ".metrics.json.killed.tmp").write_text("{")
    procs = [start_sweep(grid, tmp_path, "a.log"), start_sweep(grid, tmp_path, "b.log")]
    assert all(proc.wait(timeout=240) == 0 for proc in procs)
    outputs = [(tmp_path / log).read_text() for log in ("a.log", "b.log")]
    runs = [read_metrics(job) for job in job_dirs(tmp_path / "S")]
    assert len(runs) == 6 and all(r["status"] == "completed" and r["batched"] for r in runs)
    trained = sum(out.count("| completed |") for out in outputs)
    found_done = sum(out.count("already done (completed), not run again") for out in outputs)
    skipped_up_front = skipped_before_launch(outputs)
    assert trained == 6 and found_done + skipped_up_front == 6, outputs
    assert not list((tmp_path / "S").rglob("*.tmp"))


@pytest.mark.integration
def test_sigterm_stops_a_sweep_cleanly_and_the_same_command_resumes(tmp_path):
    """SIGTERM (Ctrl-C takes the same path, as KeyboardInterrupt): exit code 143, one line
    saying how to resume, no traceback, no temporary file; the finished jobs are kept and never
    trained again; a done job leaves no lock file behind."""
    # Jobs of 500 steps (about 2 s each): the signal, sent once the first is done, finds the
    # sweep training its second.
    command = [sys.executable, "-m", "wdsweep", "-m", "seed=0,1,2", "trainer.steps=500", "hydra.sweep.dir=S"]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    finished: Dict[str, bytes] = {}
    for signum, code, name in ((signal.SIGTERM, 143, "SIGTERM"),):
        proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while len(list((tmp_path / "S").rglob("metrics.json"))) <= len(finished):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == code and "Traceback" not in err, err
        assert err.strip().splitlines()[-1].startswith(f"wdsweep: stopped by {name}; finished jobs are kept")
        assert not [p for p in (tmp_path / "S").rglob("*") if ".tmp" in p.name]
        for record in (tmp_path / "S").rglob("metrics.json"):
            assert finished.setdefault(str(record), record.read_bytes()) == record.read_bytes()
            assert not (record.parent / ".wdsweep.lock").exists()
    done = run_wdsweep(command[3:], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    records = list((tmp_path / "S").rglob("metrics.json"))
    assert len(records) == 3 and all(json.loads(r.read_text())["status"] == "completed" for r in records)
    for path, content in finished.items():  # kept, not trained again
        assert Path(path).read_bytes() == content
    assert not list((tmp_path / "S").rglob(".wdsweep.lock"))


SEARCH = ["search=optuna", "trainer.steps=5", "trainer.eval_every=5", "hydra.sweep.dir=S"]


def study_in(journal: Path, name: str) -> optuna.Study:
    """The study as Optuna's own journal backend reads it (not wdsweep's)."""
    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal))))


def complete_values(study: optuna.Study) -> Dict[int, float]:
    return {t.number: t.value for t in study.trials if t.state == TrialState.COMPLETE}


def every_line_whole(journal: Path) -> bool:
    data = journal.read_bytes()
    return data.endswith(b"\n") and all(json.loads(line) is not None for line in data.splitlines())


def torn_warnings(proc: subprocess.CompletedProcess) -> List[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("wdsweep: warning:") and "torn record" in line]


def test_a_torn_journal_tail_is_cut_kept_and_the_study_resumes(tmp_path):
    """A kill mid-append leaves the journal's last record without its end. Optuna reads past it
    but would append after it, and the journal would then be unreadable: the resume cuts it
    off (keeping its bytes beside the journal, with one warning) before its first append."""
    args = [*SEARCH, "hydra.sweeper.study_name=torn"]
    assert run_wdsweep(["-m", *args, "hydra.sweeper.n_trials=1"], cwd=tmp_path).returncode == 0
    journal = tmp_path / "multirun" / "optuna" / "torn.journal"
    before = complete_values(study_in(journal, "torn"))
    assert len(before) == 1
    whole = journal.read_bytes()
    journal.write_bytes(whole[:-5])  # the last record loses its last bytes, newline included
    torn = whole[whole[:-1].rfind(b"\n") + 1:-5]

    resumed = run_wdsweep(["-m", *args, "hydra.sweeper.n_trials=2"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    (warning,) = torn_warnings(resumed)
    assert str(journal) in warning and f"({len(torn)} bytes" in warning
    (copy,) = journal.parent.glob("torn.journal.torn-*")
    assert copy.read_bytes() == torn and str(copy) in warning
    study = study_in(journal, "torn")
    # The first run's trials are all still there with their values (a cut tell is told again
    # from the trial's metrics.json), and the resume added its trial.
    assert {n: v for n, v in complete_values(study).items() if n in before} == before
    assert len(study.trials) == 2 and all(t.state == TrialState.COMPLETE for t in study.trials)
    assert every_line_whole(journal)

    again = run_wdsweep(["-m", *args, "hydra.sweeper.n_trials=2"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert not torn_warnings(again) and len(study_in(journal, "torn").trials) == 2


def test_a_journal_torn_by_a_full_disk_is_repaired_once_there_is_room(tmp_path, small_disk):
    """The journal on a real 256 KiB tmpfs filled to the last byte: the sweep's append is cut
    short at the end of the journal's last page. The sweep stops with one line (not waiting
    for the trial it cannot tell), and once there is room the same command resumes with the
    study whole."""
    args = [*SEARCH, "hydra.sweeper.study_name=full", f"hydra.sweeper.storage_dir={small_disk / 'optuna'}"]
    assert run_wdsweep(["-m", *args, "hydra.sweeper.n_trials=1"], cwd=tmp_path).returncode == 0
    journal = small_disk / "optuna" / "full.journal"
    before = complete_values(study_in(journal, "full"))
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        with pytest.raises(OSError, match="No space left"):
            while True:
                handle.write(b"x" * 512)

    # Three trials' records: more than the journal's last page can still take (tmpfs gives a file
    # whole pages, and the filler took every free one)
    full = run_wdsweep(["-m", *args, "hydra.sweeper.n_trials=4"], cwd=tmp_path)
    assert full.returncode == 1 and "Traceback" not in full.stdout + full.stderr
    last = full.stderr.strip().splitlines()[-1]
    assert last.startswith(f"wdsweep: search stopped: the Optuna storage {journal} cannot be written")
    assert "No space left on device" in last
    assert not journal.read_bytes().endswith(b"\n")  # the full disk did tear the journal

    filler.unlink()
    # stale_after_seconds=1: the stopped sweep's trial is failed at once, not after 60 s
    resumed = run_wdsweep(["-m", *args, "hydra.sweeper.n_trials=4", "hydra.sweeper.stale_after_seconds=1"],
                          cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert len(torn_warnings(resumed)) == 1
    assert len(list(journal.parent.glob("full.journal.torn-*"))) == 1
    study = study_in(journal, "full")
    assert {n: v for n, v in complete_values(study).items() if n in before} == before
    assert sum(t.state.is_finished() for t in study.trials) == 4
    assert all(t.state != TrialState.RUNNING for t in study.trials)
    assert every_line_whole(journal)


def test_a_trial_killed_between_its_metrics_and_its_tell_is_told_from_its_metrics(tmp_path):
    """What a sweep killed right after its job wrote metrics.json leaves behind: a RUNNING trial
    with the sweeper's attributes and a fresh heartbeat, and the job's finished folder. The
    resume tells it COMPLETE with the recorded value at once, instead of waiting 60 s for its
    heartbeat to go stale and failing it."""
    args = [*SEARCH, "hydra.sweeper.study_name=k"]
    assert run_wdsweep(["-m", *args, "hydra.sweeper.n_trials=1"], cwd=tmp_path).returncode == 0
    journal = tmp_path / "multirun" / "optuna" / "k.journal"
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name="k", storage=storage)
    done = study.trials[0]
    # The killed sweep's trial, asked as the sweeper asks (the same point, so the same job)...
    study.enqueue_trial(done.params)
    trial = study.ask(done.distributions)
    folder = tmp_path / "S" / f"trial-{trial.number:05d}"
    storage.set_trial_user_attr(trial._trial_id, "wdsweep_canonical", done.user_attrs["wdsweep_canonical"])
    storage.set_trial_user_attr(trial._trial_id, "wdsweep_job_dir", str(folder))
    storage.set_trial_user_attr(trial._trial_id, "wdsweep_heartbeat", time.time())
    # ...and its job's folder, as that job wrote it: its own trial link and times.
    shutil.copytree(tmp_path / "S" / "trial-00000", folder)
    record = read_metrics(folder)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record.update(started_at=now, finished_at=now, optuna={"study": "k", "trial_id": trial._trial_id})
    (folder / "metrics.json").write_text(json.dumps(record))

    tic = time.perf_counter()
    resumed = run_wdsweep(["-m", *args, "hydra.sweeper.n_trials=2"], cwd=tmp_path)
    took = time.perf_counter() - tic
    assert resumed.returncode == 0, resumed.stderr
    assert took < 30, f"the resume waited ({took:.0f} s)"
    trials = optuna.load_study(study_name="k", storage=storage).trials
    assert len(trials) == 2  # told, not run again
    told = trials[trial.number]
    assert told.state == TrialState.COMPLETE and told.value == record["objective"]
    assert told.user_attrs["wdsweep_test_error"] == record["test_error"]
    assert told.user_attrs["wdsweep_status"] == "completed"


def test_a_sweep_folder_turned_read_only_mid_sweep_fails_the_jobs_left_not_the_sweep(tmp_path):
    """Once the first job is done the sweep folder takes no new entry (chattr +i: even root
    cannot add to it; a read-only remount would race with the files the sweep holds open):
    the jobs that cannot make their folders fail one by one (no traceback), the sweep ends
    with its summary naming them, and the finished job is kept; with the folder writable
    again, the same command runs only those."""
    sweep = tmp_path / "S"
    # Jobs of 500 steps (about 2 s each): the folder is frozen while the second trains, before
    # the third starts.
    command = [sys.executable, "-m", "wdsweep", "-m", "seed=0,1,2", "trainer.steps=500", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.Popen(command, cwd=tmp_path, env={**os.environ, "PYTHONHASHSEED": "0"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(sweep.rglob("metrics.json")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    frozen = subprocess.run(["chattr", "+i", str(sweep)], capture_output=True, text=True)
    if frozen.returncode != 0:
        proc.kill()
        pytest.skip(f"cannot make a folder immutable here: {frozen.stderr.strip()}")
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        subprocess.run(["chattr", "-i", str(sweep)], check=False)
    assert proc.returncode == 1 and "Traceback" not in err, err
    done = [read_metrics(job)["seed"] for job in job_dirs(sweep) if (job / "metrics.json").exists()]
    assert len(done) >= 1
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"wdsweep: {3 - len(done)} of 3 jobs failed"), last
    assert "could not start: its folder cannot be written (PermissionError: [Errno 1] Operation not permitted" in out
    rerun = run_wdsweep(command[3:], cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert f"skipped {len(done)} of 3 (already done)" in rerun.stdout + rerun.stderr
