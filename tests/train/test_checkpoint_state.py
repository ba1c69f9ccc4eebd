"""What a checkpoint holds is enough: a run stopped after step k and continued from the state the
loop handed out at k ends exactly as the run that never stopped, for a model that draws from
torch's global random stream (dropout) and with every other stream in use (batches,
augmentation, numpy's and Python's generators), through the loop's own Checkpoints protocol."""
from __future__ import annotations

import copy
import random

import numpy as np
import torch
from torch import nn

from wdsweep.jobs.run import augment_generator, seed_and_draw_data
from wdsweep.train.checkpoint import random_states, set_random_states
from wdsweep.train.optimizers import build_optimizer
from wdsweep.train.regularizers import Regularizer
from wdsweep.train.splits import derived_seed
from wdsweep.train.training import train

STEPS, STOP = 60, 25


class Keep:
    """Hands out nothing to continue from, and keeps the state after step `at`."""

    def __init__(self, at: int) -> None:
        self.at, self.state = at, None

    def load(self):
        return None

    def after_step(self, step, state) -> None:
        if step == self.at:
            self.state = copy.deepcopy(state())


class Resume(Keep):
    def __init__(self, state) -> None:
        super().__init__(-1)
        self.saved = state

    def load(self):
        return self.saved


def run(cfg, checkpoints):
    splits = seed_and_draw_data(cfg)
    torch.manual_seed(cfg.seed)
    model = nn.Sequential(nn.Linear(splits.n_features, 32), nn.ReLU(), nn.Dropout(0.3),
                          nn.Linear(32, splits.n_outputs))
    reg = Regularizer(model, lam=0.01, p=2, mode="decoupled", scope="weights", optimizer="sgd")
    optimizer, scheduler = build_optimizer(cfg.optimizer, reg.param_groups(), STEPS)
    reg.bind(optimizer)

    class Noise:  # a callback drawing from numpy's and Python's global streams, as user code may
        def on_step(self, step, loss, model):
            np.random.rand(), random.random()

        def on_eval(self, step, row):
            row["noise"] = float(np.random.rand() + random.random())

        def close(self):
            pass

    result = train(model, splits, optimizer, scheduler, reg, steps=STEPS, batch_size=32, eval_every=10,
                   generator=torch.Generator().manual_seed(derived_seed(cfg.seed, "batches")),
                   augment_generator=augment_generator(cfg.seed), callbacks=[Noise()], checkpoints=checkpoints)
    return result, model.state_dict()


def test_a_run_continued_from_its_state_ends_as_the_run_that_never_stopped(compose_cfg):
    cfg = compose_cfg(["data=digits", "data.augment=true", "data.n_train=300"])
    whole, whole_model = run(cfg, Keep(STOP))
    keep = Keep(STOP)
    run(cfg, keep)  # the same run again, only to take its state at STOP
    assert keep.state["step"] == STOP
    # a new process: other streams everywhere, then the state
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    continued, continued_model = run(cfg, Resume(keep.state))
    drop = ("seconds", "samples_per_s", "step_ms", "data_wait")
    assert [{k: v for k, v in r.items() if k not in drop} for r in continued.history] == \
        [{k: v for k, v in r.items() if k not in drop} for r in whole.history]
    assert all(torch.equal(continued_model[k], whole_model[k]) for k in whole_model)


def test_random_states_restore_every_global_stream():
    saved = random_states()
    first = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    torch.manual_seed(7), np.random.seed(7), random.seed(7)
    set_random_states(saved)
    again = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and first[2] == again[2]
