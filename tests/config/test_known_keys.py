"""A key its group does not define is refused before anything trains, `+` or not: Hydra's own
hint for a misspelt key is to add it with `+`, and `+reg.lamda=1e-3` would otherwise train with
the default λ. Every shipped option and experiment defines only keys its schema has."""
from __future__ import annotations

from pathlib import Path

import pytest

from wdsweep.app import CONFIG_DIR
from wdsweep.config.validation import ConfigError, validate


@pytest.mark.parametrize("override, line", [
    ("+reg.lamda=1e-3", "reg.lamda=0.001 is not allowed: reg has no key 'lamda' (did you mean reg.lam?); its keys are "
                        "lam, p, mode, scope, l1_ratio, eps, impl, momentum_corrected"),
    ("+trainer.step=5", "trainer.step=5 is not allowed: trainer has no key 'step' (did you mean trainer.steps?)"),
    ("+optimizer.weight_decay=0.1", "optimizer.weight_decay=0.1 is not allowed: optimizer has no key 'weight_decay'"),
    ("+data.n_trian=50", "data.n_trian=50 is not allowed: data has no key 'n_trian' (did you mean data.n_train?)"),
    ("+sed=3", "sed=3 is not allowed: the config has no key 'sed' (did you mean seed?)"),
])
def test_a_key_its_group_does_not_define_is_refused_naming_the_nearest(compose_cfg, override, line):
    with pytest.raises(ConfigError) as info:
        validate(compose_cfg([override]))
    assert line in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("option", sorted(f"{p.parent.name}={p.stem}" for p in Path(CONFIG_DIR).glob("*/*.yaml")
                                          if p.parent.name not in ("search",)))
def test_every_shipped_option_defines_only_its_schemas_keys(compose_cfg, option):
    from wdsweep.config.known_keys import unknown_keys

    assert unknown_keys(compose_cfg([option])) == []


KWARGS_NET = '''
from torch import nn


def net(n_features, n_outputs, width=8, **kwargs):
    return nn.Sequential(nn.Linear(n_features, width), nn.ReLU(), nn.Linear(width, n_outputs))
'''


def test_a_near_miss_of_a_named_parameter_is_refused_for_a_target_taking_kwargs(tmp_path, monkeypatch):
    # net(..., width=8, **kwargs) would take `widht` and train at width 8
    from omegaconf import OmegaConf

    from wdsweep.train.models import DataInfo, model_problem

    (tmp_path / "kwargsnet.py").write_text(KWARGS_NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    info = DataInfo(n_features=2, n_outputs=2, task="classification")
    line = model_problem(OmegaConf.create({"_target_": "kwargsnet.net", "widht": 64}), info)
    assert line.startswith("model.widht=64 is not allowed: kwargsnet.net has no parameter 'widht' "
                           "(did you mean model.width?)") and "\n" not in line
    # a key near no named parameter is the target's own, passed through **kwargs
    assert model_problem(OmegaConf.create({"_target_": "kwargsnet.net", "width": 4, "color": "red"}), info) is None


def test_a_key_a_plain_target_has_no_parameter_for_is_refused_naming_it(tmp_path):
    """net(n_features, n_outputs, width=8) without **kwargs: `+model.widht=16` is refused before
    any job, in one line naming the key, the nearest parameter and all of them (not the
    constructor's TypeError), and so is a key near no parameter; nothing is written."""
    from conftest import run_wdsweep

    (tmp_path / "plainnet.py").write_text(KWARGS_NET.replace(", **kwargs", ""))
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "plain.yaml").write_text("_target_: plainnet.net\nwidth: 8\n")
    for key, hint in (("widht", " (did you mean model.width?)"), ("color", "")):
        proc = run_wdsweep(["-m", "--config-dir", "conf", "model=plain", f"+model.{key}=16", "reg.lam=0,1e-3",
                            "hydra.sweep.dir=S"], cwd=tmp_path)
        assert proc.returncode == 1
        (line,) = proc.stderr.strip().splitlines()
        assert (f"model.{key}=16 is not allowed: plainnet.net has no parameter '{key}'{hint}: its parameters are "
                "n_features, n_outputs, width") in line, line
        assert not (tmp_path / "S").exists()
    # a data loader alike: wdsweep's own keys of the group (standardize, ...) are not the loader's
    (tmp_path / "plainload.py").write_text("def load(n=40, seed=0):\n    raise AssertionError('not called')\n")
    (tmp_path / "conf" / "data").mkdir()
    (tmp_path / "conf" / "data" / "plain.yaml").write_text("_target_: plainload.load\nn: 40\nstandardize: true\n")
    proc = run_wdsweep(["-m", "--config-dir", "conf", "data=plain", "+data.nn=16", "reg.lam=0,1e-3",
                        "hydra.sweep.dir=S"], cwd=tmp_path)
    (line,) = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and ("data.nn=16 is not allowed: plainload.load has no parameter 'nn' "
                                     "(did you mean data.n?): its parameters are n, seed") in line, line
