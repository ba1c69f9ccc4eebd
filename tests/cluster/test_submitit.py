"""Submitit, tested for real: `hydra/launcher=submitit_local` runs every job in a process of its
own, started by submitit from a pickle of the job, as `submitit_slurm` does on a cluster (the
same launcher code and the same sweeper paths; only the executor differs, and Slurm itself
cannot run here). Every job is a process of its own, and every kill a real signal: a job
process killed mid-run (as the OOM killer or a Slurm time limit would), the sweep process
killed while its jobs run on (they outlive it, as Slurm jobs outlive a login shell), then the
same command again. A sweep that is killed is a real `python -m wdsweep -m ...` process; the
other sweeps and the re-runs run in the test's process (tests/in_process.py), their jobs still
submitit's processes. Also the vectorized launcher's batches submitted as one
submitit job each (`hydra/launcher=vectorized_submitit_local`).

With WDSWEEP_TEST_POSTGRES_URL set (.ci/run starts a server) the Optuna search runs on a
PostgreSQL storage whose URL holds a password, which must reach the jobs and be in none of
the files submitit writes (pickles, logs); without it, on a journal file.
"""
from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import List

import pytest

pytest.importorskip("submitit", reason="the submitit extra is not installed: pip install -e '.[submitit]'")

import optuna  # noqa: E402
from optuna.storages.journal import JournalFileBackend  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from conftest import history_without_seconds, job_dirs, metrics_without_timing, read_metrics, run_wdsweep  # noqa: E402
from sweep_processes import kill_when, processes_with, result_files_whole, run_ids, saved_step, start_sweep  # noqa: E402

# A net whose first forward pass in a submitit job SIGKILLs that job's process, once: the job
# that takes the marker file ($WDSWEEP_TEST_DIE_ONCE) away dies mid-run, without a result, as a
# job the kernel's OOM killer or Slurm ends. The marker is in the environment, not the config,
# so the job's config and folder are those of an ordinary job; the sweep process, which runs
# the model once to check it, is no submitit job (no SUBMITIT_LOCAL_JOB_ID) and lives.
DIES = '''
import os
import signal

from torch import nn


class Net(nn.Module):
    def __init__(self, n_features, n_outputs):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_features, 16), nn.Tanh(), nn.Linear(16, n_outputs))

    def forward(self, x):
        marker = os.environ.get("WDSWEEP_TEST_DIE_ONCE")
        if marker and "SUBMITIT_LOCAL_JOB_ID" in os.environ:
            try:
                os.unlink(marker)
            except FileNotFoundError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return self.body(x)
'''


def submitit_jobs(sweep: Path) -> List[Path]:
    """The folders submitit made, one per submitted job (not its `%j` template folder)."""
    return sorted(p for p in (sweep / ".submitit").glob("*") if p.name != "%j")


def training(job: Path) -> bool:
    """The job's process has built its model and started training (wdsweep.jobs.run logs it)."""
    log = job / "app.log"
    return log.is_file() and "decayed:" in log.read_text()


def wait_for(ready, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def end_leftovers(marker: str) -> None:
    """Kill what is left of a sweep's processes (its orphaned submitit jobs), so that nothing of
    this test trains on beside the next one."""
    for pid in processes_with(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.integration
def test_a_grid_loses_a_killed_job_and_its_killed_sweep_then_resumes_exactly(tmp_path):
    """A grid of 4 jobs under submitit_local, 2 launched at a time. One job's process is
    SIGKILLed by its own first forward pass: it fails alone (one line naming its submitit job
    and log) and the sweep goes on to the next 2. The sweep process is then SIGKILLed while
    those 2 train: they finish on their own. The same command trains only the lost job, and the
    4 results equal an uninterrupted in-process sweep of the same grid, bit for bit."""
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "dies.yaml").write_text("_target_: dies.Net\n")
    (tmp_path / "dies.py").write_text(DIES)  # importable: the jobs run in tmp_path, as the sweep
    grid = ["--config-dir", "conf", "model=dies", "reg.p=1,2,3,4", "trainer.steps=1500", "trainer.eval_every=500"]

    marker = tmp_path / "die-once"
    marker.write_text("")
    tag = f"killed-grid-{uuid.uuid4().hex}"
    env = {"WDSWEEP_TEST_DIE_ONCE": str(marker), "WDSWEEP_TEST_MARK": tag}
    sweep = tmp_path / "S"
    args = [*grid, "hydra/launcher=submitit_local", "hydra.sweeper.max_batch_size=2", f"hydra.sweep.dir={sweep}"]
    proc = start_sweep(args, tmp_path, "sweep.log", env_extra=env)
    log = tmp_path / "sweep.log"
    try:
        # the first two jobs are over (one lost), and one of the next two trains: kill the sweep
        kill_when(proc, lambda: "ended without a result" in log.read_text()
                  and any(training(j) for j in sweep.glob("*reg.p=[34]*")), group=False)
        assert not marker.exists()  # a job did die
        wait_for(lambda: len(list(sweep.glob("*/metrics.json"))) == 3, "the orphaned jobs to finish")
        wait_for(lambda: not processes_with(tag), "the orphaned jobs' processes to end", timeout=60)
    finally:
        end_leftovers(tag)
    text = log.read_text()
    assert "Traceback" not in text, text
    (lost_line,) = [line for line in text.splitlines() if "ended without a result" in line]
    assert "it has not produced any output" in lost_line and "_log.out" in lost_line
    (lost,) = [j for j in job_dirs(sweep) if not (j / "metrics.json").exists()]
    assert any(f"reg.p={p}," in lost.name for p in (1, 2))
    result_files_whole(sweep)
    before = run_ids(sweep)

    # The sweep processes are the point only while they are killed: the re-run and the reference
    # run in this process (the lost job's re-run is still a submitit job of its own).
    rerun = run_wdsweep(["-m", *args], cwd=tmp_path, env_extra=env)
    assert rerun.returncode == 0, rerun.stderr
    assert "skipped 3 of 4 (already done)" in rerun.stdout + rerun.stderr
    after = run_ids(sweep)
    assert len(after) == 4 and len(job_dirs(sweep)) == 4
    assert {job: after[job] for job in before} == before  # nothing finished ran again
    result_files_whole(sweep)
    assert len(submitit_jobs(sweep)) == 4 + 1  # every job its own submitit job, the lost one twice

    plain = run_wdsweep(["-m", *grid, "hydra.sweep.dir=plain"], cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert metrics_without_timing(sweep) == metrics_without_timing(tmp_path / "plain")


@pytest.fixture
def search_storage(tmp_path):
    """(sweeper args, storage to load the study from, password or None): a PostgreSQL database
    of a role of its own with a password in its URL when the CI server is there, else the
    default journal file."""
    admin = os.environ.get("WDSWEEP_TEST_POSTGRES_URL")
    if not admin:
        yield [], None, None
        return
    import psycopg
    from sqlalchemy.engine import make_url

    name, password = f"wds_{uuid.uuid4().hex[:10]}", f"pw-{uuid.uuid4().hex}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        conn.execute(f"CREATE DATABASE {name} OWNER {name}")
    url = make_url(admin).set(username=name, password=password, database=name).render_as_string(hide_password=False)
    try:
        yield [f"hydra.sweeper.storage={url}"], url, password
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"DROP ROLE IF EXISTS {name}")


def load_only_study(tmp_path: Path, url) -> optuna.Study:
    if url is None:
        (journal,) = (tmp_path / "multirun" / "optuna").glob("*.journal")
        storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    else:
        storage = url
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


@pytest.mark.integration
def test_an_optuna_search_under_submitit_prunes_fails_and_tells_every_trial(tmp_path, search_storage):
    """Three trials, two launched at a time, each job a process of its own: the first
    completes, the second diverges (lam=1e6: FAIL), the third (lam=3) is pruned by the median
    pruner against the first. The trial link (hydra.job.env_set) and a storage password (the
    environment) reach the pickled jobs: they report to the pruner and record their test error
    on their trials themselves."""
    args, url, password = search_storage
    # The sweep in this process; each job a submitit process of its own.
    proc = run_wdsweep(["-m", "search=optuna", "hydra/launcher=submitit_local", "hydra.sweeper.n_trials=3",
                        "hydra.sweeper.n_jobs=2", "hydra/sweeper/pruner=median",
                        "hydra.sweeper.pruner.n_startup_trials=1",
                        "reg.lam=choice(0.0001,3.0,1000000.0)", "reg.p=2", "reg.mode=coupled", "reg.scope=weights",
                        "+hydra.sweeper.enqueue=[{reg.lam: 0.0001},{reg.lam: 1000000.0},{reg.lam: 3.0}]",
                        "trainer.steps=60", "trainer.eval_every=10", "model.depth=1", "model.width=16",
                        "hydra.sweep.dir=S", *args], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    study = load_only_study(tmp_path, url)
    trials = study.trials
    assert [t.number for t in trials] == [0, 1, 2]  # exactly n_trials, none repeated
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED]
    records = {t.number: read_metrics(Path(t.user_attrs["wdsweep_job_dir"])) for t in trials}
    assert trials[0].value == records[0]["objective"] and records[0]["status"] == "completed"
    assert "diverged" in trials[1].user_attrs["wdsweep_fail_reason"] and records[1]["status"] == "diverged"
    assert records[2]["status"] == "pruned" and records[2]["steps"] < 60
    # the pruned job reported its validation error at each evaluation until the pruner stopped it
    history = history_without_seconds(Path(trials[2].user_attrs["wdsweep_job_dir"]))
    assert trials[2].intermediate_values == {int(r["step"]): float(r["val_error"]) for r in history if r["step"] != "0"}
    for t in trials:  # written by the jobs themselves, through their trial link
        assert t.user_attrs["wdsweep_status"] == records[t.number]["status"]
        assert records[t.number]["optuna"] == {"study": study.study_name, "trial_id": t._trial_id}
    assert len(submitit_jobs(tmp_path / "S")) == 3  # one process per trial
    if password is not None:
        assert password not in proc.stdout + proc.stderr
        files = [p for p in tmp_path.rglob("*") if p.is_file()]
        written = [p.name for p in files if ".submitit" in p.parts]  # what submitit wrote is checked too
        assert all(any(n.endswith(end) for n in written) for end in ("_submitted.pkl", "_result.pkl", "_log.out"))
        assert [p for p in files if password.encode() in p.read_bytes()] == []


@pytest.mark.integration
def test_a_killed_optuna_sweep_waits_for_its_running_submitit_jobs_and_tells_them(tmp_path):
    """The sweep process is SIGKILLed while its two trials' jobs train. The jobs run on and keep
    their trials alive themselves (their heartbeat, every hydra.sweeper.heartbeat_seconds): past
    stale_after_seconds the trials are still RUNNING, and the same command, run again at once,
    waits for the jobs and tells both trials from their metrics.json. (Before, the trials went
    stale, the resumed sweep failed them while their jobs trained, and the jobs then crashed
    writing to finished trials, leaving no result.)"""
    args = ["search=optuna", "hydra/launcher=submitit_local", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.study_name=orphans", "hydra.sweeper.heartbeat_seconds=0.25",
            "hydra.sweeper.stale_after_seconds=1", "data=digits", "trainer.steps=800", "trainer.eval_every=200",
            "hydra.sweep.dir=S"]
    tag = f"orphans-{uuid.uuid4().hex}"
    sweep = tmp_path / "S"
    # Killed at a moment the sweep is not appending to the journal (it beats for its trials every
    # 0.25 s): a sweep killed while it holds the journal's lock leaves Optuna's lock file, and
    # every other writer, these jobs' heartbeats included, waits out Optuna's 30 s grace before
    # breaking it (a known limit, left for the issue on locks held by dead or suspended sweeps).
    journal_lock = tmp_path / "multirun" / "optuna" / "orphans.journal.lock"
    try:
        kill_when(start_sweep(args, tmp_path, env_extra={"WDSWEEP_TEST_MARK": tag}),
                  lambda: len([j for j in sweep.glob("trial-*") if training(j)]) == 2 and not journal_lock.exists(),
                  group=False)
        killed_at = time.time()
        time.sleep(1.5)  # longer than stale_after_seconds
        storage = optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "multirun/optuna/orphans.journal")))
        trials = optuna.load_study(study_name="orphans", storage=storage).trials
        assert [t.state for t in trials] == [TrialState.RUNNING] * 2
        assert all(t.user_attrs["wdsweep_heartbeat"] > killed_at + 0.5 for t in trials)  # beaten by the jobs

        rerun = run_wdsweep(["-m", *args], cwd=tmp_path)  # in this process: the killed one was the point
        assert rerun.returncode == 0, rerun.stderr
    finally:
        end_leftovers(tag)
    trials = optuna.load_study(study_name="orphans", storage=storage).trials
    assert [t.number for t in trials] == [0, 1] and all(t.state == TrialState.COMPLETE for t in trials)
    assert all(t.value == read_metrics(sweep / f"trial-{t.number:05d}")["objective"] for t in trials)
    assert (rerun.stdout + rerun.stderr).count("its sweep stopped after its job ended (completed") == 2


@pytest.mark.integration
def test_vectorized_batches_go_as_one_submitit_job_each_and_write_what_the_in_process_launcher_writes(tmp_path):
    """4 jobs in batches of 2: 2 submitit jobs, each training its batch as one batched model;
    every job's metrics.json, history.csv, config and files are those of the in-process
    vectorized launcher's sweep of the same grid (timings aside)."""
    grid = ["reg.p=1,2", "seed=0,1", "trainer.steps=30", "trainer.eval_every=10", "model.width=16",
            "hydra.launcher.max_batch=2"]
    # Both sweeps in this process: the submitit jobs are the processes this test is about.
    proc = run_wdsweep(["-m", *grid, "hydra/launcher=vectorized_submitit_local", "hydra.sweep.dir=S"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    here = run_wdsweep(["-m", *grid, "hydra/launcher=vectorized", "hydra.sweep.dir=here"], cwd=tmp_path)
    assert here.returncode == 0, here.stderr
    sweep, reference = tmp_path / "S", tmp_path / "here"
    jobs = submitit_jobs(sweep)
    assert len(jobs) == 2
    for job in jobs:  # each submitit job trained one batch of 2
        (out,) = job.glob("*_log.out")
        assert "training 2 jobs as one batched model" in out.read_text()
    assert "4 jobs as 2 submitit jobs (2 batches)" in proc.stdout + proc.stderr
    assert metrics_without_timing(sweep) == metrics_without_timing(reference)
    assert all(read_metrics(job)["batched"] is True for job in job_dirs(sweep))
    for job in job_dirs(sweep):
        twin = reference / job.name
        assert sorted(p.name for p in job.iterdir()) == sorted(p.name for p in twin.iterdir())
        assert history_without_seconds(job) == history_without_seconds(twin)
        assert (job / ".hydra" / "config.yaml").read_text() == (twin / ".hydra" / "config.yaml").read_text()


def test_submitit_cpus_per_task_is_a_jobs_thread_share(monkeypatch):
    """The thread rule under submitit: cpus_per_task is each job's count, in the sweep process
    (resume's check) as in the job; joblib's n_jobs still shares the cores out."""
    from wdsweep.jobs.threads import CpuShare, dependent_threads, launcher_share, usable_cores

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert launcher_share({"cpus_per_task": 3, "timeout_min": 60}) == CpuShare(3)
    assert dependent_threads(None, launcher_share({"cpus_per_task": 3})) == 3
    assert dependent_threads(None, launcher_share({"cpus_per_task": None})) == usable_cores()
    assert launcher_share({"n_jobs": 2}) == 2 and launcher_share(None) is None
    assert dependent_threads(2, launcher_share({"cpus_per_task": 3})) == 2  # trainer.threads wins
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert dependent_threads(None, launcher_share({"cpus_per_task": 3})) == 1  # and OMP_NUM_THREADS




def test_a_preempted_submitit_job_checkpoints_requeues_itself_and_ends_as_if_never_stopped(tmp_path):
    """submitit's preemption signal (SIGUSR2: what Slurm sends before a preemption or a time
    limit, with signal_delay_s) sent to a running job: the step finishes, a checkpoint is written,
    submitit requeues the job (hydra-submitit-launcher's checkpoint()), and the job's second run
    continues from the checkpoint; the sweep ends with the numbers of a job that never stopped."""
    job = ["data=digits", "data.augment=true", "model.width=64", "trainer.batch_size=64", "trainer.steps=2400",
           "trainer.eval_every=300", "trainer.checkpoint_every=100", "trainer.progress=false"]
    reference = run_wdsweep(["-m", *job, "hydra.sweep.dir=R"], cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr
    marker = f"WDSWEEP_TEST_PREEMPT={uuid.uuid4().hex}"
    sweep = tmp_path / "P"
    proc = start_sweep([*job, "hydra/launcher=submitit_local", f"hydra.sweep.dir={sweep}"], cwd=tmp_path,
                       env_extra=dict([marker.split("=")]))

    deadline = time.time() + 180
    while max(map(saved_step, job_dirs(sweep)), default=0) < 300:
        assert proc.poll() is None and time.time() < deadline, (tmp_path / "sweep.log").read_text()
        time.sleep(0.02)
    (task,) = [pid for pid in processes_with(marker)
               if b"submitit.core._submit" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    os.kill(task, signal.SIGUSR2)
    assert proc.wait(timeout=240) == 0, (tmp_path / "sweep.log").read_text()
    (done,) = job_dirs(sweep)
    (expected,) = job_dirs(tmp_path / "R")
    record = read_metrics(done)
    assert record["resumed_from_step"] >= 300
    assert metrics_without_timing(sweep)[done.name] == {
        **metrics_without_timing(tmp_path / "R")[expected.name], "resumed_from_step": record["resumed_from_step"],
        "torch_threads": record["torch_threads"]}
    assert history_without_seconds(done) == history_without_seconds(expected)
    assert (done / "model.pt").read_bytes() == (expected / "model.pt").read_bytes()
    logs = "".join(p.read_text(errors="replace") for p in sweep.rglob("*_log.*"))
    assert "this job is preempted" in logs and "Requeued job" in logs
