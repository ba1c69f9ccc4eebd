"""The models: mlp (seed 1's net by default), linear (for closed-form checks) and cnn (8x8 digits).

Layers are created in forward order so that, from the same RNG state, the MLP's initial
weights are those of seed 1's `nn.Sequential` of the same shape.
"""
from __future__ import annotations

from torch import nn
from omegaconf import DictConfig

from wdsweep.data import Splits

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
}


def build_model(cfg: DictConfig, splits: Splits) -> nn.Module:
    if cfg.name == "mlp":
        return mlp(splits.n_features, splits.n_outputs, cfg.depth, cfg.width, cfg.activation)
    if cfg.name == "linear":
        return nn.Linear(splits.n_features, splits.n_outputs)
    if cfg.name == "cnn":
        return SmallCNN(splits.image_shape, splits.n_outputs, list(cfg.channels),
                        cfg.kernel_size, cfg.hidden, cfg.activation)
    raise ValueError(f"unknown model {cfg.name!r}")  # validate() rules this out


def mlp(n_in: int, n_out: int, depth: int, width: int, activation: str) -> nn.Sequential:
    """`depth` hidden layers of `width` units, then a linear read-out."""
    layers, fan_in = [], n_in
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), _ACTIVATIONS[activation]()]
        fan_in = width
    layers.append(nn.Linear(fan_in, n_out))
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    """Same-padded convolutions, one 2x2 max-pool, a hidden dense layer and a read-out."""

    def __init__(self, image_shape, n_out: int, channels: list, kernel_size: int,
                 hidden: int, activation: str) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        c_in, height, width = self.image_shape
        convs = []
        for c_out in channels:
            convs += [nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2),
                      _ACTIVATIONS[activation]()]
            c_in = c_out
        self.features = nn.Sequential(*convs, nn.MaxPool2d(2), nn.Flatten())
        n_flat = c_in * (height // 2) * (width // 2)
        self.head = nn.Sequential(nn.Linear(n_flat, hidden), _ACTIVATIONS[activation](),
                                  nn.Linear(hidden, n_out))

    def forward(self, x):
        # The data hold flat feature rows; the image shape comes from the data set.
        return self.head(self.features(x.view(-1, *self.image_shape)))
