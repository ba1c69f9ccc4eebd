"""Model inputs made per batch: stored rows scaled on the fly, and training batches augmented.

Image sets stay uint8 rows, (n, channels * height * width), in memory or on disk: a quarter of
float32's memory. A user's float arrays stay as given (memory-mapped, float64, ...). `InputScale`
turns the rows a step or an evaluation needs into float32 model inputs, (x - mean) / std per
channel for images and per column otherwise: no float32 copy of a whole split is ever made.

`Augment` (`data.augment=true`) changes each training batch as cifar10-airbench does: a random
crop of the image padded by `data.crop_padding` pixels on every side (reflect padding: no
artificial borders) and, with `data.flip`, a horizontal flip of a random half. Its draws come
from the job's own generator (derived from the seed), so a job is reproduced exactly and a
vectorized member draws what its job alone would. Evaluation is never augmented. Cropping and
flipping move pixels and the scaling is per channel, so the two commute bit for bit: the
vectorized launcher augments scaled floats, a single job too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
from torch.nn import functional as F


class InputScale:
    """Rows of any dtype to float32 model inputs, (x - mean) / std per group of columns: per
    channel for images (a group is a channel's pixels), per column otherwise. The statistics are
    the training split's (`data.standardize`), else mean 0 and std 255 for uint8 images
    (torchvision's ToTensor scale) and 0 and 1 for floats (a plain cast to float32).

    They are computed when first needed, not when the data are built: checking a config (the
    sweeper's validation) lists an image folder without decoding it."""

    def __init__(self, train, groups: int, standardize: bool) -> None:
        self._train, self.groups, self.standardize = train, groups, standardize
        self._stats: Optional[Tuple[np.ndarray, np.ndarray]] = None
        self._tensors: dict = {}

    def stats(self) -> Tuple[np.ndarray, np.ndarray]:
        """(mean, std) per group, float32."""
        if self._stats is None:
            if self.standardize:
                mean, std = group_moments(self._train, self.groups)
            else:
                fill = 255.0 if self._train.dtype == np.uint8 else 1.0
                mean, std = np.zeros(self.groups), np.full(self.groups, fill)
            self._stats = (mean.astype(np.float32), std.astype(np.float32))
            self._train = None  # done with it (a memory map, or a folder's file list)
        return self._stats

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.device not in self._tensors:
            mean, std = self.stats()
            self._tensors[x.device] = (torch.from_numpy(mean).to(x.device).view(1, -1, 1),
                                       torch.from_numpy(std).to(x.device).view(1, -1, 1))
        mean, std = self._tensors[x.device]
        return ((x.view(len(x), self.groups, -1).to(torch.float32) - mean) / std).view(len(x), -1)


def group_moments(train, groups: int) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per group of the rows of `train` (any array-like source),
    in float64, a chunk of rows at a time (Chan's parallel update: no float copy of the set,
    and no cancellation for data far from 0). A constant group gets std 1."""
    from wdsweep.train.rows import row_chunks

    count, mean, m2 = 0, np.zeros(groups), np.zeros(groups)
    for part in row_chunks(train):
        values = part.numpy().reshape(len(part), groups, -1).astype(np.float64)
        n = values.shape[0] * values.shape[2]
        part_mean = values.mean(axis=(0, 2))
        values -= part_mean[None, :, None]  # in place: one chunk's copy at a time, no more
        np.square(values, out=values)
        part_m2 = values.sum(axis=(0, 2))
        delta = part_mean - mean
        total = count + n
        mean = mean + delta * n / total
        m2 = m2 + part_m2 + delta * delta * count * n / total
        count = total
    std = np.sqrt(m2 / max(count, 1))
    return mean, np.where(std > 0, std, 1.0)


@dataclass(frozen=True)
class Augment:
    """Random crop with reflect padding, and horizontal flips, of flat image rows."""
    image_shape: Tuple[int, int, int]
    crop_padding: int
    flip: bool

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        # The draws come from `generator` (a CPU generator: the same stream on every device)
        # and move to the images' device.
        n, dev = len(x), x.device
        c, h, w = self.image_shape
        images = x.view(n, c, h, w)
        if self.flip:
            flipped = (torch.rand(n, generator=generator) < 0.5).to(dev)
            images = torch.where(flipped.view(n, 1, 1, 1), images.flip(3), images)
        pad = self.crop_padding
        if pad:
            padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
            top = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(dev)
            left = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(dev)
            rows = (top.view(n, 1) + torch.arange(h, device=dev)).view(n, 1, h, 1).expand(n, c, h, w + 2 * pad)
            cols = (left.view(n, 1) + torch.arange(w, device=dev)).view(n, 1, 1, w).expand(n, c, h, w)
            images = padded.gather(2, rows).gather(3, cols)
        return images.reshape(n, -1)


# A data config without the keys (a user's own loader) gets these: CIFAR's usual settings.
DEFAULT_CROP_PADDING = 4
DEFAULT_FLIP = True


def augment_of(data_cfg, image_shape) -> Augment:
    """The Augment a data config with `augment: true` asks for."""
    return Augment(tuple(image_shape), int(data_cfg.get("crop_padding", DEFAULT_CROP_PADDING)),
                   bool(data_cfg.get("flip", DEFAULT_FLIP)))


def augment_problem(data_cfg, image_shape) -> str | None:
    """Why a data config's augmentation cannot apply to its data (one line), or None."""
    if not data_cfg.get("augment"):
        return None
    crop_padding = data_cfg.get("crop_padding", DEFAULT_CROP_PADDING)
    if not image_shape:
        return "data.augment=true needs image data (the data give no image_shape)"
    if not isinstance(crop_padding, int) or isinstance(crop_padding, bool) or crop_padding < 0:
        return f"data.crop_padding={crop_padding!r} is not allowed: an int >= 0"
    if crop_padding >= min(image_shape[1:]):
        return (f"data.crop_padding={crop_padding} is not allowed: below the image's height and width "
                f"({image_shape[1]}x{image_shape[2]}), as reflect padding needs")
    return None
