"""CIFAR-10 and CIFAR-100 read from a local folder in torchvision's own format, without
torchvision (whose PyPI wheel does not import beside every torch build).

The folders are the ones torchvision downloads and reads: `<root>/cifar-10-batches-py/`
(data_batch_1 ... data_batch_5, test_batch) and `<root>/cifar-100-python/` (train, test). Each
file is a pickled dict whose b"data" is a (n, 3072) uint8 array, channel after channel, and
whose labels are b"labels" (CIFAR-10) or b"fine_labels" (CIFAR-100). The pickles are read with
an unpickler that builds only those (numpy arrays, plain containers): a file that asks for
anything else is refused, not run.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

LAYOUTS = {
    "CIFAR10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
    "CIFAR100": ("cifar-100-python", ["train"], ["test"], b"fine_labels"),
}
# What a CIFAR pickle may build: numpy arrays and their dtypes (the rest are plain containers).
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"a CIFAR file does not build {module}.{name}")
        return super().find_class(module, name)


class CifarProblem(ValueError):
    """A CIFAR folder that cannot be read; the message names the file."""


def cifar_folder(name: str, root: Path) -> Optional[Path]:
    """The folder of `name` under `root`, if it is one wdsweep reads and it is there."""
    layout = LAYOUTS.get(str(name))
    if layout is None:
        return None
    folder = Path(root) / layout[0]
    return folder if folder.is_dir() else None


def read_cifar(name: str, root: Path) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """{"train": (images, labels), "test": (images, labels)}: images (n, 3, 32, 32) uint8, labels
    int64, in the files' order."""
    folder_name, train_files, test_files, label_key = LAYOUTS[str(name)]
    folder = Path(root) / folder_name
    out = {}
    for split, files in (("train", train_files), ("test", test_files)):
        images, labels = [], []
        for file in files:
            path = folder / file
            try:
                with open(path, "rb") as f:
                    batch = _CifarUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
                data, batch_labels = batch[b"data"], batch[label_key]
            except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as err:
                raise CifarProblem(f"{path} is not a {name} file in torchvision's format "
                                   f"({type(err).__name__}: {' '.join(str(err).split())[:160]})") from None
            data = np.asarray(data, dtype=np.uint8)
            if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(batch_labels) != len(data):
                raise CifarProblem(f"{path} holds data of shape {data.shape} and {len(batch_labels)} labels, "
                                   "not (n, 3072) images with one label each")
            images.append(data.reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch_labels, dtype=np.int64))
        out[split] = (np.concatenate(images), np.concatenate(labels))
    return out
