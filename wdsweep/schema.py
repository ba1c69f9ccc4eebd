"""Typed schemas for every config group, their ConfigStore registration, and validate(cfg).

The dataclasses give OmegaConf the types (so `reg.lam=abc` fails at composition); `validate`
checks the values, across groups, before anything is built or trained. Every problem is
reported on one line naming the key, the value and what is allowed.

This module must stay light (no torch): Hydra imports our sweeper plugin, and with it this
module, at start-up of every Hydra app in the environment.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, NoReturn, Optional

from hydra.core.config_store import ConfigStore
from hydra.errors import CompactHydraException
from omegaconf import MISSING, DictConfig, OmegaConf

SCHEMA_VERSION = 1

# The allowed values of every choice key, in one place, so that messages and code agree.
TASKS = ("regression", "classification")
ACTIVATIONS = ("relu", "tanh", "gelu", "silu", "sigmoid", "leaky_relu")
SCHEDULES = ("constant", "cosine")
MODES = ("coupled", "decoupled", "proximal")
SCOPES = ("weights", "all")
IMPLS = ("auto", "manual", "loss", "optimizer")
OBJECTIVES = ("val_error", "val_loss")
LOGGERS = ("none", "tensorboard")
DATASETS = ("regression1d", "digits", "moons", "csv")
MODELS = ("mlp", "linear", "cnn")
OPTIMIZERS = ("sgd", "adam", "adamw")
# Data sets whose inputs are images, and so suit model=cnn.
IMAGE_DATASETS = ("digits",)


class ConfigError(CompactHydraException):
    """A config value is not allowed. Hydra prints only the message, on one line."""

    def exit(self) -> NoReturn:
        """End the program with this error as its one line on stderr, exit status 1."""
        sys.exit(f"wdsweep: {self}")


# ----------------------------------------------------------------------------- data
@dataclass
class DataConfig:
    name: str = MISSING
    # None: the data are drawn from the run's `seed`, so each seed is a fresh data draw
    # (and, for regression1d, seed 1's exact RNG order). An int fixes the data across seeds.
    seed: Optional[int] = None


@dataclass
class Regression1dConfig(DataConfig):
    name: str = "regression1d"
    n_train: int = 10
    n_val: int = 10
    n_test: int = 10
    slope: float = 1.5
    x_min: float = -1.0
    x_max: float = 1.0
    train_noise: float = 0.5
    # Validation is a second held-out draw made like the test draw.
    val_noise: float = 0.3
    test_noise: float = 0.3


@dataclass
class DigitsConfig(DataConfig):
    name: str = "digits"
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    # Subsample the training split (stratified) so that overfitting, and so regularization, shows.
    n_train: Optional[int] = None


@dataclass
class MoonsConfig(DataConfig):
    name: str = "moons"
    n_train: int = 200
    n_val: int = 200
    n_test: int = 1000
    noise: float = 0.25
    # Fraction of labels flipped at random, in every split alike.
    label_noise: float = 0.1


@dataclass
class CsvConfig(DataConfig):
    name: str = "csv"
    path: str = MISSING
    target: str = MISSING
    task: str = "regression"
    standardize: bool = True
    # Used only when the file has no `split` column.
    val_fraction: float = 0.2
    test_fraction: float = 0.2


# ---------------------------------------------------------------------------- model
@dataclass
class ModelConfig:
    name: str = MISSING


@dataclass
class MLPConfig(ModelConfig):
    name: str = "mlp"
    depth: int = 3
    width: int = 200
    activation: str = "relu"


@dataclass
class LinearConfig(ModelConfig):
    name: str = "linear"


@dataclass
class CNNConfig(ModelConfig):
    name: str = "cnn"
    channels: List[int] = field(default_factory=lambda: [16, 32])
    kernel_size: int = 3
    hidden: int = 64
    activation: str = "relu"


# ------------------------------------------------------------------------ optimizer
@dataclass
class OptimizerConfig:
    """No weight_decay key on purpose: the reg group owns all decay."""

    name: str = MISSING
    lr: float = 0.01
    schedule: str = "constant"
    warmup_steps: int = 0
    # Cosine decays the learning rate from lr to min_lr over trainer.steps.
    min_lr: float = 0.0


@dataclass
class SGDConfig(OptimizerConfig):
    name: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = False


@dataclass
class AdamConfig(OptimizerConfig):
    name: str = "adam"
    lr: float = 1e-3
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8


@dataclass
class AdamWConfig(AdamConfig):
    name: str = "adamw"


# ------------------------------------------------------------------------------ reg
@dataclass
class RegConfig:
    """penalty = lam * [l1_ratio * sum|w| + (1 - l1_ratio) * (1/p) * sum|w|^p] over the scope."""

    lam: float = 0.0
    p: float = 2.0
    mode: str = "coupled"
    scope: str = "weights"
    l1_ratio: float = 0.0
    # For p < 1, |w| is smoothed to sqrt(w^2 + eps^2) so the gradient stays finite at 0.
    eps: float = 1e-3
    # How the decay is applied: manual (our own update in the step), loss (a penalty term
    # through autograd; coupled only) or optimizer (torch's own weight_decay, where it computes
    # the same thing). auto = optimizer where possible, else manual. All give one trajectory.
    impl: str = "auto"


# -------------------------------------------------------------------------- trainer
@dataclass
class TrainerConfig:
    steps: int = 2000
    batch_size: Optional[int] = None  # None: full batch
    eval_every: int = 200
    progress: bool = True
    save_model: bool = True
    # None keeps torch's default thread count.
    threads: Optional[int] = None


# --------------------------------------------------------------------------- logger
@dataclass
class LoggerConfig:
    name: str = "none"


@dataclass
class TensorBoardConfig(LoggerConfig):
    name: str = "tensorboard"
    # Weight and gradient histograms per parameter, as seed 1 drew them.
    histogram_every: int = 200


# ------------------------------------------------------------------------------ top
@dataclass
class WdsweepConfig:
    data: Any = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    reg: RegConfig = field(default_factory=RegConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: Any = MISSING
    seed: int = 0
    # The metric the job returns to sweepers. Only validation metrics: nothing selects on test.
    objective: str = "val_error"


_GROUP_SCHEMAS = {
    "data": {
        "regression1d": Regression1dConfig,
        "digits": DigitsConfig,
        "moons": MoonsConfig,
        "csv": CsvConfig,
    },
    "model": {"mlp": MLPConfig, "linear": LinearConfig, "cnn": CNNConfig},
    "optimizer": {"sgd": SGDConfig, "adam": AdamConfig, "adamw": AdamWConfig},
    "reg": {"reg": RegConfig},
    "trainer": {"trainer": TrainerConfig},
    "logger": {"none": LoggerConfig, "tensorboard": TensorBoardConfig},
}

_UNSAFE_DIR_CHARS = re.compile(r"[^A-Za-z0-9._,=+\-]")
_MAX_DIR_LEN = 120


def job_dir_name(override_dirname: str) -> str:
    """A file-system-safe, stable job folder name made from a job's overrides.

    Hydra's override_dirname may hold '/' (a csv path) or be very long; such names are
    sanitized and, past _MAX_DIR_LEN characters, shortened with a hash so that distinct
    override sets never share a folder.
    """
    safe = _UNSAFE_DIR_CHARS.sub("_", override_dirname)
    if safe == override_dirname and 0 < len(safe) <= _MAX_DIR_LEN:
        return safe
    if not override_dirname:
        return "default"
    digest = hashlib.sha1(override_dirname.encode()).hexdigest()[:8]
    return f"{safe[: _MAX_DIR_LEN - 9]}-{digest}"


def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore (group/<name>_schema) and our resolver."""
    cs = ConfigStore.instance()
    cs.store(name="wdsweep_schema", node=WdsweepConfig)
    for group, schemas in _GROUP_SCHEMAS.items():
        for name, node in schemas.items():
            cs.store(group=group, name=f"{name}_schema", node=node)
    if not OmegaConf.has_resolver("wdsweep.job_dir"):
        OmegaConf.register_new_resolver("wdsweep.job_dir", job_dir_name)


register_configs()


# ------------------------------------------------------------------------- validate
class _Checker:
    """Collects every invalid value of a config so the user sees them all at once."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.problems: List[str] = []

    def get(self, key: str) -> Any:
        node, _, leaf = key.rpartition(".")
        parent = OmegaConf.select(self.cfg, node) if node else self.cfg
        if parent is None or OmegaConf.is_missing(parent, leaf):
            return MISSING
        return OmegaConf.select(self.cfg, key)

    def fail(self, key: str, value: Any, allowed: str) -> None:
        self.problems.append(f"{key}={value!r} is not allowed: {allowed}")

    def require(self, key: str, allowed: str) -> bool:
        if self.get(key) is MISSING:
            self.problems.append(f"{key} is missing: {allowed}")
            return False
        return True

    def choice(self, key: str, choices: tuple) -> None:
        value = self.get(key)
        if value not in choices:
            self.fail(key, value, "one of " + ", ".join(map(str, choices)))

    def number(self, key: str, *, low: float = -math.inf, high: float = math.inf,
               low_open: bool = False, high_open: bool = False, optional: bool = False) -> None:
        value = self.get(key)
        if value is None and optional:
            return
        ok = isinstance(value, (int, float)) and math.isfinite(value)
        if ok:
            ok = (value > low if low_open else value >= low) and (
                value < high if high_open else value <= high
            )
        if not ok:
            lo = ("(" if low_open else "[") + (str(low) if low != -math.inf else "-inf")
            hi = (str(high) if high != math.inf else "inf") + (")" if high_open else "]")
            self.fail(key, value, f"a finite number in {lo}, {hi}" + (" or null" if optional else ""))


def validate(cfg: DictConfig) -> None:
    """Check every value of a composed config; raise ConfigError listing all problems."""
    check = _Checker(cfg)
    check.number("seed", low=0, high=2**63 - 1)
    check.choice("objective", OBJECTIVES)
    _validate_data(check)
    _validate_model(check)
    _validate_optimizer(check)
    _validate_reg(check)
    _validate_trainer(check)
    _validate_logger(check)
    if check.problems:
        raise ConfigError("invalid config: " + "; ".join(check.problems))
    _validate_data_contents(cfg)


def _validate_data(check: _Checker) -> None:
    name = check.get("data.name")
    if name not in DATASETS:
        check.fail("data", name, "one of " + ", ".join(DATASETS))
        return
    check.number("data.seed", low=0, high=2**63 - 1, optional=True)
    if name == "regression1d":
        for split in ("train", "val", "test"):
            check.number(f"data.n_{split}", low=1)
            check.number(f"data.{split}_noise", low=0)
        check.number("data.slope")
        if not check.get("data.x_min") < check.get("data.x_max"):
            check.fail("data.x_max", check.get("data.x_max"), "greater than data.x_min")
    elif name == "digits":
        _check_fractions(check)
        check.number("data.n_train", low=10, optional=True)
    elif name == "moons":
        for split in ("train", "val", "test"):
            check.number(f"data.n_{split}", low=2)
        check.number("data.noise", low=0)
        check.number("data.label_noise", low=0, high=0.5, high_open=True)
    elif name == "csv":
        _check_fractions(check)
        check.choice("data.task", TASKS)
        check.require("data.target", "the name of the target column, e.g. data.target=y")
        if check.require("data.path", "a csv file, e.g. data.path=my_data.csv"):
            path = Path(check.get("data.path")).expanduser()
            if not path.is_file():
                check.fail("data.path", str(path), "an existing csv file (not found)")


def _check_fractions(check: _Checker) -> None:
    check.number("data.val_fraction", low=0, high=1, low_open=True, high_open=True)
    check.number("data.test_fraction", low=0, high=1, low_open=True, high_open=True)
    val, test = check.get("data.val_fraction"), check.get("data.test_fraction")
    if isinstance(val, float) and isinstance(test, float) and val + test >= 1:
        check.fail("data.val_fraction", val, f"val_fraction + test_fraction < 1 (test_fraction={test})")


def _validate_model(check: _Checker) -> None:
    name = check.get("model.name")
    if name not in MODELS:
        check.fail("model", name, "one of " + ", ".join(MODELS))
        return
    if name == "mlp":
        check.number("model.depth", low=1)
        check.number("model.width", low=1)
        check.choice("model.activation", ACTIVATIONS)
    elif name == "cnn":
        channels = check.get("model.channels")
        if not channels or any(c < 1 for c in channels):
            check.fail("model.channels", list(channels or []), "a non-empty list of positive ints")
        kernel = check.get("model.kernel_size")
        if not (isinstance(kernel, int) and kernel >= 1 and kernel % 2 == 1):
            check.fail("model.kernel_size", kernel, "an odd positive int (padding keeps 8x8 maps)")
        check.number("model.hidden", low=1)
        check.choice("model.activation", ACTIVATIONS)
        data = check.get("data.name")
        if data in DATASETS and data not in IMAGE_DATASETS:
            check.fail("model", "cnn", "image data: data=" + " or data=".join(IMAGE_DATASETS)
                       + f" (got data={data})")


def _validate_optimizer(check: _Checker) -> None:
    name = check.get("optimizer.name")
    if name not in OPTIMIZERS:
        check.fail("optimizer", name, "one of " + ", ".join(OPTIMIZERS))
        return
    check.number("optimizer.lr", low=0, low_open=True)
    check.choice("optimizer.schedule", SCHEDULES)
    check.number("optimizer.warmup_steps", low=0)
    check.number("optimizer.min_lr", low=0)
    lr, min_lr = check.get("optimizer.lr"), check.get("optimizer.min_lr")
    if isinstance(min_lr, (int, float)) and isinstance(lr, (int, float)) and min_lr > lr:
        check.fail("optimizer.min_lr", min_lr, f"<= optimizer.lr ({lr})")
    if name == "sgd":
        check.number("optimizer.momentum", low=0, high=1, high_open=True)
        if check.get("optimizer.nesterov") and not check.get("optimizer.momentum"):
            check.fail("optimizer.nesterov", True, "only with optimizer.momentum > 0")
    else:
        betas = check.get("optimizer.betas")
        if betas is MISSING or len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            check.fail("optimizer.betas", list(betas), "two numbers in [0, 1)")
        check.number("optimizer.eps", low=0, low_open=True)


def _validate_reg(check: _Checker) -> None:
    check.number("reg.lam", low=0)
    check.number("reg.p", low=0, low_open=True)
    check.choice("reg.mode", MODES)
    check.choice("reg.scope", SCOPES)
    check.number("reg.l1_ratio", low=0, high=1)
    check.number("reg.eps", low=0)
    check.choice("reg.impl", IMPLS)
    p, mode, impl = check.get("reg.p"), check.get("reg.mode"), check.get("reg.impl")
    if mode == "proximal" and p not in (1, 2):
        check.fail("reg.p", p, "1 or 2 with reg.mode=proximal (the only p with a closed-form prox step)")
    if isinstance(p, (int, float)) and 0 < p < 1 and not check.get("reg.eps") > 0:
        check.fail("reg.eps", check.get("reg.eps"), "> 0 when reg.p < 1 (it smooths |w| at 0)")
    if impl == "loss" and mode != "coupled":
        check.fail("reg.impl", impl, "only with reg.mode=coupled (a loss penalty is coupled decay)")
    if impl == "optimizer" and not native_decay(check.cfg):
        check.fail("reg.impl", impl, "only where torch's own weight_decay computes the same thing: "
                   "p=2 and l1_ratio=0 with coupled decay on sgd/adam or decoupled decay on adamw")


def native_decay(cfg: DictConfig) -> bool:
    """Whether torch's own weight_decay on cfg.optimizer computes exactly cfg.reg."""
    reg = cfg.reg
    return has_native_decay(reg.p, reg.l1_ratio, reg.mode, cfg.optimizer.name)


def has_native_decay(p: float, l1_ratio: float, mode: str, optimizer: str) -> bool:
    """torch's SGD and Adam add weight_decay*w to the gradient (coupled L2); AdamW shrinks w by
    lr*weight_decay before its step (decoupled L2). Both equal our regularizer at p=2, l1_ratio=0.
    """
    if p != 2 or l1_ratio != 0:
        return False
    return (mode == "coupled" and optimizer in ("sgd", "adam")) or (
        mode == "decoupled" and optimizer == "adamw"
    )


def _validate_trainer(check: _Checker) -> None:
    check.number("trainer.steps", low=1)
    check.number("trainer.batch_size", low=1, optional=True)
    check.number("trainer.eval_every", low=1)
    check.number("trainer.threads", low=1, optional=True)
    warmup, steps = check.get("optimizer.warmup_steps"), check.get("trainer.steps")
    if isinstance(warmup, int) and isinstance(steps, int) and warmup >= steps > 0:
        check.fail("optimizer.warmup_steps", warmup, f"< trainer.steps ({steps})")


def _validate_logger(check: _Checker) -> None:
    name = check.get("logger.name")
    if name not in LOGGERS:
        check.fail("logger", name, "one of " + ", ".join(LOGGERS))
    elif name == "tensorboard":
        check.number("logger.histogram_every", low=1)
        if importlib.util.find_spec("tensorboard") is None:
            check.fail("logger", name, "needs the tensorboard package: pip install 'wdsweep[tensorboard]'")


def _validate_data_contents(cfg: DictConfig) -> None:
    """Checks that need the data itself (csv columns, split sizes); raise ConfigError."""
    if cfg.data.name in ("csv", "digits"):
        # A sweep validates every job up front; jobs that differ only in seed or reg share
        # one check. The seed cannot change the split sizes, so it is left out of the key.
        _check_data_once(OmegaConf.to_yaml(cfg.data, resolve=True))


@functools.lru_cache(maxsize=64)
def _check_data_once(data_yaml: str) -> None:
    from wdsweep.data import check_data  # deferred: pulls in torch, pandas and sklearn

    check_data(OmegaConf.create(data_yaml), seed=0)
