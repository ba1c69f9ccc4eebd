"""Image inputs as tensors: uint8 pixels scaled on the fly, and training batches augmented.

Large image sets stay in memory as uint8 rows, (n, channels * height * width): a quarter of
float32's memory. `PixelScale` turns the rows a step or an evaluation needs into float32
model inputs, (x - mean) / std per channel (the training split's statistics with
`data.standardize`, else mean 0 and std 255, torchvision's ToTensor scale).

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
from typing import Tuple

import numpy as np
import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class PixelScale:
    """uint8 rows to float32 inputs, per channel."""
    mean: Tuple[float, ...]
    std: Tuple[float, ...]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        c = len(self.mean)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device).view(1, c, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=x.device).view(1, c, 1)
        return ((x.view(len(x), c, -1).to(torch.float32) - mean) / std).view(len(x), -1)

    @staticmethod
    def of(train: np.ndarray, channels: int, standardize: bool, chunk: int = 4096) -> "PixelScale":
        """The scale for uint8 rows `train` (n, channels * pixels): their per-channel mean and
        standard deviation (summed in float64, a chunk of rows at a time: no float copy of
        the set), or ToTensor's 1/255."""
        if not standardize:
            return PixelScale((0.0,) * channels, (255.0,) * channels)
        total = np.zeros(channels)
        squares = np.zeros(channels)
        for start in range(0, len(train), chunk):
            part = train[start:start + chunk].reshape(-1, channels, train.shape[1] // channels).astype(np.float64)
            total += part.sum(axis=(0, 2))
            squares += (part * part).sum(axis=(0, 2))
        count = len(train) * (train.shape[1] // channels)
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
        std = np.where(std > 0, std, 1.0)
        return PixelScale(tuple(float(m) for m in mean), tuple(float(s) for s in std))


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
