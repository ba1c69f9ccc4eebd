"""Users' models and data the vectorized launcher once could not batch: regression with several
targets a row, and a module with tied weights. Each member ends where its job run alone ends."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import open_dict
from torch import nn

from wdsweep.batched.vectorized import batch_signature, train_batched, unbatchable_reason
from wdsweep.jobs.run import run

from conftest import read_metrics

COMPARED = ("train_loss", "val_loss", "test_loss", "test_error", "reg_loss", "weight_norm")
STEPS = ["trainer.steps=6", "trainer.eval_every=3", "trainer.batch_size=16"]


class TiedNet(nn.Module):
    """One weight matrix registered twice (self.b.weight is self.a.weight), as tied embeddings are."""

    def __init__(self, n_features: int, n_outputs: int) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(n_features, n_features), nn.Linear(n_features, n_features)
        self.b.weight = self.a.weight
        self.out = nn.Linear(n_features, n_outputs)

    def forward(self, x):
        return self.out(torch.tanh(self.b(torch.tanh(self.a(x)))))


def members_equal_their_jobs_alone(cfgs, tmp_path) -> None:
    assert len({batch_signature(c) for c in cfgs}) == 1 and not any(map(unbatchable_reason, cfgs))
    for k, (cfg, member) in enumerate(zip(cfgs, train_batched(cfgs))):
        run(cfg, tmp_path / f"job{k}")
        reference = read_metrics(tmp_path / f"job{k}")
        assert member.result.status == reference["status"] == "completed"
        for key in COMPARED:
            assert member.result.final[key] == pytest.approx(reference[key], rel=1e-5, abs=1e-7), (k, key)


@pytest.mark.parametrize("model", [["model=linear"], ["model=mlp", "model.width=8", "model.depth=1"], "tied"],
                         ids=["linear", "mlp", "torch.func"])
def test_regression_with_several_targets_batches(compose_cfg, tmp_path, model):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    y = np.stack([x[:, 0], x[:, 1] - x[:, 2], x.sum(1)], axis=1).astype(np.float32)  # (n, 3)
    np.savez(tmp_path / "d.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    base = ["data=npz", f"data.path={tmp_path / 'd.npz'}", "data.val_fraction=0.25", *STEPS]
    cfgs = [compose_cfg([*base, *([] if model == "tied" else model), f"reg.lam={lam}", f"seed={seed}"])
            for lam, seed in ((0.0, 0), (0.03, 1), (0.1, 1))]
    if model == "tied":
        for cfg in cfgs:
            with open_dict(cfg):
                cfg.model = {"_target_": f"{__name__}.TiedNet"}
    members_equal_their_jobs_alone(cfgs, tmp_path)


def test_a_module_with_tied_weights_batches(compose_cfg, tmp_path):
    """Its tied matrix is one tensor per member (as in named_parameters and the job's optimizer):
    it steps once a step, with the gradient of both its uses, and decays once."""
    cfgs = [compose_cfg(["data=moons", *STEPS, f"reg.lam={lam}", "reg.scope=all", f"reg.mode={mode}"])
            for lam, mode in ((0.0, "coupled"), (0.05, "coupled"), (0.05, "decoupled"))]
    for cfg in cfgs:
        with open_dict(cfg):
            cfg.model = {"_target_": f"{__name__}.TiedNet"}
    members_equal_their_jobs_alone(cfgs, tmp_path)
    state = torch.load(tmp_path / "job1" / "model.pt", weights_only=True)
    assert torch.equal(state["a.weight"], state["b.weight"])
