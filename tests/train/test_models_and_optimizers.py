"""Models fit their data's shapes and learn; optimizers and schedules are what the config says."""
from __future__ import annotations

import json
import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from wdsweep.jobs.run import run
from wdsweep.train.optimizers import build_optimizer, lr_factor


@pytest.mark.parametrize("overrides", [
    ["data=digits", "model=cnn", "optimizer=adam", "reg=decoupled", "data.n_train=200"],
    ["data=digits", "model=linear", "optimizer=adamw", "reg=decoupled"],
    ["data=moons", "model.depth=2", "model.width=32", "model.activation=tanh", "optimizer=adam",
     "optimizer.schedule=cosine", "optimizer.warmup_steps=10", "reg=elastic"],
])
def test_models_learn_on_their_data(compose_cfg, tmp_path, overrides):
    cfg = compose_cfg([*overrides, "trainer.steps=120", "trainer.eval_every=60", "trainer.batch_size=32",
                       "optimizer.lr=0.01"])
    run(cfg, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    history = (tmp_path / "history.csv").read_text().splitlines()
    columns = history[0].split(",")
    first_val_loss = float(history[1].split(",")[columns.index("val_loss")])
    assert metrics["status"] == "completed"
    assert metrics["val_loss"] < 0.8 * first_val_loss  # it learned something


def test_cnn_has_kernels_and_decays_only_them(compose_cfg, tmp_path):
    cfg = compose_cfg(["data=digits", "model=cnn", "trainer.steps=2", "trainer.eval_every=2"])
    run(cfg, tmp_path)
    state = torch.load(tmp_path / "model.pt")
    kernels = [k for k, v in state.items() if v.dim() == 4]
    assert len(kernels) == 2
    decay = json.loads((tmp_path / "metrics.json").read_text())["decay"]
    assert decay["decayed_tensors"] == sum(v.dim() >= 2 for v in state.values()) == 4
    assert decay["kept_tensors"] == 4


def test_cosine_schedule_with_warmup():
    factor = lr_factor("cosine", steps=100, warmup_steps=10, min_ratio=0.1)
    assert [factor(t) for t in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert factor(10) == pytest.approx(1.0)
    assert factor(55) == pytest.approx(0.1 + 0.9 * 0.5)
    assert factor(100) == pytest.approx(0.1)
    assert lr_factor("constant", 100, 0, 0.0)(77) == 1.0


def test_optimizers_get_no_decay_of_their_own():
    params = [torch.nn.Parameter(torch.ones(2, 2))]
    for name, extra in [("sgd", {"momentum": 0.5, "nesterov": True}),
                        ("adam", {"betas": [0.8, 0.9], "eps": 1e-7}),
                        ("adamw", {"betas": [0.8, 0.9], "eps": 1e-7})]:
        cfg = OmegaConf.create({"name": name, "lr": 0.1, "schedule": "constant", "warmup_steps": 0,
                                "min_lr": 0.0, "fused": True, **extra})
        optimizer, _ = build_optimizer(cfg, [{"params": params}], steps=10)
        expected = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]
        assert type(optimizer) is expected
        assert optimizer.defaults["fused"] is (True if name == "sgd" else None)
        assert optimizer.param_groups[0]["weight_decay"] == 0.0
        assert not math.isnan(optimizer.param_groups[0]["lr"])


def test_the_fused_sgd_kernel_follows_the_default_kernels_trajectory():
    """optimizer.fused (the default, SGD) is a speed path: the same updates, in another order
    of rounding. Compared in float64, where 200 steps of rounding differences stay near 1e-13
    on any CPU (in float32 they reach 1e-6..1e-4, and differ between processors), while a
    wrong momentum, decay or learning rate moves the weights by 1e-4 or more."""
    name, extra = "sgd", {"momentum": 0.9, "nesterov": False}
    finals = []
    for fused in (True, False):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 1)).double()
        start = torch.cat([q.detach().flatten() for q in net.parameters()])
        x, y = torch.randn(32, 3, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)
        cfg = OmegaConf.create({"name": name, "lr": 0.01, "schedule": "cosine", "warmup_steps": 0,
                                "min_lr": 0.0, "fused": fused, **extra})
        groups = [{"params": [net[0].weight, net[2].weight], "weight_decay": 0.01},
                  {"params": [net[0].bias, net[2].bias], "weight_decay": 0.0}]
        optimizer, schedule = build_optimizer(cfg, groups, steps=200)
        assert optimizer.defaults["fused"] is (True if fused else None)
        for _ in range(200):
            optimizer.zero_grad()
            nn.functional.mse_loss(net(x), y).backward()
            optimizer.step()
            schedule.step()
        finals.append(torch.cat([q.detach().flatten() for q in net.parameters()]))
        assert (finals[-1] - start).abs().max() > 1e-3  # it did train
    torch.testing.assert_close(finals[0], finals[1], rtol=1e-10, atol=1e-11)


def test_fixed_threads_share_the_cores_among_parallel_workers(monkeypatch):
    from wdsweep.jobs.threads import fixed_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setattr("wdsweep.jobs.threads._cgroup_quota", lambda: None)
    assert fixed_threads(None) == 8 and fixed_threads(1) == 8  # one job at a time: every core
    assert fixed_threads(2) == 4 and fixed_threads(3) == 2 and fixed_threads(16) == 1
    assert fixed_threads(-1) == 1 and fixed_threads(-5) == 2  # joblib: cores + 1 + n
    # the Optuna sweeper's worker processes (hydra.sweeper.workers=4), each running its own jobs
    monkeypatch.setenv("WDSWEEP_PARALLEL_JOBS", "4")
    assert fixed_threads(None) == 2 and fixed_threads(1) == 2
    monkeypatch.delenv("WDSWEEP_PARALLEL_JOBS")
    monkeypatch.setattr("wdsweep.jobs.threads._cgroup_quota", lambda: 2.5)  # a container's quota
    assert fixed_threads(None) == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert fixed_threads(2) == 3  # the user's own setting wins


def _subnormals_survive() -> bool:
    return bool((torch.tensor([1e-39]) * 1.0).item() != 0.0)


@pytest.mark.parametrize("batched", [False, True], ids=["alone", "batched"])
def test_flushing_subnormals_takes_effect_and_changes_no_metric(compose_cfg, tmp_path, batched):
    """trainer.flush_denormal is process-wide state each job sets; both of its settings must
    give the same metrics (the docs' claim), on a run whose dead units' momentum decays
    into the subnormal range (lr small, many steps, no decay)."""
    from wdsweep.batched.vectorized import train_batched

    quick = ["model.width=32", "trainer.steps=1500", "trainer.eval_every=1500", "reg.lam=0"]
    finals = {}
    try:
        for flush in (False, True):
            cfg = compose_cfg([*quick, f"trainer.flush_denormal={flush}"])
            if batched:
                finals[flush] = train_batched([cfg, cfg])[0].result.final
            else:
                run(cfg, tmp_path / str(flush))
                finals[flush] = json.loads((tmp_path / str(flush) / "metrics.json").read_text())
            assert _subnormals_survive() is not flush
    finally:
        torch.set_flush_denormal(False)  # torch's default, for the tests that follow
    for key in ("train_loss", "test_loss", "weight_norm"):
        assert finals[True][key] == pytest.approx(finals[False][key], rel=1e-6), key
