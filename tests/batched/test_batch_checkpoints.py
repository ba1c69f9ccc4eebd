"""The vectorized launcher's batches survive kill -9 as single jobs do: the same command run
again continues each batch from its checkpoint, and every member ends with the numbers and the
model.pt of a sweep that never stopped, bit for bit; for the stacked MLP (with SGD's momentum
written by its backward, and augmentation draws) and for a vmap'ed ResNet (BatchNorm's running
statistics)."""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from conftest import PER_EXECUTION, history_without_seconds, job_dirs, read_metrics, run_wdsweep
from sweep_processes import kill_when, start_sweep

pytestmark = pytest.mark.integration

GRID = ["data=digits", "data.n_train=100", "data.augment=true", "trainer.batch_size=16", "optimizer.momentum=0.9",
        "reg.p=1,2", "model=mlp,resnet", "model.depth=8", "model.width=16", "trainer.steps=200",
        "trainer.eval_every=100", "trainer.checkpoint_every=20", "trainer.progress=false", "hydra/launcher=vectorized"]


def batch_step(sweep: Path, model: str) -> int:
    """The step of the checkpoint of the batch of `model`'s jobs (its members' checkpoint.json;
    a member's folder holds no .hydra until its files are written, after the batch trained)."""
    for job in sorted(sweep.iterdir()) if sweep.is_dir() else []:
        if f"model={model}" in job.name:
            try:
                return json.loads((job / "checkpoint.json").read_text())["step"]
            except (OSError, ValueError, KeyError):
                return 0
    return 0


def outcome(job: Path) -> tuple:
    # (the free cores a batch found differ under load; the stacked MLP's numbers do not depend on
    # them, and the ResNet's batch runs at a fixed count)
    skip = PER_EXECUTION | {"resumed_from_step", "torch_threads"}
    record = {k: v for k, v in read_metrics(job).items() if k not in skip}
    return record, history_without_seconds(job), (job / "model.pt").read_bytes()


def test_a_killed_vectorized_sweep_continues_each_batch_from_its_checkpoint(tmp_path):
    reference = run_wdsweep(["-m", *GRID, "hydra.sweep.dir=R"], cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr
    rng = random.Random(os.environ.get("PYTEST_XDIST_WORKER", "") + "batch")  # seeded: a failure repeats
    folder = tmp_path / "K"
    for model in ("mlp", "resnet"):  # the mlp batch trains first: kill it, then the resnet's
        target = rng.randrange(60, 160, 20)
        proc = start_sweep([*GRID, f"hydra.sweep.dir={folder}"], cwd=tmp_path, log=f"kill-{model}.log")
        kill_when(proc, lambda: batch_step(folder, model) >= target)
    assert not any((j / "metrics.json").exists() for j in job_dirs(folder) if "model=resnet" in j.name)
    finished = run_wdsweep(["-m", *GRID, f"hydra.sweep.dir={folder}"], cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    assert "continuing from the checkpoint at step" in finished.stdout + finished.stderr, finished.stdout
    for job, expected in zip(job_dirs(folder), job_dirs(tmp_path / "R")):
        assert job.name == expected.name and read_metrics(job)["batched"]
        if "model=resnet" in job.name:  # the batch the second kill stopped
            assert read_metrics(job)["resumed_from_step"] >= 60
        assert outcome(job) == outcome(expected), job.name
        assert not (job / "checkpoint.json").exists()
    assert not (folder / ".checkpoints").exists()  # done: trainer.keep_checkpoint=false removes them
