"""data=npz without loading: .npy files and uncompressed .npz members are memory-mapped, equal to
what numpy's own loader reads, and a job's uint8 images stay the file's pages (the tensors the
job trains on share the mapped memory, no copy); a compressed member is read as before."""
from __future__ import annotations

import numpy as np
import pytest

from wdsweep.datasets import npz, to_splits
from wdsweep.train.mapped_arrays import map_npz

from conftest import read_metrics, run_wdsweep


def images(rng, n: int) -> np.ndarray:
    return rng.integers(0, 256, (n, 1, 8, 8), dtype=np.uint8)


def test_uncompressed_members_are_mapped_and_equal_numpys_reading(tmp_path):
    rng = np.random.default_rng(0)
    plain = {"x_train": images(rng, 300), "y_train": rng.integers(0, 4, 300), "f": rng.normal(size=(7, 3)),
             "fortran": np.asfortranarray(rng.normal(size=(5, 4))), "empty": np.zeros((0, 3))}
    np.savez(tmp_path / "plain.npz", **plain)
    np.savez_compressed(tmp_path / "packed.npz", **plain)
    mapped, packed = map_npz(tmp_path / "plain.npz"), map_npz(tmp_path / "packed.npz")
    with np.load(tmp_path / "plain.npz") as reference:
        for name in plain:
            assert np.array_equal(mapped[name], reference[name]) and mapped[name].dtype == reference[name].dtype
            assert np.array_equal(packed[name], reference[name])
    assert isinstance(mapped["x_train"], np.memmap) and isinstance(mapped["fortran"], np.memmap)
    assert not isinstance(packed["x_train"], np.memmap)  # compressed: read into memory
    mapped["x_train"][0] = 0  # copy-on-write: the file keeps its bytes
    with np.load(tmp_path / "plain.npz") as reference:
        assert np.array_equal(reference["x_train"], plain["x_train"])


@pytest.mark.parametrize("layout", ["npz", "npy folder"])
def test_a_jobs_images_are_the_files_pages(tmp_path, layout):
    rng = np.random.default_rng(1)
    arrays = {f"x_{s}": images(rng, n) for s, n in (("train", 400), ("val", 100), ("test", 100))}
    arrays.update({f"y_{s}": rng.integers(0, 4, len(arrays[f"x_{s}"])) for s in ("train", "val", "test")})
    if layout == "npz":
        path = tmp_path / "set.npz"
        np.savez(path, **arrays)
    else:
        path = tmp_path / "set"
        path.mkdir()
        for name, value in arrays.items():
            np.save(path / f"{name}.npy", value)
    loaded = npz(str(path))
    assert all(isinstance(loaded[s][0], np.memmap) for s in ("train", "val", "test"))
    splits = to_splits({**loaded, "image_shape": [1, 8, 8]})
    x = splits.x["train"]
    buffer = np.asarray(loaded["train"][0])
    assert x.dtype.is_floating_point is False and x.data_ptr() == buffer.ctypes.data  # no copy
    assert np.array_equal(x.numpy().reshape(buffer.shape), arrays["x_train"])
    proc = run_wdsweep(["data=npz", f"data.path={path}", "model=cnn", "trainer.steps=4", "trainer.eval_every=2",
                        "trainer.batch_size=32", "hydra.run.dir=J"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert read_metrics(tmp_path / "J")["data_sizes"] == {"train": 400, "val": 100, "test": 100}


def test_a_torn_npz_is_one_line(tmp_path):
    path = tmp_path / "set.npz"
    np.savez(path, x_train=np.zeros((10, 2)), y_train=np.zeros(10), x_test=np.zeros((4, 2)), y_test=np.zeros(4))
    path.write_bytes(path.read_bytes()[:300])
    proc = run_wdsweep(["data=npz", f"data.path={path}", "trainer.steps=2"], cwd=tmp_path)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert f"{path}: cannot be read as arrays" in line
