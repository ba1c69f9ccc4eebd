"""A parameter the forward does not use gets no gradient, and the rule for it is torch's own: it
is not stepped, decay included, by every implementation (reg.impl=manual, loss and optimizer,
coupled, decoupled and proximal). So the implementations stay one trajectory on such a model,
and the unused weights end where they began."""
from __future__ import annotations

import json
import sys

import pytest
import torch

from wdsweep.jobs.run import run

NET = '''
import torch
from torch import nn


class Spare(nn.Module):
    """A net with a weight matrix its forward never uses (a head kept for later, say)."""
    def __init__(self, n_features, n_outputs):
        super().__init__()
        self.body = nn.Linear(n_features, 16)
        self.head = nn.Linear(16, n_outputs)
        self.spare = nn.Linear(16, 16)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))
'''


@pytest.fixture
def spare(tmp_path, monkeypatch):
    (tmp_path / "sparenet.py").write_text(NET)
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "spare.yaml").write_text("_target_: sparenet.Spare\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "sparenet", raising=False)
    return [f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "model=spare", "trainer.steps=40",
            "trainer.eval_every=20", "trainer.progress=false", "reg.lam=0.05"]


@pytest.mark.parametrize("setting, impls", [
    (["optimizer=sgd", "reg.mode=coupled", "reg.p=2"], ["manual", "loss", "optimizer"]),
    (["optimizer=adamw", "optimizer.lr=0.01", "reg.mode=decoupled", "reg.p=2"], ["manual", "optimizer"]),
    (["optimizer=sgd", "reg.mode=coupled", "reg.p=1"], ["manual", "loss"]),
])
def test_every_implementation_leaves_an_unused_weight_alone_and_stays_one_trajectory(compose_cfg, tmp_path, spare,
                                                                                     setting, impls):
    from wdsweep.jobs.run import seed_and_draw_data
    from wdsweep.train.models import build_model, data_info_of

    cfg = compose_cfg([*spare, *setting])
    splits = seed_and_draw_data(cfg)
    initial = build_model(cfg.model, data_info_of(splits)).state_dict()  # the job's own start
    states = {}
    for impl in impls:
        run(compose_cfg([*spare, *setting, f"reg.impl={impl}"]), tmp_path / impl)
        states[impl] = torch.load(tmp_path / impl / "model.pt", weights_only=True)
    for impl, state in states.items():
        assert torch.equal(state["spare.weight"], initial["spare.weight"]), impl  # never stepped, never decayed
        assert not torch.equal(state["body.weight"], initial["body.weight"])  # the used ones trained
        for key in state:
            torch.testing.assert_close(state[key], states[impls[0]][key], rtol=1e-5, atol=1e-6, msg=impl)


def test_proximal_steps_only_what_the_optimizer_stepped(compose_cfg, tmp_path, spare):
    from wdsweep.jobs.run import seed_and_draw_data
    from wdsweep.train.models import build_model, data_info_of

    for optimizer in ("sgd", "adam"):
        cfg = compose_cfg([*spare, f"optimizer={optimizer}", "reg.mode=proximal", "reg.p=1"])
        initial = build_model(cfg.model, data_info_of(seed_and_draw_data(cfg))).state_dict()
        run(cfg, tmp_path / optimizer)
        state = torch.load(tmp_path / optimizer / "model.pt", weights_only=True)
        assert torch.equal(state["spare.weight"], initial["spare.weight"]), optimizer
        decay = json.loads((tmp_path / optimizer / "metrics.json").read_text())["decay"]
        # the default data's one feature and one target: body 1x16, head 16x1, spare 16x16 (never stepped)
        assert (decay["decayed_params"], decay["stepped_params"]) == (16 + 16 + 16 * 16, 16 + 16), decay


def test_the_record_tells_the_tensors_in_scope_from_those_a_step_decayed(spare):
    # the report's scope sizes read stepped_params: an unused layer is in scope, never decayed
    from sparenet import Spare

    from wdsweep.train.regularizers import Regularizer

    model = Spare(16, 2)
    reg = Regularizer(model, lam=0.1, p=2, mode="coupled", scope="all", optimizer="sgd", impl="manual")
    optimizer = torch.optim.SGD(reg.param_groups(), lr=0.1)
    reg.attach(optimizer)
    assert reg.summary()["stepped_params"] is None  # no step yet
    model(torch.ones(3, 16)).sum().backward()
    optimizer.step()
    summary = reg.summary()
    assert (summary["decayed_tensors"], summary["decayed_params"]) == (6, 16 * 16 + 16 + 16 * 2 + 2 + 16 * 16 + 16)
    assert (summary["stepped_tensors"], summary["stepped_params"]) == (4, 16 * 16 + 16 + 16 * 2 + 2)
