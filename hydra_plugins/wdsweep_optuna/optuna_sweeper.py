"""The Hydra Sweeper plugin class: Hydra's calls turned into calls of wdsweep.search, where the
search lives. Hydra imports every plugin module at start-up of any Hydra app, so this one stays
thin and loads Optuna (wdsweep.search.loop) only when the sweeper is used."""
from typing import Any, List

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class OptunaSweeper(Sweeper):
    def __init__(self, **kwargs: Any) -> None:
        from wdsweep.search.loop import OptunaSearch

        self.search = OptunaSearch(**kwargs)  # hydra.sweeper.* (config.py), checked in sweep()

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        # The grid sweeper's composer: a trial's config is derived from the first one's (the
        # sampled values, its folder and its trial link are plain values), not composed by
        # Hydra from scratch, both here and in the launcher.
        from hydra_plugins.wdsweep_sweeper._compose import CachingConfigLoader

        hydra_context = HydraContext(config_loader=CachingConfigLoader(hydra_context.config_loader),
                                     callbacks=hydra_context.callbacks)
        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)
        self.search.attach(config, hydra_context, launcher)

    def sweep(self, arguments: List[str]) -> Any:
        return self.search.sweep(arguments)
