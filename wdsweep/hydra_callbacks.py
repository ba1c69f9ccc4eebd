"""Hydra callbacks. ValidateConfig checks a single run's config before Hydra creates its
output folder, so a bad value leaves nothing behind. (Sweeps are checked, all jobs at once,
by our grid sweeper in hydra_plugins/wdsweep_sweeper.)"""
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from wdsweep.validation import ConfigError, validate


class ValidateConfig(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            validate(config)
        except ConfigError as err:
            err.exit()
