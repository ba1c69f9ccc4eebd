"""Config composition and validation: presets compose the way Hydra users expect, types are
checked at composition, and every bad value is named with what is allowed."""
from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from wdsweep.config.job_folder import job_dir_name
from wdsweep.config.validation import ConfigError, composition_error_line, validate


def test_defaults_are_seed_ones_setup_with_weight_only_l2(compose_cfg):
    cfg = compose_cfg()
    validate(cfg)
    assert (cfg.data.name, cfg.model.name, cfg.optimizer.name) == ("regression1d", "mlp", "sgd")
    assert (cfg.model.depth, cfg.model.width, cfg.model.activation) == (3, 200, "relu")
    assert (cfg.reg.mode, cfg.reg.scope, cfg.reg.p) == ("coupled", "weights", 2.0)
    assert (cfg.optimizer.lr, cfg.optimizer.momentum, cfg.trainer.steps) == (0.01, 0.9, 2000)
    assert cfg.trainer.batch_size is None
    assert "weight_decay" not in cfg.optimizer


@pytest.mark.parametrize("overrides,expected", [
    (["reg=global"], {"mode": "coupled", "scope": "all", "p": 2.0, "lam": 1e-2}),
    (["reg=global", "reg.lam=0.3"], {"mode": "coupled", "scope": "all", "p": 2.0, "lam": 0.3}),
    (["reg.p=3"], {"mode": "coupled", "scope": "weights", "p": 3.0}),
    (["reg=l1_prox", "reg.lam=1e-4"], {"mode": "proximal", "p": 1.0, "lam": 1e-4}),
    (["reg=elastic"], {"mode": "proximal", "p": 2.0, "l1_ratio": 0.5}),
    (["reg=decoupled", "optimizer=adamw"], {"mode": "decoupled", "scope": "weights", "p": 2.0}),
    (["reg=none"], {"lam": 0.0}),
    (["reg.p=1.5"], {"p": 1.5}),
])
def test_reg_presets_and_overrides_compose(compose_cfg, overrides, expected):
    cfg = compose_cfg(overrides)
    validate(cfg)
    assert {k: cfg.reg[k] for k in expected} == expected


def test_experiment_presets_compose_and_validate(compose_cfg):
    seed1 = compose_cfg(["experiment=seed_regression"])
    validate(seed1)
    assert seed1.seed == 1 and seed1.reg.scope == "all" and seed1.reg.lam == 1e-2
    grid = compose_cfg(["experiment=lp_vs_global", "reg.p=3"])
    validate(grid)
    assert grid.data.name == "digits" and grid.reg.p == 3.0
    assert compose_cfg(["experiment=seed_regression", "seed=4"]).seed == 4  # command line wins


def test_types_are_checked_at_composition(compose_cfg):
    with pytest.raises(ConfigCompositionException, match="reg.lam=abc"):
        compose_cfg(["reg.lam=abc"])
    with pytest.raises(ConfigCompositionException):
        compose_cfg(["trainer.steps=1.5"])
    with pytest.raises(ConfigCompositionException):
        compose_cfg(["optimizer.weight_decay=0.1"])  # reg owns decay


@pytest.mark.parametrize("overrides,line", [
    (["reg.p=abc"], ("invalid config: reg.p='abc' is not allowed: a number "
                     "(Value 'abc' of type 'str' could not be converted to Float)")),
    (["trainer.steps=1.5"], ("invalid config: trainer.steps=1.5 is not allowed: an integer "
                             "(Value '1.5' of type 'float' could not be converted to Integer)")),
    (["model=resnet999"], "invalid config: model='resnet999' is not allowed: one of cnn, linear, mlp, resnet"),
    (["reg.xyz=1"], ("invalid config: reg.xyz=1 is not allowed: a key of reg: one of lam, p, mode, scope, "
                      "l1_ratio, eps, impl, momentum_corrected (Key 'xyz' not in 'RegConfig')")),
    # the nearest key, never `+reg.lamda=...`: known_keys refuses that too
    (["reg.lamda=1e-3"], ("invalid config: reg.lamda=0.001 is not allowed: a key of reg: one of lam, p, mode, "
                          "scope, l1_ratio, eps, impl, momentum_corrected (Key 'lamda' not in 'RegConfig'; "
                          "did you mean reg.lam?)")),
    (["+reg.lam=1"], ("invalid config: Could not append to config. An item is already at 'reg.lam'. "
                      "Either remove + prefix: 'reg.lam=1' Or add a second + to add or override "
                      "'reg.lam': '++reg.lam=1'")),
])
def test_composition_errors_become_one_line(compose_cfg, overrides, line):
    # What main() prints before Hydra starts, and what a sweeper prints for one job's overrides.
    with pytest.raises(ConfigCompositionException) as info:
        compose_cfg(overrides)
    assert composition_error_line(info.value) == line


@pytest.mark.parametrize("overrides,message", [
    (["reg.lam=-1"], r"reg.lam=-1.0 is not allowed: a finite number >= 0$"),
    (["reg.lam=nan"], r"reg.lam=nan is not allowed"),
    (["reg.p=0"], r"reg.p=0.0 is not allowed: a finite number > 0$"),
    (["reg.mode=ridge"], r"reg.mode='ridge' is not allowed: one of coupled, decoupled, proximal"),
    (["reg.scope=biases"], r"reg.scope='biases' is not allowed: one of weights, all"),
    (["reg.mode=proximal", "reg.p=3"], r"reg.p=3.0 is not allowed: 1 or 2 with reg.mode=proximal"),
    (["reg.p=0.5", "reg.eps=0"], r"reg.eps=0.0 is not allowed: > 0 when reg.p < 1"),
    (["reg.l1_ratio=1.5"], r"reg.l1_ratio=1.5"),
    (["reg.impl=loss", "reg.mode=decoupled"], r"reg.impl='loss' is not allowed: only with reg.mode=coupled"),
    (["reg.impl=optimizer", "reg.p=3"], r"reg.impl='optimizer' is not allowed"),
    (["data=csv"], r"data.target is missing.*data.path is missing"),
    (["data=csv", "data.path=/no/such.csv", "data.target=y"], r"data.path='/no/such.csv' .*not found"),
    (["data=digits", "data.test_fraction=0.5", "data.val_fraction=0.5"], r"val_fraction \+ test_fraction < 1"),
    (["model=cnn"], r"model='cnn' is not allowed: image data: data=digits \(got data=regression1d\)"),
    (["model.activation=swish"], r"model.activation='swish' is not allowed: one of relu"),
    (["optimizer.lr=0"], r"optimizer.lr=0.0 is not allowed"),
    (["optimizer.momentum=1.0"], r"optimizer.momentum=1.0"),
    (["optimizer.schedule=step"], r"optimizer.schedule='step' is not allowed: one of constant, cosine"),
    (["optimizer=adam", "optimizer.betas=[0.9,1.2]"], r"optimizer.betas=\[0.9, 1.2\]"),
    (["trainer.steps=0"], r"trainer.steps=0 is not allowed"),
    (["trainer.batch_size=0"], r"trainer.batch_size=0 is not allowed: .* or null"),
    (["optimizer.warmup_steps=5000"], r"optimizer.warmup_steps=5000 is not allowed: < trainer.steps"),
    (["objective=test_error"], r"objective='test_error' is not allowed: one of val_error, val_loss"),
    (["seed=-3"], r"seed=-3 is not allowed"),
    # What cannot fit in this machine's memory, estimated before anything is allocated:
    (["data=moons", "data.n_train=20000000000"], r"data.n_train=20000000000 is not allowed: the splits "
     r"would need about 298.0 GiB of memory and .* GiB are available"),
    (["model.width=1000000"], r"model=mlp is not allowed here: its 2,000,005,000,001 parameters need "
     r"about 29,802.4 GiB"),
])
def test_bad_values_are_named_with_what_is_allowed(compose_cfg, overrides, message):
    cfg = compose_cfg(overrides)
    with pytest.raises(ConfigError, match=message) as info:
        validate(cfg)
    assert "\n" not in str(info.value)


def test_all_problems_are_reported_at_once(compose_cfg):
    with pytest.raises(ConfigError) as info:
        validate(compose_cfg(["reg.lam=-1", "reg.scope=x", "trainer.steps=0"]))
    assert str(info.value).count("is not allowed") == 3


def test_job_dir_names_are_safe_stable_and_distinct():
    assert job_dir_name("reg.p=2,seed=1") == "reg.p=2,seed=1"
    assert job_dir_name("") == "default"
    a, b = job_dir_name("data.path=/a/b.csv"), job_dir_name("data.path=_a_b.csv")
    assert "/" not in a and a != b and a == job_dir_name("data.path=/a/b.csv")
    long = job_dir_name("x=" + "9" * 500)
    assert len(long) <= 120 and long != job_dir_name("x=" + "9" * 499)
    # One number, one folder: reg.p=1,2 then reg.p=1.0,2.0 finds the first run's results.
    assert job_dir_name("reg.p=1.0,seed=1") == job_dir_name("reg.p=1,seed=1") == "reg.p=1,seed=1"
    assert job_dir_name("reg.lam=1e-3") == job_dir_name("reg.lam=0.001") == "reg.lam=0.001"
    assert job_dir_name("reg.lam=0.1234567891") != job_dir_name("reg.lam=0.1234567892")  # no rounding
    assert job_dir_name("seed=12345678901234567891") == "seed=12345678901234567891"  # ints as typed


def test_resolved_config_has_no_missing_values(compose_cfg):
    cfg = compose_cfg(["experiment=lp_vs_global"])
    assert OmegaConf.missing_keys(cfg) == set()
