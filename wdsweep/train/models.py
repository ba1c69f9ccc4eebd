"""Models from config: any `_target_` that builds a torch.nn.Module, told the data's shapes.

A `model` config is what Hydra's `instantiate` takes: `_target_` (a dotted path to a class or
function) and its keyword arguments. wdsweep adds the data's shapes as keyword arguments, to
those the target declares (or to all, if it takes **kwargs), unless the config sets them:

    n_features   int         the width of a flat input row
    n_outputs    int         the number of classes (classification) or of targets (regression)
    image_shape  list|None   [channels, height, width] of image data, else None
    task         str         "regression" or "classification"

`name` is wdsweep's label for the model (charts, logs) and is not passed on; without it the
label is the target's last name, lowercased. The built-in `mlp`, `linear` and `cnn` are
ordinary targets of this module. Before any job of a sweep trains, `model_problem` builds
each distinct model once on the meta device (no memory, no random draws) and runs batches
of the data's shape through it (for real, on the CPU, when the model is small: cheaper than
loading torch's meta kernels; with the global generators' state restored), so a target that
cannot be imported or built, or whose output does not fit the data, is refused with one line.
The output must be one floating-point tensor of shape (batch, n_outputs) in training and in
eval mode, for two batch sizes (2, and one that is neither 2 nor a width of the data): a
tuple, an integer output or one whose batch size is fixed never reaches a training step.

Layers are created in forward order so that, from the same RNG state, the MLP's initial
weights are those of the weight-decay article's `nn.Sequential` of the same shape.
"""
from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence

from omegaconf import DictConfig, OmegaConf
from torch import nn

from wdsweep.train.targets import accepts, call_target, unknown_parameter

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
}

# The built-in targets (conf/model/*.yaml), whose keys validation knows.
MLP_TARGET = "wdsweep.models.mlp"
LINEAR_TARGET = "wdsweep.models.linear"
CNN_TARGET = "wdsweep.models.SmallCNN"


@dataclass(frozen=True)
class DataInfo:
    """The data's shapes, as the model's constructor is told them."""
    n_features: int
    n_outputs: int
    task: str
    image_shape: Optional[tuple] = None

    def kwargs(self) -> Dict[str, Any]:
        values = asdict(self)
        values["image_shape"] = list(self.image_shape) if self.image_shape else None
        return values


def data_info_of(splits) -> DataInfo:
    """The DataInfo of built splits (wdsweep.train.data.Splits)."""
    return DataInfo(splits.n_features, splits.n_outputs, splits.task,
                    tuple(splits.image_shape) if splits.image_shape else None)


def model_label(cfg: DictConfig) -> str:
    """`name` if the config has one, else the target's last name, lowercased."""
    name = cfg.get("name") if isinstance(cfg, DictConfig) else None
    if name:
        return str(name)
    return str(cfg.get("_target_", "model")).rsplit(".", 1)[-1].lower()


def build_model(cfg: DictConfig, info: DataInfo) -> nn.Module:
    """instantiate(cfg) with the data's shapes added as the target accepts them."""
    from hydra._internal.utils import _locate as get_object  # hydra.utils.get_object logs errors too
    from hydra.utils import instantiate

    spec = OmegaConf.to_container(cfg, resolve=True)
    spec.pop("name", None)
    target = get_object(spec["_target_"])
    given = {k: v for k, v in info.kwargs().items() if k not in spec and accepts(target, k)}
    model = call_target(instantiate, spec, given)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model._target_={spec['_target_']!r} returned a {type(model).__name__}, "
                        "not a torch.nn.Module")
    return model


def _spec_json(cfg: DictConfig) -> str:
    """A model config as a cache key."""
    return json.dumps(OmegaConf.to_container(cfg, resolve=True), sort_keys=True, default=str)


@functools.lru_cache(maxsize=64)
def _meta_model(spec_json: str, info: DataInfo) -> nn.Module:
    """The model built on the meta device (no memory, no random draws), once per distinct
    (model, data shapes): the fit check and the memory check share it. Raises what the
    target raises (not cached)."""
    import torch

    with torch.device("meta"):
        return build_model(OmegaConf.create(json.loads(spec_json)), info)


def parameter_count(cfg: DictConfig, info: DataInfo) -> int:
    """The model's parameter count, from its meta build."""
    return sum(p.numel() for p in _meta_model(_spec_json(cfg), info).parameters())


def model_problem(cfg: DictConfig, info: DataInfo) -> Optional[str]:
    """Why this model cannot train on this data (one line naming the key), or None. Cached per
    distinct (model, data shapes): a sweep of many lambdas and seeds checks it once."""
    return _model_problem(_spec_json(cfg), info)


# Up to this many parameters (64 MB of float32) the check runs the model for real, not on meta.
REAL_CHECK_PARAMETERS = 16_000_000


@functools.lru_cache(maxsize=64)
def _model_problem(spec_json: str, info: DataInfo) -> Optional[str]:
    import torch

    cfg = OmegaConf.create(json.loads(spec_json))
    target = cfg.get("_target_")
    unknown = unknown_parameter(cfg, "model", skip=("name",))
    if unknown:
        return unknown
    try:
        model = _meta_model(spec_json, info)
    except Exception as err:  # noqa: BLE001 - whatever the user's constructor raises
        return f"model._target_={target!r} is not allowed: a class or function that builds a " \
               f"torch.nn.Module from the model config ({_one_line(err)})"
    device = "meta"
    if sum(p.numel() for p in model.parameters()) <= REAL_CHECK_PARAMETERS:
        # A forward on the meta device loads torch's meta decompositions (sympy, dynamo:
        # about 2 s per process); a small model is cheaper to build and run for real, on
        # numbers drawn aside from the global generators.
        try:
            with torch.random.fork_rng(devices=[]):
                model = build_model(cfg, info)
            device = "cpu"
        except Exception:  # noqa: BLE001 - built on meta, not here (memory): check on meta
            pass
    # Two batch sizes: an output fixed to one batch size (x[:2], a hard-coded view) or laid out
    # (outputs, batch) cannot pass both; the second differs from the data's widths as well.
    for n in (2, _second_batch_size(info)):
        problem = _output_problem(model, torch.zeros(n, info.n_features, device=device), target, info)
        if problem:
            return problem
    return None


def _second_batch_size(info: DataInfo) -> int:
    """The smallest batch size above 2 that is neither the data's width nor its output count."""
    return next(n for n in range(3, 8) if n not in (info.n_features, info.n_outputs))


def _output_problem(model: nn.Module, x, target: str, info: DataInfo) -> Optional[str]:
    """Why the model's output for the batch `x` cannot be trained on (one line), or None: it
    must be one floating-point tensor of shape (batch, n_outputs), in training mode and in
    eval mode."""
    import torch

    n = len(x)
    # Both modes: training steps run in one, evaluation in the other, and a module may shape its
    # output by self.training (an eval-mode (n,) regression output would broadcast to (n, n)).
    for training in (True, False):
        model.train(training)
        mode = "" if training else " in eval mode"
        try:
            with torch.no_grad():
                out = model(x)
        except Exception as err:  # noqa: BLE001
            if "meta" in str(err).lower():
                return None  # a forward pass the meta device cannot run (data-dependent code): trust it
            return (f"model._target_={target!r} is not allowed: a model that takes a batch of the data's "
                    f"rows, shape ({n}, {info.n_features}){mode} ({_one_line(err)})")
        wanted = f"model._target_={target!r} is not allowed: an output of shape (batch, {info.n_outputs})"
        if not isinstance(out, torch.Tensor):
            # A tuple (logits, features), a dict, a HuggingFace-style output: the loss takes one tensor.
            return (f"{wanted}, one tensor; it gives {_kind_of(out)} for a batch of {n}{mode}: return the "
                    "predictions alone (a wrapper module can pick them out)")
        # (n,) is refused too: against (n, 1) targets the MSE would broadcast to an (n, n) matrix.
        if tuple(out.shape) != (n, info.n_outputs):
            what = f"{info.n_outputs} classes" if info.task == "classification" else f"{info.n_outputs} target(s)"
            return (f"{wanted} for this data ({what}); it gives {tuple(out.shape)} for a batch of {n}{mode}")
        if not out.dtype.is_floating_point:
            # Cross-entropy and the MSE need floats, and an integer output has no gradient.
            return (f"model._target_={target!r} is not allowed: outputs must be floating point (the loss "
                    f"and its gradient need them); it gives {str(out.dtype).replace('torch.', '')}{mode}")
    return None


def _kind_of(out: Any) -> str:
    """What a non-tensor output is, in a few words: 'a tuple of 2 (Tensor, Tensor)'."""
    if isinstance(out, (tuple, list)):
        kinds = ", ".join(type(o).__name__ for o in out[:4]) + (", ..." if len(out) > 4 else "")
        return f"a {type(out).__name__} of {len(out)} ({kinds})"
    if isinstance(out, dict):
        return f"a {type(out).__name__} with keys {', '.join(map(str, list(out)[:4]))}"
    return f"a {type(out).__name__}"


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:300]}" if text else type(err).__name__


# ------------------------------------------------------------------ the built-in models
def mlp(n_features: int, n_outputs: int, depth: int = 3, width: int = 200,
        activation: str = "relu") -> nn.Sequential:
    """`depth` hidden layers of `width` units, then a linear read-out (the weight-decay
    article's 1-200-200-200-1 net by default)."""
    layers: List[nn.Module] = []
    fan_in = n_features
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), _ACTIVATIONS[activation]()]
        fan_in = width
    layers.append(nn.Linear(fan_in, n_outputs))
    return nn.Sequential(*layers)


def linear(n_features: int, n_outputs: int) -> nn.Linear:
    """One affine layer: its fits can be checked against closed forms (Ridge, Lasso)."""
    return nn.Linear(n_features, n_outputs)


class SmallCNN(nn.Module):
    """Same-padded convolutions, one 2x2 max-pool, a hidden dense layer and a read-out."""

    def __init__(self, image_shape: Optional[Sequence[int]], n_outputs: int, channels: Sequence[int] = (16, 32),
                 kernel_size: int = 3, hidden: int = 64, activation: str = "relu") -> None:
        super().__init__()
        if not image_shape:
            raise ValueError("needs image data (data=digits, or data whose image_shape is known)")
        self.image_shape = tuple(image_shape)
        c_in, height, width = self.image_shape
        convs: List[nn.Module] = []
        for c_out in channels:
            convs += [nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2),
                      _ACTIVATIONS[activation]()]
            c_in = c_out
        self.features = nn.Sequential(*convs, nn.MaxPool2d(2), nn.Flatten())
        n_flat = c_in * (height // 2) * (width // 2)
        self.head = nn.Sequential(nn.Linear(n_flat, hidden), _ACTIVATIONS[activation](),
                                  nn.Linear(hidden, n_outputs))

    def forward(self, x):
        # The data hold flat feature rows; the image shape comes from the data set.
        return self.head(self.features(x.view(-1, *self.image_shape)))


class _BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm; the shortcut is the identity, or, where the block
    halves the map and doubles the channels, the input subsampled and zero-padded in channels
    (He et al. 2016's option A for CIFAR: no parameters, so the net has 0.27M of them)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.stride, self.pad = stride, c_out - c_in

    def forward(self, x):
        import torch.nn.functional as F

        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.stride != 1 or self.pad:
            shortcut = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, 0, self.pad))
        return F.relu(out + shortcut)


class ResNet(nn.Module):
    """The CIFAR ResNet of He et al. 2016 (section 4.2): a 3x3 convolution of 16 channels, three
    stages of n basic blocks with 16, 32 and 64 channels (the second and third start with
    stride 2), global average pooling and a linear read-out; depth = 6n + 2 (20, 32, 44, 56,
    110). BatchNorm after every convolution, which has no bias. Kaiming-normal convolutions
    (fan_out, as torchvision's ResNets), BatchNorm gains 1 and shifts 0."""

    def __init__(self, image_shape: Optional[Sequence[int]], n_outputs: int, depth: int = 20,
                 width: int = 16) -> None:
        super().__init__()
        if not image_shape:
            raise ValueError("needs image data (data=digits, data=image_folder, ...)")
        if (depth - 2) % 6 or depth < 8:
            raise ValueError(f"depth={depth}: must be 6n + 2 (20, 32, 44, 56, 110)")
        self.image_shape = tuple(image_shape)
        blocks = (depth - 2) // 6
        self.conv = nn.Conv2d(self.image_shape[0], width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        stages, c_in = [], width
        for i, c_out in enumerate((width, 2 * width, 4 * width)):
            for j in range(blocks):
                stages.append(_BasicBlock(c_in, c_out, stride=2 if (i > 0 and j == 0) else 1))
                c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(c_in, n_outputs)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        import torch.nn.functional as F

        x = x.view(-1, *self.image_shape)
        x = F.relu(self.bn(self.conv(x)))
        x = self.stages(x)
        return self.fc(x.mean(dim=(2, 3)))
