"""A grid sweeper that composes and validates every job of a sweep before launching any.

Hydra's basic sweeper finds a bad value only when the job that holds it starts, after the
jobs before it have trained; with `-m reg.p=1,2,0` two jobs would run and the third fail.
This sweeper expands the whole grid first, runs wdsweep's validate on each job's config and
stops with a one-line error before anything (not even multirun.yaml) is written.
Otherwise it is the basic sweeper: same syntax, `params`, `max_batch_size`.
"""

import logging
from dataclasses import dataclass
from typing import Any, List, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser

log = logging.getLogger(__name__)


@dataclass
class ValidatingSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.wdsweep_sweeper.validating_sweeper.ValidatingSweeper"


ConfigStore.instance().store(group="hydra/sweeper", name="wdsweep_grid",
                             node=ValidatingSweeperConf, provider="wdsweep")


class ValidatingSweeper(BasicSweeper):
    def sweep(self, arguments: List[str]) -> Any:
        assert self.hydra_context is not None and self.config is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(self._parse_config() + list(arguments))
        jobs = self.split_arguments(overrides, max_batch_size=None)[0]
        self._validate_jobs(jobs)
        log.info("validated %d job configs", len(jobs))
        return super().sweep(arguments)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Every job was composed and validated up front in sweep()."""

    def _validate_jobs(self, jobs: Sequence[Sequence[str]]) -> None:
        # Imported here, not at module level: Hydra imports every plugin at the start of any
        # Hydra app in this environment, and other apps need not load (or register) our schemas.
        from wdsweep.validation import ConfigError, validate

        loader = self.hydra_context.config_loader
        for job in jobs:
            cfg = loader.load_sweep_config(master_config=self.config, sweep_overrides=list(job))
            try:
                validate(cfg)
            except ConfigError as err:
                ConfigError(f"{err} [job: {' '.join(job)}]").exit()
