"""Hydra callbacks. ValidateConfig checks a single run's config, and that its output folder
can be written, before Hydra creates that folder, so a bad value leaves nothing behind.
(Sweeps are checked, all jobs at once, by our grid sweeper in hydra_plugins/wdsweep_sweeper.)"""
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from wdsweep.config.validation import validate
from wdsweep.errors import ConfigError
from wdsweep.jobs.resume import output_folder_problem


class ValidateConfig(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            validate(config)
        except ConfigError as err:
            err.exit()
        run_dir = Path(str(config.hydra.run.dir))
        problem = output_folder_problem(run_dir)
        if problem:
            ConfigError(f"invalid config: hydra.run.dir={str(run_dir)!r} is not allowed: a folder this process "
                        f"can write ({problem})").exit()
