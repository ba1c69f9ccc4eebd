"""trainer.precision on the CPU: under bf16-mixed the regularizer's identities still hold and its
steps stay float32; the built-in tasks land within a stated tolerance of float32; under
16-mixed a step whose scaled gradients overflow is skipped whole, the decay included."""
from __future__ import annotations

import pytest
import torch

from conftest import WALL_CLOCK, job_dirs, read_metrics, run_wdsweep

pytestmark = pytest.mark.integration


def histories(sweep) -> dict:
    import csv

    out = {}
    for job in job_dirs(sweep):
        with open(job / "history.csv") as f:
            out[job.name] = [{k: float(v) for k, v in row.items() if k not in WALL_CLOCK} for row in csv.DictReader(f)]
    return out


def test_under_bf16_the_three_decay_paths_agree_and_every_tensor_stays_float32(tmp_path):
    """reg.impl=manual (our step), loss (autograd through the penalty) and optimizer (torch's
    weight_decay) are one trajectory in float32 (tested elsewhere); under bf16-mixed too,
    since the decay runs in float32 outside autocast: only the forward pass is bfloat16."""
    proc = run_wdsweep(["-m", "trainer.precision=bf16-mixed", "reg.impl=manual,loss,optimizer", "reg.lam=0.05",
                        "trainer.steps=200", "trainer.eval_every=50", "model.width=32", "hydra.sweep.dir=S"],
                       cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    runs = list(histories(tmp_path / "S").values())
    assert len(runs) == 3
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            for key in a:
                assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), key
    # and bfloat16 did change the numbers: autocast ran
    plain = run_wdsweep(["reg.impl=manual", "reg.lam=0.05", "trainer.steps=200", "trainer.eval_every=50",
                         "model.width=32", "hydra.run.dir=F"], cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert read_metrics(tmp_path / "F")["train_loss"] != runs[0][-1]["train_loss"]
    for job in job_dirs(tmp_path / "S"):
        state = torch.load(job / "model.pt")
        assert {t.dtype for t in state.values()} == {torch.float32}


# What "near" means for the built-in tasks, bf16-mixed against 32 on the same seed and steps.
# The article's regression (10 noisy points) is chaotic over 2000 steps: bfloat16's rounding
# moves its test MSE by an amount that depends on the CPU's bf16 kernels (measured: 2.3% on a
# Xeon without AVX512-BF16 on 2026-12-03; 8.7% on seed 0, 0.1% to 4.2% on seeds 1 to 4 on an
# EPYC with it on 2026-12-04), while a change of seed moves it by 50% and more. So the claim is
# relative to the seed: bf16 moves the regression's test MSE by at most half what the next seed
# does. Moons' test error moves by at most one point in 1000 (measured), claimed to 0.01.
SEED_SHARE = 0.5
CLASSIFICATION_ABSOLUTE = 0.01


@pytest.mark.parametrize("data", ["regression1d", "moons"])
def test_built_in_tasks_under_bf16_land_near_float32(tmp_path, data):
    proc = run_wdsweep(["-m", f"data={data}", "trainer.precision=32,bf16-mixed", "seed=0", "trainer.progress=false",
                        "hydra.sweep.dir=S"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    by_precision = {read_metrics(job)["config"]["trainer"]["precision"]: read_metrics(job)
                    for job in job_dirs(tmp_path / "S")}
    full, mixed = by_precision["32"]["test_error"], by_precision["bf16-mixed"]["test_error"]
    if data == "regression1d":  # the yardstick: float32 on the next seed
        other = run_wdsweep([f"data={data}", "seed=1", "trainer.progress=false", "hydra.run.dir=R"], cwd=tmp_path)
        assert other.returncode == 0, other.stderr
        next_seed = read_metrics(tmp_path / "R")["test_error"]
        assert abs(mixed - full) <= SEED_SHARE * abs(next_seed - full), (full, mixed, next_seed)
    else:
        assert abs(mixed - full) <= CLASSIFICATION_ABSOLUTE


def test_under_16_mixed_an_overflowing_step_is_skipped_whole_decay_included(tmp_path, compose_cfg):
    """The article's regression under float16: the loss scaler starts at 2**16, and the first
    step's scaled gradients overflow. That step must change no weight, although decoupled decay
    with a large lam would have shrunk every matrix: model.pt after one skipped step equals the
    job's initial weights."""
    from wdsweep.jobs.run import seed_and_draw_data
    from wdsweep.train.models import build_model, data_info_of

    common = ["trainer.precision=16-mixed", "reg.mode=decoupled", "reg.lam=0.5", "trainer.steps=1",
              "trainer.eval_every=1", "model.width=32", "data.slope=1000"]
    skipped = run_wdsweep([*common, "hydra.run.dir=H"], cwd=tmp_path)
    assert skipped.returncode == 0, skipped.stderr
    assert read_metrics(tmp_path / "H")["skipped_steps"] == 1
    cfg = compose_cfg(common)
    initial = build_model(cfg.model, data_info_of(seed_and_draw_data(cfg))).state_dict()
    after = torch.load(tmp_path / "H" / "model.pt")
    assert all(torch.equal(after[k], initial[k]) for k in initial)
    # a float32 run of that one step does move them (decay and gradient)
    moved = run_wdsweep([*common[1:], "hydra.run.dir=M"], cwd=tmp_path)
    assert moved.returncode == 0, moved.stderr
    assert not torch.equal(torch.load(tmp_path / "M" / "model.pt")["0.weight"], initial["0.weight"])
    # ...and the scaler recovers: a longer run trains, skipping only its first steps
    longer = run_wdsweep(["trainer.precision=16-mixed", "trainer.steps=300", "trainer.eval_every=100",
                          "model.width=32", "data.slope=1000", "optimizer.lr=1e-5", "hydra.run.dir=L"], cwd=tmp_path)
    assert longer.returncode == 0, longer.stderr
    record = read_metrics(tmp_path / "L")
    assert record["status"] == "completed" and 0 < record["skipped_steps"] < 30
