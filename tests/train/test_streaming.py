"""Data bigger than memory: batches read by DataLoader workers (data.num_workers) change no
number; a checkpoint taken while workers read ahead holds the batches trained; an image folder
is read as batches ask; no float32 copy of a memory-mapped set is made, validation included;
trainer.epochs stands in for trainer.steps."""
from __future__ import annotations

import copy
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wdsweep.config.validation import ConfigError, validate
from wdsweep.jobs.run import run
from wdsweep.train.data import build_splits
from wdsweep.train.rows import IndexedRows
from wdsweep.train.streaming import EVAL_ROWS

from conftest import PER_EXECUTION, history_without_seconds, read_metrics


def write_images(root: Path, n_train: int = 30, n_test: int = 9) -> None:
    rng = np.random.default_rng(0)
    for split, count in (("train", n_train), ("test", n_test)):
        for label, name in enumerate(("cat", "dog", "owl")):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray((rng.random((12, 12, 3)) * 120 + 60 * label).astype(np.uint8)).save(folder / f"{i}.png")


def write_npy_folder(root: Path, n_train: int, n_test: int, features: int, dtype=np.float64) -> dict:
    """A folder of .npy files without a val split (carved from train by index)."""
    rng = np.random.default_rng(1)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = (rng.normal(size=(n, features)) * 3 + 5).astype(dtype)
        arrays[split] = (x, (x[:, 0] > 5).astype(np.int64))
        np.save(root / f"x_{split}.npy", x)
        np.save(root / f"y_{split}.npy", arrays[split][1])
    return arrays


def outcome(job: Path) -> tuple:
    record = {k: v for k, v in read_metrics(job).items() if k not in PER_EXECUTION | {"overrides", "config"}}
    return record, history_without_seconds(job), (job / "model.pt").read_bytes()


@pytest.mark.parametrize("source", ["image folder, augmented", "memory-mapped npy, val carved, test > EVAL_ROWS"])
def test_workers_read_the_same_batches_so_no_number_changes(compose_cfg, tmp_path, source):
    if source.startswith("image"):
        write_images(tmp_path / "img")
        data = ["data=image_folder", f"data.root={tmp_path / 'img'}", "data.augment=true", "model=cnn",
                "model.channels=[4,8]", "model.hidden=16"]
    else:
        write_npy_folder(tmp_path / "arrays", n_train=400, n_test=EVAL_ROWS + 100, features=6)
        data = ["data=npz", f"data.path={tmp_path / 'arrays'}", "model.width=16"]
    common = [*data, "trainer.steps=12", "trainer.eval_every=5", "trainer.batch_size=16", "trainer.progress=false"]
    run(compose_cfg([*common, "data.num_workers=0"]), tmp_path / "here")
    run(compose_cfg([*common, "data.num_workers=2"]), tmp_path / "workers")
    here, workers = outcome(tmp_path / "here"), outcome(tmp_path / "workers")
    assert here[0]["status"] == "completed" and len(here[1]) == 4
    assert here == workers
    assert read_metrics(tmp_path / "workers")["config_hash"] == read_metrics(tmp_path / "here")["config_hash"]


class _StateAt:
    """The loop's checkpoint protocol (wdsweep.train.checkpoint.Checkpoints), kept in memory:
    continue from `start` (None: step 0) and keep the state of step `keep`."""

    def __init__(self, keep: int, start=None) -> None:
        self.keep, self.start, self.kept = keep, start, None

    def load(self):
        return self.start

    def after_step(self, step: int, state) -> None:
        if step == self.keep:
            self.kept = copy.deepcopy(state())  # as the file holds it: not the live tensors


def _fit(compose_cfg, folder: Path, workers: int, checkpoints=None):
    from wdsweep.jobs.run import seed_and_draw_data
    from wdsweep.train.models import build_model, data_info_of
    from wdsweep.train.optimizers import build_optimizer
    from wdsweep.train.regularizers import Regularizer
    from wdsweep.train.streaming import Loading
    from wdsweep.train.training import train

    cfg = compose_cfg(["data=npz", f"data.path={folder}", "model.width=16", "optimizer.schedule=cosine"])
    splits = seed_and_draw_data(cfg)
    model = build_model(cfg.model, data_info_of(splits))
    reg = Regularizer(model, lam=1e-3, p=1, mode="proximal", scope="weights", optimizer="sgd")
    optimizer, scheduler = build_optimizer(cfg.optimizer, reg.param_groups(), 20)
    reg.bind(optimizer)
    train(model, splits, optimizer, scheduler, reg, steps=20, batch_size=24, eval_every=10,
          generator=torch.Generator().manual_seed(3), checkpoints=checkpoints, loading=Loading(num_workers=workers))
    return model.state_dict()


def test_a_checkpoint_taken_while_workers_read_ahead_holds_the_batches_trained(compose_cfg, tmp_path):
    """The loader has drawn several batches past step 7 when step 7's checkpoint is taken; a run
    continued from it (here without workers) must draw step 8's batch next, not one after those."""
    write_npy_folder(tmp_path / "arrays", n_train=200, n_test=50, features=5)
    whole = _fit(compose_cfg, tmp_path / "arrays", workers=0)
    at_7 = _StateAt(keep=7)
    streamed = _fit(compose_cfg, tmp_path / "arrays", workers=2, checkpoints=at_7)
    continued = _fit(compose_cfg, tmp_path / "arrays", workers=0, checkpoints=_StateAt(keep=-1, start=at_7.kept))
    for key in whole:
        assert torch.equal(streamed[key], whole[key]) and torch.equal(continued[key], whole[key]), key


def test_an_image_folder_is_listed_not_loaded(compose_cfg, tmp_path):
    """The pixels are read when a batch asks: an image changed after the splits were built is read
    as it is now (a folder read up front would still hold the old one)."""
    write_images(tmp_path / "img")
    splits = build_splits(compose_cfg(["data=image_folder", f"data.root={tmp_path / 'img'}"]).data, 0,
                          torch.Generator())
    first_test = tmp_path / "img" / "test" / "cat" / "0.png"
    Image.fromarray(np.full((12, 12, 3), 7, dtype=np.uint8)).save(first_test)
    assert torch.equal(splits.raw("test", slice(0, 1)), torch.full((1, 3 * 12 * 12), 7, dtype=torch.uint8))
    assert isinstance(splits.x["train"], IndexedRows)  # val carved from train by index


def test_a_memory_mapped_set_is_never_copied_to_float32_validation_included(compose_cfg, tmp_path):
    """A float64 set of 60 MB: building, checking and reading a batch and an evaluation chunk of it
    allocate (numpy, as tracemalloc sees it) a small part of its float32 size (a pass over the
    set reads wdsweep.train.rows.SCAN_VALUES values at a time)."""
    arrays = write_npy_folder(tmp_path / "arrays", n_train=30000, n_test=200, features=256)
    float32_bytes = arrays["train"][0].size * 4
    cfg = compose_cfg(["data=npz", f"data.path={tmp_path / 'arrays'}", "trainer.batch_size=64"])
    # The same path once before, on another data seed (the caches hold each seed's splits): what
    # it imports for the first time in this process (sklearn, torch's modules) is not counted.
    warm = compose_cfg(["data=npz", f"data.path={tmp_path / 'arrays'}", "trainer.batch_size=64", "data.seed=1"])
    validate(warm)
    build_splits(warm.data, 1, torch.Generator()).inputs("train", torch.arange(64))
    tracemalloc.start()
    try:
        validate(cfg)
        splits = build_splits(cfg.data, 0, torch.Generator())
        batch = splits.inputs("train", torch.arange(64))
        chunk = splits.inputs("train", slice(0, EVAL_ROWS))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < float32_bytes / 4, f"{peak:,} bytes allocated for a set of {float32_bytes:,} float32 bytes"
    # and the per-batch standardization is the training split's, column by column
    train = np.asarray(splits.x["train"][np.arange(len(splits.x["train"]))], dtype=np.float64)
    expected = (train[:64] - train.mean(0)) / train.std(0)
    np.testing.assert_allclose(batch.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert batch.dtype == torch.float32 and chunk.shape == (EVAL_ROWS, 256)


def test_trainer_epochs_stands_in_for_trainer_steps(compose_cfg, tmp_path):
    cfg = compose_cfg(["trainer.epochs=3", "trainer.batch_size=64", "data=digits", "model.width=16",
                       "trainer.eval_every=1000", "optimizer.schedule=cosine", "optimizer.min_lr=0.001",
                       "trainer.progress=false"])
    run(cfg, tmp_path / "job")
    record = read_metrics(tmp_path / "job")
    n_train = record["data_sizes"]["train"]
    assert record["steps"] == record["steps_planned"] == math.ceil(3 * n_train / 64) != cfg.trainer.steps
    # the schedule spans those steps: cosine reaches min_lr at the last one
    assert float(history_without_seconds(tmp_path / "job")[-1]["lr"]) == pytest.approx(0.001)
    with pytest.raises(ConfigError, match=r"optimizer.warmup_steps=100 is not allowed: < the 21 steps "
                                          r"trainer.epochs=1 comes to on 1077 training rows"):
        validate(compose_cfg(["trainer.epochs=1", "trainer.batch_size=53", "data=digits",
                              "optimizer.warmup_steps=100"]))
