"""Users' models and loaders that break wdsweep's contract are caught by the check, before any job
trains, in one line naming what is wrong: an output that is an int, a tuple, or of a fixed batch
size; Dataset items that are dicts; a corrupt image. Text class labels are coded as a csv's are,
and a loader that draws from numpy's global generator gets the same data in any process."""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from wdsweep.config.validation import ConfigError, validate
from wdsweep.train.data import build_splits

USER_MODULE = '''
"""A user's models and loaders, each breaking wdsweep's contract one way."""
import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset


class Good(nn.Module):
    def __init__(self, n_features, n_outputs):
        super().__init__()
        self.fc = nn.Linear(n_features, n_outputs)

    def forward(self, x):
        return self.fc(x)


class IntOut(Good):
    def forward(self, x):
        return self.fc(x).long()


class TupleOut(Good):
    def forward(self, x):
        out = self.fc(x)
        return out, out.detach()


class FixedBatch(Good):
    """Right for a batch of 2 only."""
    def forward(self, x):
        return self.fc(x)[:2].reshape(2, -1)


class Transposed(Good):
    """(outputs, batch): the right shape for a batch of 2 on two classes."""
    def forward(self, x):
        return self.fc(x).T


def text_labels(seed, task=None):
    rng = np.random.default_rng(seed)
    def split(n):
        x = rng.normal(size=(n, 3)).astype(np.float32)
        return x, np.where(x[:, 0] > 0, "cat", "dog")
    return {"train": split(40), "val": split(10), "test": split(10), **({"task": task} if task else {})}


def mixed_labels(seed):
    splits = text_labels(seed)
    x, y = splits["test"]
    splits["test"] = (x, (y == "dog").astype(np.int64))
    return splits


class DictItems(Dataset):
    def __init__(self, n):
        self.x = torch.randn(n, 3, generator=torch.Generator().manual_seed(n))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": int(self.x[i, 0] > 0)}


def dict_items():
    return {"train": DictItems(40), "val": DictItems(10), "test": DictItems(10)}


def global_draws(n_train=40):
    """No seed parameter: numpy's global generator, as many notebooks' loaders draw."""
    def split(n):
        x = np.random.rand(n, 3).astype(np.float32)
        return x, (x[:, 0] > 0.5).astype(np.int64)
    return {"train": split(n_train), "val": split(10), "test": split(10)}
'''

MODELS = ("Good", "IntOut", "TupleOut", "FixedBatch", "Transposed")
LOADERS = {"text_labels": "", "text_regression": "_target_: contracts_user.text_labels\ntask: regression\n",
           "mixed_labels": "", "dict_items": "", "global_draws": ""}


@pytest.fixture
def user(tmp_path, monkeypatch):
    """compose(*overrides) -> the job config of `--config-dir conf ...` in a folder holding the
    user's module and their conf/model and conf/data files, importable as `python -m wdsweep`
    makes its working folder."""
    (tmp_path / "contracts_user.py").write_text(USER_MODULE)
    for group in ("model", "data"):
        (tmp_path / "conf" / group).mkdir(parents=True)
    for name in MODELS:
        (tmp_path / "conf" / "model" / f"{name.lower()}.yaml").write_text(f"_target_: contracts_user.{name}\n")
    for name, text in LOADERS.items():
        (tmp_path / "conf" / "data" / f"{name}.yaml").write_text(text or f"_target_: contracts_user.{name}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "contracts_user", raising=False)
    from hydra import compose, initialize_config_dir

    from wdsweep.app import CONFIG_DIR

    def _compose(*overrides: str):
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose(config_name="config", overrides=[
                f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "trainer.steps=5", *overrides])

    yield _compose
    sys.modules.pop("contracts_user", None)


def refused(cfg) -> str:
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    line = str(info.value)
    assert line.startswith("invalid config: ") and "\n" not in line, line
    return line


@pytest.mark.parametrize("model, needles", [
    ("IntOut", ["outputs must be floating point", "it gives int64"]),
    ("TupleOut", ["an output of shape (batch, 2), one tensor", "it gives a tuple of 2 (Tensor, Tensor)"]),
    ("FixedBatch", ["an output of shape (batch, 2)", "it gives (2, 2) for a batch of 3"]),
    ("Transposed", ["an output of shape (batch, 2)", "it gives (2, 3) for a batch of 3"])])
def test_an_output_that_is_no_float_tensor_of_the_batchs_rows_is_refused(user, model, needles):
    validate(user("model=good", "data=moons"))  # the well-formed model beside them passes
    line = refused(user(f"model={model.lower()}", "data=moons"))
    assert f"model._target_='contracts_user.{model}' is not allowed" in line, line
    for needle in needles:
        assert needle in line, line


def test_text_class_labels_are_coded_in_sorted_order_as_a_csvs_are(user, tmp_path):
    validate(user("model=good", "data=text_labels"))
    splits = build_splits(user("data=text_labels", "+data.standardize=false").data, 0, torch.Generator())
    assert splits.task == "classification" and splits.n_outputs == 2
    for split in ("train", "val", "test"):  # 'cat' (x0 > 0) is 0, 'dog' 1
        np.testing.assert_array_equal(splits.y[split].numpy(), np.where(splits.raw(split).numpy()[:, 0] > 0, 0, 1))
    # A csv's text column: the same codes.
    x = np.random.default_rng(0).normal(size=(30, 2))
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "label": np.where(x[:, 0] > 0, "cat", "dog")}).to_csv(
        tmp_path / "t.csv", index=False)
    csv = build_splits(user("data=csv", f"data.path={tmp_path / 't.csv'}", "data.target=label",
                            "data.standardize=false").data, 0, torch.Generator())
    np.testing.assert_array_equal(csv.y["train"].numpy(), np.where(csv.raw("train").numpy()[:, 0] > 0, 0, 1))
    # An npz of text labels: coded alike, and its validation split carved stratified by class.
    y = np.where(x[:, 0] > 0, "cat", "dog")
    np.savez(tmp_path / "t.npz", x_train=x[:24], y_train=y[:24], x_test=x[24:], y_test=y[24:])
    npz = build_splits(user("data=npz", f"data.path={tmp_path / 't.npz'}", "data.val_fraction=0.25").data, 0,
                       torch.Generator())
    for code, name in enumerate(("cat", "dog")):
        assert abs(int((npz.y["val"] == code).sum()) - 0.25 * int((y[:24] == name).sum())) < 1
    # Text is no regression target, and text beside numbers cannot be matched to classes.
    line = refused(user("model=good", "data=text_regression"))
    assert "train: regression targets of dtype <U3 (such as 'cat'" in line and "numbers are needed" in line, line
    line = refused(user("model=good", "data=mixed_labels"))
    assert "class labels are text, test's are int64: give every split's labels alike" in line, line


def test_dataset_items_that_are_dicts_are_refused_naming_the_item(user):
    line = refused(user("model=good", "data=dict_items"))
    assert "data._target_='contracts_user.dict_items' is not allowed" in line
    assert "train: item 0 of the DictItems is a dict (keys 'x', 'y'); wdsweep reads (x, y) pairs" in line


def test_a_corrupt_image_is_refused_naming_the_file(compose_cfg, tmp_path):
    """Its header reads (its size is listed), its pixels do not: refused by the check, not by
    the first batch that draws it."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label, name in enumerate(("cat", "dog")):
            (tmp_path / "img" / split / name).mkdir(parents=True)
            for i in range(4):
                pixels = (rng.random((6, 6, 3)) * 200 + 10 * label).astype(np.uint8)
                Image.fromarray(pixels).save(tmp_path / "img" / split / name / f"{i}.png")
    torn = tmp_path / "img" / "train" / "dog" / "2.png"
    torn.write_bytes(torn.read_bytes()[:-40])
    line = refused(compose_cfg(["data=image_folder", f"data.root={tmp_path / 'img'}", "data.val_fraction=0.25",
                                "trainer.steps=2"]))
    assert "data._target_='wdsweep.datasets.image_folder' is not allowed: a loader whose images decode" in line
    assert f"{torn}: cannot be decoded as an image" in line and "truncated" in line, line


def test_a_loader_drawing_from_numpys_global_generator_gets_its_data_from_the_seed(user):
    """Whatever the global state when the loader runs (a joblib worker's, the sweep's after its
    validation, another job's): the data are those of the job's data seed, and the state is
    as it was after."""
    from wdsweep.train.data import _load_target

    cfg = user("model=good", "data=global_draws")

    def draw(seed: int, global_state: int) -> np.ndarray:
        _load_target.cache_clear()  # a process that has not loaded it yet
        np.random.seed(global_state)
        splits = build_splits(cfg.data, seed, torch.Generator())
        assert np.random.randint(2**31) == np.random.RandomState(global_state).randint(2**31)  # restored
        return splits.raw("train").numpy()

    np.testing.assert_array_equal(draw(0, 123), draw(0, 456))
    assert not np.array_equal(draw(0, 123), draw(1, 123))  # each seed its own data
    np.random.seed(1)  # what a job seeded 1 saw before this rule, when the loader ran in it
    seeded_job = np.random.rand(40, 3).astype(np.float32)
    np.testing.assert_array_equal(draw(1, 999), seeded_job)
