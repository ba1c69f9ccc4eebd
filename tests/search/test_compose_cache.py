"""The grid sweeper's fast composition (hydra_plugins/wdsweep_sweeper/_compose.py) must give,
for every job, exactly the config Hydra's own load_sweep_config gives: same values, same key
order, same flags, same Hydra fields. Checked here job by job over sweeps that exercise each
path: value-only grids, group choices, preset grids, lists, `++` overrides and Hydra keys."""
from __future__ import annotations

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import create_config_search_path
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import OmegaConf

from hydra_plugins.wdsweep_sweeper._compose import JobComposer
from wdsweep.app import CONFIG_DIR


def sweep_jobs(overrides: list[str]):
    """The master config and the job override lists, as `python -m wdsweep -m ...` makes them."""
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(CONFIG_DIR)))
    master = loader.load_configuration("config", overrides, RunMode.MULTIRUN)
    params = [f"{k}={v}" for k, v in (master.hydra.sweeper.params or {}).items()]
    task = OmegaConf.to_container(master.hydra.overrides.task)
    parsed = OverridesParser.create(config_loader=loader).parse_overrides(params + task)
    return loader, master, BasicSweeper.split_arguments(parsed, None)[0]


@pytest.mark.parametrize("overrides,least_derived", [
    (["reg.p=1,2,3", "seed=0,1"], 5),
    (["reg=lp,global", "reg.lam=0,1e-3", "trainer.steps=7"], 2),
    (["experiment=lp_vs_global"], 7),  # its first 8 jobs (of 72): the check is slow
    (["data=digits,moons", "trainer.steps=5,10", "hydra.sweep.dir=somewhere"], 2),
    (["optimizer=adam", "optimizer.betas=[0.9,0.99],[0.8,0.9]", "trainer.batch_size=null,8"], 3),
    (["++seed=3,4", "reg.p=1,2"], 0),  # ++ is left to Hydra
    (["hydra.job.chdir=false", "reg.p=1,2", "trainer.threads=null,1"], 3),
])
def test_every_job_equals_hydras_own_composition(overrides, least_derived):
    loader, master, jobs = sweep_jobs(overrides)
    jobs = jobs[:8]
    composer = JobComposer(loader, master)
    for job in jobs:
        fast = composer.compose(list(job))
        reference = loader.load_sweep_config(master_config=master, sweep_overrides=list(job))
        assert OmegaConf.to_yaml(fast) == OmegaConf.to_yaml(reference), job
        assert OmegaConf.is_struct(fast) and OmegaConf.is_struct(reference)
        assert OmegaConf.is_readonly(fast.hydra) == OmegaConf.is_readonly(reference.hydra)
    assert composer.composed + composer.derived == len(jobs)
    assert composer.derived >= least_derived


def test_per_job_hydra_values_as_the_optuna_sweeper_sets_them_are_derived_exactly():
    """Each Optuna trial names its folder and links to its trial through Hydra keys: every
    trial after the first must still be derived, and equal Hydra's own composition."""
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(CONFIG_DIR)))
    master = loader.load_configuration("config", ["search=optuna"], RunMode.MULTIRUN)
    composer = JobComposer(loader, master)
    for number, p in enumerate((1.5, 2.0, 3.25)):
        job = [f"reg.p={p}", f"reg.lam={number}e-3", f"hydra.sweep.subdir=trial-{number:05d}",
               "++hydra.job.env_set.WDSWEEP_STORAGE='/tmp/a study.journal'",
               f"++hydra.job.env_set.WDSWEEP_TRIAL={number + 7}"]
        fast = composer.compose(job)
        reference = loader.load_sweep_config(master_config=master, sweep_overrides=job)
        assert OmegaConf.to_yaml(fast) == OmegaConf.to_yaml(reference), job
        assert fast.hydra.job.env_set.WDSWEEP_TRIAL == str(number + 7)
    assert (composer.composed, composer.derived) == (1, 2)
    # Another Hydra key is part of what must be equal: composed, not derived.
    composer.compose(["reg.p=2", "hydra.job.chdir=true", "hydra.sweep.subdir=trial-00009"])
    assert composer.composed == 2


def test_a_bad_value_in_a_derived_job_is_left_to_hydra():
    loader, master, jobs = sweep_jobs(["reg.p=1,abc"])
    composer = JobComposer(loader, master)
    composer.compose(list(jobs[0]))
    with pytest.raises(Exception, match="reg.p"):  # Hydra's own composition error
        composer.compose(list(jobs[1]))
    assert composer.derived == 0


def test_the_launchers_loader_derives_jobs_also_after_pickling_to_a_worker():
    """What the joblib launcher does: pickle the loader to a worker, which is sent a fresh
    copy of the master config with every job."""
    import pickle

    from hydra_plugins.wdsweep_sweeper._compose import CachingConfigLoader

    loader, master, jobs = sweep_jobs(["reg.p=1,2,3", "seed=0,1"])
    worker_loader = pickle.loads(pickle.dumps(CachingConfigLoader(loader)))
    for job in jobs:
        fast = worker_loader.load_sweep_config(pickle.loads(pickle.dumps(master)), list(job))
        reference = loader.load_sweep_config(master_config=master, sweep_overrides=list(job))
        assert OmegaConf.to_yaml(fast) == OmegaConf.to_yaml(reference), job
    (composer,) = worker_loader._composers.values()
    assert (composer.composed, composer.derived) == (1, len(jobs) - 1)


def test_a_kept_config_is_handed_out_once_then_the_job_is_derived_again():
    """How the grid sweeper hands the configs it validated to an in-process launcher."""
    from hydra_plugins.wdsweep_sweeper._compose import CachingConfigLoader

    loader, master, jobs = sweep_jobs(["reg.p=1,2"])
    caching = CachingConfigLoader(loader)
    validated = caching.load_sweep_config(master, list(jobs[1]))
    caching.keep(master, list(jobs[1]), validated)
    assert caching.load_sweep_config(master, list(jobs[1])) is validated
    again = caching.load_sweep_config(master, list(jobs[1]))
    assert again is not validated and OmegaConf.to_yaml(again) == OmegaConf.to_yaml(validated)
    assert caching.composer(master).composed == 1  # one composition, by Hydra, for all of it
