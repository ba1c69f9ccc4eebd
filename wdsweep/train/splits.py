"""What every data set becomes: its train, val and test splits (Splits), and the seeds its
random draws derive from (derived_seed). A module of its own, below the built-in data sets
(wdsweep.train.data) and the user's loaders (wdsweep.datasets), which both make Splits."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Optional, Tuple

import numpy as np

from wdsweep.errors import DataProblem  # noqa: F401 - where the data modules import it from

if TYPE_CHECKING:
    import torch

    from wdsweep.train.images import Augment, InputScale

SPLITS = ("train", "val", "test")


@dataclass
class Splits:
    task: str  # "regression" | "classification"
    # split name -> the stored inputs: a (n, n_features) tensor, float32 unless `scale` is set,
    # or an array-like source read per batch (a memory map, wdsweep.train.rows' IndexedRows or
    # ImageFiles). Read the model's inputs through `inputs`, the stored rows through `raw`.
    x: dict
    y: dict  # split name -> float32 (n, 1) for regression, int64 (n,) for classification
    n_features: int
    n_outputs: int  # 1 for regression, the number of classes for classification
    image_shape: Optional[Tuple[int, int, int]] = None  # (channels, height, width)
    scale: Optional["InputScale"] = None  # how stored rows become float inputs (wdsweep.train.images)
    augment: Optional["Augment"] = None  # what a training batch goes through (data.augment)
    device: Optional["torch.device"] = None  # where `inputs` puts rows read from a source; None: CPU

    def sizes(self) -> dict:
        return {s: len(self.y[s]) for s in SPLITS}

    def to(self, device, keep_inputs: bool = False) -> "Splits":
        """The splits with their tensors on `device` (uint8 images stay uint8); inputs read from
        a source, or by workers (`keep_inputs`), stay where they are and each batch moves as it
        is read. Itself on the CPU."""
        if device.type == "cpu":
            return self
        import torch

        def moved(t):
            return t.to(device) if isinstance(t, torch.Tensor) and not keep_inputs else t

        return replace(self, x={s: moved(t) for s, t in self.x.items()},
                       y={s: t.to(device) for s, t in self.y.items()}, device=device)

    def raw(self, split: str, rows=None) -> "torch.Tensor":
        """The stored rows (an index tensor or a slice; all if None), (k, n_features), unscaled."""
        from wdsweep.train.rows import read_rows

        return read_rows(self.x[split], rows)

    def inputs(self, split: str, rows=None) -> "torch.Tensor":
        """The model's float32 inputs for `rows` (an index tensor or a slice; all if None)."""
        return self.model_inputs(self.raw(split, rows))

    def model_inputs(self, stored: "torch.Tensor") -> "torch.Tensor":
        """Stored rows (from `raw`, or a data loader's worker) as the model's float32 inputs, on
        the splits' device."""
        import torch

        if self.device is not None and stored.device != self.device:
            stored = stored.to(self.device, non_blocking=True)
        if self.scale is not None:
            return self.scale(stored)
        if stored.dtype != torch.float32:
            return stored.float()
        # The split itself (a full batch, an evaluation's whole split): a copy, so that a forward
        # that changes its input in place (x /= 255) cannot change the data, nor the next job's,
        # which may share it (a sweep's jobs in one process share a loader's splits).
        stored_in = {t.untyped_storage().data_ptr() for t in self.x.values() if isinstance(t, torch.Tensor)}
        return stored.clone() if stored.untyped_storage().data_ptr() in stored_in else stored


def derived_seed(seed: int, purpose: str) -> int:
    """An independent 63-bit seed for one purpose (a split, a noise draw) of one data seed."""
    words = [seed, *purpose.encode()]
    return int(np.random.SeedSequence(words).generate_state(2, np.uint64)[0] >> np.uint64(1))
