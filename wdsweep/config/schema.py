"""Typed schemas for every config group, the allowed values of every choice key, and their
registration in Hydra's ConfigStore (plus the resolver that names sweep job folders, from
wdsweep.config.job_folder).

One file for every group's schema, on purpose (about 400 lines): the comment on each field is
its documentation (the docs' config reference is generated from it), and a reader sees every
key and every allowed value in one place.

The dataclasses give OmegaConf the types, so `reg.lam=abc` fails at composition; the values
themselves are checked by wdsweep.config.validation. No torch here: validation runs before any
training, and Hydra's start-up should not pay for it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from wdsweep.config.job_folder import job_dir_name

# The allowed values of every choice key, in one place, so that messages and code agree.
TASKS = ("regression", "classification")
ACTIVATIONS = ("relu", "tanh", "gelu", "silu", "sigmoid", "leaky_relu")
SCHEDULES = ("constant", "cosine")
MODES = ("coupled", "decoupled", "proximal")
SCOPES = ("weights", "all")
IMPLS = ("auto", "manual", "loss", "optimizer")
# What a job may return to a sweeper: never a test metric. A list makes a multi-objective search
# (sparsity and weight_norm are properties of the weights, measured without test data).
OBJECTIVES = ("val_error", "val_loss", "sparsity", "weight_norm")
LOGGERS = ("none", "tensorboard", "mlflow")
# Loggers that watch the training step by step (callbacks): a member of a batched model
# (hydra/launcher=vectorized) cannot give them its own model. mlflow exports each job's files
# once it is written (wdsweep.mlflow_export), so batched members have it too.
STEP_LOGGERS = ("tensorboard",)
DATASETS = ("regression1d", "digits", "moons", "csv")
OPTIMIZERS = ("sgd", "adam", "adamw")
PRECISIONS = ("32", "bf16-mixed", "16-mixed")  # trainer.precision, Lightning's names
# Data sets whose inputs are images, and so suit model=cnn.
IMAGE_DATASETS = ("digits",)


# ----------------------------------------------------------------------------- data
@dataclass
class DataConfig:
    # The option's name (for torchvision: the class of torchvision.datasets); passed to a loader
    # only if it takes a `name` argument.
    name: str = MISSING
    # None: the data are drawn from the run's `seed`, so each seed is a fresh data draw
    # (and, for regression1d, the weight-decay article's exact RNG order). An int fixes the data across seeds.
    seed: Optional[int] = None
    # Worker processes (a torch DataLoader's) that read the training batches and evaluation
    # chunks: 0 reads them in the job's own process. Worth it where reading is the work: an
    # image folder decoded file by file, a memory-mapped set on a slow disk. The same rows,
    # scaled and augmented in the job's process, so no number changes: not part of a job's
    # identity (changing it does not rerun a finished job).
    num_workers: int = 0
    # With num_workers > 0 on a CUDA device: the workers' batches go through pinned memory and
    # the copy to the GPU does not block.
    pin_memory: bool = True
    # With num_workers > 0: the evaluation's workers live from one evaluation to the next.
    persistent_workers: bool = True


@dataclass
class Regression1dConfig(DataConfig):
    name: str = "regression1d"
    # Training points.
    n_train: int = 10
    # Validation points.
    n_val: int = 10
    # Test points.
    n_test: int = 10
    # The line the points lie near: y = slope * x + noise.
    slope: float = 1.5
    # The points lie on linspace(x_min, x_max).
    x_min: float = -1.0
    # See x_min.
    x_max: float = 1.0
    # Standard deviation of the training targets' noise.
    train_noise: float = 0.5
    # Standard deviation of the validation targets' noise (a second held-out draw, made like the
    # test draw).
    val_noise: float = 0.3
    # Standard deviation of the test targets' noise.
    test_noise: float = 0.3


@dataclass
class ImageDataConfig(DataConfig):
    """Data that may hold images: on-the-fly augmentation of training batches (wdsweep.train.images),
    a random crop with reflect padding and horizontal flips, off by default."""
    # Augment training batches of images: a random crop of the reflect-padded image and, with
    # `flip`, a horizontal flip of a random half (as cifar10-airbench). Evaluation is never
    # augmented.
    augment: bool = False
    # Pixels of reflect padding for the random crop.
    crop_padding: int = 4
    # Flip a random half of each augmented batch horizontally.
    flip: bool = True


@dataclass
class DigitsConfig(ImageDataConfig):
    name: str = "digits"
    # Stratified share of the images held out for validation.
    val_fraction: float = 0.2
    # Stratified share of the images held out for test.
    test_fraction: float = 0.2
    # Subsample the training split (stratified) so that overfitting, and so regularization, shows.
    n_train: Optional[int] = None
    # An 8x8 image takes little padding.
    crop_padding: int = 1
    # Off: digits are not mirror images of themselves.
    flip: bool = False


@dataclass
class MoonsConfig(DataConfig):
    name: str = "moons"
    # Training points.
    n_train: int = 200
    # Validation points.
    n_val: int = 200
    # Test points.
    n_test: int = 1000
    # Standard deviation of the Gaussian noise on the points.
    noise: float = 0.25
    # Fraction of labels flipped at random, in every split alike.
    label_noise: float = 0.1


@dataclass
class CsvConfig(DataConfig):
    name: str = "csv"
    # The csv file (relative to the directory the command ran in). A `split` column
    # (train/val/test), if there is one, is used as given.
    path: str = MISSING
    # The target column; every other column but `split` is a numeric, complete feature.
    target: str = MISSING
    # regression or classification (labels may be any values; they become 0..K-1 in sorted order).
    # null: classification for a column of integers, booleans or text, regression for other
    # numbers; whole-number floats with at most 20 distinct values (0.0/1.0/2.0) are refused until you
    # say which (the log names the choice).
    task: Optional[str] = None
    # Scale the features by the training split's mean and standard deviation.
    standardize: bool = True
    # Used only when the file has no `split` column.
    val_fraction: float = 0.2
    # Used only when the file has no `split` column.
    test_fraction: float = 0.2


# Loaders named by `_target_` (wdsweep.datasets explains the contract; a user's own
# conf/data/<name>.yaml needs no schema). `name`, `seed`, `standardize`, `augment`,
# `crop_padding`, `flip` and the reading keys (`num_workers`, ...) are wdsweep's keys.
@dataclass
class NpzConfig(ImageDataConfig):
    _target_: str = "wdsweep.datasets.npz"
    name: str = "npz"
    # One .npz holding x_train, y_train, x_test, y_test (and optionally x_val, y_val), or a folder
    # of train.npz, val.npz, test.npz holding x and y, or a folder of x_train.npy, y_train.npy, ...
    # .npy files and uncompressed .npz members are memory-mapped, not loaded.
    path: str = MISSING
    task: Optional[str] = None  # null: classification for integer labels, else regression
    val_fraction: float = 0.1  # carved from train by the seed when the file has no val split
    # Scale float data by the training split's statistics (per channel for images); for uint8 images
    # false means x / 255.
    standardize: bool = True


@dataclass
class ImageFolderConfig(ImageDataConfig):
    _target_: str = "wdsweep.datasets.image_folder"
    name: str = "image_folder"
    # A folder of train/<class>/*, test/<class>/* and optionally val/<class>/* images (png, jpg,
    # bmp, gif, tiff, webp).
    root: str = MISSING
    mode: str = "RGB"  # or "L" for one grey channel
    size: Optional[List[int]] = None  # [height, width] to resize to
    # Carved from train by the seed when there is no val folder.
    val_fraction: float = 0.1
    # Scale by the training split's per-channel statistics.
    standardize: bool = True


@dataclass
class TorchvisionConfig(ImageDataConfig):
    _target_: str = "wdsweep.datasets.torchvision"
    name: str = "CIFAR10"  # a class of torchvision.datasets
    # Where the data are kept.
    root: str = "~/.cache/wdsweep/torchvision"
    # Let torchvision download the data.
    download: bool = False
    val_fraction: float = 0.1  # carved from the training set by the seed
    options: Optional[Dict[str, Any]] = None  # more keyword arguments for the class
    # Scale by the training split's per-channel statistics.
    standardize: bool = True


# ---------------------------------------------------------------------------- model
# A model is any `_target_` Hydra's instantiate can call (wdsweep.models explains how the
# data's shapes reach it). These are the schemas of the built-in ones; a user's own
# conf/model/<name>.yaml needs no schema: `_target_` and its keyword arguments.
@dataclass
class ModelConfig:
    _target_: str = MISSING
    # wdsweep's label for charts and logs (not passed to the target).
    name: Optional[str] = None


@dataclass
class MLPConfig(ModelConfig):
    _target_: str = "wdsweep.models.mlp"
    name: Optional[str] = "mlp"
    # Hidden layers.
    depth: int = 3
    # Units per hidden layer.
    width: int = 200
    # relu, tanh, gelu, silu, sigmoid or leaky_relu.
    activation: str = "relu"


@dataclass
class LinearConfig(ModelConfig):
    _target_: str = "wdsweep.models.linear"
    name: Optional[str] = "linear"


@dataclass
class CNNConfig(ModelConfig):
    _target_: str = "wdsweep.models.SmallCNN"
    name: Optional[str] = "cnn"
    # Channels of the same-padded convolutions, one per layer.
    channels: List[int] = field(default_factory=lambda: [16, 32])
    # The convolutions' kernel size.
    kernel_size: int = 3
    # Units of the dense layer after the 2x2 max-pool.
    hidden: int = 64
    # relu, tanh, gelu, silu, sigmoid or leaky_relu.
    activation: str = "relu"


@dataclass
class ResNetConfig(ModelConfig):
    _target_: str = "wdsweep.models.ResNet"
    name: Optional[str] = "resnet"
    # 6n + 2: 20, 32, 44, 56, 110.
    depth: int = 20
    # Channels in the first of the three stages (then twice and four times as many).
    width: int = 16


# ------------------------------------------------------------------------ optimizer
@dataclass
class OptimizerConfig:
    """No weight_decay key on purpose: the reg group owns all decay."""

    # sgd, adam or adamw.
    name: str = MISSING
    # The base learning rate.
    lr: float = 0.01
    # constant, or cosine: from lr to min_lr over trainer.steps.
    schedule: str = "constant"
    # Steps of linear warm-up from 0 to lr before the schedule.
    warmup_steps: int = 0
    # Cosine decays the learning rate from lr to min_lr over trainer.steps.
    min_lr: float = 0.0
    # SGD: torch's fused kernel where it has one (one pass for the whole update, decay
    # included): faster on small nets, equal to the default kernel up to float rounding. false
    # gives torch's default kernel, as a plain script would (experiment=seed_regression does).
    # Adam and AdamW always use their default kernel (their fused one drifts further).
    fused: bool = True


@dataclass
class SGDConfig(OptimizerConfig):
    name: str = "sgd"
    # Momentum (torch.optim.SGD's).
    momentum: float = 0.9
    # Nesterov momentum.
    nesterov: bool = False


@dataclass
class AdamConfig(OptimizerConfig):
    name: str = "adam"
    lr: float = 1e-3
    # The moving averages' coefficients.
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    # Added to the denominator for numerical stability.
    eps: float = 1e-8


@dataclass
class AdamWConfig(AdamConfig):
    name: str = "adamw"


# ------------------------------------------------------------------------------ reg
@dataclass
class RegConfig:
    """penalty = lam * [l1_ratio * sum|w| + (1 - l1_ratio) * (1/p) * sum|w|^p] over the scope."""

    # lambda >= 0. At p = 2 (l1_ratio 0) lam is exactly torch's weight_decay: the penalty is (lam/2)
    # * sum w^2.
    lam: float = 0.0
    # The exponent, any float > 0 (p < 1 is smoothed by eps).
    p: float = 2.0
    # coupled: in the gradient, before the optimizer; decoupled: on the weights, AdamW/SGDW style;
    # proximal: a closed-form prox step after the optimizer (p = 1 or 2).
    mode: str = "coupled"
    # weights: tensors with dim >= 2 (matrices, kernels; no biases, no norm gains); all: every
    # parameter.
    scope: str = "weights"
    # The share of the L1 term in an elastic-net penalty (0: pure Lp).
    l1_ratio: float = 0.0
    # For p < 1, |w| is smoothed to sqrt(w^2 + eps^2) so the gradient stays finite at 0.
    eps: float = 1e-3
    # How the decay is applied: manual (our own update in the step), loss (a penalty term
    # through autograd; coupled only) or optimizer (torch's own weight_decay, where it computes
    # the same thing). auto = optimizer where possible, else manual. All give one trajectory.
    impl: str = "auto"
    # Decoupled decay under SGD with momentum mu converges to loss + (1 - mu) * penalty
    # (PyTorch's SGDW/AdamW convention, the default). true steps by lr*lam/(1 - mu) instead,
    # whose fixed point is loss + penalty. SGD only: under Adam/AdamW no exact correction
    # exists (validation refuses it). Coupled and proximal decay are exact without it.
    momentum_corrected: bool = False


# -------------------------------------------------------------------------- trainer
@dataclass
class TrainerConfig:
    # Optimizer steps (not read when `epochs` is set).
    steps: int = 2000
    # Passes over the training rows instead of `steps`: ceil(epochs * n_train / batch_size)
    # steps (full batch: epochs steps). null: `steps` counts.
    epochs: Optional[int] = None
    batch_size: Optional[int] = None  # None: full batch
    # Evaluate train, val and test (and log them) every this many steps, and at the end.
    eval_every: int = 200
    # Show a progress bar in a single run on a terminal.
    progress: bool = True
    # Write model.pt, the final state_dict.
    save_model: bool = True
    # None: the thread rule (wdsweep.jobs.threads): the cores free when the job starts for models
    # whose numbers do not depend on the count, a fixed count for the others.
    threads: Optional[int] = None
    # Treat subnormal floats (below 1.2e-38) as zero on the CPU (torch.set_flush_denormal),
    # as TensorFlow does by default: arithmetic on them is many times slower, and the momentum
    # of a unit that gets no gradient decays through that range. No metric changes that we
    # could measure (tested); false gives IEEE arithmetic exactly.
    flush_denormal: bool = True
    # Where the job trains: auto (CUDA when torch sees a GPU, else the CPU), cpu, cuda, cuda:N
    # or mps. With several GPUs, jobs run in parallel (joblib's n_jobs, worker mode) each take
    # their own (the docs' "Real runs"). The vectorized launcher trains its batches here too.
    device: str = "auto"
    # torch.use_deterministic_algorithms: on a GPU, the same bits on every run, at the cost of
    # slower kernels, and a job fails where an op has no deterministic kernel. On the CPU the
    # training is deterministic already and this changes nothing we could measure.
    deterministic: bool = False
    # 32, bf16-mixed or 16-mixed (Lightning's names): mixed runs the forward pass and the data
    # loss under autocast in bfloat16 or float16 (16-mixed with a gradient scaler); the weights,
    # the optimizer and the penalty, decay and proximal steps stay float32.
    precision: str = "32"
    # Write a checkpoint every this many steps (null: by time only, checkpoint_seconds). A
    # killed or preempted job run again continues from its last checkpoint, and ends with the
    # same numbers and model.pt, bit for bit, as if it had never stopped.
    checkpoint_every: Optional[int] = None
    # Also write one when this many seconds of training passed since the last (0: never by
    # time): jobs shorter than this write none.
    checkpoint_seconds: float = 600.0
    # Keep the last checkpoint of a finished job (else it is removed once metrics.json is written).
    keep_checkpoint: bool = False


# --------------------------------------------------------------------------- logger
@dataclass
class LoggerConfig:
    # none, tensorboard or mlflow.
    name: str = "none"


@dataclass
class TensorBoardConfig(LoggerConfig):
    name: str = "tensorboard"
    # Weight and gradient histograms per parameter, as the weight-decay article drew them.
    histogram_every: int = 200


@dataclass
class MlflowConfig(LoggerConfig):
    """Each finished job exported as one MLflow run (wdsweep.mlflow_export)."""
    name: str = "mlflow"
    # null: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db; local paths are relative to the
    # directory the command ran in.
    tracking_uri: Optional[str] = None
    # null: a sweep's folder relative to that directory (multirun/<date>/<time>); single
    # runs: wdsweep.
    experiment: Optional[str] = None


# ------------------------------------------------------------------------------ top
@dataclass
class WdsweepConfig:
    data: Any = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    reg: RegConfig = field(default_factory=RegConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: Any = MISSING
    # Seeds the data draw (unless data.seed is set), the initial weights and the batch order.
    seed: int = 0
    # The metric the job returns to sweepers (a list: a tuple of them). Nothing selects on test.
    objective: Any = "val_error"


_GROUP_SCHEMAS = {
    "data": {
        "regression1d": Regression1dConfig,
        "digits": DigitsConfig,
        "moons": MoonsConfig,
        "csv": CsvConfig,
        "npz": NpzConfig,
        "image_folder": ImageFolderConfig,
        "torchvision": TorchvisionConfig,
    },
    "model": {"mlp": MLPConfig, "linear": LinearConfig, "cnn": CNNConfig, "resnet": ResNetConfig},
    "optimizer": {"sgd": SGDConfig, "adam": AdamConfig, "adamw": AdamWConfig},
    "reg": {"base": RegConfig},
    "trainer": {"base": TrainerConfig},
    "logger": {"none": LoggerConfig, "tensorboard": TensorBoardConfig, "mlflow": MlflowConfig},
}

def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore and register our resolver.

    Group schemas live under schema/<group>/<name>, out of the groups users pick from; each
    option's yaml extends its schema with `- /schema/<group>/<name>@_here_`."""
    cs = ConfigStore.instance()
    cs.store(name="wdsweep_schema", node=WdsweepConfig)
    for group, schemas in _GROUP_SCHEMAS.items():
        for name, node in schemas.items():
            cs.store(group=f"schema/{group}", name=name, node=node)
    if not OmegaConf.has_resolver("wdsweep.job_dir"):
        OmegaConf.register_new_resolver("wdsweep.job_dir", job_dir_name)


register_configs()
