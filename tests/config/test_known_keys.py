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
