"""Your data: loaders by `_target_` on files the tests write (arrays, PNG images), a user's
own loader returning torch Datasets, and one line for what cannot be loaded."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wdsweep.train.data import build_splits

from conftest import read_metrics, run_cli, run_wdsweep


def write_images(root: Path, sizes=None, classes=("cat", "dog"), n=(12, 4)) -> None:
    """Class folders of small PNGs whose brightness depends on the class (learnable)."""
    rng = np.random.default_rng(0)
    for split, count in zip(("train", "test"), n):
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                h, w = (sizes or {}).get((split, name, i), (10, 12))
                pixels = (rng.random((h, w, 3)) * 120 + 100 * label).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")


def test_npz_val_is_carved_from_train_by_the_seed_never_from_test(compose_cfg, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(250, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    np.savez(tmp_path / "a.npz", x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:])
    cfg = compose_cfg(["data=npz", f"data.path={tmp_path / 'a.npz'}", "data.standardize=false"])
    splits = {seed: build_splits(cfg.data, seed, torch.Generator()) for seed in (0, 1)}
    s = splits[0]
    assert (len(s.y["train"]), len(s.y["val"]), len(s.y["test"])) == (180, 20, 50)
    assert s.task == "classification" and s.n_outputs == 2 and s.n_features == 4
    torch.testing.assert_close(s.inputs("test"), torch.from_numpy(x[200:]))  # the test split as given
    rows = lambda t: {tuple(r) for r in t.numpy().round(6)}  # noqa: E731
    assert rows(s.inputs("train")) | rows(s.inputs("val")) == rows(torch.from_numpy(x[:200]))
    assert rows(s.inputs("val")) != rows(splits[1].inputs("val"))  # another seed, another validation draw


def test_npz_folder_with_its_own_val_and_regression_targets(compose_cfg, tmp_path):
    rng = np.random.default_rng(2)
    for split, n in (("train", 60), ("val", 20), ("test", 30)):
        x = rng.normal(size=(n, 3))
        np.savez(tmp_path / f"{split}.npz", x=x, y=x @ [1.0, -2.0, 0.5])
    cfg = compose_cfg(["data=npz", f"data.path={tmp_path}"])
    s = build_splits(cfg.data, 0, torch.Generator())
    assert s.task == "regression" and s.n_outputs == 1 and len(s.y["val"]) == 20
    assert s.y["train"].shape == (60, 1)
    # standardized by the training split's statistics only, per batch: the stored rows stay float64
    assert s.raw("train").dtype == torch.float64
    assert s.inputs("train").mean(0).abs().max() < 1e-5 and s.inputs("val").mean(0).abs().max() > 1e-3


def test_image_folder_reads_classes_channels_first_and_trains_a_resnet(compose_cfg, tmp_path):
    write_images(tmp_path / "img")
    cfg = compose_cfg(["data=image_folder", f"data.root={tmp_path / 'img'}", "data.val_fraction=0.25"])
    s = build_splits(cfg.data, 0, torch.Generator())
    assert s.image_shape == (3, 10, 12) and s.n_features == 360 and s.n_outputs == 2
    assert (len(s.y["train"]), len(s.y["val"]), len(s.y["test"])) == (18, 6, 8)
    assert sorted(s.y["test"].tolist()) == [0] * 4 + [1] * 4
    # The pixels stay uint8, as the files hold them, channels first, decoded as they are read.
    assert s.raw("train").dtype == torch.uint8 and s.raw("test").shape == (8, 360)
    first_cat = np.asarray(Image.open(tmp_path / "img" / "test" / "cat" / "0.png")).transpose(2, 0, 1)
    np.testing.assert_array_equal(s.raw("test")[0].numpy(), first_cat.ravel())
    # The model's inputs: standardized per channel by the training split's statistics
    # (numpy in float64 as the reference).
    train = s.raw("train").numpy().reshape(-1, 3, 120).astype(np.float64)
    mean, std = train.mean(axis=(0, 2)), train.std(axis=(0, 2))
    for split in ("train", "test"):
        pixels = s.raw(split).numpy().reshape(-1, 3, 120).astype(np.float64)
        expected = ((pixels - mean[:, None]) / std[:, None]).reshape(len(pixels), -1)
        np.testing.assert_allclose(s.inputs(split).numpy(), expected, rtol=1e-5, atol=1e-5)
    raw = build_splits(compose_cfg(["data=image_folder", f"data.root={tmp_path / 'img'}",
                                    "data.standardize=false"]).data, 0, torch.Generator())
    np.testing.assert_allclose(raw.inputs("test").numpy(), s.raw("test").numpy() / 255.0, rtol=1e-6)
    grey = build_splits(compose_cfg(["data=image_folder", f"data.root={tmp_path / 'img'}", "data.mode=L",
                                     "data.size=[8,8]"]).data, 0, torch.Generator())
    assert grey.image_shape == (1, 8, 8)

    from wdsweep.jobs.run import run
    run(compose_cfg(["data=image_folder", f"data.root={tmp_path / 'img'}", "model=resnet",
                     "trainer.steps=4", "trainer.eval_every=2"]), tmp_path / "job")
    assert read_metrics(tmp_path / "job")["status"] == "completed"


USER_LOADER = '''
import torch
from torch.utils.data import TensorDataset


def load(n_train, seed):
    g = torch.Generator().manual_seed(seed)
    def split(n):
        x = torch.randn(n, 6, generator=g)
        return TensorDataset(x, (x.sum(1) > 0).long())
    return {"train": split(n_train), "val": split(40), "test": split(40)}


def bad(n_train):
    return [1, 2, 3]
'''


@pytest.mark.integration
def test_a_users_loader_from_their_own_folder(tmp_path):
    (tmp_path / "myloader.py").write_text(USER_LOADER)
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "data" / "mydata.yaml").write_text("_target_: myloader.load\nn_train: 120\n")
    proc = run_wdsweep(["--config-dir", "conf", "-m", "data=mydata", "seed=0,1", "trainer.steps=30",
                    "trainer.eval_every=10", "hydra.sweep.dir=sweep"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    records = [read_metrics(d) for d in sorted((tmp_path / "sweep").iterdir()) if (d / "metrics.json").exists()]
    assert len(records) == 2 and all(r["status"] == "completed" for r in records)
    assert records[0]["data_sizes"] == {"train": 120, "val": 40, "test": 40}
    assert records[0]["val_error"] != records[1]["val_error"]  # the loader got each job's seed


def test_a_users_loader_that_returns_no_splits_is_one_line(tmp_path, monkeypatch):
    """Checked in-process (the command line's one line for a loader's problem is the image
    folder's below)."""
    from hydra import compose, initialize_config_dir

    from wdsweep.app import CONFIG_DIR
    from wdsweep.config.validation import ConfigError, validate

    (tmp_path / "myloader.py").write_text(USER_LOADER)
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "data" / "baddata.yaml").write_text("_target_: myloader.bad\nn_train: 120\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # as `python -m wdsweep` in tmp_path has it
    monkeypatch.delitem(sys.modules, "myloader", raising=False)
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[
                f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "data=baddata", "trainer.steps=5"])
        with pytest.raises(ConfigError) as info:
            validate(cfg)
    finally:
        sys.modules.pop("myloader", None)
    line = str(info.value)
    assert "\n" not in line and line.startswith("invalid config: "), line
    assert "data._target_='myloader.bad' is not allowed" in line and "train, val and test" in line


def images_without_a_test_folder(root: Path) -> None:
    write_images(root)
    for f in (root / "test").rglob("*.png"):
        os.remove(f)
    for d in sorted((root / "test").rglob("*"), reverse=True):
        d.rmdir()
    (root / "test").rmdir()


@pytest.mark.integration
def test_an_image_folder_problem_is_one_line(tmp_path):
    root = tmp_path / "img"
    write_images(root, sizes={("train", "dog", 3): (9, 12)})
    proc = run_cli(["data=image_folder", f"data.root={root}", "trainer.steps=2"], cwd=tmp_path)
    assert proc.returncode != 0
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("wdsweep: invalid config: data._target_=")
    assert "pixels, not 10x12 like the first image (set data.size)" in line
    assert not (tmp_path / "outputs").exists()


def test_an_image_folder_without_test_images_is_refused_in_one_line(compose_cfg, tmp_path):
    """The same check as above, in-process (the command line's one line is tested there)."""
    from wdsweep.config.validation import ConfigError, validate

    images_without_a_test_folder(tmp_path / "img")
    with pytest.raises(ConfigError) as info:
        validate(compose_cfg(["data=image_folder", f"data.root={tmp_path / 'img'}", "trainer.steps=2"]))
    line = str(info.value)
    assert line.startswith("invalid config: data._target_=") and "\n" not in line, line
    assert "needs train/ and test/ folders" in line


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_large_split_is_evaluated_in_chunks_to_the_same_numbers(task):
    """Past EVAL_ROWS rows a split is evaluated chunk by chunk; the loss and error are those
    of one pass over the whole split (torch's own mean), to float rounding."""
    from torch.nn import functional as F

    from wdsweep.train.data import Splits
    from wdsweep.train.regularizers import Regularizer
    from wdsweep.train.training import EVAL_ROWS, evaluate

    torch.manual_seed(0)
    n = 2 * EVAL_ROWS + 123
    x = torch.randn(n, 5)
    y = (x[:, 0] > 0).long() if task == "classification" else x[:, :1] * 2
    outputs = 2 if task == "classification" else 1
    splits = Splits(task=task, x={s: x for s in ("train", "val", "test")},
                    y={s: y for s in ("train", "val", "test")}, n_features=5, n_outputs=outputs)
    net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, outputs))
    row = evaluate(net, splits, Regularizer(net, lam=0.0, p=2, mode="coupled", scope="weights",
                                            optimizer="sgd"))
    with torch.no_grad():
        out = net(x)
        loss = (F.cross_entropy(out, y) if task == "classification" else F.mse_loss(out, y)).item()
        error = (out.argmax(1) != y).float().mean().item() if task == "classification" else loss
    assert row["test_loss"] == pytest.approx(loss, rel=1e-5)
    assert row["test_error"] == pytest.approx(error, rel=1e-6)


def test_npz_with_inf_is_refused_naming_the_loader_and_the_split(compose_cfg, tmp_path):
    from wdsweep.config.validation import ConfigError, validate

    x = np.ones((40, 3))
    x[5, 1] = np.inf
    np.savez(tmp_path / "bad.npz", x_train=np.ones((40, 3)), y_train=np.arange(40) % 2,
             x_test=x, y_test=np.arange(40) % 2)
    with pytest.raises(ConfigError) as info:
        validate(compose_cfg(["data=npz", f"data.path={tmp_path / 'bad.npz'}"]))
    assert "data._target_='wdsweep.datasets.npz' is not allowed" in str(info.value)
    assert "test: inputs hold inf or NaN" in str(info.value)


def test_augmentation_is_a_reflect_padded_crop_and_a_flip_of_each_image(compose_cfg):
    cfg = compose_cfg(["data=digits", "data.augment=true", "data.crop_padding=2", "data.flip=true"])
    s = build_splits(cfg.data, 0, torch.Generator())
    x = s.inputs("train")[:300]
    out = s.augment(x, torch.Generator().manual_seed(0)).numpy()
    images, pad = x.numpy().reshape(-1, 8, 8), 2
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")  # numpy's own reflect
    seen_offsets, flips = set(), 0
    for i, image in enumerate(out.reshape(-1, 8, 8)):
        matches = [(top, left, flip) for top in range(2 * pad + 1) for left in range(2 * pad + 1)
                   for flip in (False, True)
                   if np.array_equal(image, (padded[i, :, ::-1] if flip else padded[i])[top:top + 8, left:left + 8])]
        assert matches, f"image {i} is no crop of its padded (or mirrored) self"
        seen_offsets.add(matches[0][:2])
        flips += matches[0][2]
    assert len(seen_offsets) == (2 * pad + 1) ** 2  # every offset is drawn
    assert 100 < flips < 200  # about half are mirrored (300 images: 5 sigma is +-43)
    again = s.augment(x, torch.Generator().manual_seed(0)).numpy()
    np.testing.assert_array_equal(out, again)  # the job's seed gives the same draws
    assert not np.array_equal(out, s.augment(x, torch.Generator().manual_seed(1)).numpy())


@pytest.mark.parametrize("overrides, needle", [
    (["data=npz", "data.augment=true"], "data.augment=true needs image data"),
    (["data=digits", "data.augment=true", "data.crop_padding=8"], "data.crop_padding=8 is not allowed"),
])
def test_augmentation_that_cannot_apply_is_refused_in_one_line(compose_cfg, tmp_path, overrides, needle):
    from wdsweep.config.validation import ConfigError, validate

    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    np.savez(tmp_path / "t.npz", x_train=x[:30], y_train=(x[:30, 0] > 0).astype(np.int64),
             x_test=x[30:], y_test=(x[30:, 0] > 0).astype(np.int64))
    with pytest.raises(ConfigError) as info:
        validate(compose_cfg([*overrides, f"data.path={tmp_path / 't.npz'}"] if "data=npz" in overrides
                             else overrides))
    assert needle in str(info.value) and "\n" not in str(info.value)


def _torchvision_imports() -> bool:
    try:
        import torchvision.datasets  # noqa: F401
    except Exception:  # noqa: BLE001 - absent, or a wheel built for another torch (as PyPI's is here)
        return False
    return True


@pytest.mark.skipif(_torchvision_imports(), reason="torchvision imports here: the loader test runs instead")
def test_data_torchvision_without_a_working_torchvision_is_one_line(compose_cfg):
    from wdsweep.config.validation import ConfigError, validate

    with pytest.raises(ConfigError) as info:
        validate(compose_cfg(["data=torchvision", "data.name=MNIST"]))
    assert "data=torchvision needs torchvision built for this torch" in str(info.value)
    assert "\n" not in str(info.value)


def write_mnist_idx(raw: Path, n_train: int = 60, n_test: int = 20) -> np.ndarray:
    """MNIST's own IDX files (big-endian magic, sizes, then bytes), as torchvision reads them."""
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n, dtype=np.uint8) % 3
        images = (rng.random((n, 28, 28)) * 60 + labels[:, None, None] * 60).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            np.array([2051, n, 28, 28], ">i4").tobytes() + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(np.array([2049, n], ">i4").tobytes() + labels.tobytes())
    return images


@pytest.mark.skipif(not _torchvision_imports(), reason="no torchvision built for this torch (PyPI's wheel "
                    "links CUDA's torch libraries): see the docs' config groups, data=torchvision")
def test_data_torchvision_reads_mnist_files_and_carves_val_from_train(compose_cfg, tmp_path):
    test_images = write_mnist_idx(tmp_path / "MNIST" / "raw")
    cfg = compose_cfg(["data=torchvision", "data.name=MNIST", f"data.root={tmp_path}", "data.val_fraction=0.25"])
    s = build_splits(cfg.data, 0, torch.Generator())
    assert (len(s.y["train"]), len(s.y["val"]), len(s.y["test"])) == (45, 15, 20)
    assert s.image_shape == (1, 28, 28) and s.raw("test").dtype == torch.uint8 and s.n_outputs == 3
    np.testing.assert_array_equal(s.raw("test").numpy(), test_images.reshape(20, -1))  # the test set as given
