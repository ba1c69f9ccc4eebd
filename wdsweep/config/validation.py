"""validate(cfg): every value of a composed config checked, across groups, before anything is
built or trained. Every problem is reported on one line naming the key, the value and what is
allowed; all problems of a config are reported at once. One value is allowed but warned about,
on one line: a batch larger than the training split.

One file of about 400 lines, on purpose: the checks of every group sit side by side because
many are across groups (reg.impl against optimizer.name, model against data, ...), and the
wording of every refusal is read and kept consistent in one place.

`composition_error_line` does the same for Hydra's own composition errors (an unknown group
option, a value of the wrong type), which Hydra would print over several lines.

No torch at import: Hydra's validating sweeper and callback call this before any job starts.
The last check, that the model builds and fits the data, imports torch when it first runs
(once per process; the jobs need it anyway) and builds each distinct model once, on the meta
device.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
import re
import sys
from typing import Any, List, Optional

from hydra.errors import MissingConfigException
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, OmegaConfBaseException

from wdsweep.config.known_keys import unknown_keys
from wdsweep.config.schema import (
    ACTIVATIONS,
    DATASETS,
    IMAGE_DATASETS,
    IMPLS,
    LOGGERS,
    MODES,
    OBJECTIVES,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    SCOPES,
    TASKS,
)
from wdsweep.config.urls import UnsafePassword, shown_scheme, shown_url, split_password
from wdsweep.errors import ConfigError  # noqa: F401 - importable from here too, as it always was
from wdsweep.train.device import device_problem
from wdsweep.train.epochs import planned_steps
from wdsweep.train.native_decay import has_native_decay


class _Checker:
    """Collects every invalid value of a config so the user sees them all at once."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.problems: List[str] = []
        self._groups: dict = {}

    def get(self, key: str) -> Any:
        """The resolved value at a dotted key, MISSING if it is absent or `???`. Each group is
        turned into plain Python once: a sweep validates every job, and OmegaConf's select
        per key was most of the cost."""
        top, *path = key.split(".")
        if top not in self._groups:
            node = self.cfg.get(top, MISSING) if top in self.cfg else MISSING
            self._groups[top] = (OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
                                 if OmegaConf.is_config(node) else node)
        value = self._groups[top]
        for part in path:
            if not isinstance(value, dict) or part not in value:
                return MISSING
            value = value[part]
        return MISSING if value == "???" else value

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
            self.fail(key, value, range_text(low, high, low_open, high_open) + (" or null" if optional else ""))


def range_text(low: float = -math.inf, high: float = math.inf, low_open: bool = False,
               high_open: bool = False) -> str:
    """What a number check allows, in words that read right for every kind of range: "a finite
    number > 0", ">= 1", "< 1", "in [0, 1)", or just "a finite number" (never an interval
    with an infinite end, whose bracket would claim the infinity is allowed)."""
    if low == -math.inf and high == math.inf:
        return "a finite number"
    if high == math.inf:
        return f"a finite number {'>' if low_open else '>='} {low}"
    if low == -math.inf:
        return f"a finite number {'<' if high_open else '<='} {high}"
    return f"a finite number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


def validate(cfg: DictConfig) -> None:
    """Check every value of a composed config; raise ConfigError listing all problems."""
    check = _Checker(cfg)
    check.problems += unknown_keys(cfg)
    check.number("seed", low=0, high=2**63 - 1)
    objective = check.get("objective")
    names = [objective] if isinstance(objective, str) else list(objective or [])
    if not names or any(name not in OBJECTIVES for name in names):
        check.fail("objective", objective, "one of " + ", ".join(OBJECTIVES) + ", or a list of them")
    _validate_data(check)
    _validate_model(check)
    _validate_optimizer(check)
    _validate_reg(check)
    _validate_trainer(check)
    _validate_logger(check)
    if check.problems:
        raise ConfigError("invalid config: " + "; ".join(check.problems))
    n_train = _validate_data_contents(cfg)
    _validate_model_fits(cfg)
    _warn_batch_larger_than_train(cfg, n_train)
    _validate_warmup_within_epochs(cfg, n_train)


def _validate_warmup_within_epochs(cfg: DictConfig, n_train: int) -> None:
    """With trainer.epochs, the steps are known once the data's size is."""
    if cfg.trainer.get("epochs") is None:
        return
    steps = planned_steps(cfg.trainer, n_train)
    warmup = cfg.optimizer.get("warmup_steps")
    if isinstance(warmup, int) and warmup >= steps:
        raise ConfigError(f"invalid config: optimizer.warmup_steps={warmup} is not allowed: < the {steps} steps "
                          f"trainer.epochs={cfg.trainer.epochs} comes to on {n_train} training rows")


def _validate_data(check: _Checker) -> None:
    _validate_reading(check)
    if "_target_" in check.cfg.data:  # a loader: its files are checked when it is called
        target = check.get("data._target_")
        if "seed" in check.cfg.data:
            check.number("data.seed", low=0, high=2**63 - 1, optional=True)
        problem = _import_problem(target) if isinstance(target, str) else "not a dotted path"
        if problem:
            check.fail("data._target_", target, f"an importable loader function ({problem})")
        return
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
        if check.get("data.task") is not None:  # null: inferred from the target column
            check.choice("data.task", TASKS)
        check.require("data.target", "the name of the target column, e.g. data.target=y")
        if check.require("data.path", "a csv file, e.g. data.path=my_data.csv"):
            from wdsweep.train.datasets import user_path

            path = user_path(check.get("data.path"))
            if not path.is_file():
                check.fail("data.path", check.get("data.path"), f"an existing csv file (not found: {path})")


def _check_fractions(check: _Checker) -> None:
    check.number("data.val_fraction", low=0, high=1, low_open=True, high_open=True)
    check.number("data.test_fraction", low=0, high=1, low_open=True, high_open=True)
    val, test = check.get("data.val_fraction"), check.get("data.test_fraction")
    if isinstance(val, float) and isinstance(test, float) and val + test >= 1:
        check.fail("data.val_fraction", val, f"val_fraction + test_fraction < 1 (test_fraction={test})")


def _validate_model(check: _Checker) -> None:
    """The keys of the built-in models; any other `_target_` must be importable. Whether it
    builds, and fits the data, is _validate_model_fits's (it needs the data's shapes)."""
    target = check.get("model._target_")
    if not isinstance(target, str) or not target.strip():
        check.fail("model._target_", target, "a dotted path to a class or function that builds a "
                   "torch.nn.Module (conf/model/*.yaml)")
        return
    if target == "wdsweep.models.mlp":
        check.number("model.depth", low=1)
        check.number("model.width", low=1)
        check.choice("model.activation", ACTIVATIONS)
    elif target == "wdsweep.models.SmallCNN":
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
    elif not target.startswith("wdsweep.models."):
        problem = _import_problem(target)
        if problem:
            check.fail("model._target_", target, f"an importable class or function ({problem})")


@functools.lru_cache(maxsize=64)
def _import_problem(target: str) -> Optional[str]:
    from hydra._internal.utils import _locate as get_object  # get_object would also log the error

    try:
        obj = get_object(target)
    except Exception as err:  # noqa: BLE001 - ImportError, AttributeError, the module's own errors
        return " ".join(str(err).split())[:300] or type(err).__name__
    return None if callable(obj) else f"{type(obj).__name__} is not callable"


def _validate_model_fits(cfg: DictConfig) -> None:
    """Build the model once per distinct (model, data shapes), on the meta device, and run a
    batch through it (wdsweep.models.model_problem); raise ConfigError if it cannot train here."""
    from wdsweep.train.data import data_info
    from wdsweep.train.images import augment_problem
    from wdsweep.train.models import model_problem

    info = data_info(cfg.data)
    problem = augment_problem(cfg.data, info.image_shape) or model_problem(cfg.model, info)
    if not problem:  # the model builds: does it fit, with the data, in memory?
        from wdsweep.train.memory import memory_problem
        from wdsweep.train.models import parameter_count

        n_parameters = parameter_count(cfg.model, info)
        problem = memory_problem(cfg, info.n_features, n_parameters) or _gpu_problem(cfg, info, n_parameters)
    if problem:
        raise ConfigError(f"invalid config: {problem}")


def _gpu_problem(cfg: DictConfig, info, n_parameters: int) -> Optional[str]:
    """Does the job fit on the GPU it will train on, when that GPU is this machine's."""
    device = str(cfg.trainer.get("device", "auto"))
    launcher = OmegaConf.select(cfg, "hydra.launcher._target_", default=None, throw_on_missing=False)
    if not (device == "auto" or device.startswith("cuda")) or "slurm" in str(launcher).lower():
        return None
    from wdsweep.train.memory import BYTES_PER_PARAMETER, device_data_bytes, free_gpu_memory, gpu_memory_problem

    free = free_gpu_memory()
    if not free:
        return None
    splits = None
    if "_target_" in cfg.data:
        from wdsweep.train.data import target_splits

        splits = target_splits(cfg.data)
    needed = n_parameters * BYTES_PER_PARAMETER + device_data_bytes(cfg, info.n_features, splits)
    return gpu_memory_problem(needed, free, device)


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
    optimizer = check.get("optimizer.name")
    if check.get("reg.momentum_corrected") is True and optimizer in ("adam", "adamw"):
        check.fail("reg.momentum_corrected", True, f"false with optimizer={optimizer}: decoupled decay "
                   "under Adam/AdamW minimizes no fixed penalty, so no exact correction exists "
                   "(true only with optimizer=sgd)")
    if impl == "loss" and mode != "coupled":
        check.fail("reg.impl", impl, "only with reg.mode=coupled (a loss penalty is coupled decay)")
    if impl == "optimizer" and not has_native_decay(p, check.get("reg.l1_ratio"), mode,
                                                      check.get("optimizer.name")):
        check.fail("reg.impl", impl, "only where torch's own weight_decay computes the same thing: "
                   "p=2 and l1_ratio=0 with coupled decay on sgd/adam or decoupled decay on adamw")


def _validate_reading(check: _Checker) -> None:
    """data.num_workers and its companions, on every data set (a user's data config may omit them)."""
    data = check.cfg.data
    if "num_workers" in data:
        check.number("data.num_workers", low=0)
    for key in ("pin_memory", "persistent_workers"):
        if key in data and check.get(f"data.{key}") not in (True, False):
            check.fail(f"data.{key}", check.get(f"data.{key}"), "true or false")


def _validate_trainer(check: _Checker) -> None:
    check.number("trainer.steps", low=1)
    check.number("trainer.epochs", low=1, optional=True)
    check.number("trainer.batch_size", low=1, optional=True)
    check.number("trainer.eval_every", low=1)
    check.number("trainer.threads", low=1, optional=True)
    check.number("trainer.checkpoint_every", low=1, optional=True)
    check.number("trainer.checkpoint_seconds", low=0)
    device = check.get("trainer.device")
    # A Slurm launcher's jobs train on other machines (GPU nodes of a login node's sweep): here
    # only the spelling is checked, and each job checks its own machine when it starts.
    # (read alone: the rest of the hydra node may not resolve yet in a single run's callback)
    launcher = OmegaConf.select(check.cfg, "hydra.launcher._target_", default=None, throw_on_missing=False)
    elsewhere = "slurm" in str(launcher).lower()
    problem = device_problem(device, this_machine=not elsewhere) if device is not MISSING else None
    if problem:
        check.fail("trainer.device", device, problem)
    check.choice("trainer.precision", PRECISIONS)
    if check.get("trainer.deterministic") not in (True, False, MISSING):
        check.fail("trainer.deterministic", check.get("trainer.deterministic"), "true or false")
    warmup, steps = check.get("optimizer.warmup_steps"), check.get("trainer.steps")
    by_steps = check.get("trainer.epochs") is None  # else checked once the data's size is known
    if by_steps and isinstance(warmup, int) and isinstance(steps, int) and warmup >= steps > 0:
        check.fail("optimizer.warmup_steps", warmup, f"< trainer.steps ({steps})")


def _unmasked_password(uri: str, only_unsafe: bool = False) -> bool:
    """Whether the URI holds a password in clear (or, with only_unsafe, one that cannot be
    masked whole: wdsweep.config.urls)."""
    try:
        return split_password(uri)[1] is not None and not only_unsafe
    except UnsafePassword:
        return True


def _validate_logger(check: _Checker) -> None:
    name = check.get("logger.name")
    if name not in LOGGERS:
        check.fail("logger", name, "one of " + ", ".join(LOGGERS))
    elif name == "tensorboard":
        check.number("logger.histogram_every", low=1)
        if importlib.util.find_spec("tensorboard") is None:
            check.fail("logger", name, "needs the tensorboard package: pip install 'wdsweep[tensorboard]'")
    elif name == "mlflow":
        if importlib.util.find_spec("mlflow") is None:
            check.fail("logger", name, "needs the mlflow package: pip install 'wdsweep[mlflow]'")
        uri = check.get("logger.tracking_uri")
        if uri is not None and (not isinstance(uri, str) or not uri.strip()):
            check.fail("logger.tracking_uri", uri, "a tracking URI (sqlite:///mlflow.db, "
                       "http://host:5000, ...) or null ($MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
        elif uri is not None and _unmasked_password(uri):
            # Only a config file gets here: wdsweep.app masks the command line's before Hydra.
            check.fail("logger.tracking_uri", shown_url(uri), "a URI without its password "
                       "in a config file, which every job's folder would copy: give it on the command "
                       "line (logger.tracking_uri=http://me:pw@host is masked before anything is "
                       "written) or in MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
        elif uri is None and _unmasked_password(os.environ.get("MLFLOW_TRACKING_URI") or "", only_unsafe=True):
            check.fail("MLFLOW_TRACKING_URI", shown_scheme(os.environ["MLFLOW_TRACKING_URI"]), "a URI whose "
                       "password can be masked in what is logged (percent-encode '@', ':', '/', '&', quotes "
                       "and whitespace in it), or none in it: MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
        experiment = check.get("logger.experiment")
        if experiment is not None and (not isinstance(experiment, str) or not experiment.strip()):
            check.fail("logger.experiment", experiment, "an MLflow experiment name or null (a sweep's "
                       "folder, single runs: wdsweep)")


def _validate_data_contents(cfg: DictConfig) -> int:
    """Checks that need the data itself (csv columns, split sizes); raise ConfigError.
    Return the number of training rows."""
    # A sweep validates every job up front; jobs that differ only in seed or reg share one
    # check. The seed cannot change the split sizes, so it is left out of the key; a csv's
    # size and time are in it, so an edited file is read again.
    data = OmegaConf.to_container(cfg.data, resolve=True)
    return _check_data_once(json.dumps(data, sort_keys=True), _file_stamp(cfg.data))


def _file_stamp(data: DictConfig) -> tuple[int, int] | None:
    if data.get("name") != "csv" or "_target_" in data:
        return None
    from wdsweep.train.datasets import user_path

    stat = user_path(data.path).stat()  # _validate_data found the file
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=64)
def _check_data_once(data_json: str, file_stamp: tuple[int, int] | None) -> int:
    from wdsweep.train.data import check_data  # deferred: numpy, and pandas for a csv

    return check_data(OmegaConf.create(json.loads(data_json)), seed=0)


_WARNED: set[str] = set()


def _warn_batch_larger_than_train(cfg: DictConfig, n_train: int) -> None:
    """Allowed (the sampler then takes the whole split each step), but rarely meant."""
    batch = cfg.trainer.batch_size
    if batch is None or batch <= n_train:
        return
    message = (f"wdsweep: warning: trainer.batch_size={batch} is larger than the {n_train} rows of "
               f"the training split (data={cfg.data.get('name') or cfg.data.get('_target_')}): "
               "allowed, but every step is then full-batch")
    # validate runs more than once per job (callback or sweeper, then the job): warn once.
    if message not in _WARNED:
        _WARNED.add(message)
        print(message, file=sys.stderr)


# Launchers that come with an extra: named in the error when the extra is not installed.
_LAUNCHER_EXTRAS = {"joblib": "joblib", "submitit_": "submitit", "vectorized_submitit_": "submitit"}


def composition_error_line(err: Exception) -> str:
    """One line for an error Hydra raised while composing a config (ConfigCompositionException,
    MissingConfigException, or OmegaConf's own), naming the key, the value and what is allowed.
    Hydra prints these over several lines, with its config search path."""
    cause = err.__cause__ if isinstance(err.__cause__, OmegaConfBaseException) else err
    if isinstance(err, MissingConfigException) and str(err).startswith("Cannot find primary config"):
        return (f"invalid command line: --config-name={err.missing_cfg_file!r} is not allowed: a "
                "config on Hydra's search path (python -m wdsweep --info searchpath)")
    if isinstance(err, MissingConfigException) and err.options:
        group, _, option = (err.missing_cfg_file or "").rpartition("/")
        # a launcher of an extra that is not installed (none of its launchers is an option)
        extra = next((e for prefix, e in _LAUNCHER_EXTRAS.items()
                      if group == "hydra/launcher" and option.startswith(prefix)
                      and not any(o.startswith(prefix) for o in err.options)), None)
        return (f"invalid config: {group}={option!r} is not allowed: one of "
                + ", ".join(sorted(err.options))
                + (f" (for {option}: pip install 'wdsweep[{extra}]')" if extra else ""))
    if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
        value = getattr(cause, "value", None)
        if value is None:
            value = _override_value(err, cause.full_key)
        return f"invalid config: {cause.full_key}={value!r} is not allowed: {_allowed(cause)}"
    # Hydra's own messages (an ambiguous sweep value, "+key" on an existing key, a missing
    # primary config): every line but the config search path, joined.
    text = str(err).split("Config search path:")[0].split("Search path:")[0]
    return "invalid config: " + " ".join(text.split())


def _override_value(err: Exception, key: str) -> Any:
    """The value the user gave `key`, from Hydra's message ("... use +reg.nope=1"): OmegaConf
    knows only the key when the key itself is the problem."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    match = re.search(rf"(?:override |use \+)({re.escape(key)}=.*)$", str(err), re.MULTILINE)
    if match is None:
        return None
    try:
        return OverridesParser.create().parse_override(match.group(1)).value()
    except Exception:  # noqa: BLE001 - only for the message; the text will do
        return match.group(1).partition("=")[2]


# OmegaConf's wording of a type error -> what the schema's type allows.
_TYPE_ERRORS = (("converted to Float", "a number"), ("converted to Integer", "an integer"),
                ("valid bool", "true or false"), ("to string", "a string"))


def _key_hint(parent: str, key: str, keys: List[str], cause: OmegaConfBaseException) -> str:
    """The nearest key the node has (`reg.lamda` -> did you mean reg.lam?); `+key` only for a
    node without a schema and no near key: a schema'd group refuses an added key too
    (wdsweep.config.known_keys), so hinting `+reg.lamda=...` would send the user to a second refusal."""
    import dataclasses
    import difflib

    close = difflib.get_close_matches(key, keys, n=1)
    if close:
        return f"; did you mean {parent + '.' if parent else ''}{close[0]}?"
    if dataclasses.is_dataclass(OmegaConf.get_type(cause.parent_node)):
        return ""
    return f"; to add a key: +{cause.full_key}=..."


def _allowed(cause: OmegaConfBaseException) -> str:
    """What the schema allows at cause.full_key, with OmegaConf's reason in parentheses."""
    reason = str(cause.msg).strip().splitlines()[0] if str(cause.msg).strip() else type(cause).__name__
    if isinstance(cause, ConfigAttributeError) and cause.parent_node is not None:
        parent, _, key = cause.full_key.rpartition(".")
        keys = [str(k) for k in cause.parent_node.keys()]
        hint = _key_hint(parent, key, keys, cause)
        return f"a key of {parent or 'the top level'}: one of {', '.join(keys)} ({reason}{hint})"
    for wording, allowed in _TYPE_ERRORS:
        if wording in reason:
            return f"{allowed} ({reason})"
    return reason
