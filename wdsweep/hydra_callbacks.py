"""Hydra callbacks. ValidateConfig checks a single run's config, and that its output folder
can be written, before Hydra creates that folder, so a bad value leaves nothing behind.
(Sweeps are checked, all jobs at once, by our grid sweeper in hydra_plugins/wdsweep_sweeper.)"""
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from wdsweep.config.validation import validate
from wdsweep.errors import ConfigError
from wdsweep.jobs.fresh_folder import claim_fresh, is_clock_named
from wdsweep.jobs.resume import output_folder_problem


class ValidateConfig(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.sweeper.get("dry_run") is True:
            # a sweeper's setting: a single run never reaches a sweeper, and would train
            ConfigError("invalid command line: hydra.sweeper.dry_run=True is not allowed: only with -m "
                        "(it plans a sweep; a single run has no dry run)").exit()
        try:
            validate(config)
        except ConfigError as err:
            err.exit()
        run_dir = _claim_clock_named_folder(config, Path(str(config.hydra.run.dir)))
        problem = output_folder_problem(run_dir)
        if problem:
            ConfigError(f"invalid config: hydra.run.dir={str(run_dir)!r} is not allowed: a folder this process "
                        f"can write ({problem})").exit()


def _claim_clock_named_folder(config: DictConfig, run_dir: Path) -> Path:
    """A run named by the clock gets a folder of its own, even beside a run started in the
    same second (wdsweep.jobs.fresh_folder); Hydra then writes into the folder claimed here."""
    unresolved = OmegaConf.to_container(config.hydra.run, resolve=False).get("dir")
    if not is_clock_named(str(unresolved)):
        return run_dir
    try:
        claimed = claim_fresh(run_dir)
    except OSError as err:
        ConfigError(f"invalid config: hydra.run.dir={str(run_dir)!r} is not allowed: a folder this process "
                    f"can create ({err.strerror or err})").exit()
    if claimed != run_dir:
        with read_write(config), open_dict(config):
            config.hydra.run.dir = str(claimed)
    return claimed
