"""Long jobs survive kills: a job killed with SIGKILL at random steps, twice, then run again,
ends with the numbers and the model.pt of a run that never stopped, bit for bit; SIGTERM writes
a checkpoint before the job goes; a torn or foreign checkpoint is set aside with one line, and
the job trains from step 0. The kills hit real processes (the process is the point); the runs
that finish, and the reference, run in-process."""
from __future__ import annotations

import csv
import os
import random
import signal
import time
from pathlib import Path

import pytest

from conftest import WALL_CLOCK, job_dirs, read_metrics, run_wdsweep
from sweep_processes import kill_when, saved_step, start_sweep

pytestmark = pytest.mark.integration

# digits through an MLP in batches of 64, augmented: the sampler's queue, the augmentation's
# generator and the optimizer's momentum are all state a continued run must get back.
JOB = ["data=digits", "data.augment=true", "model.width=64", "trainer.batch_size=64", "trainer.steps=1600",
       "trainer.eval_every=300", "trainer.checkpoint_every=50", "trainer.progress=false"]
# What may differ between two runs of one config: when and how long, the free cores a run found
# (the model's numbers do not depend on them: thread_independent), and how it was invoked.
NOT_NUMBERS = {"train_seconds", "eval_seconds", "started_at", "finished_at", "run_id", "resumed_from_step",
               "torch_threads", "overrides", "config", "throughput"}


def outcome(job: Path) -> tuple:
    record = {k: v for k, v in read_metrics(job).items() if k not in NOT_NUMBERS}
    with open(job / "history.csv") as f:
        history = [{k: v for k, v in row.items() if k not in WALL_CLOCK} for row in csv.DictReader(f)]
    return record, history, (job / "model.pt").read_bytes()


def test_a_job_killed_twice_at_random_steps_ends_as_if_it_never_stopped(tmp_path):
    reference = run_wdsweep(["-m", *JOB, "hydra.sweep.dir=R"], cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr
    (expected_dir,) = job_dirs(tmp_path / "R")

    rng = random.Random(os.environ.get("PYTEST_XDIST_WORKER", "") + "kill")  # seeded: a failure repeats
    first, second = rng.randrange(300, 700, 50), rng.randrange(850, 1300, 50)
    folder = tmp_path / "K"
    for target in (first, second):
        proc = start_sweep([*JOB, f"hydra.sweep.dir={folder}"], cwd=tmp_path, log=f"kill-{target}.log")
        kill_when(proc, lambda: any(saved_step(j) >= target for j in job_dirs(folder)))
    (job,) = job_dirs(folder)
    assert not (job / "metrics.json").exists() and saved_step(job) >= second
    finished = run_wdsweep(["-m", *JOB, f"hydra.sweep.dir={folder}"], cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    assert "continuing from the checkpoint at step" in finished.stdout + finished.stderr
    assert read_metrics(job)["resumed_from_step"] >= second
    assert outcome(job) == outcome(expected_dir)
    assert not (job / "checkpoint.pt").exists()  # done: trainer.keep_checkpoint=false removes it


def test_sigterm_writes_a_checkpoint_before_the_job_goes_and_the_same_command_continues(tmp_path):
    """As Slurm sends it: to every process of the job, here its two data-loading workers too
    (data.num_workers=2), which leave the checkpoint to the job's process. The workers change no
    number: the reference trains without them."""
    reference = run_wdsweep([*JOB, "hydra.run.dir=R"], cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr
    args = [*JOB, "trainer.checkpoint_every=100", "data.num_workers=2", "hydra.run.dir=T"]
    proc = start_sweep(args, tmp_path, log="term.log", multirun=False)
    deadline = time.time() + 120
    while saved_step(tmp_path / "T") < 300:
        assert proc.poll() is None and time.time() < deadline, (tmp_path / "term.log").read_text()
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    log = (tmp_path / "term.log").read_text()
    assert "SIGTERM: finishing this step and writing a checkpoint before stopping" in log
    assert log.strip().splitlines()[-1].startswith("wdsweep: stopped by SIGTERM")
    step = saved_step(tmp_path / "T")
    assert 300 <= step < 1600 and not (tmp_path / "T" / "metrics.json").exists()
    again = run_wdsweep(args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert read_metrics(tmp_path / "T")["resumed_from_step"] == step
    assert outcome(tmp_path / "T") == outcome(tmp_path / "R")


@pytest.mark.parametrize("damage", ["torn", "foreign", "another config"])
def test_an_unusable_checkpoint_is_set_aside_in_one_line_and_the_job_trains_from_step_0(tmp_path, damage):
    short = ["trainer.steps=200", "trainer.eval_every=100", "model.width=16", "trainer.checkpoint_every=50"]
    first = run_wdsweep([*short, "trainer.keep_checkpoint=true", "hydra.run.dir=C"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    expected = outcome(tmp_path / "C")
    checkpoint = tmp_path / "C" / "checkpoint.pt"
    (tmp_path / "C" / "metrics.json").unlink()  # as if killed after its last checkpoint
    if damage == "torn":
        checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    elif damage == "foreign":
        checkpoint.write_bytes(b"not a checkpoint at all")
    again = run_wdsweep([*short, "hydra.run.dir=C"] + (["reg.lam=0.02"] if damage == "another config" else []),
                        cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    output = (again.stdout + again.stderr).splitlines()
    warnings = [line for line in output if "set aside as checkpoint.pt.unusable" in line]
    assert len(warnings) == 1
    record = read_metrics(tmp_path / "C")
    assert "resumed_from_step" not in record and record["steps"] == 200
    assert (tmp_path / "C" / "checkpoint.pt.unusable").exists()
    if damage != "another config":
        assert outcome(tmp_path / "C") == expected  # trained from step 0: the same run again


def test_the_checkpoint_keys_leave_the_config_hash_alone_and_are_checked(compose_cfg, tmp_path):
    from wdsweep.tracking.results import config_hash

    base = config_hash(compose_cfg([]))
    assert config_hash(compose_cfg(["trainer.checkpoint_every=7", "trainer.checkpoint_seconds=1",
                                    "trainer.keep_checkpoint=true"])) == base
    refused = run_wdsweep(["trainer.checkpoint_every=0"], cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("wdsweep: invalid config: trainer.checkpoint_every=0 is not allowed: a finite "
                                      "number >= 1 or null")


def test_the_dry_run_says_where_a_job_would_resume(tmp_path):
    short = ["reg.p=1,2", "trainer.steps=200", "trainer.eval_every=100", "model.width=16",
             "trainer.checkpoint_every=50", "hydra.sweep.dir=S"]
    assert run_wdsweep(["-m", *short, "trainer.keep_checkpoint=true"], cwd=tmp_path).returncode == 0
    killed = [j for j in job_dirs(tmp_path / "S") if "reg.p=2" in j.name][0]
    (killed / "metrics.json").unlink()  # as if killed after its last checkpoint, at step 200
    plan = run_wdsweep(["-m", *short, "hydra.sweeper.dry_run=true"], cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    lines = {line.split()[1]: line.split(None, 2)[2] for line in plan.stdout.splitlines() if line.startswith("  #")}
    assert lines[killed.name] == "train: resume at step 200 (its checkpoint)"
    assert [v for k, v in lines.items() if k != killed.name] == [
        "skip: done (its metrics.json holds the same config hash)"]


def test_a_checkpoint_that_does_not_fit_the_job_is_never_loaded_into_it(tmp_path):
    """A checkpoint of this very config hash whose tensors do not fit the model (here: one of a
    wider net, relabelled): loading fails part-way, so the job is built afresh and trains from
    step 0, with one warning line."""
    import torch

    short = ["trainer.steps=200", "trainer.eval_every=100", "trainer.checkpoint_every=50",
             "trainer.keep_checkpoint=true"]
    assert run_wdsweep([*short, "model.width=32", "hydra.run.dir=W"], cwd=tmp_path).returncode == 0
    fresh = run_wdsweep([*short, "model.width=16", "hydra.run.dir=N"], cwd=tmp_path)
    assert fresh.returncode == 0
    expected = outcome(tmp_path / "N")
    narrow_hash = read_metrics(tmp_path / "N")["config_hash"]
    wide = torch.load(tmp_path / "W" / "checkpoint.pt", weights_only=True)
    torch.save({**wide, "config_hash": narrow_hash}, tmp_path / "N" / "checkpoint.pt")
    (tmp_path / "N" / "metrics.json").unlink()
    again = run_wdsweep([*short, "model.width=16", "hydra.run.dir=N"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    output = (again.stdout + again.stderr).splitlines()
    assert len([line for line in output if "does not fit this job (RuntimeError" in line]) == 1
    assert "resumed_from_step" not in read_metrics(tmp_path / "N")
    assert outcome(tmp_path / "N") == expected


def test_a_disk_too_full_for_checkpoints_costs_a_warning_not_the_job(tmp_path):
    from conftest import mounted_tmpfs

    # model.pt (330 kB) fits in 600 kB, a checkpoint (680 kB: weights and momentum) does not
    with mounted_tmpfs(tmp_path / "small", "600k") as disk:
        proc = run_wdsweep(["trainer.steps=100", "trainer.eval_every=50", "trainer.checkpoint_every=20",
                            f"hydra.run.dir={disk / 'J'}"], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        output = (proc.stdout + proc.stderr).splitlines()
        assert len([line for line in output if "could not write a checkpoint at step 20" in line]) == 1
        record = read_metrics(disk / "J")
        assert record["status"] == "completed" and record["steps"] == 100
        assert not list((disk / "J").glob(".*.tmp")) and not (disk / "J" / "checkpoint.pt").exists()
