"""Job configs of a grid sweep, composed by Hydra once per set of config-group choices.

Hydra composes every job of a sweep from scratch (the defaults list, every yaml file, the
schemas), about 0.2-0.4 s a job, and its basic sweeper and launcher do it twice. Most jobs of a
regularization grid differ only in values (`reg.lam`, `reg.p`, `seed`), not in which config
files make them up. So the first job of each group-choice signature is composed by Hydra's own
`load_sweep_config`, and the others are copies of it with their value overrides applied by
Hydra's own `_apply_overrides_to_config`, and the job-specific fields Hydra sets
(`hydra.overrides.task`, `hydra.job.override_dirname`) set the same way.

Two Hydra keys are derived as values too, because a sweeper sets them per job:
`hydra.sweep.subdir` and `hydra.job.env_set.<NAME>` (also with `++`); the Optuna sweeper
names each trial's folder and links it to its trial that way. Anything else this cannot derive
exactly falls back to Hydra's full composition: `+`, other `++` and `~` overrides, dict values,
overrides of Hydra's other keys, and keys that are not plain values of the template.
Every composed job gets its Optuna storage's password masked (`_mask_storage_password`).
tests/search/test_compose_cache.py checks that every job of a set of sweeps equals Hydra's own
composition.

Not scanned as a plugin (leading underscore), so Hydra does not import it at every start.
"""
import copy
from typing import Dict, List, Optional, Tuple

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import Container, DictConfig, ListConfig, OmegaConf, read_write

_ABSENT = object()


def _per_job_hydra_value(o: Override) -> bool:
    """A Hydra key a sweeper sets per job, as a plain value (derived, not composed)."""
    key = o.key_or_group
    return (o.package is None and not o.is_delete() and not o.is_add() and not o.is_sweep_override()
            and (key == "hydra.sweep.subdir" or key.startswith("hydra.job.env_set."))
            and not isinstance(o.value(), (dict, list)))


def _mask_storage_password(cfg: DictConfig) -> None:
    """A storage password written in a config file (hydra.sweeper.storage of an experiment or
    a user's yaml) comes back with every composition from the file, while the sweeper masked
    it only in its own config (wdsweep.search.study): masked here too, in every job's config,
    before Hydra saves it as the job's .hydra/hydra.yaml or a launcher pickles it. The jobs
    connect with the password from their environment, as with one given on the command line."""
    from wdsweep.config.urls import hide_password

    sweeper = cfg.hydra.get("sweeper")
    storage = sweeper._get_node("storage") if isinstance(sweeper, DictConfig) and "storage" in sweeper else None
    raw = storage._value() if storage is not None else None
    if isinstance(raw, str) and hide_password(raw) != raw:
        with read_write(sweeper):
            sweeper.storage = hide_password(raw)


class JobComposer:
    def __init__(self, config_loader: ConfigLoader, master_config: DictConfig) -> None:
        self.loader = config_loader
        self.master = master_config
        self.parser = OverridesParser.create(config_loader=config_loader)
        self.templates: Dict[Tuple, DictConfig] = {}
        self.composed = self.derived = 0  # how often each path ran (logged, and tested)

    def compose(self, overrides: List[str]) -> DictConfig:
        """The job's config, equal to config_loader.load_sweep_config(master, overrides)."""
        parsed = self.parser.parse_overrides(overrides)
        signature = self._signature(parsed)
        template = self.templates.get(signature) if signature is not None else None
        if template is not None:
            cfg = self._derive(template, parsed)
            if cfg is not None:
                self.derived += 1
                return cfg
        cfg = self.loader.load_sweep_config(master_config=self.master, sweep_overrides=overrides)
        _mask_storage_password(cfg)
        self.composed += 1
        if signature is not None and signature not in self.templates:
            self.templates[signature] = copy.deepcopy(cfg)
        return cfg

    def _signature(self, parsed: List[Override]) -> Optional[Tuple]:
        """What must be equal for one job to be derived from another: the group choices and
        Hydra overrides as written, and the value keys in order. None: always compose."""
        fixed, keys = [], []
        for o in parsed:
            if _per_job_hydra_value(o):
                keys.append(o.input_line.partition("=")[0])  # with its ++, if any
                continue
            if o.is_add() or o.is_force_add() or o.is_delete() or o.is_sweep_override():
                return None
            if o.is_hydra_override() or o.package is not None or self._is_group(o.key_or_group):
                fixed.append(o.input_line)
            elif isinstance(o.value(), dict):
                return None  # Hydra merges a dict into the node: not the same as replacing
            else:
                keys.append(o.key_or_group)
        return tuple(fixed), tuple(keys)

    def _is_group(self, key: str) -> bool:
        return "/" in key or self.loader.repository.group_exists(key)

    def _derive(self, template: DictConfig, parsed: List[Override]) -> Optional[DictConfig]:
        values = [o for o in parsed if _per_job_hydra_value(o) or not (
            o.is_hydra_override() or o.package is not None or self._is_group(o.key_or_group))]
        for o in values:
            if _per_job_hydra_value(o):
                continue  # the template holds the same keys (the signature lists them)
            node = OmegaConf.select(template, o.key_or_group, default=_ABSENT, throw_on_missing=False)
            plain = not isinstance(node, Container) or (
                isinstance(node, ListConfig) and isinstance(o.value(), list))
            if node is _ABSENT or not plain:
                return None  # not a plain value of the template: let Hydra decide what it is
        cfg = copy.deepcopy(template)
        try:
            ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        except Exception:  # noqa: BLE001 - Hydra's composition reports it properly
            return None
        app_overrides = [o for o in parsed if not o.is_hydra_override()]
        cfg.hydra.overrides.task = [o.input_line for o in app_overrides]
        cfg.hydra.overrides.hydra = [*self.master.hydra.overrides.hydra,
                                     *(o.input_line for o in parsed if o.is_hydra_override())]
        naming = cfg.hydra.job.config.override_dirname
        cfg.hydra.job.override_dirname = get_overrides_dirname(
            overrides=app_overrides, kv_sep=naming.kv_sep, item_sep=naming.item_sep,
            exclude_keys=naming.exclude_keys)
        OmegaConf.copy_cache(from_config=self.master, to_config=cfg)
        return cfg


class CachingConfigLoader(ConfigLoader):
    """Hydra's config loader with load_sweep_config served by a JobComposer: handed to the
    launcher, so that launchers which compose each job themselves (joblib in its workers,
    submitit) derive the jobs too. Everything else goes to Hydra's loader unchanged.

    The sweeper composes every job through the same composer to validate it, and hands a
    launcher that runs the jobs in this process the configs it validated (`keep`): the
    launcher's load_sweep_config then returns that config instead of composing it again.

    A launcher may pickle it to worker processes: the templates and kept configs stay behind,
    and each worker builds its own templates, once per sweep (the master config arrives as a
    fresh copy with every job, so a worker recognises its sweep by the master's overrides, not
    by identity)."""

    def __init__(self, inner: ConfigLoader) -> None:
        self.inner = inner
        self._composers: Dict[Tuple, JobComposer] = {}
        self._kept: Dict[Tuple, DictConfig] = {}

    @staticmethod
    def _sweep_key(master_config: DictConfig) -> Tuple:
        # as written: an override's value may hold an interpolation that only a job resolves
        overrides = OmegaConf.to_container(master_config.hydra.overrides, resolve=False)
        return (master_config.hydra.job.config_name, tuple(overrides["hydra"]), tuple(overrides["task"]))

    def composer(self, master_config: DictConfig) -> JobComposer:
        """The composer of this sweep's jobs (one per sweep: its templates are reused)."""
        key = self._sweep_key(master_config)
        composer = self._composers.get(key)
        if composer is None:
            composer = self._composers[key] = JobComposer(self.inner, master_config)
        composer.master = master_config  # the same sweep; its resolver cache, if newer
        return composer

    def keep(self, master_config: DictConfig, overrides: List[str], cfg: DictConfig) -> None:
        """The next load_sweep_config of this job returns `cfg` (once)."""
        self._kept[(self._sweep_key(master_config), tuple(overrides))] = cfg

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: List[str]) -> DictConfig:
        kept = self._kept.pop((self._sweep_key(master_config), tuple(sweep_overrides)), None)
        if kept is not None:
            return kept
        return self.composer(master_config).compose(list(sweep_overrides))

    def load_configuration(self, *args, **kwargs):  # noqa: ANN002, ANN003 - Hydra's signature
        return self.inner.load_configuration(*args, **kwargs)

    def get_search_path(self):
        return self.inner.get_search_path()

    def get_sources(self):
        return self.inner.get_sources()

    def list_groups(self, parent_name: str):
        return self.inner.list_groups(parent_name)

    def get_group_options(self, *args, **kwargs):  # noqa: ANN002, ANN003
        return self.inner.get_group_options(*args, **kwargs)

    def compute_defaults_list(self, *args, **kwargs):  # noqa: ANN002, ANN003
        return self.inner.compute_defaults_list(*args, **kwargs)

    def __getattr__(self, name: str):
        if "inner" not in self.__dict__:  # during unpickling, before __dict__ is filled
            raise AttributeError(name)
        return getattr(self.__dict__["inner"], name)  # e.g. `repository`

    def __getstate__(self) -> dict:
        return {"inner": self.inner, "_composers": {}, "_kept": {}}
