"""A split's inputs when they are not a tensor in memory: rows read only when a batch asks.

Two sources, both array-like (`len`, `.shape`, `.dtype`, and `source[index]` for an int array
or a slice, returning a numpy array of those rows), as a numpy array or a memory map is:

- `IndexedRows`: some rows of another source by index. Carving a validation split from a
  training set is an index, not a copy (a memory-mapped set larger than memory stays mapped).
- `ImageFiles`: one image file per row, decoded (Pillow) when its row is read. An image folder
  is listed, not loaded.

`read_rows` turns any split's rows (a tensor, a memory map, a source) into a tensor of rows,
(k, features), in the stored dtype: uint8 images stay uint8 until a batch is drawn.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence, Tuple

import numpy as np

if TYPE_CHECKING:  # torch only where rows become tensors: checking a config needs none
    import torch


class IndexedRows:
    """The rows `index` of `base` (an array, a memory map or another source), in that order."""

    def __init__(self, base, index: np.ndarray) -> None:
        self.base, self.index = base, np.asarray(index, dtype=np.int64)
        self.shape = (len(self.index), *base.shape[1:])
        self.dtype = base.dtype

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, rows) -> np.ndarray:
        return np.asarray(self.base[self.index[rows]])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """Every row, read (np.asarray of a split, as a user's code may take it)."""
        return self[slice(None)] if dtype is None else self[slice(None)].astype(dtype)


class ImageFiles:
    """Image files decoded on demand, (n, channels, height, width) uint8; `mode` is Pillow's
    ("RGB" or "L"), `size` an optional [height, width] to resize to. Every file must decode to
    `item_shape`: the folder's check (wdsweep.datasets.image_folder) read each header first."""

    def __init__(self, files: Sequence[Path], mode: str, size: Optional[Sequence[int]],
                 item_shape: Tuple[int, int, int]) -> None:
        self.files = [str(f) for f in files]
        self.mode, self.size = mode, tuple(size) if size else None
        self.shape = (len(self.files), *item_shape)
        self.dtype = np.dtype(np.uint8)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, rows) -> np.ndarray:
        if np.ndim(rows) == 0 and not isinstance(rows, slice):  # one image
            return decode_image(self.files[int(rows)], self.mode, self.size)
        chosen = self.files[rows] if isinstance(rows, slice) else [self.files[i] for i in np.atleast_1d(rows)]
        out = np.empty((len(chosen), *self.shape[1:]), dtype=np.uint8)
        for i, file in enumerate(chosen):
            out[i] = decode_image(file, self.mode, self.size)
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """Every image, decoded."""
        return self[slice(None)] if dtype is None else self[slice(None)].astype(dtype)

    def check(self) -> None:
        """Decode every file once, dropping the pixels: a file whose header reads but whose
        pixels do not (truncated, torn) is refused here, naming it, not at the batch that reads
        it. Decoded in threads (Pillow's decoders release the GIL), in the listing's order of
        files to report the first bad one."""
        import os
        from concurrent.futures import ThreadPoolExecutor

        from wdsweep.errors import DataProblem

        def decodes(file: str) -> Optional[str]:
            try:
                image = decode_image(file, self.mode, self.size)
            except OSError as err:
                return str(err)
            if image.shape != self.shape[1:]:  # a file changed since its header was read
                return f"{file}: decodes to {image.shape}, not {self.shape[1:]} as listed"
            return None

        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            problem = next((p for p in pool.map(decodes, self.files) if p), None)
        if problem:
            raise DataProblem(problem)


def decode_image(file: str, mode: str, size: Optional[Tuple[int, int]]) -> np.ndarray:
    """One image as (channels, height, width) uint8."""
    from PIL import Image

    try:
        with Image.open(file) as image:
            image = image.convert(mode)
            if size:
                image = image.resize((int(size[1]), int(size[0])))
            array = np.asarray(image, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as err:  # Pillow's errors for a torn or foreign file
        raise OSError(f"{file}: cannot be decoded as an image ({type(err).__name__}: "
                      f"{' '.join(str(err).split())[:160]})") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def check_sources(stored: Sequence) -> None:
    """Check the image files behind splits' stored inputs (ImageFiles.check), each folder's list
    once: also under an index (a validation split carved from the training split)."""
    checked = set()
    for x in stored:
        while isinstance(x, IndexedRows):
            x = x.base
        if isinstance(x, ImageFiles) and id(x) not in checked:
            checked.add(id(x))
            x.check()


def read_rows(x, rows=None) -> "torch.Tensor":
    """Rows of a split's stored inputs as a (k, features) tensor in the stored dtype: all of them
    if `rows` is None, else those of an index tensor or a slice."""
    import torch

    if isinstance(x, torch.Tensor):
        if isinstance(rows, np.ndarray):
            rows = torch.from_numpy(rows)
        return x if rows is None else x[rows]
    if rows is None:
        rows = slice(None)
    elif isinstance(rows, torch.Tensor):
        rows = rows.numpy()
    part = np.ascontiguousarray(x[rows])
    return torch.from_numpy(part.reshape(len(part), -1))


# A pass over a whole split (its statistics, its check) reads this many values at a time: a few
# MB of float64, whatever the set's size.
SCAN_VALUES = 2**18


def row_ranges(x, values: int = SCAN_VALUES):
    """(start, stop) of consecutive row ranges of `x` holding about `values` values each."""
    per_row = max(1, int(np.prod(x.shape[1:])))
    size = max(1, values // per_row)
    for start in range(0, len(x), size):
        yield start, min(start + size, len(x))


def row_chunks(x, values: int = SCAN_VALUES):
    """The rows of `x` as consecutive (k, features) tensors of about `values` values each."""
    for start, stop in row_ranges(x, values):
        yield read_rows(x, slice(start, stop))
