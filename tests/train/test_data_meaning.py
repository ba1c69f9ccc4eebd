"""Data whose meaning would silently change is read right or refused in one line naming the file
or the key: hidden folders are no classes, 16-bit images are not clipped to a constant, a lone
y_val or channels-last images are refused, labels are shaped and counted as classes, the task is
inferred (and said) or asked for, huge csv features keep their spread, and a model that changes
its input in place cannot change the data. Checks look at the model in both modes."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from wdsweep.config.validation import ConfigError, validate
from wdsweep.jobs.run import run
from wdsweep.train.data import build_splits

from conftest import history_without_seconds, read_metrics


def images(root: Path, classes=("cat", "dog"), n=4, mode="RGB", dtype=np.uint8, scale=200, suffix=".png"):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label, name in enumerate(classes):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                shape = (6, 6, 3) if mode == "RGB" else (6, 6)
                pixels = (rng.random(shape) * scale + 10 * label).astype(dtype)
                Image.fromarray(pixels).save(root / split / name / f"{i}{suffix}")  # uint16, 2-D: Pillow's I;16


def splits(compose_cfg, *overrides):
    return build_splits(compose_cfg(list(overrides)).data, 0, torch.Generator())


def refused(compose_cfg, *overrides) -> str:
    with pytest.raises(ConfigError) as info:
        validate(compose_cfg(list(overrides)))
    text = str(info.value)
    assert "\n" not in text
    return text


def test_a_hidden_folder_is_no_class(compose_cfg, tmp_path):
    images(tmp_path / "img")
    (tmp_path / "img" / "train" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "img" / "test" / ".ipynb_checkpoints").mkdir()
    s = splits(compose_cfg, "data=image_folder", f"data.root={tmp_path / 'img'}", "data.val_fraction=0.25")
    assert s.n_outputs == 2


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_a_16_bit_image_is_refused_not_clipped_to_a_constant(compose_cfg, tmp_path, suffix):
    images(tmp_path / "img", mode="I;16", dtype=np.uint16, scale=60000, suffix=suffix)
    text = refused(compose_cfg, "data=image_folder", f"data.root={tmp_path / 'img'}")
    assert f"0{suffix}: a 16-bit image (Pillow mode I;16" in text and "clipped to a constant" in text


def test_a_lone_y_val_and_channels_last_images_are_refused(compose_cfg, tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)).astype(np.float32), rng.integers(0, 2, 40)
    np.savez(tmp_path / "lone.npz", x_train=x, y_train=y, x_test=x, y_test=y, y_val=y[:10])
    assert "holds y_val but no x_val" in refused(compose_cfg, "data=npz", f"data.path={tmp_path / 'lone.npz'}")
    nhwc = rng.integers(0, 255, (40, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "nhwc.npz", x_train=nhwc, y_train=y, x_test=nhwc, y_test=y)
    assert "are channels last (N, H, W, C)" in refused(compose_cfg, "data=npz", f"data.path={tmp_path / 'nhwc.npz'}")


def test_labels_are_shaped_counted_and_their_task_inferred_or_asked_for(compose_cfg, tmp_path, caplog):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    base = {"x_train": x, "x_test": x}

    def npz(name, y):
        np.savez(tmp_path / name, y_train=y, y_test=y, **base)
        return ["data=npz", f"data.path={tmp_path / name}"]

    sparse = npz("sparse.npz", np.where(x[:, 0] > 0, 1_000_000, 0))
    assert "2 distinct values up to 1000000" in refused(compose_cfg, *sparse)
    column = splits(compose_cfg, *npz("column.npz", (x[:, :1] > 0).astype(np.int64)))  # (n, 1)
    assert column.task == "classification" and column.y["train"].shape == (54,) and column.n_outputs == 2
    with caplog.at_level(logging.INFO):
        flags = splits(compose_cfg, *npz("bool.npz", x[:, 0] > 0))
    assert flags.task == "classification" and "task=classification, from the training targets' dtype (bool)" \
        in caplog.text
    assert "could be classes or numbers" in refused(compose_cfg, *npz("floats.npz", (x[:, 0] > 0).astype(float)))
    assert splits(compose_cfg, *npz("given.npz", (x[:, 0] > 0).astype(float)), "data.task=regression").task \
        == "regression"


def test_a_csv_infers_its_task_and_keeps_the_spread_of_huge_features(compose_cfg, tmp_path, caplog):
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"a": rng.normal(size=80), "huge": rng.normal(size=80) * 1e20,
                          "label": rng.integers(0, 3, 80)})
    frame.to_csv(tmp_path / "d.csv", index=False)
    data = ["data=csv", f"data.path={tmp_path / 'd.csv'}", "data.target=label"]
    with caplog.at_level(logging.INFO):
        s = splits(compose_cfg, *data)
    assert s.task == "classification" and s.n_outputs == 3 and "data.task=classification" in caplog.text
    huge = s.inputs("train")[:, 1].numpy()
    assert np.isfinite(huge).all() and abs(huge.std() - 1) < 1e-3  # not all 0: float64 statistics
    frame.assign(label=(frame["a"] > 0).astype(float)).to_csv(tmp_path / "f.csv", index=False)
    assert "data.task=None is not allowed: classification or regression" in refused(
        compose_cfg, "data=csv", f"data.path={tmp_path / 'f.csv'}", "data.target=label")



def test_whole_number_float_labels_are_asked_for_alike_for_two_and_three_classes(compose_cfg, tmp_path):
    # float codes 0.0/1.0/2.0 once trained as regression (MSE on class codes) while 0.0/1.0 was refused
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 2)).astype(np.float32)
    codes = np.digitize(x[:, 0], [-0.5, 0.5]).astype(np.float64)  # 0.0, 1.0, 2.0
    np.savez(tmp_path / "f3.npz", x_train=x, y_train=codes, x_test=x, y_test=codes)
    assert "targets of only the whole numbers 0.0, 1.0, 2.0 (3 distinct float values) could be classes or numbers" \
        in refused(compose_cfg, "data=npz", f"data.path={tmp_path / 'f3.npz'}")
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "label": codes}).to_csv(tmp_path / "f3.csv", index=False)
    csv = ["data=csv", f"data.path={tmp_path / 'f3.csv'}", "data.target=label"]
    assert "holds only the whole numbers 0.0, 1.0, 2.0" in refused(compose_cfg, *csv)
    assert splits(compose_cfg, *csv, "data.task=classification").n_outputs == 3
    # many distinct whole numbers are numbers (counts): regression, as any other floats
    assert splits(compose_cfg, "data=csv", f"data.path={tmp_path / 'f3.csv'}", "data.target=a").task == "regression"
    counts = np.arange(60, dtype=np.float64)
    pd.DataFrame({"a": x[:, 0], "n": counts}).to_csv(tmp_path / "n.csv", index=False)
    assert splits(compose_cfg, "data=csv", f"data.path={tmp_path / 'n.csv'}", "data.target=n").task == "regression"


NETS = '''
import torch
from torch import nn


class Scales(nn.Module):
    """Changes its input in place, as `x /= 255` in a forward does."""
    def __init__(self, n_features, n_outputs):
        super().__init__()
        self.fc = nn.Linear(n_features, n_outputs)

    def forward(self, x):
        x.mul_(0.5)
        return self.fc(x)


class ScalesCopy(Scales):
    """The same arithmetic, on a copy."""
    def forward(self, x):
        x = x * 0.5
        return self.fc(x)


class Squeezes(nn.Module):
    """Right in training, (n,) in eval mode: against (n, 1) targets the MSE broadcasts to (n, n)."""
    def __init__(self, n_features, n_outputs):
        super().__init__()
        self.fc = nn.Linear(n_features, n_outputs)

    def forward(self, x):
        out = self.fc(x)
        return out if self.training else out.squeeze(1)
'''


@pytest.fixture
def nets(tmp_path, monkeypatch):
    """The user's module and their conf/model/<name>.yaml for each of its nets; the overrides that
    find them (as `--config-dir conf` does)."""
    (tmp_path / "mynets.py").write_text(NETS)
    (tmp_path / "conf" / "model").mkdir(parents=True)
    for name in ("Scales", "ScalesCopy", "Squeezes"):
        (tmp_path / "conf" / "model" / f"{name.lower()}.yaml").write_text(f"_target_: mynets.{name}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mynets", raising=False)
    return [f"hydra.searchpath=[file://{tmp_path / 'conf'}]"]


def test_a_forward_that_changes_its_input_in_place_cannot_change_the_data(compose_cfg, tmp_path, nets):
    """Full-batch training on a loader's float32 arrays (cached, shared by a sweep's jobs in one
    process): halving its input in place must train as halving a copy does, and leave the next
    job the data it had."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(80, 4)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=x @ [1.0, -1.0, 0.5, 2.0], x_test=x[:20], y_test=x[:20, 0])

    def job(target: str, name: str):
        cfg = compose_cfg([*nets, f"model={target.lower()}", "data=npz", f"data.path={tmp_path / 'd.npz'}",
                           "data.standardize=false", "trainer.steps=30", "trainer.eval_every=10",
                           "trainer.progress=false"])
        run(cfg, tmp_path / name)
        return history_without_seconds(tmp_path / name)

    in_place = job("Scales", "in_place")
    assert in_place == job("ScalesCopy", "copy")
    assert job("Scales", "again") == in_place  # the next job found the data as it was
    assert read_metrics(tmp_path / "in_place")["status"] == "completed"


def test_the_output_check_looks_at_eval_mode_too(compose_cfg, nets):
    text = refused(compose_cfg, *nets, "model=squeezes")
    assert "it gives (2,) for a batch of 2 in eval mode" in text


def test_a_module_that_replaces_a_buffer_runs_alone_with_the_reason(compose_cfg, nets, tmp_path):
    """A buffer replaced in the forward (self.count = self.count + 1) is lost from step to step in a
    batched model; such a module is not vectorized, and the log says why."""
    from conftest import run_wdsweep

    (tmp_path / "counting.py").write_text(NETS + '''

class Counts(nn.Module):
    def __init__(self, n_features, n_outputs):
        super().__init__()
        self.fc = nn.Linear(n_features, n_outputs)
        self.register_buffer("count", torch.zeros(()))

    def forward(self, x):
        if self.training:
            self.count = self.count + 1
        return self.fc(x) * (1 + 0 * self.count)
''')
    (tmp_path / "conf" / "model" / "counts.yaml").write_text("_target_: counting.Counts\n")
    sys.modules.pop("counting", None)
    proc = run_wdsweep(["--config-dir", "conf", "-m", "model=counts", "reg.lam=0.001,0.01", "trainer.steps=5",
                        "trainer.eval_every=5", "hydra/launcher=vectorized", "hydra.sweep.dir=S"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "runs alone" in proc.stdout + proc.stderr
    assert "buffer count is assigned (self.count = ... in Counts.forward, line " in proc.stdout + proc.stderr
