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


def map_npz(path: Path) -> Dict[str, np.ndarray]:
    """Every array of an .npz by its name: mapped where stored uncompressed, else loaded."""
    arrays: Dict[str, np.ndarray] = {}
    readers = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as raw, np.load(path, allow_pickle=False) as loaded:
        for info in archive.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            header = None
            if info.compress_type == zipfile.ZIP_STORED:
                # The member's bytes start after its local header: 30 bytes, its name, its extra field.
                raw.seek(info.header_offset)
                local = raw.read(30)
                raw.seek(info.header_offset + 30 + int.from_bytes(local[26:28], "little")
                         + int.from_bytes(local[28:30], "little"))
                read_header = readers.get(npy_format.read_magic(raw))
                header = read_header(raw) if read_header is not None else None
            if header is None or not int(np.prod(header[0])):
                arrays[name] = loaded[name]  # compressed, another header version, or empty: read
                continue
            shape, fortran, dtype = header
            if dtype.hasobject:
                raise ValueError(f"{path}: array {name!r} holds Python objects, which are not read")
            arrays[name] = np.memmap(path, dtype=dtype, mode="c", offset=raw.tell(), shape=shape,
                                     order="F" if fortran else "C")
    return arrays
