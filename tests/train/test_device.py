"""trainer.device and trainer.deterministic: one key for every launcher, refused in one line
where this machine lacks the device, recorded in metrics.json; on the CPU nothing changes a
number. (No GPU here: the GPU paths are exercised by benchmarks/gpu_check.py where one exists.)"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from wdsweep.train.device import ALLOWED, ENV_GPU_SLOT, device_problem, gpu_slot, resolve_device

from conftest import job_dirs, metrics_without_timing, read_metrics, run_wdsweep

FAST = ["trainer.steps=20", "trainer.eval_every=10", "model.width=16"]
NO_GPU = not torch.cuda.is_available()


def cpu_model_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    pytest.skip("no /proc/cpuinfo model name on this machine")


@pytest.mark.parametrize("bad", ["gpu", "cuda:", "CUDA", "cuda:x", 3, None, "cpu "])
def test_a_misspelt_device_names_what_is_allowed(bad):
    assert device_problem(bad) == ALLOWED


def test_a_device_this_machine_lacks_is_refused_and_a_slurm_sweep_checks_only_the_spelling():
    assert device_problem("auto") is None and device_problem("cpu") is None
    if NO_GPU:
        assert "sees no CUDA GPU" in device_problem("cuda")
        assert "sees no CUDA GPU" in device_problem("cuda:0")
    assert device_problem("cuda", this_machine=False) is None  # its jobs check their own node
    assert device_problem("gpu", this_machine=False) == ALLOWED
    assert resolve_device("auto") == torch.device("cuda" if not NO_GPU else "cpu", 0 if not NO_GPU else None)
    assert resolve_device("cpu") == torch.device("cpu")


def test_parallel_jobs_and_workers_spread_over_the_gpus(monkeypatch):
    monkeypatch.delenv(ENV_GPU_SLOT, raising=False)
    assert [gpu_slot(num, 2) for num in range(5)] == [0, 1, 0, 1, 0]  # joblib: consecutive jobs
    assert gpu_slot(None, 4) == 0 and gpu_slot(7, 1) == 0
    monkeypatch.setenv(ENV_GPU_SLOT, "3")  # worker 3 of worker mode: its slot, whatever the job
    assert [gpu_slot(num, 2) for num in range(3)] == [1, 1, 1]


@pytest.mark.integration
@pytest.mark.skipif(not NO_GPU, reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("multirun", [False, True])
def test_cuda_without_a_gpu_is_one_line_before_anything_is_written(tmp_path, multirun):
    args = (["-m", "reg.p=1,2"] if multirun else []) + ["trainer.device=cuda", *FAST]
    proc = run_wdsweep(args, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"wdsweep: invalid config: trainer.device='cuda' is not allowed: this machine's torch "
        f"({torch.__version__}) sees no CUDA GPU: auto or cpu" + (" [job: reg.p=1 trainer.device=cuda "
                                                                  "trainer.steps=20 trainer.eval_every=10 "
                                                                  "model.width=16]" if multirun else "")]
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()


@pytest.mark.integration
def test_a_job_records_its_device_and_auto_cpu_and_deterministic_train_the_same_bits(tmp_path):
    proc = run_wdsweep(["-m", "trainer.device=auto,cpu", "trainer.deterministic=false,true", *FAST,
                        "hydra.sweep.dir=S"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    jobs = job_dirs(tmp_path / "S")
    assert len(jobs) == 4
    records = [read_metrics(job) for job in jobs]
    expected = "cpu" if NO_GPU else "cuda:0"
    assert {r["device"] for r in records if r["config"]["trainer"]["device"] == "auto"} == {expected}
    assert {r["device"] for r in records if r["config"]["trainer"]["device"] == "cpu"} == {"cpu"}
    if NO_GPU:
        assert {r["device_name"] for r in records} == {cpu_model_name()}
        # the same numbers, history and model, whatever the setting: on the CPU none changes a bit
        numbers = metrics_without_timing(tmp_path / "S")
        drop = ("config", "config_hash", "overrides")
        assert len({json.dumps({k: v for k, v in r.items() if k not in drop}, sort_keys=True)
                    for r in numbers.values()}) == 1
        models = {(job / "model.pt").read_bytes() == (jobs[0] / "model.pt").read_bytes() for job in jobs}
        assert models == {True}


def test_a_config_at_the_new_keys_defaults_hashes_as_before(compose_cfg):
    """trainer.device=auto and trainer.deterministic=false leave the config hash as it was
    before those keys existed (older sweep folders resume); another value changes it."""
    from wdsweep.tracking.results import config_hash, digest, job_tree

    cfg = compose_cfg([])
    before = job_tree(cfg)
    before["trainer"] = {k: v for k, v in before["trainer"].items() if k not in ("device", "deterministic")}
    assert config_hash(cfg) == digest(before)
    assert config_hash(compose_cfg(["trainer.device=cpu"])) != config_hash(cfg)
    assert config_hash(compose_cfg(["trainer.deterministic=true"])) != config_hash(cfg)


@pytest.mark.integration
def test_the_vectorized_launcher_takes_trainer_device_and_refuses_its_old_key(tmp_path):
    refused = run_wdsweep(["-m", "reg.lam=0.01,0.02", "hydra/launcher=vectorized", "hydra.launcher.device=cpu",
                           *FAST], cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "wdsweep: invalid config: hydra.launcher.device='cpu' is not allowed: null; the device is "
        "trainer.device=cpu, one key for every launcher"]
    ok = run_wdsweep(["-m", "reg.lam=0.01,0.02", "hydra/launcher=vectorized", "trainer.device=cpu", *FAST,
                      "hydra.sweep.dir=V"], cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    records = [read_metrics(job) for job in job_dirs(tmp_path / "V")]
    assert [(r["batched"], r["device"]) for r in records] == [(True, "cpu")] * 2


@pytest.mark.skipif(not NO_GPU, reason="this machine has a CUDA GPU: the check itself runs there")
def test_the_gpu_check_says_no_gpu_and_exits_0_without_one():
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"no GPU: torch {torch.__version__} sees no CUDA device; nothing to check"


def test_a_job_too_big_for_the_gpus_free_memory_is_refused_in_one_line(compose_cfg):
    """The GPU check's arithmetic, with free memory as the GPUs of a 2 x 4 GiB machine would
    report it (this machine has none: where CUDA is, free_gpu_memory reads torch.cuda.mem_get_info)."""
    from wdsweep.train.memory import GIB, device_data_bytes, gpu_memory_problem

    free = {0: 1 * GIB, 1: 3 * GIB}
    assert gpu_memory_problem(2 * GIB, free, "cuda") is None  # GPU 1 holds it
    assert gpu_memory_problem(2 * GIB, free, "cuda:1") is None
    line = gpu_memory_problem(2 * GIB, free, "cuda:0")
    assert line.startswith("trainer.device=cuda:0 is not allowed here: the job needs about 2.0 GiB") and \
        "GPU 0 has 1.0 GiB free" in line and "\n" not in line
    assert "the roomiest GPU (1) has 3.0 GiB free" in gpu_memory_problem(4 * GIB, free, "auto")
    assert gpu_memory_problem(10 * GIB, {}, "cuda") is None  # no CUDA here: nothing to check
    # what moves to the device whole: a generated set's splits, nothing when workers read them
    cfg = compose_cfg(["data=moons", "data.n_train=1000", "data.n_val=0", "data.n_test=0"])
    assert device_data_bytes(cfg, n_features=2) == 1000 * (2 * 4 + 8)
    assert device_data_bytes(compose_cfg(["data=moons", "data.num_workers=2"]), n_features=2) == 0
