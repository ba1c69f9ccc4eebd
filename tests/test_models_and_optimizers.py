"""Models fit their data's shapes and learn; optimizers and schedules are what the config says."""
from __future__ import annotations

import json
import math

import pytest
import torch
from omegaconf import OmegaConf

from wdsweep.optimizers import build_optimizer, lr_factor
from wdsweep.run import run


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
                                "min_lr": 0.0, **extra})
        optimizer, _ = build_optimizer(cfg, [{"params": params}], steps=10)
        expected = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]
        assert type(optimizer) is expected
        assert optimizer.param_groups[0]["weight_decay"] == 0.0
        assert not math.isnan(optimizer.param_groups[0]["lr"])
