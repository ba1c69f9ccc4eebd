"""Arrays read from disk without loading them: `.npy` files and the members of an uncompressed
`.npz` (np.savez, not np.savez_compressed) are memory-mapped, so a data set larger than memory
is read page by page as batches draw its rows.

The maps are copy-on-write (mode "c"): torch can wrap them without a copy (it wants writable
arrays), and nothing is ever written back to the user's file. A compressed member cannot be
mapped: it is read into memory as before.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Dict

import numpy as np
from numpy.lib import format as npy_format


def map_npy(path: Path) -> np.ndarray:
    return np.load(path, mmap_mode="c", allow_pickle=False)


def shape_of(raw, read_header) -> tuple:
    """The shape in the .npy header at the file's current position, which is left as it was."""
    at = raw.tell()
    shape = read_header(raw)[0]
    raw.seek(at)
    return shape


def map_npz(path: Path) -> Dict[str, np.ndarray]:
    """Every array of an .npz by its name: mapped where stored uncompressed, else loaded."""
    arrays: Dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
        for info in archive.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if info.compress_type != zipfile.ZIP_STORED:
                with np.load(path, allow_pickle=False) as loaded:
                    arrays[name] = loaded[name]
                continue
            # The member's bytes start after its local header: 30 bytes, its name, its extra field.
            raw.seek(info.header_offset)
            local = raw.read(30)
            start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + \
                int.from_bytes(local[28:30], "little")
            raw.seek(start)
            version = npy_format.read_magic(raw)
            read_header = {(1, 0): npy_format.read_array_header_1_0,
                           (2, 0): npy_format.read_array_header_2_0}.get(version)
            if read_header is None or not int(np.prod(shape_of(raw, read_header))):
                with np.load(path, allow_pickle=False) as loaded:  # another header version, or empty
                    arrays[name] = loaded[name]
                continue
            shape, fortran, dtype = read_header(raw)
            if dtype.hasobject:
                raise ValueError(f"{path}: array {name!r} holds Python objects, which are not read")
            arrays[name] = np.memmap(path, dtype=dtype, mode="c", offset=raw.tell(), shape=shape,
                                     order="F" if fortran else "C")
    return arrays
