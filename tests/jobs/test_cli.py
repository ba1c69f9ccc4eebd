"""`python -m wdsweep` as a user runs it: grids, the weight-decay article's experiment, bad input,
determinism, and jobs that diverge or fail without ending their sweep. In-process
(run_wdsweep), but for the one-line refusals and the jobs under an address-space limit, whose
process is the point."""
from __future__ import annotations

import math

import pytest
import torch
import yaml
from torch import nn

from conftest import (
    BIG_MODEL,
    SEED_REGRESSION_SWEEP,
    SMALL_ADDRESS_SPACE,
    history_without_seconds,
    job_dirs,
    read_metrics,
    run_cli,
    run_wdsweep,
    shared_sweep,
)

pytestmark = pytest.mark.integration

FAST = ["trainer.steps=20", "trainer.eval_every=10"]


def test_grid_over_p_writes_three_completed_jobs(tmp_path):
    proc = run_wdsweep(["-m", "reg.p=1,2,3", *FAST], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    jobs = job_dirs(tmp_path / "multirun")
    assert len(jobs) == 3
    seen = set()
    for job in jobs:
        metrics = read_metrics(job)
        config = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
        assert metrics["status"] == "completed" and metrics["steps"] == 20
        assert metrics["config"] == config  # the full config sits beside the result
        assert metrics["objective"] == metrics["val_error"]
        assert f"reg.p={config['reg']['p']:g}" in job.name
        assert (job / "history.csv").read_text().startswith("step,lr,train_loss")
        assert set(torch.load(job / "model.pt")) == {f"{i}.{k}" for i in (0, 2, 4, 6) for k in ("weight", "bias")}
        seen.add(config["reg"]["p"])
    assert seen == {1.0, 2.0, 3.0}
    assert "reg.p=2 trainer.steps=20 trainer.eval_every=10 | completed | val_error=" in proc.stderr + proc.stdout


def seed_one_article_test_error() -> float:
    """The weight-decay article's script for its undecayed net, verbatim in what it computes."""
    torch.manual_seed(1)
    train_x = torch.linspace(-1, 1, 10).unsqueeze_(1)
    train_y = 1.5 * train_x + torch.normal(0, 0.5, size=train_x.size())
    test_x = torch.linspace(-1, 1, 10).unsqueeze_(1)
    test_y = 1.5 * test_x + torch.normal(0, 0.3, size=test_x.size())
    net = nn.Sequential(nn.Linear(1, 200), nn.ReLU(), nn.Linear(200, 200), nn.ReLU(),
                        nn.Linear(200, 200), nn.ReLU(), nn.Linear(200, 1))
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    for _ in range(2000):
        opt.zero_grad()
        nn.functional.mse_loss(net(train_x), train_y).backward()
        opt.step()
    with torch.no_grad():
        return nn.functional.mse_loss(net(test_x), test_y).item()


def test_seed_regression_shows_what_seed_one_reported(tmp_path_factory):
    # python -m wdsweep -m experiment=seed_regression seed=1,2 (shared with test_analysis.py)
    sweep = shared_sweep(tmp_path_factory, "seed_regression", SEED_REGRESSION_SWEEP)
    runs = [read_metrics(job) for job in job_dirs(sweep)]
    assert len(runs) == 4 and all(r["status"] == "completed" for r in runs)
    by_reg = {"none": [], "global": []}
    for r in runs:
        by_reg["none" if r["config"]["reg"]["lam"] == 0 else "global"].append(r)
    mean = lambda reg, key: sum(r[key] for r in by_reg[reg]) / len(by_reg[reg])  # noqa: E731
    assert mean("global", "test_error") < mean("none", "test_error")
    assert mean("global", "weight_norm") < 0.5 * mean("none", "weight_norm")
    assert mean("global", "train_loss") > mean("none", "train_loss")  # decay trades fit for norm
    # the weight-decay article's undecayed net, bit for bit: same data, same init, same updates
    (seed1_plain,) = [r for r in by_reg["none"] if r["seed"] == 1]
    assert seed1_plain["test_error"] == pytest.approx(seed_one_article_test_error(), rel=1e-6)


@pytest.mark.parametrize("args,needles", [
    # Several bad values at once: each is named, all in the one line (one process start for
    # four checks; each value alone is checked in-process in test_config.py).
    (["reg.lam=-1", "reg.p=0", "reg.mode=sideways", "reg.scope=biases"],
     ["reg.lam=-1.0 is not allowed", "reg.p=0.0 is not allowed",
      "reg.mode='sideways' is not allowed: one of coupled, decoupled, proximal",
      "reg.scope='biases' is not allowed: one of weights, all"]),
    (["reg.mode=proximal", "reg.p=3"], ["reg.p=3.0 is not allowed: 1 or 2 with reg.mode=proximal"]),
    (["data=csv", "data.path=missing.csv", "data.target=y"], ["data.path='missing.csv' is not allowed"]),
    (["-m", "reg.p=1,2,-1"], ["reg.p=-1.0 is not allowed"]),
])
def test_bad_input_exits_with_one_line_and_writes_nothing(tmp_path, args, needles):
    proc = run_cli(args, cwd=tmp_path)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wdsweep: invalid config: "), lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert list(tmp_path.iterdir()) == []  # no outputs/, no multirun/, no result file


def test_same_config_twice_gives_identical_metrics(tmp_path):
    args = ["data=digits", "data.n_train=100", "model.depth=1", "model.width=32",
            "trainer.batch_size=16", "trainer.steps=60", "trainer.eval_every=20", "seed=7"]
    results = []
    for name in ("first", "second"):
        proc = run_wdsweep([*args, f"hydra.run.dir={name}"], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        results.append(read_metrics(tmp_path / name))
    timing = {"train_seconds", "eval_seconds", "started_at", "finished_at", "overrides", "run_id", "throughput"}
    first, second = ({k: v for k, v in r.items() if k not in timing} for r in results)
    assert first == second
    assert history_without_seconds(tmp_path / "first") == history_without_seconds(tmp_path / "second")


def test_diverged_and_failed_jobs_do_not_stop_the_sweep_but_fail_its_exit_status(tmp_path):
    # width 20000 under a 3 GB address space: a real allocation failure after validation.
    proc = run_cli(["-m", "model.depth=2", "model.width=20000,16", "optimizer.lr=1e4,0.01",
                    "trainer.steps=40", "trainer.eval_every=10"], cwd=tmp_path, address_space=SMALL_ADDRESS_SPACE)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("wdsweep: 2 of 4 jobs failed") and last.count("model.width=20000") == 2
    runs = {(r["config"]["model"]["width"], r["config"]["optimizer"]["lr"]): r
            for r in map(read_metrics, job_dirs(tmp_path / "multirun"))}
    assert len(runs) == 4
    for lr in (1e4, 0.01):
        failed = runs[(20000, lr)]
        assert failed["status"] == "failed" and "RuntimeError" in failed["error"]
        assert failed["objective"] is None
    diverged = runs[(16, 1e4)]
    assert diverged["status"] == "diverged" and 1 <= diverged["diverged_at_step"] <= 40
    assert diverged["objective"] is None and diverged["steps"] < 40
    assert runs[(16, 0.01)]["status"] == "completed" and math.isfinite(runs[(16, 0.01)]["objective"])


def test_a_failed_single_run_exits_non_zero_and_records_why(tmp_path):
    proc = run_cli([*BIG_MODEL, "hydra.run.dir=job"], cwd=tmp_path, address_space=SMALL_ADDRESS_SPACE)
    assert proc.returncode != 0
    metrics = read_metrics(tmp_path / "job")
    assert metrics["status"] == "failed" and "allocate" in metrics["error"]


def test_a_relative_data_path_is_the_users_even_when_hydra_changes_into_the_job_folder(tmp_path):
    rows = "".join(f"{i / 10},{i / 5}\n" for i in range(60))
    (tmp_path / "mine.csv").write_text("x,y\n" + rows)
    proc = run_wdsweep(["-m", "data=csv", "data.path=mine.csv", "data.target=y", "hydra.job.chdir=true",
                    "seed=0", *FAST], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (job,) = job_dirs(tmp_path / "multirun")
    assert read_metrics(job)["status"] == "completed"
