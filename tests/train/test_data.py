"""Data sets: the weight-decay article's generator exactly, seeded stratified splits, label noise, and csv files
with their own split column, a random split, standardization and clear errors."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from wdsweep.config.schema import CsvConfig, DigitsConfig, MoonsConfig, Regression1dConfig
from wdsweep.config.validation import ConfigError
from wdsweep.train.data import build_splits, check_data, digits_split_sizes


def splits_of(schema, seed: int = 0, **values):
    """The splits for a run seeded with `seed`; `values` set data keys (data_seed -> data.seed)."""
    if "data_seed" in values:
        values["seed"] = values.pop("data_seed")
    cfg = OmegaConf.merge(OmegaConf.structured(schema), values)
    return build_splits(cfg, seed, torch.manual_seed(seed))


def test_regression1d_is_seed_ones_generator():
    torch.manual_seed(1)  # the weight-decay article's gen_data, verbatim
    train_x = torch.linspace(-1, 1, 10).unsqueeze_(1)
    train_y = 1.5 * train_x + torch.normal(0, 0.5, size=train_x.size())
    test_x = torch.linspace(-1, 1, 10).unsqueeze_(1)
    test_y = 1.5 * test_x + torch.normal(0, 0.3, size=test_x.size())
    after_seed_one = torch.rand(3)  # the RNG state its MLP was built from

    splits = splits_of(Regression1dConfig, seed=1)
    assert torch.equal(splits.x["train"], train_x) and torch.equal(splits.y["train"], train_y)
    assert torch.equal(splits.x["test"], test_x) and torch.equal(splits.y["test"], test_y)
    assert torch.equal(torch.rand(3), after_seed_one)  # the validation draw did not shift it
    assert splits.y["val"].shape == (10, 1) and not torch.equal(splits.y["val"], test_y)


def test_regression1d_sizes_and_fixed_data_seed():
    splits = splits_of(Regression1dConfig, n_train=25, n_val=7, n_test=40)
    assert splits.sizes() == {"train": 25, "val": 7, "test": 40}
    a = splits_of(Regression1dConfig, seed=3, data_seed=11)
    b = splits_of(Regression1dConfig, seed=4, data_seed=11)
    assert torch.equal(a.y["train"], b.y["train"])
    assert not torch.equal(splits_of(Regression1dConfig, seed=3).y["train"],
                           splits_of(Regression1dConfig, seed=4).y["train"])


def test_digits_splits_are_stratified_seeded_and_subsampled():
    full = splits_of(DigitsConfig, seed=0)
    assert sum(full.sizes().values()) == 1797
    assert full.image_shape == (1, 8, 8) and full.n_outputs == 10
    for split in ("train", "val", "test"):
        counts = np.bincount(full.y[split].numpy(), minlength=10) / len(full.y[split])
        assert counts.min() > 0.08 and counts.max() < 0.12  # about 10% each: stratified
    small = splits_of(DigitsConfig, seed=0, n_train=100)
    assert small.sizes()["train"] == 100 and np.bincount(small.y["train"].numpy()).min() >= 9
    assert torch.equal(small.x["test"], full.x["test"])  # subsampling train leaves test alone
    again = splits_of(DigitsConfig, seed=0, n_train=100)
    other = splits_of(DigitsConfig, seed=1, n_train=100)
    assert torch.equal(small.x["train"], again.x["train"])
    assert not torch.equal(small.x["train"], other.x["train"])


def test_digits_n_train_larger_than_the_split_is_an_error():
    with pytest.raises(ConfigError, match=r"data.n_train=5000 .*at most the 1077 rows"):
        splits_of(DigitsConfig, n_train=5000)


def test_digits_n_train_just_below_the_split_is_an_error():
    # the stratified remainder would hold fewer rows than there are classes
    with pytest.raises(ConfigError, match=r"data.n_train=1070 .*not within 10 of it"):
        splits_of(DigitsConfig, n_train=1070)
    assert splits_of(DigitsConfig, n_train=1077).sizes()["train"] == 1077


@pytest.mark.parametrize("val,test", [(0.2, 0.2), (0.1, 0.3), (0.15, 0.25), (0.3333, 0.1), (0.05, 0.05)])
def test_digits_split_sizes_for_validation_are_the_loaders(val, test):
    # validation checks data.n_train with digits_split_sizes, never loading the images
    cfg = OmegaConf.merge(OmegaConf.structured(DigitsConfig), {"val_fraction": val, "test_fraction": test})
    assert digits_split_sizes(val, test) == splits_of(DigitsConfig, val_fraction=val, test_fraction=test).sizes()
    assert check_data(cfg, seed=0) == digits_split_sizes(val, test)["train"]


def test_a_digits_split_too_small_for_ten_classes_is_an_error():
    cfg = OmegaConf.merge(OmegaConf.structured(DigitsConfig), {"val_fraction": 0.003})
    with pytest.raises(ConfigError, match=r"data.val_fraction=0.003 is not allowed: a val split of at least 10"):
        check_data(cfg, seed=0)


def test_checking_data_needs_no_torch(tmp_path, frame):
    # Validation reads the csv before any training; torch (seconds to import) is not needed.
    frame.drop(columns="label").to_csv(tmp_path / "d.csv", index=False)
    code = ("import sys; from omegaconf import OmegaConf; from wdsweep.train.data import check_data; "
            f"n = check_data(OmegaConf.create({{'name': 'csv', 'path': {str(tmp_path / 'd.csv')!r}, "
            "'target': 'y', 'task': 'regression', 'standardize': True, 'val_fraction': 0.2, "
            "'test_fraction': 0.2, 'seed': None}), seed=0); "
            "print(n, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == [str(splits_of(CsvConfig, path=str(tmp_path / "d.csv"), target="y").sizes()["train"]),
                           "False"]


def test_moons_label_noise_flips_labels():
    clean = splits_of(MoonsConfig, seed=2, label_noise=0.0, n_test=4000)
    noisy = splits_of(MoonsConfig, seed=2, label_noise=0.2, n_test=4000)
    assert torch.equal(clean.x["test"], noisy.x["test"])
    flipped = (clean.y["test"] != noisy.y["test"]).float().mean().item()
    assert 0.17 < flipped < 0.23


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(5, 3, 60), "b": rng.normal(-2, 0.5, 60),
                         "label": rng.choice(["cat", "dog", "emu"], 60), "y": rng.normal(size=60)})


def csv_splits(tmp_path, frame, seed=0, **values):
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return splits_of(CsvConfig, seed=seed, path=str(path), **values)


def test_csv_split_column_is_used_as_given(tmp_path, frame):
    frame = frame.drop(columns="label").assign(split=["train"] * 40 + ["val"] * 5 + ["test"] * 15)
    splits = csv_splits(tmp_path, frame, target="y", standardize=False)
    assert splits.sizes() == {"train": 40, "val": 5, "test": 15}
    np.testing.assert_allclose(splits.x["test"].numpy(), frame[["a", "b"]].to_numpy()[45:], rtol=1e-6)


def test_csv_random_split_by_seed_and_train_standardization(tmp_path, frame):
    frame = frame.drop(columns="label")
    splits = csv_splits(tmp_path, frame, target="y", val_fraction=0.25, test_fraction=0.25)
    assert splits.sizes() == {"train": 30, "val": 15, "test": 15}
    np.testing.assert_allclose(splits.x["train"].mean(0).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(splits.x["train"].std(0, unbiased=False).numpy(), 1, atol=1e-5)
    assert abs(float(splits.x["test"].mean())) > 1e-3  # scaled with train statistics, not its own
    same = csv_splits(tmp_path, frame, target="y", val_fraction=0.25, test_fraction=0.25)
    other = csv_splits(tmp_path, frame, seed=5, target="y", val_fraction=0.25, test_fraction=0.25)
    assert torch.equal(splits.y["test"], same.y["test"])
    assert not torch.equal(splits.y["test"], other.y["test"])


def test_csv_classification_maps_labels(tmp_path, frame):
    splits = csv_splits(tmp_path, frame.drop(columns="y"), target="label", task="classification")
    assert splits.task == "classification" and splits.n_outputs == 3
    assert splits.y["train"].dtype == torch.int64 and set(splits.y["train"].tolist()) <= {0, 1, 2}


@pytest.mark.parametrize("change,values,message", [
    (lambda f: f, {"target": "nope"}, r"data.target='nope' .*a column of the file: a, b, label, y"),
    (lambda f: f, {"target": "y"}, r"numeric feature columns only; non-numeric: label"),
    (lambda f: f.drop(columns="label").assign(split=["train"] * 50 + ["test"] * 10), {"target": "y"},
     r"every split non-empty; val has no rows"),
    (lambda f: f.drop(columns="label").assign(split=["train"] * 50 + ["dev"] * 10), {"target": "y"},
     r"only train, val, test; found dev"),
    (lambda f: f.drop(columns="label").head(3), {"target": "y", "val_fraction": 0.1, "test_fraction": 0.1},
     r"every split non-empty; val, test has no rows"),
    (lambda f: f.drop(columns="label").assign(a=[np.nan] + [1.0] * 59), {"target": "y"},
     r"no missing values; missing in: a"),
    (lambda f: f.drop(columns="y"), {"target": "label", "task": "regression"},
     r"a numeric column for data.task=regression"),
])
def test_csv_errors_name_the_problem(tmp_path, frame, change, values, message):
    with pytest.raises(ConfigError, match=message):
        csv_splits(tmp_path, change(frame), **values)


def test_csv_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"data.path=.*an existing csv file"):
        splits_of(CsvConfig, path=str(tmp_path / "absent.csv"), target="y")
