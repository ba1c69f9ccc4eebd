"""Vectorized sweeps (wdsweep/batched/vectorized.py, hydra/launcher=vectorized): each member of a
batched model must end where the same job run alone ends, and a vectorized sweep must leave
what a normal sweep leaves."""
from __future__ import annotations

import itertools
import math

import optuna
import pandas as pd
import pytest
import torch
from omegaconf import open_dict
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from torch import nn

from analysis.collect import collect
from wdsweep.batched.vectorized import batch_signature, train_batched, unbatchable_reason
from wdsweep.jobs.run import run

from conftest import BIG_MODEL, SMALL_ADDRESS_SPACE, job_dirs, read_metrics, run_cli, run_wdsweep

QUICK = ["trainer.steps=40", "trainer.eval_every=20", "model.width=16"]
DIGITS = ["data=digits", "data.n_train=100", "trainer.batch_size=16"]
# The stacked-MLP path, and the general torch.func path on a small cnn and on a ResNet with
# BatchNorm (depth 8: one basic block per stage). The ResNet runs 10 steps: past that, a
# member's float rounding grows with BatchNorm's small batches as much as the same job's
# does between 1 and 2 threads (checked by hand: 1e-3 relative after 20 Adam steps, both ways).
MODELS = {"mlp": QUICK,
          "cnn": [*DIGITS, "model=cnn", "model.channels=[4]", "model.hidden=8", "trainer.steps=20",
                  "trainer.eval_every=10"],
          "resnet": [*DIGITS, "model=resnet", "model.depth=8", "trainer.steps=10", "trainer.eval_every=5"]}
COMPARED = ("train_loss", "val_loss", "test_loss", "test_error", "reg_loss", "weight_norm", "sparsity")


def every_mode_scope_and_p():
    for mode, scope, p in itertools.product(("coupled", "decoupled", "proximal"), ("weights", "all"),
                                            (1, 2, 3)):
        if not (mode == "proximal" and p == 3):
            yield [f"reg.mode={mode}", f"reg.scope={scope}", f"reg.p={p}", f"seed={p}", "reg.lam=0.03"]


# Decoupled decay corrected for SGD's momentum (reg.momentum_corrected; SGD only).
MOMENTUM_CORRECTED = [["reg.mode=decoupled", f"reg.scope={scope}", f"reg.p={p}", f"seed={p}", "reg.lam=0.03",
                       "reg.momentum_corrected=true"] for scope, p in (("weights", 1), ("all", 2))]


def every_mode_and_scope():
    """Each mode and scope once, with p in {1, 2, 3} spread over them (p=3 not with proximal,
    which takes 1 and 2): the ResNet's share of the grid above."""
    for (mode, scope), p in zip(itertools.product(("coupled", "decoupled", "proximal"), ("weights", "all")),
                                (1, 2, 2, 3, 1, 2)):
        yield [f"reg.mode={mode}", f"reg.scope={scope}", f"reg.p={p}", f"seed={p}", "reg.lam=0.03"]


def alone(cfg, tmp_path, name) -> dict:
    run(cfg, tmp_path / name)
    return read_metrics(tmp_path / name)


@pytest.mark.parametrize("model, optimizer", [
    ("mlp", ["optimizer=sgd", "optimizer.lr=0.02"]), ("mlp", ["optimizer=adam", "optimizer.lr=0.003"]),
    ("cnn", ["optimizer=sgd", "optimizer.lr=0.02", "optimizer.nesterov=true"]),
    ("cnn", ["optimizer=adam", "optimizer.lr=0.003", "data.augment=true", "data.flip=true"]),
    ("resnet", ["optimizer=sgd", "optimizer.lr=0.02"])],
    ids=["mlp-sgd", "mlp-adam", "cnn-nesterov", "cnn-adam-augmented", "resnet-sgd"])
def test_each_member_equals_its_job_run_alone(compose_cfg, tmp_path, model, optimizer):
    base = [*MODELS[model], *optimizer]
    members = [*(every_mode_and_scope() if model == "resnet" else every_mode_scope_and_p()),
               *(MOMENTUM_CORRECTED if "optimizer=sgd" in optimizer else [])]
    cfgs = [compose_cfg([*base, *member]) for member in members]
    cfgs.append(compose_cfg([*base, "reg.lam=0", "optimizer.lr=0.01"]))  # its own lr
    assert len({batch_signature(c) for c in cfgs}) == 1 and not any(map(unbatchable_reason, cfgs))
    for k, (cfg, member) in enumerate(zip(cfgs, train_batched(cfgs))):
        reference = alone(cfg, tmp_path, f"job{k}")
        final = member.result.final
        assert member.result.status == reference["status"] == "completed"
        for key in COMPARED:
            assert final[key] == pytest.approx(reference[key], rel=1e-5, abs=1e-7), (k, key)
        assert len(member.result.history) == len((tmp_path / f"job{k}" / "history.csv").read_text()
                                                  .splitlines()) - 1
        assert member.decay == reference["decay"]
        saved = torch.load(tmp_path / f"job{k}" / "model.pt", weights_only=True)
        assert member.model_state.keys() == saved.keys()
        for name, tensor in saved.items():  # BatchNorm's running statistics included
            torch.testing.assert_close(member.model_state[name], tensor, rtol=1e-4, atol=1e-6,
                                       msg=lambda m: f"member {k}, {name}: {m}")


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_one_diverging_member_spoils_no_other(compose_cfg, tmp_path, model):
    cfgs = [compose_cfg([*MODELS[model], f"optimizer.lr={lr}", "reg.p=3"]) for lr in (0.01, 1e4, 0.02)]
    members = train_batched(cfgs)
    for k, (cfg, member) in enumerate(zip(cfgs, members)):
        reference = alone(cfg, tmp_path, f"job{k}")
        assert member.result.status == reference["status"]
        assert member.result.diverged_at_step == reference["diverged_at_step"]
        assert member.result.steps == reference["steps"]
    assert members[1].result.status == "diverged" and members[0].result.status == "completed"
    assert members[2].result.final["test_loss"] == pytest.approx(
        read_metrics(tmp_path / "job2")["test_loss"], rel=1e-5)


class DropoutNet(nn.Module):
    """A module whose forward draws random numbers: no member could get its job's own draws."""

    def __init__(self, n_features: int, n_outputs: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, 8), nn.Dropout(0.5), nn.Linear(8, n_outputs))

    def forward(self, x):
        return self.net(x)


class UnusedLayerNet(nn.Module):
    """A module with a layer its forward never uses: torch's optimizers never step it."""

    def __init__(self, n_features: int, n_outputs: int) -> None:
        super().__init__()
        self.used, self.spare = nn.Linear(n_features, n_outputs), nn.Linear(3, 3)

    def forward(self, x):
        return self.used(x)


class WarmupShiftNet(nn.Module):
    """Replaces a buffer only after a warm-up: no probe of a few forwards sees it do so."""

    def __init__(self, n_features: int, n_outputs: int) -> None:
        super().__init__()
        self.fc = nn.Linear(n_features, n_outputs)
        self.register_buffer("shift", torch.zeros(n_features))
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls > 3:
                self.shift = 0.5 * self.shift + 0.5 * x.mean(0).detach()
        return self.fc(x - self.shift)


@pytest.mark.parametrize("target, reason", [
    ("test_vectorized.DropoutNet", "random operation"),
    ("test_vectorized.UnusedLayerNet", "parameter spare.weight gets no gradient"),
    ("test_vectorized.WarmupShiftNet", "buffer shift is assigned (self.shift = ... in WarmupShiftNet.forward, line ")])
def test_a_module_that_cannot_be_vectorized_is_named_with_its_reason(compose_cfg, target, reason):
    cfg = compose_cfg(["data=digits"])
    with open_dict(cfg):
        cfg.model = {"_target_": target}
    said = unbatchable_reason(cfg)
    assert said is not None and said.startswith(f"model={target.rsplit('.', 1)[1].lower()} cannot be "
                                                "vectorized with torch.func") and reason in said, said
    assert "\n" not in said


@pytest.mark.integration
def test_a_vectorized_sweep_leaves_what_a_normal_sweep_leaves(tmp_path):
    # mlp jobs are stacked, cnn jobs vmap'ed; a TensorBoard job cannot be batched and runs alone.
    grid = ["-m", "data=digits", "data.n_train=100", "trainer.batch_size=16", "trainer.steps=30",
            "trainer.eval_every=10", "model=mlp,cnn", "reg.p=1,2,3", "seed=0"]
    normal = run_wdsweep([*grid, "hydra.sweep.dir=normal"], cwd=tmp_path)
    batched = run_wdsweep([*grid, "hydra.sweep.dir=batched", "hydra/launcher=vectorized"], cwd=tmp_path)
    assert normal.returncode == 0 and batched.returncode == 0, batched.stderr
    log = batched.stdout + batched.stderr
    assert log.count("training 3 jobs as one batched model on cpu") == 2 and "runs alone" not in log
    for a, b in zip(job_dirs(tmp_path / "normal"), job_dirs(tmp_path / "batched")):
        assert a.name == b.name
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    runs = {name: collect([tmp_path / name]).runs.set_index("job").sort_index()
            for name in ("normal", "batched")}
    assert len(runs["normal"]) == 6 and (runs["batched"]["status"] == "completed").all()
    for column in ("test_error", "val_error", "train_loss", "weight_norm", "reg_loss"):
        pd.testing.assert_series_equal(runs["normal"][column], runs["batched"][column], rtol=1e-5)
    batched_flags = [read_metrics(j).get("batched", False) for j in job_dirs(tmp_path / "batched")]
    assert sum(batched_flags) == 6


@pytest.mark.integration
def test_optuna_rounds_train_as_batches_and_the_pruner_stops_single_members(tmp_path):
    # On the general (torch.func) path; the stacked MLP's members stop through the same loop.
    proc = run_wdsweep(["-m", "search=optuna", "hydra/launcher=vectorized", "hydra.sweeper.n_trials=8",
                    "hydra.sweeper.n_jobs=4", "hydra.sweeper.sampler.seed=0", "reg.mode=coupled",
                    "hydra/sweeper/pruner=median", "hydra.sweeper.pruner.n_startup_trials=2",
                    "reg.lam=tag(log,interval(1e-4,10))", *MODELS["cnn"], "trainer.steps=200",
                    "trainer.eval_every=20"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout + proc.stderr).count("training 4 jobs as one batched model") == 2
    (results,) = (tmp_path / "multirun").glob("*/*/optimization_results.yaml")
    assert "best_value" in results.read_text()
    (journal,) = (tmp_path / "multirun" / "optuna").glob("*.journal")
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    (study,) = [optuna.load_study(study_name=s.study_name, storage=storage)
                for s in optuna.get_all_study_summaries(storage)]
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert pruned and len(pruned) + len(complete) == 8  # the pruner stopped members, not rounds
    for trial in study.trials:
        folder = results.parent / f"trial-{trial.number:05d}"
        record = read_metrics(folder)
        history = pd.read_csv(folder / "history.csv")
        assert record["batched"] and history["step"].iloc[-1] == record["steps"]
        if trial.state == TrialState.PRUNED:  # stopped where the pruner saw its last value
            assert record["status"] == "pruned" and record["steps"] < 200
            assert max(trial.intermediate_values) == record["steps"]
            assert "pruned by MedianPruner" in record["stop_reason"]
        else:
            assert record["status"] == "completed" and record["steps"] == 200
            assert math.isfinite(record["objective"]) and trial.value == record["objective"]


@pytest.mark.integration
def test_a_batch_that_cannot_train_falls_back_to_one_job_at_a_time(tmp_path):
    # Two stacked members of width 20000 cannot be allocated in 3 GB: the batch fails, then each
    # job fails alone.
    proc = run_cli(["-m", *BIG_MODEL, "reg.p=1,2", "trainer.steps=5", "hydra/launcher=vectorized"],
                   cwd=tmp_path, address_space=SMALL_ADDRESS_SPACE)
    assert proc.returncode == 1
    assert "batched training failed (RuntimeError" in proc.stdout + proc.stderr
    records = [read_metrics(j) for j in job_dirs(tmp_path / "multirun")]
    assert len(records) == 2 and all(r["status"] == "failed" and "RuntimeError" in r["error"]
                                     for r in records)
    assert not any(r.get("batched") for r in records)
