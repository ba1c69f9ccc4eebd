"""Built-in and csv data sets, and `_target_` loaders (wdsweep.datasets), turned into
in-memory tensor splits (train / val / test).

Every set is small enough to live in memory as whole tensors, so training indexes tensors
directly instead of going through a DataLoader.

Seeding. `build_splits` takes the torch generator that regression1d draws its train and
test noise from. `run` hands it torch's global generator right after seeding it, before the
model is built: that is the weight-decay article's order (seed, draw data, build the net), so `seed=1` gives
the weight-decay article's data and its undecayed net bit for bit. The validation draw and all the sklearn
based splits use generators of their own, derived from the data seed, so they never shift
that stream.

Checking. `check_data` runs the loaders' own checks (csv columns, empty splits, digits'
n_train) for validation, without torch: torch is imported only where tensors are made.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Tuple

import numpy as np
from omegaconf import DictConfig, OmegaConf

from wdsweep.errors import ConfigError
from wdsweep.train.datasets import task_of_targets, undecided_targets, user_path
from wdsweep.train.splits import SPLITS, Splits, derived_seed  # noqa: F401 - also importable from here

if TYPE_CHECKING:
    import torch

# sklearn's bundled 8x8 digits; _digits checks that the file still holds this many.
DIGITS_SIZE = 1797


def build_splits(cfg: DictConfig, seed: int, generator: torch.Generator) -> Splits:
    """Build the splits of data set `cfg.name`. `seed` is the run's seed; cfg.seed overrides it."""
    import torch

    data_seed = _data_seed(cfg, seed)
    if "_target_" in cfg:
        splits = _from_target(cfg, data_seed)
    else:
        if cfg.seed is not None:
            generator = torch.Generator().manual_seed(data_seed)
        builders = {"regression1d": _regression1d, "digits": _digits, "moons": _moons, "csv": _csv}
        splits = builders[cfg.name](cfg, data_seed, generator)
    if cfg.get("augment"):
        from wdsweep.train.images import augment_of

        # A copy: the target loaders' splits are cached and shared by configs that differ here.
        splits = dataclasses.replace(splits, augment=augment_of(cfg, splits.image_shape))
    return splits


def data_info(cfg: DictConfig):
    """The shapes the model is told (wdsweep.models.DataInfo), without building tensors: known
    for the built-in sets, read from the file for a csv (cached per file and its mtime), from
    the loaded splits for a `_target_` (cached)."""
    from wdsweep.train.models import DataInfo, data_info_of

    if "_target_" in cfg:
        return data_info_of(target_splits(cfg))
    if cfg.name == "regression1d":
        return DataInfo(n_features=1, n_outputs=1, task="regression")
    if cfg.name == "digits":
        return DataInfo(n_features=64, n_outputs=10, task="classification", image_shape=(1, 8, 8))
    if cfg.name == "moons":
        return DataInfo(n_features=2, n_outputs=2, task="classification")
    arrays = _checked_csv(cfg, _data_seed(cfg, 0))
    return DataInfo(n_features=int(arrays.x.shape[1]), n_outputs=int(arrays.n_outputs), task=arrays.task)


def target_splits(cfg: DictConfig) -> Splits:
    """A `_target_` loader's splits for seed 0 (what validation checks), cached."""
    return _from_target(cfg, _data_seed(cfg, 0))


def _data_seed(cfg: DictConfig, seed: int) -> int:
    """The run's seed, unless data.seed fixes the data across seeds."""
    return seed if cfg.get("seed") is None else cfg.seed


def _checked_csv(cfg: DictConfig, data_seed: int) -> "_CsvArrays":
    """_csv_arrays, read once per file version and seed: validation asks for the row count
    (check_data) and for the shapes (data_info) of every job of a sweep."""
    stat = user_path(cfg.path).stat()
    return _csv_arrays_once(json.dumps(OmegaConf.to_container(cfg, resolve=True), sort_keys=True),
                            data_seed, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _csv_arrays_once(cfg_json: str, data_seed: int, mtime_ns: int, size: int) -> "_CsvArrays":
    return _csv_arrays(OmegaConf.create(json.loads(cfg_json)), data_seed)


def check_data(cfg: DictConfig, seed: int) -> int:
    """Raise ConfigError if the data cannot be built, else return the number of training rows.
    Used by validate before any training: the same checks as the loaders, without tensors."""
    data_seed = _data_seed(cfg, seed)
    if "_target_" in cfg:
        splits = _from_target(cfg, data_seed)
        _check_image_files(cfg, splits)
        return len(splits.y["train"])
    if cfg.name == "csv":
        return int((_checked_csv(cfg, data_seed).split == "train").sum())
    if cfg.name == "digits":
        sizes = digits_split_sizes(cfg.val_fraction, cfg.test_fraction)
        for key, split in (("data.val_fraction", "val"), ("data.test_fraction", "test")):
            if sizes[split] < 10:  # a stratified split needs a row of each of the 10 digits
                raise ConfigError(f"invalid config: {key}={cfg[key.split('.')[1]]!r} is not allowed: "
                                  f"a {split} split of at least 10 images (it gives {sizes[split]})")
        _check_digits_n_train(cfg.n_train, sizes["train"])
        return sizes["train"] if cfg.n_train is None else cfg.n_train
    return cfg.n_train  # regression1d and moons draw exactly n_train rows


def _check_image_files(cfg: DictConfig, splits: Splits) -> None:
    """Decode every image file of the splits once (wdsweep.train.rows.ImageFiles.check): a
    corrupt file is a ConfigError naming it, before any job, not a failed job at the batch that
    reads it. Validation only (once per process: it is cached); the loader itself lists the
    folder and reads headers."""
    from wdsweep.train.rows import check_sources
    from wdsweep.train.splits import DataProblem

    try:
        check_sources(list(splits.x.values()))
    except DataProblem as err:
        raise ConfigError(f"invalid config: data._target_={cfg._target_!r} is not allowed: a loader whose "
                          f"images decode ({err})") from None


def _from_target(cfg: DictConfig, data_seed: int) -> Splits:
    """A `_target_` loader's splits (wdsweep.datasets), cached per config and seed: a sweep's
    validation and its in-process jobs read the files once. A loader that fails is a
    ConfigError naming data._target_."""
    return _load_target(json.dumps(OmegaConf.to_container(cfg, resolve=True), sort_keys=True), data_seed)


@functools.lru_cache(maxsize=4)
def _load_target(cfg_json: str, data_seed: int) -> Splits:
    import random

    import torch

    from wdsweep.train.datasets import OWN_KEYS, load
    from wdsweep.train.targets import unknown_parameter

    cfg = OmegaConf.create(json.loads(cfg_json))
    unknown = unknown_parameter(cfg, "data", skip=OWN_KEYS)
    if unknown:
        raise ConfigError(f"invalid config: {unknown}")
    # A loader that draws from the global generators (np.random.rand, random.random, torch.randn)
    # gets them seeded from the data seed, as a job seeds them from its seed: its data are then a
    # function of the config and the seed, whichever process calls it (the sweep's validation, a
    # joblib worker, a job whose process has it cached). Its draws are undone after: the model's
    # init must not depend on whether the loader ran (a cache miss) or not.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            random.seed(data_seed)
            np.random.seed(data_seed % 2**32)
            torch.default_generator.manual_seed(data_seed)
            return load(cfg, data_seed)
    except Exception as err:  # noqa: BLE001 - the user's loader may raise anything
        text = " ".join(str(err).split())[:300]
        raise ConfigError(f"invalid config: data._target_={cfg._target_!r} is not allowed: a loader that "
                          f"returns train, val and test splits (see wdsweep.datasets) "
                          f"({type(err).__name__}: {text})") from None
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def _regression1d(cfg: DictConfig, data_seed: int, generator: torch.Generator) -> Splits:
    import torch

    def draw(n: int, noise: float, gen: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
        x = torch.linspace(cfg.x_min, cfg.x_max, n).unsqueeze(1)
        y = cfg.slope * x + torch.normal(0.0, noise, size=x.size(), generator=gen)
        return x, y

    # The weight-decay article's order exactly: train noise, then test noise, from the same stream.
    x_train, y_train = draw(cfg.n_train, cfg.train_noise, generator)
    x_test, y_test = draw(cfg.n_test, cfg.test_noise, generator)
    val_gen = torch.Generator().manual_seed(derived_seed(data_seed, "regression1d/val"))
    x_val, y_val = draw(cfg.n_val, cfg.val_noise, val_gen)
    return Splits(
        task="regression",
        x={"train": x_train, "val": x_val, "test": x_test},
        y={"train": y_train, "val": y_val, "test": y_test},
        n_features=1,
        n_outputs=1,
    )


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> Tuple[np.ndarray, np.ndarray]:
    """Parsed once per process: the jobs of a sweep share it (parsing costs ~0.3 s a job)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.data.astype(np.float32) / 16.0  # pixel intensities 0..16 -> [0, 1]
    y = digits.target.astype(np.int64)
    x.flags.writeable = y.flags.writeable = False  # shared between jobs: never changed in place
    return x, y


def _digits(cfg: DictConfig, data_seed: int, generator: torch.Generator) -> Splits:
    from sklearn.model_selection import train_test_split

    x, y = _digits_arrays()
    if len(y) != DIGITS_SIZE:  # digits_split_sizes, and so validation, assume it
        raise RuntimeError(f"scikit-learn's digits hold {len(y)} images, not {DIGITS_SIZE}")
    rest_x, x_test, rest_y, y_test = train_test_split(
        x, y, test_size=cfg.test_fraction, stratify=y,
        random_state=derived_seed(data_seed, "digits/test") % 2**32,
    )
    x_train, x_val, y_train, y_val = train_test_split(
        rest_x, rest_y, test_size=cfg.val_fraction / (1.0 - cfg.test_fraction), stratify=rest_y,
        random_state=derived_seed(data_seed, "digits/val") % 2**32,
    )
    _check_digits_n_train(cfg.n_train, len(y_train))
    if cfg.n_train is not None and cfg.n_train < len(y_train):
        x_train, _, y_train, _ = train_test_split(
            x_train, y_train, train_size=cfg.n_train, stratify=y_train,
            random_state=derived_seed(data_seed, "digits/n_train") % 2**32,
        )
    return _classification_splits(
        {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)},
        n_classes=10, image_shape=(1, 8, 8),
    )


def digits_split_sizes(val_fraction: float, test_fraction: float) -> dict:
    """The split sizes _digits gets from train_test_split, which rounds each held-out part up;
    validation checks data.n_train with them without loading the images (a test holds the
    two to agreement)."""
    n_test = math.ceil(test_fraction * DIGITS_SIZE)
    rest = DIGITS_SIZE - n_test
    n_val = math.ceil(val_fraction / (1.0 - test_fraction) * rest)
    return {"train": rest - n_val, "val": n_val, "test": n_test}


def _check_digits_n_train(n_train: int | None, n_split: int) -> None:
    # A stratified subsample leaves a remainder that needs every class too (or nothing).
    if n_train is not None and (n_train > n_split or 0 < n_split - n_train < 10):
        raise ConfigError(
            f"invalid config: data.n_train={n_train} is not allowed: at most the "
            f"{n_split} rows of the training split and not within 10 of it (or null for all)"
        )


def _moons(cfg: DictConfig, data_seed: int, generator: torch.Generator) -> Splits:
    from sklearn.datasets import make_moons

    arrays = {}
    for split in SPLITS:
        seed = derived_seed(data_seed, f"moons/{split}")
        x, y = make_moons(n_samples=cfg[f"n_{split}"], noise=cfg.noise, random_state=seed % 2**32)
        flip = np.random.default_rng(seed).random(len(y)) < cfg.label_noise
        y = np.where(flip, 1 - y, y)
        arrays[split] = (x.astype(np.float32), y.astype(np.int64))
    return _classification_splits(arrays, n_classes=2)


def _classification_splits(arrays: dict, n_classes: int, image_shape=None) -> Splits:
    import torch

    return Splits(
        task="classification",
        x={s: torch.from_numpy(np.ascontiguousarray(arrays[s][0])) for s in SPLITS},
        y={s: torch.from_numpy(np.ascontiguousarray(arrays[s][1])) for s in SPLITS},
        n_features=arrays["train"][0].shape[1],
        n_outputs=n_classes,
        image_shape=image_shape,
    )


@dataclass
class _CsvArrays:
    x: np.ndarray  # float32 (n, n_features), standardized on train statistics if asked
    y: np.ndarray  # float32 (n, 1) for regression, int64 (n,) class codes for classification
    split: np.ndarray  # "train" | "val" | "test" per row
    n_outputs: int
    task: str  # data.task, or what the target column says (see _csv_task)


def _csv(cfg: DictConfig, data_seed: int, generator: torch.Generator) -> Splits:
    import torch

    arrays = _csv_arrays(cfg, data_seed)
    return Splits(
        task=arrays.task,
        x={s: torch.from_numpy(np.ascontiguousarray(arrays.x[arrays.split == s], dtype=np.float32))
           for s in SPLITS},
        y={s: torch.from_numpy(np.ascontiguousarray(arrays.y[arrays.split == s])) for s in SPLITS},
        n_features=arrays.x.shape[1],
        n_outputs=arrays.n_outputs,
    )


def _csv_arrays(cfg: DictConfig, data_seed: int) -> _CsvArrays:
    """Read and check the file: every problem is a ConfigError naming the key and the file."""
    import pandas as pd

    path = user_path(cfg.path)

    def fail(key: str, value, allowed: str) -> ConfigError:
        return ConfigError(f"invalid config: {key}={value!r} is not allowed: {allowed} (file {path})")

    if not path.is_file():
        raise fail("data.path", cfg.path, "an existing csv file (not found)")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise fail("data.path", cfg.path, f"a readable csv file ({type(err).__name__}: {err})".replace("\n", " "))
    if cfg.target not in frame.columns:
        raise fail("data.target", cfg.target, "a column of the file: " + ", ".join(map(str, frame.columns)))

    feature_columns = [c for c in frame.columns if c not in (cfg.target, "split")]
    if not feature_columns:
        raise fail("data.path", cfg.path, "a file with at least one feature column besides the target")
    non_numeric = [str(c) for c in feature_columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise fail("data.path", cfg.path, "numeric feature columns only; non-numeric: " + ", ".join(non_numeric))
    with_gaps = [str(c) for c in [*feature_columns, cfg.target] if frame[c].isna().any()]
    if with_gaps:
        raise fail("data.path", cfg.path, "no missing values; missing in: " + ", ".join(with_gaps))

    task = _csv_task(frame[cfg.target], cfg, fail)
    numeric = [*feature_columns, *([cfg.target] if task == "regression" else [])]
    bad = _first_unrepresentable(frame, [c for c in numeric if pd.api.types.is_numeric_dtype(frame[c])])
    if bad:
        column, row, value = bad
        raise fail("data.path", cfg.path, "finite numbers within float32's range (|x| < 3.4e38); "
                   f"column {column} row {row} holds {value:g}")

    split = _csv_split_labels(frame, cfg, data_seed, fail)
    x_all = frame[feature_columns].to_numpy(dtype=np.float32)
    if task == "classification":
        # Labels may be any values; they become 0..K-1 in sorted order of the whole file.
        classes, codes = np.unique(frame[cfg.target].to_numpy(), return_inverse=True)
        y_all, n_outputs = codes.astype(np.int64), len(classes)
        if n_outputs < 2:
            raise fail("data.target", cfg.target, "a column with at least two classes for data.task=classification")
    else:
        if not pd.api.types.is_numeric_dtype(frame[cfg.target]):
            raise fail("data.target", cfg.target, "a numeric column for data.task=regression")
        y_all, n_outputs = frame[cfg.target].to_numpy(dtype=np.float32).reshape(-1, 1), 1

    if cfg.standardize:
        # Train statistics only, so nothing of val or test leaks into the features; in float64, so
        # that features up to float32's range keep a finite spread (squares of 1.9e19 overflow float32).
        train_x = x_all[split == "train"].astype(np.float64)
        mean, std = train_x.mean(axis=0), train_x.std(axis=0)
        x_all = ((x_all - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)
    return _CsvArrays(x=x_all, y=y_all, split=split, n_outputs=n_outputs, task=task)


def _csv_task(target, cfg: DictConfig, fail) -> str:
    """data.task, or the target column's: classification for integers, booleans and text, regression
    for other numbers. Whole-number floats with few distinct values (0.0/1.0, 0.0/1.0/2.0) could be either:
    refused until data.task says (datasets.task_of_targets, the same rule as a loader's arrays)."""
    import logging

    if cfg.task is not None:
        return cfg.task
    values = target.to_numpy()
    task = task_of_targets(values)
    if task is None:
        raise fail("data.task", None, "classification or regression: the target column "
                   f"{cfg.target!r} holds {undecided_targets(values)}, which could be either")
    logging.getLogger(__name__).info("data.task=%s, from the target column %r (its values are %s); set data.task "
                                     "to choose", task, cfg.target, "text" if values.dtype == object else values.dtype)
    return task


def _first_unrepresentable(frame, columns):
    """(column, row, value) of the first entry that is inf, -inf, or too large for float32
    (which the model trains in; 1e300 would become inf there), or None. Rows are counted as
    in the file, the header being row 1."""
    limit = float(np.finfo(np.float32).max)
    for column in columns:
        values = frame[column].to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~(np.abs(values) <= limit))  # also catches inf
        if bad.size:
            return str(column), int(bad[0]) + 2, float(values[bad[0]])
    return None


def _csv_split_labels(frame, cfg: DictConfig, data_seed: int, fail) -> np.ndarray:
    """The split of every row: the file's own `split` column, else a seeded random split."""
    n = len(frame)
    if "split" in frame.columns:
        labels = frame["split"].astype(str).str.strip().str.lower().to_numpy()
        unknown = sorted(set(labels) - set(SPLITS))
        if unknown:
            raise fail("data.path", str(cfg.path), "a split column holding only train, val, test; found "
                       + ", ".join(unknown))
    else:
        order = np.random.default_rng(derived_seed(data_seed, "csv/split")).permutation(n)
        n_test = int(round(cfg.test_fraction * n))
        n_val = int(round(cfg.val_fraction * n))
        labels = np.empty(n, dtype=object)
        labels[order[:n_test]] = "test"
        labels[order[n_test:n_test + n_val]] = "val"
        labels[order[n_test + n_val:]] = "train"
    empty = [s for s in SPLITS if not (labels == s).any()]
    if empty:
        raise fail("data.path", str(cfg.path), f"every split non-empty; {', '.join(empty)} has no rows "
                   f"({n} rows in the file)")
    return labels
