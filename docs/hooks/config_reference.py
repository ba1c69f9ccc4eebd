"""MkDocs hook: the page reference/config.md, generated at build time from the schema
dataclasses and their comments (wdsweep.config.reference), so it cannot drift from the code."""
from __future__ import annotations

from typing import List

PAGE = "reference/config.md"

PREFACE = """# Config keys

Every key a job's config or a sweeper's takes, with its type, its default and what it does.
This page is generated from the config schemas when the site is built, so it is exactly what
the code accepts. Which groups and options exist, and what each preset sets, is in
[Config groups](config-groups.md). Any key is set on the command line (`reg.lam=3e-2`) or in
a config file of your own; a value a key does not allow stops the job before anything trains,
with one line naming the key, the value and what is allowed.
"""


def sections() -> List:
    from hydra_plugins.wdsweep_optuna import config as optuna_conf
    from hydra_plugins.wdsweep_sweeper.validating_sweeper import ValidatingSweeperConf
    from hydra_plugins.wdsweep_vectorized.vectorized_launcher import VectorizedLauncherConf
    from wdsweep.config import schema
    from wdsweep.config.reference import Section, written_doc

    def group(name: str, title: str, intro: str = "") -> Section:
        options = schema._GROUP_SCHEMAS[name]
        return Section(title, f"{name}.", list(options.values()), intro, option=f"{name}=", names=list(options))

    return [
        Section("Top level", "", [schema.WdsweepConfig],
                skip=("data", "model", "optimizer", "reg", "trainer", "logger"),
                intro="Besides the groups below (`data`, `model`, `optimizer`, `reg`, `trainer`, `logger`)."),
        group("data", "data", "Built-in data sets and loaders. Your own loader needs no schema: "
              "a `_target_` and its keyword arguments (see the tutorial on your own model and data)."),
        group("model", "model", "Built-in models. Your own model needs no schema: a `_target_` and its "
              "keyword arguments."),
        group("optimizer", "optimizer"),
        Section("reg", "reg.", [schema.RegConfig], written_doc(schema.RegConfig)),
        Section("trainer", "trainer.", [schema.TrainerConfig]),
        group("logger", "logger"),
        Section("The grid sweeper (hydra/sweeper=wdsweep_grid, the default)", "hydra.sweeper.",
                [ValidatingSweeperConf], skip=("max_batch_size", "params"),
                intro="Hydra's basic sweeper's `params` and `max_batch_size` work as in Hydra."),
        Section("The Optuna sweeper (search=optuna, hydra/sweeper=wdsweep_optuna)", "hydra.sweeper.",
                [optuna_conf.OptunaSweeperConf], skip=("sampler", "pruner")),
        Section("Samplers (hydra/sweeper/sampler=...)", "hydra.sweeper.sampler.",
                [optuna_conf.TPESamplerConf, optuna_conf.RandomSamplerConf, optuna_conf.GridSamplerConf,
                 optuna_conf.CmaEsSamplerConf, optuna_conf.GPSamplerConf],
                option="hydra/sweeper/sampler=", names=["tpe", "random", "grid", "cmaes", "gp"]),
        Section("Pruners (hydra/sweeper/pruner=...)", "hydra.sweeper.pruner.",
                [optuna_conf.PrunerConf, optuna_conf.MedianPrunerConf, optuna_conf.SuccessiveHalvingPrunerConf,
                 optuna_conf.HyperbandPrunerConf, optuna_conf.WilcoxonPrunerConf],
                option="hydra/sweeper/pruner=", names=["none", "median", "successive_halving", "hyperband",
                                                       "wilcoxon"]),
        Section("The vectorized launcher (hydra/launcher=vectorized)", "hydra.launcher.", [VectorizedLauncherConf]),
    ]


def page() -> str:
    from wdsweep.config.reference import markdown

    return markdown(sections(), PREFACE)


def on_files(files, config):
    # mkdocs is imported here only: the tests load this module for its sections without it.
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=page()))
    return files
