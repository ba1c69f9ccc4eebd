"""data=torchvision with CIFAR-10 and CIFAR-100 files in torchvision's own format, read without
torchvision: a small file set the test writes in that format (pickled dicts of uint8 rows) is
read back exactly, trains, and a file that is torn or asks the unpickler to run code is refused
in one line."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from conftest import read_metrics, run_wdsweep

pytestmark = pytest.mark.integration


def write_cifar(root: Path, hundred: bool = False, per_file: int = 30) -> dict:
    """CIFAR files as torchvision keeps them, with random images; returns what was written."""
    rng = np.random.default_rng(1)
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    names = (["train"], ["test"]) if hundred else ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"])
    written = {}
    for split, files in zip(("train", "test"), names):
        images, labels = [], []
        for name in files:
            data = rng.integers(0, 256, (per_file, 3072), dtype=np.uint8)
            target = [int(v) for v in rng.permutation(np.arange(per_file) % (100 if hundred else 10))]
            batch = {b"batch_label": name.encode(), b"data": data, b"filenames": [b"x.png"] * per_file}
            batch.update({b"fine_labels": target, b"coarse_labels": [t // 5 for t in target]} if hundred
                         else {b"labels": target})
            (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
            images.append(data.reshape(-1, 3, 32, 32))
            labels += target
        written[split] = (np.concatenate(images), np.array(labels))
    return written


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_files_are_read_exactly_without_torchvision(tmp_path, hundred):
    from wdsweep.datasets import torchvision

    written = write_cifar(tmp_path / "data", hundred, per_file=200 if hundred else 30)  # each class twice or more
    read = torchvision("CIFAR100" if hundred else "CIFAR10", root=str(tmp_path / "data"), val_fraction=0.5)
    x_test, y_test = read["test"]
    assert x_test.dtype == np.uint8 and np.array_equal(x_test, written["test"][0])
    assert np.array_equal(y_test, written["test"][1])
    x_train, y_train = read["train"]
    x_val, _ = read["val"]
    assert len(x_train) + len(x_val) == len(written["train"][0]) and read["image_shape"] == [3, 32, 32]
    # every training image is one the files hold, once
    pool = {bytes(row) for row in written["train"][0].reshape(len(written["train"][0]), -1)}
    got = [bytes(row) for row in np.concatenate([x_train, x_val]).reshape(len(pool), -1)]
    assert set(got) == pool and len(got) == len(pool)


def test_a_job_trains_on_cifar_files_without_torchvision(tmp_path):
    write_cifar(tmp_path / "data")
    proc = run_wdsweep(["data=torchvision", "data.name=CIFAR10", f"data.root={tmp_path / 'data'}", "model=cnn",
                        "trainer.steps=4", "trainer.eval_every=2", "trainer.batch_size=16", "hydra.run.dir=J"],
                       cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    record = read_metrics(tmp_path / "J")
    assert record["status"] == "completed" and record["data_sizes"] == {"train": 135, "val": 15, "test": 30}


@pytest.mark.parametrize("damage", ["torn", "code"])
def test_a_torn_or_code_running_cifar_file_is_one_line(tmp_path, damage):
    write_cifar(tmp_path / "data")
    bad = tmp_path / "data" / "cifar-10-batches-py" / "data_batch_3"
    if damage == "torn":
        bad.write_bytes(bad.read_bytes()[:500])
    else:
        class Boom:
            def __reduce__(self):
                return (os.system, ("touch " + str(tmp_path / "ran"),))

        bad.write_bytes(pickle.dumps({b"data": Boom(), b"labels": []}))
    proc = run_wdsweep(["data=torchvision", "data.name=CIFAR10", f"data.root={tmp_path / 'data'}", "model=cnn",
                        "trainer.steps=2"], cwd=tmp_path)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert f"{bad} is not a CIFAR10 file in torchvision's format" in line
    assert not (tmp_path / "ran").exists()
