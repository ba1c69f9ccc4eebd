"""The Hydra application: `python -m wdsweep [-m] overrides...`.

The task function lives here, in an importable module, rather than in __main__.py, so that
launchers which pickle it to worker processes (joblib, submitit) find it by name.
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from wdsweep.validation import ConfigError


def _config_dir() -> Path:
    """conf/ ships inside the package (wdsweep/conf) in a built install; in a source checkout
    or an editable install it is the top-level conf/ beside the package."""
    packaged = Path(__file__).resolve().parent / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "conf"


CONFIG_DIR = _config_dir()


def task(cfg: DictConfig) -> float:
    """One job: train and record it, return its objective (see wdsweep.run)."""
    from wdsweep.run import run  # deferred: torch is not needed to print --help or --cfg

    hydra_cfg = HydraConfig.get()
    single = hydra_cfg.mode == RunMode.RUN
    try:
        return run(cfg, Path(hydra_cfg.runtime.output_dir), overrides=list(hydra_cfg.overrides.task),
                   progress=single, raise_failures=single)
    except ConfigError as err:
        err.exit()


_hydra_main = hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")(task)


def main() -> None:
    check_override_syntax(sys.argv[1:])
    _hydra_main()


def check_override_syntax(argv: list) -> None:
    """A malformed override (`reg.lam=tag(log,interval(1e-5)`) ends the program with one line,
    where Hydra would print its grammar error over several."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args, _ = get_args_parser().parse_known_args(argv)
    for override in args.overrides:
        try:
            OverridesParser.create().parse_override(override)
        except Exception as err:  # noqa: BLE001 - Hydra's grammar errors come in several types
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            ConfigError(f"invalid override {override!r}: {first}").exit()
