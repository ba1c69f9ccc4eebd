"""What a job leaves behind: atomic writes, the metrics.json contract, TensorBoard logs."""
from __future__ import annotations

import json
import math

import pytest

from wdsweep.jobs.run import run
from wdsweep.tracking.results import SCHEMA_VERSION, atomic_write, write_metrics

METRIC_KEYS = {"status", "objective", "objective_name", "train_loss", "val_loss", "val_error",
               "test_loss", "test_error", "reg_loss", "weight_norm", "sparsity", "train_seconds",
               "steps", "seed", "config", "config_hash", "schema_version", "diverged_at_step"}


def test_metrics_contract_for_a_classification_run(compose_cfg, tmp_path):
    cfg = compose_cfg(["data=moons", "model.depth=1", "model.width=16", "reg=l1_prox",
                       "reg.lam=0.03", "optimizer.lr=0.05", "trainer.steps=50", "trainer.eval_every=25",
                       "trainer.batch_size=32", "objective=val_loss"])
    objective = run(cfg, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    assert metrics["schema_version"] == SCHEMA_VERSION
    assert metrics["objective_name"] == "val_loss" and objective == metrics["val_loss"]
    assert 0 <= metrics["test_error"] <= 1 and metrics["test_error"] != metrics["test_loss"]
    assert 0 < metrics["sparsity"] < 1  # proximal L1 zeroed some weights exactly
    assert metrics["reg_loss"] > 0 and metrics["weight_norm"] > 0
    history = (tmp_path / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["0", "25", "50"]


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")

    def broken(f):
        f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left


def test_non_finite_metrics_become_null(tmp_path):
    write_metrics(tmp_path, {"val_error": math.nan, "nested": {"x": math.inf}, "ok": 1.5})
    assert json.loads((tmp_path / "metrics.json").read_text()) == {
        "val_error": None, "nested": {"x": None}, "ok": 1.5}


def test_tensorboard_logs_scalars_and_weight_and_grad_histograms(compose_cfg, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = compose_cfg(["logger=tensorboard", "logger.histogram_every=10", "model.depth=1",
                       "model.width=8", "trainer.steps=20", "trainer.eval_every=10"])
    run(cfg, tmp_path)
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"histograms": 0}).Reload()
    tags = events.Tags()
    assert {"weights/0.weight", "grads/0.weight", "weights/2.bias"} <= set(tags["histograms"])
    assert [e.step for e in events.Histograms("weights/0.weight")] == [10, 20]
    assert [e.step for e in events.Scalars("val/error")] == [0, 10, 20]
