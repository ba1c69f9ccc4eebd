"""Your data: loaders named by a data config's `_target_`, and how their result becomes splits.
(About 460 lines: the shipped loaders and to_splits' checks; to_splits is the part to move out
into a module of its own next.)

The contract. A `data` config with a `_target_` is called as Hydra's instantiate calls it,
with its keys as keyword arguments, plus `seed` (the data seed: the run's `seed`, or
`data.seed` when set) if the target accepts it. It returns a mapping with

    "train", "val", "test"   each an (x, y) pair of numpy arrays or torch tensors, or a
                             torch Dataset of (x, y) items (read once, into memory; items
                             that are dicts are refused: which key is x?)
    "task"                   optional: "classification" or "regression"; by default
                             classification when y holds integers, else regression
    "image_shape"            optional: [channels, height, width]; by default x's shape past
                             the batch dimension when x has 4 dims (N, C, H, W)

Classification labels are the integers 0..K-1, or text, coded 0..K-1 in sorted order as a csv's
(wdsweep.train.labels); regression targets are numbers, (n,) or (n, k). wdsweep
keeps x as given (a memory map stays mapped, uint8 images stay uint8, float64 stays float64)
and makes each batch's rows float32 model inputs as it is drawn: images are flattened (the
model reshapes them, as SmallCNN and ResNet do) and, with `data.standardize` (default true),
scaled by the training split's mean and standard deviation, per channel for images, per column
otherwise, so nothing of val or test leaks into them. No float32 copy of a split is made. A validation split is never
carved from the test split: the built-in loaders carve it from the training split by the seed
when the files have none. `name`, `seed`, `standardize`, `augment`, `crop_padding`, `flip`,
`num_workers`, `pin_memory` and `persistent_workers` are wdsweep's keys, not passed on (`name`
is, to a loader that declares a `name` parameter).

Shipped: `npz` (one .npz with x_train, y_train, x_test, y_test and optionally x_val, y_val;
or a folder of train.npz, val.npz, test.npz holding x and y), `image_folder` (a
torchvision-style folder: train/<class>/*.png, test/<class>/..., optionally val/<class>/...,
read with Pillow) and `torchvision` (a torchvision dataset class by name; an optional extra).

Images given as uint8 (x of 4 dims, or with image_shape) are scaled per batch
(wdsweep.train.images); `data.augment=true` then crops and flips training batches. With
`data.num_workers` > 0, batches are read by a torch DataLoader's worker processes
(wdsweep.train.streaming).
"""
from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from wdsweep.train.cifar import LAYOUTS, CifarProblem, cifar_folder, read_cifar
from wdsweep.train.labels import class_labels, is_numeric, is_text, text_labels_coded
from wdsweep.train.mapped_arrays import map_npy, map_npz
from wdsweep.train.rows import row_ranges
from wdsweep.train.splits import DataProblem

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Pillow's modes of more than 8 bits a channel: converting them to RGB or L clips every value
# above 255, so a 16-bit scan becomes one flat colour.
WIDE_MODES = {"I;16": "16-bit", "I;16B": "16-bit", "I;16L": "16-bit", "I;16N": "16-bit", "I": "32-bit integer",
              "F": "32-bit float"}
Arrays = Dict[str, Tuple[np.ndarray, np.ndarray]]


def user_path(path: str) -> Path:
    """A path as the user wrote it: relative to where the command ran, also inside a job that
    Hydra moved into its output folder (hydra.job.chdir=true), and with ~ expanded."""
    from hydra.utils import to_absolute_path

    return Path(to_absolute_path(str(Path(str(path)).expanduser())))


def npz(path: str, seed: int = 0, task: Optional[str] = None, val_fraction: float = 0.1) -> dict:
    """A user's arrays: one .npz file with x_train, y_train, x_test, y_test (x_val, y_val
    optional); or a folder holding train.npz, test.npz (val.npz optional), each with x and y; or
    a folder of .npy files x_train.npy, y_train.npy, x_test.npy, y_test.npy (x_val.npy, y_val.npy
    optional). .npy files and uncompressed .npz members are memory-mapped, not loaded
    (wdsweep.train.mapped_arrays): with a val split of its own, a set larger than memory trains
    page by page (carving val from train copies the training set)."""
    root = user_path(path)
    try:
        if root.is_dir() and (root / "x_train.npy").is_file():
            arrays = {f.stem: map_npy(f) for f in root.glob("*.npy")}
            _both_or_neither(arrays, root)
            splits = {split: (_need(arrays, f"x_{split}", root), _need(arrays, f"y_{split}", root))
                      for split in ("train", "val", "test") if f"x_{split}" in arrays or split != "val"}
        elif root.is_dir():
            splits = {}
            for split in ("train", "val", "test"):
                file = root / f"{split}.npz"
                if file.is_file():
                    arrays = map_npz(file)
                    splits[split] = (_need(arrays, "x", file), _need(arrays, "y", file))
        elif root.is_file():
            arrays = map_npz(root)
            _both_or_neither(arrays, root)
            splits = {split: (_need(arrays, f"x_{split}", root), _need(arrays, f"y_{split}", root))
                      for split in ("train", "val", "test") if f"x_{split}" in arrays or split != "val"}
        else:
            splits = None
    except DataProblem:
        raise
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DataProblem(f"{root}: cannot be read as arrays ({type(err).__name__}: "
                          f"{' '.join(str(err).split())[:200]})") from None
    if splits is None:
        raise DataProblem(f"{root}: no such file or folder")
    for split in ("train", "test"):
        if split not in splits:
            raise DataProblem(f"{root}: no {split} split (x_{split}/y_{split}, or {split}.npz)")
    if "val" not in splits:
        splits["train"], splits["val"] = carve_val(*splits["train"], val_fraction, seed)
    return {**splits, **({"task": task} if task else {})}


def _both_or_neither(arrays: dict, file: Path) -> None:
    """x_val without y_val (or y_val without x_val) would be ignored, and val carved from train."""
    if ("x_val" in arrays) != ("y_val" in arrays):
        have, lack = ("x_val", "y_val") if "x_val" in arrays else ("y_val", "x_val")
        raise DataProblem(f"{file}: holds {have} but no {lack}: give both (a validation split of its own) or "
                          "neither (val carved from train)")


def _need(arrays: dict, key: str, file: Path) -> np.ndarray:
    if key not in arrays:
        raise DataProblem(f"{file}: no array {key!r} (it holds {', '.join(sorted(arrays))})")
    return arrays[key]


def image_folder(root: str, seed: int = 0, mode: str = "RGB", size: Optional[Sequence[int]] = None,
                 val_fraction: float = 0.1) -> dict:
    """Images in class folders, as torchvision's ImageFolder reads them: root/train/<class>/,
    root/test/<class>/ and optionally root/val/<class>/; classes are the train split's folder
    names in sorted order. mode: Pillow's "RGB" (3 channels) or "L" (grey, 1 channel); size:
    [height, width] to resize to, else every image must have the first one's size.

    The folder is listed and every file's header read (its size, not its pixels); validation
    then decodes each file once, to name a corrupt one before any job (wdsweep.train.rows'
    ImageFiles.check), and training decodes the images when a batch or an evaluation reads
    them, by `data.num_workers` processes when set: a folder larger than memory trains."""
    from PIL import Image, UnidentifiedImageError

    from wdsweep.train.rows import ImageFiles

    base = user_path(root)
    if not (base / "train").is_dir() or not (base / "test").is_dir():
        raise DataProblem(f"{base}: needs train/ and test/ folders of class folders")
    # A hidden folder (.ipynb_checkpoints, .DS_Store's kin) is no class.
    classes = sorted(p.name for p in (base / "train").iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataProblem(f"{base / 'train'}: needs at least two class folders")
    channels = {"RGB": 3, "L": 1}.get(str(mode))
    if channels is None:
        raise DataProblem(f"mode={mode!r}: RGB or L")
    listed = {}
    shape = (channels, int(size[0]), int(size[1])) if size else None
    for split in ("train", "val", "test"):
        folder = base / split
        if not folder.is_dir():
            continue
        files, labels = [], []
        for label, name in enumerate(classes):
            for file in sorted((folder / name).glob("*")) if (folder / name).is_dir() else []:
                if file.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                try:
                    with Image.open(file) as image:  # the header only: no pixels decoded
                        width, height, image_mode = *image.size, image.mode
                except (OSError, UnidentifiedImageError) as err:
                    raise DataProblem(f"{file}: not an image Pillow reads ({type(err).__name__})") from None
                if image_mode in WIDE_MODES:
                    raise DataProblem(f"{file}: a {WIDE_MODES[image_mode]} image (Pillow mode {image_mode}); read "
                                      "as 8 bits it would be clipped to a constant: convert the folder to 8-bit "
                                      "images, or load it with a loader of your own")
                if not size:
                    if shape is None:
                        shape = (channels, height, width)
                    elif (height, width) != shape[1:]:
                        raise DataProblem(f"{file}: {height}x{width} pixels, not "
                                          f"{shape[1]}x{shape[2]} like the first image (set data.size)")
                files.append(file)
                labels.append(label)
        unknown = [p.name for p in folder.iterdir()
                   if p.is_dir() and p.name not in classes and not p.name.startswith(".")]
        if unknown:
            raise DataProblem(f"{folder}: class folders not in train/: {', '.join(sorted(unknown))}")
        if not files:
            raise DataProblem(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders")
        listed[split] = (ImageFiles(files, str(mode), size, shape), np.asarray(labels, dtype=np.int64))
    if "val" not in listed:
        listed["train"], listed["val"] = carve_val(*listed["train"], val_fraction, seed)
    return {**listed, "task": "classification", "image_shape": list(shape)}


def torchvision(name: str, root: str = "~/.cache/wdsweep/torchvision", download: bool = False,
                seed: int = 0, val_fraction: float = 0.1, options: Optional[dict] = None) -> dict:
    """A torchvision dataset class by name (CIFAR10, MNIST, FashionMNIST, SVHN, ...): its
    training and test sets, and a validation split carved from the training set by the seed
    (never from the test set). `options` go to the class as keyword arguments. Classes that
    keep their images as a uint8 `data` array (CIFAR, MNIST) are read without decoding each
    image; others item by item (PIL images). Needs the optional extra: a torchvision build
    that matches the installed torch. CIFAR10 and CIFAR100 whose files are already under
    `root` in torchvision's format are read without torchvision (wdsweep.train.cifar)."""
    base = user_path(root)
    if cifar_folder(name, base) is not None and not options:
        try:
            splits = read_cifar(name, base)
        except CifarProblem as err:
            raise DataProblem(str(err)) from None
        splits["train"], splits["val"] = carve_val(*splits["train"], val_fraction, seed)
        return {**splits, "task": "classification", "image_shape": list(splits["train"][0].shape[1:])}
    try:
        import torchvision.datasets as catalogue
    except Exception as err:  # noqa: BLE001 - a missing wheel, or one built for another torch
        where = (f", or put its files in {base / LAYOUTS[str(name)][0]} (torchvision's format), which "
                 "wdsweep reads without torchvision") if str(name) in LAYOUTS else ""
        raise DataProblem(f"data=torchvision needs torchvision built for this torch (pip install "
                          f"'wdsweep[torchvision]'){where}; importing it failed: {type(err).__name__}: "
                          f"{' '.join(str(err).split())[:200]}") from None
    cls = getattr(catalogue, str(name), None)
    if not isinstance(cls, type):
        raise DataProblem(f"torchvision.datasets has no dataset class {name!r}")
    import inspect

    params = inspect.signature(cls).parameters
    if "train" in params:
        which = {"train": {"train": True}, "test": {"train": False}}
    elif "split" in params:
        which = {"train": {"split": "train"}, "test": {"split": "test"}}
    else:
        raise DataProblem(f"torchvision.datasets.{name} takes neither train= nor split=: "
                          "wdsweep cannot tell its training set from its test set")
    splits = {}
    for split, choice in which.items():
        dataset = cls(root=str(base), download=bool(download), **choice, **(options or {}))
        splits[split] = _torchvision_arrays(dataset, split)
    splits["train"], splits["val"] = carve_val(*splits["train"], val_fraction, seed)
    return {**splits, "task": "classification", "image_shape": list(splits["train"][0].shape[1:])}


def _torchvision_arrays(dataset, split: str) -> Tuple[np.ndarray, np.ndarray]:
    """(images (n, C, H, W) uint8, labels) of a torchvision dataset."""
    data = getattr(dataset, "data", None)
    labels = getattr(dataset, "targets", None)
    if labels is None:
        labels = getattr(dataset, "labels", None)
    if data is not None and labels is not None and getattr(dataset, "transform", None) is None:
        images = np.asarray(data.numpy() if hasattr(data, "numpy") else data)
        if images.dtype == np.uint8 and images.ndim in (3, 4):
            if images.ndim == 3:  # (n, H, W): one grey channel
                images = images[:, None]
            elif images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):  # (n, H, W, C)
                images = images.transpose(0, 3, 1, 2)
            return np.ascontiguousarray(images), np.asarray(labels, dtype=np.int64)
    return _pair(dataset, split)


def carve_val(x, y: np.ndarray, fraction: float, seed: int):
    """Split the training rows into train and val by the seed (stratified for class labels).
    The inputs are split by index (wdsweep.train.rows.IndexedRows), not copied: a memory-mapped
    or listed set stays on disk. The same rows as splitting the arrays themselves."""
    from sklearn.model_selection import train_test_split

    from wdsweep.train.rows import IndexedRows
    from wdsweep.train.splits import derived_seed

    if not 0 < fraction < 1:
        raise DataProblem(f"val_fraction={fraction}: a validation split needs 0 < val_fraction < 1")
    y = np.asarray(y)
    stratify = y if (np.issubdtype(y.dtype, np.integer) or is_text(y)) and len(np.unique(y)) > 1 else None
    try:
        train_rows, val_rows = train_test_split(
            np.arange(len(y)), test_size=fraction, random_state=derived_seed(seed, "val") % 2**32, stratify=stratify)
    except ValueError as err:  # too few rows of a class to stratify
        raise DataProblem(f"cannot carve a validation split of {fraction} from {len(y)} training rows: {err}")
    return (IndexedRows(x, train_rows), y[train_rows]), (IndexedRows(x, val_rows), y[val_rows])


def to_splits(loaded: Any, standardize: bool = True):
    """The loader's result (see the module docstring) as wdsweep.train.data.Splits. The inputs are
    kept as given (a memory map stays mapped, a listed folder listed, float64 stays float64) and
    made float32 and scaled per batch: no float32 copy of a split is made here."""
    import torch

    from wdsweep.train.images import InputScale
    from wdsweep.train.splits import SPLITS, Splits

    if not isinstance(loaded, dict) or not all(s in loaded for s in SPLITS):
        raise DataProblem("the loader must return a mapping with train, val and test "
                          f"(got {type(loaded).__name__}"
                          f"{' with ' + ', '.join(map(str, loaded)) if isinstance(loaded, dict) else ''})")
    arrays = {s: _pair(loaded[s], s) for s in SPLITS}
    y_train = arrays["train"][1]
    task = loaded.get("task") or _inferred_task(np.asarray(y_train))
    if task not in ("classification", "regression"):
        raise DataProblem(f"task={task!r}: classification or regression")
    x_train = arrays["train"][0]
    image_shape = loaded.get("image_shape") or (list(x_train.shape[1:]) if len(x_train.shape) == 4 else None)
    if image_shape and not loaded.get("image_shape") and image_shape[-1] in (1, 3, 4) \
            and image_shape[0] not in (1, 3, 4):
        raise DataProblem(f"train: images of shape {tuple(x_train.shape)} are channels last (N, H, W, C); wdsweep "
                          "reads (N, C, H, W): store them channels first (np.transpose(x, (0, 3, 1, 2))) or give "
                          "image_shape")
    for s, (x, y) in arrays.items():
        if len(x) != len(y) or len(x) == 0:
            raise DataProblem(f"{s}: {len(x)} inputs and {len(y)} targets; needs as many, and at least one")
        if x.shape[1:] != x_train.shape[1:]:
            raise DataProblem(f"{s}: inputs of shape {x.shape[1:]}, train's are {x_train.shape[1:]}")
        if x.dtype != x_train.dtype:  # one scale serves every split
            raise DataProblem(f"{s}: inputs of dtype {x.dtype}, train's are {x_train.dtype}")
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise DataProblem(f"{s}: inputs of dtype {x.dtype}; numbers are needed")
        if np.issubdtype(x.dtype, np.floating):
            _check_finite(x, s)
        if task == "regression" and not is_numeric(np.asarray(y)):
            raise DataProblem(f"{s}: regression targets of dtype {np.asarray(y).dtype} (such as "
                              f"{np.asarray(y).reshape(-1)[0].tolist()!r}); numbers are needed")
        if task == "regression" and not np.isfinite(np.asarray(y, dtype=np.float64)).all():
            raise DataProblem(f"{s}: targets hold inf or NaN")
    if task == "classification":
        arrays = text_labels_coded({s: (x, class_labels(y, s)) for s, (x, y) in arrays.items()})
        labels = np.concatenate([y for _, y in arrays.values()])
        if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
            raise DataProblem("classification labels must be integers 0..K-1")
        n_outputs = int(labels.max()) + 1
        if n_outputs < 2:
            raise DataProblem("classification needs at least two classes")
        distinct = len(np.unique(labels))
        if n_outputs > max(2 * distinct, distinct + 10):  # {0, 1e6}: a 1,000,001-way head for 2 classes
            raise DataProblem(f"classification labels are {distinct} distinct values up to {n_outputs - 1}: the "
                              f"model would get {n_outputs:,} outputs; recode them to 0..{distinct - 1}")
    else:
        n_outputs = 1 if y_train.ndim == 1 else int(y_train.shape[1])
    n_features = int(np.prod(x_train.shape[1:]))
    # Per channel for images, per column otherwise; a float32 set not standardized needs nothing.
    scale = None
    if standardize or x_train.dtype != np.float32:
        groups = int(image_shape[0]) if image_shape else n_features
        scale = InputScale(x_train, groups, standardize)
    y_t = {}
    for s, (_, y) in arrays.items():
        y_t[s] = (torch.from_numpy(y.astype(np.int64)) if task == "classification"
                  else torch.from_numpy(y.astype(np.float32).reshape(len(y), -1)))
    return Splits(task=task, x={s: _stored(x) for s, (x, _) in arrays.items()}, y=y_t,
                  n_features=n_features, n_outputs=n_outputs,
                  image_shape=tuple(int(d) for d in image_shape) if image_shape else None, scale=scale)


# Whole-number float targets with at most this many distinct values could be class codes (a csv
# column 0.0/1.0/2.0, labels saved as float) or numbers (counts, ratings): wdsweep does not guess.
MAX_CLASS_CODES = 20


def task_of_targets(y: np.ndarray) -> Optional[str]:
    """The task training targets say, the one rule for csv columns and loaders' arrays:
    classification for integers, booleans and text, regression for other numbers; None for
    float targets that are all whole numbers with at most MAX_CLASS_CODES distinct values
    ({0.0, 1.0} as {0.0, 1.0, 2.0}), which could be either (the caller refuses them until told)."""
    if y.dtype == np.bool_ or np.issubdtype(y.dtype, np.integer) or not np.issubdtype(y.dtype, np.number):
        return "classification"
    if np.issubdtype(y.dtype, np.floating) and y.size and _class_codes(y) is not None:
        return None
    return "regression"


def _class_codes(y: np.ndarray) -> Optional[list]:
    """The distinct values of float targets that could be class codes (whole numbers, at most
    MAX_CLASS_CODES of them), or None."""
    values = np.unique(y)
    if len(values) > MAX_CLASS_CODES or not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
        return None
    return values.tolist()


def undecided_targets(y: np.ndarray) -> str:
    """What undecided targets hold, for the refusal: "only the whole numbers 0.0, 1.0, 2.0"."""
    codes = _class_codes(y) or []
    shown = ", ".join(str(float(v)) for v in codes[:5]) + (", ..." if len(codes) > 5 else "")
    return f"only the whole numbers {shown} ({len(codes)} distinct float values)"


def _inferred_task(y: np.ndarray) -> str:
    """task_of_targets, refused in one line when undecided; the log names the choice."""
    import logging

    task = task_of_targets(y)
    if task is None:
        raise DataProblem(f"train: targets of {undecided_targets(y)} could be classes or numbers: give the task "
                          "(data.task=classification or regression with data=npz; a \"task\" in your loader's result)")
    logging.getLogger(__name__).info("task=%s, from the training targets' dtype (%s)", task, y.dtype)
    return task


def _stored(x):
    """A split's inputs as Splits keeps them: a C-contiguous writable array (a copy-on-write
    memory map included) as a (n, features) tensor on the same memory; anything else (a
    read-only or strided array, an index into another, a folder) as the source itself."""
    import torch

    if isinstance(x, np.ndarray) and x.flags.c_contiguous and x.flags.writeable and x.dtype != np.bool_:
        return torch.from_numpy(x.reshape(len(x), -1))
    return x


def _check_finite(x, split: str) -> None:
    """Refuse inf, NaN and values beyond float32's range, a chunk of rows at a time, by each
    chunk's minimum and maximum (NaN carries into both): no temporary array of the set's size."""
    limit = float(np.finfo(np.float32).max)
    for start, stop in row_ranges(x):
        part = np.asarray(x[start:stop])
        if not part.size:
            continue
        low, high = float(part.min()), float(part.max())
        if not (math.isfinite(low) and math.isfinite(high)):
            raise DataProblem(f"{split}: inputs hold inf or NaN")
        if max(-low, high) > limit:
            raise DataProblem(f"{split}: inputs beyond float32's range (|x| >= 3.4e38)")


def _pair(value: Any, split: str) -> Tuple[np.ndarray, np.ndarray]:
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return _array(value[0]), _array(value[1])
    if hasattr(value, "__getitem__") and hasattr(value, "__len__"):  # a map-style Dataset
        items = [value[i] for i in range(len(value))]
        if not items:
            raise DataProblem(f"{split}: an empty data set")
        for i, item in enumerate(items):
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                # A dict would unpack to its keys: x and y would be the strings "x" and "y".
                raise DataProblem(f"{split}: item {i} of the {type(value).__name__} is {_item_kind(item)}; "
                                  "wdsweep reads (x, y) pairs: return (x, y) from __getitem__ (or wrap the "
                                  "data set in one that does)")
        return np.stack([_array(x) for x, _ in items]), np.asarray([_array(y) for _, y in items])
    raise DataProblem(f"{split}: an (x, y) pair or a Dataset of (x, y) items, not {type(value).__name__}")


def _item_kind(item: Any) -> str:
    """A data set item that is no (x, y) pair, in a few words."""
    if isinstance(item, dict):
        return f"a dict (keys {', '.join(map(repr, list(item)[:5]))})"
    if isinstance(item, (tuple, list)):
        return f"a {type(item).__name__} of {len(item)}"
    return f"a {type(item).__name__}"


def _array(value: Any) -> np.ndarray:
    from wdsweep.train.rows import ImageFiles, IndexedRows

    if isinstance(value, (IndexedRows, ImageFiles, np.ndarray)):  # memory maps and sources stay as they are
        return value
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    if hasattr(value, "convert") and hasattr(value, "size"):  # a PIL image (torchvision's datasets)
        array = np.asarray(value, dtype=np.uint8)
        return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return np.asarray(value)


# Keys of a data config that are wdsweep's, not the loader's (`name` also goes to a loader
# that declares a parameter of that name, as data=torchvision's class name).
OWN_KEYS = ("name", "seed", "standardize", "augment", "crop_padding", "flip", "num_workers", "pin_memory",
            "persistent_workers")


def load(cfg, data_seed: int):
    """Call the config's `_target_` (with `seed` if it takes one) and make Splits of it.
    Raises DataProblem (or the loader's own exception) when it cannot."""
    from hydra._internal.utils import _locate
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from wdsweep.train.targets import accepts, call_target

    spec = OmegaConf.to_container(cfg, resolve=True)
    for key in OWN_KEYS:
        spec.pop(key, None)
    target = _locate(spec["_target_"])
    extra = {"seed": data_seed} if "seed" not in spec and accepts(target, "seed") else {}
    if "name" in cfg and accepts(target, "name", through_kwargs=False):  # data=torchvision's class name
        extra["name"] = cfg.name
    loaded = call_target(instantiate, spec, extra)
    return to_splits(loaded, standardize=bool(cfg.get("standardize", True)))
