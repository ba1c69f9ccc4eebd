"""What every data set becomes: its train, val and test splits (Splits), and the seeds its
random draws derive from (derived_seed). A module of its own, below the built-in data sets
(wdsweep.train.data) and the user's loaders (wdsweep.datasets), which both make Splits."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Optional, Tuple

import numpy as np

if TYPE_CHECKING:
    import torch

    from wdsweep.train.images import Augment, PixelScale

SPLITS = ("train", "val", "test")


@dataclass
class Splits:
    task: str  # "regression" | "classification"
    # split name -> float32 tensor (n, n_features), or uint8 image rows with `pixels` set:
    # read the model's inputs through `inputs`.
    x: dict
    y: dict  # split name -> float32 (n, 1) for regression, int64 (n,) for classification
    n_features: int
    n_outputs: int  # 1 for regression, the number of classes for classification
    image_shape: Optional[Tuple[int, int, int]] = None  # (channels, height, width)
    pixels: Optional["PixelScale"] = None  # how uint8 rows become float inputs (wdsweep.train.images)
    augment: Optional["Augment"] = None  # what a training batch goes through (data.augment)

    def sizes(self) -> dict:
        return {s: len(self.y[s]) for s in SPLITS}

    def to(self, device) -> "Splits":
        """The splits with their tensors on `device` (uint8 images stay uint8); itself on the CPU."""
        if device.type == "cpu":
            return self
        return replace(self, x={s: t.to(device) for s, t in self.x.items()},
                       y={s: t.to(device) for s, t in self.y.items()})

    def inputs(self, split: str, rows=None) -> "torch.Tensor":
        """The model's float32 inputs for `rows` (an index tensor or a slice; all if None)."""
        x = self.x[split] if rows is None else self.x[split][rows]
        return x if self.pixels is None else self.pixels(x)


def derived_seed(seed: int, purpose: str) -> int:
    """An independent 63-bit seed for one purpose (a split, a noise draw) of one data seed."""
    words = [seed, *purpose.encode()]
    return int(np.random.SeedSequence(words).generate_state(2, np.uint64)[0] >> np.uint64(1))
