"""The Hydra Sweeper plugin class. Hydra imports every plugin module at start-up of any Hydra
app, so this one stays thin and loads Optuna (in _impl) only when the sweeper is used."""
from typing import Any, List

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class OptunaSweeper(Sweeper):
    def __init__(self, **kwargs: Any) -> None:
        from hydra_plugins.wdsweep_optuna._impl import OptunaSweeperImpl

        self.impl = OptunaSweeperImpl(**kwargs)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        return self.impl.sweep(arguments)
