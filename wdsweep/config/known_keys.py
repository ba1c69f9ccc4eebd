"""Keys a config group does not define: `+reg.lamda=1e-3` (Hydra's own hint for a misspelt key
is to add it with `+`) composes fine and changes nothing, so the job would train with the
default λ. Refused instead, naming the key, the nearest key the group has, and all of them.

A group whose option was built from a schema (wdsweep.config.schema: every shipped option of
data, model, optimizer, reg, trainer and logger) keeps that schema as its node's type after
composition: the keys it allows are the schema's fields. The top level allows the groups, `seed`
and `objective` (and Hydra's node). A user's own option without a schema (conf/model/mynet.yaml
with a `_target_`) is checked before any job against its target's signature instead: a key the
target has no parameter for is refused in one line naming the key and the nearest parameter; a
target that takes **kwargs takes any key, so there only a key that is a near miss of a named
parameter (`+model.widht=64` beside `width`) is refused (wdsweep.train.targets).
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import List

from omegaconf import DictConfig, OmegaConf

from wdsweep.config.schema import WdsweepConfig

GROUPS = ("data", "model", "optimizer", "reg", "trainer", "logger")


def unknown_keys(cfg: DictConfig) -> List[str]:
    """One line per key the config holds and its group does not define."""
    problems = []
    top = [f.name for f in dataclasses.fields(WdsweepConfig)]
    for key in cfg:
        if key not in top and key != "hydra":
            problems.append(_line(str(key), key, _value(cfg, key), "the config", top))
    for group in GROUPS:
        node = cfg.get(group) if group in cfg else None
        if not OmegaConf.is_dict(node):
            continue
        schema = OmegaConf.get_type(node)
        if not dataclasses.is_dataclass(schema):
            continue
        allowed = [f.name for f in dataclasses.fields(schema)]
        for key in node:
            if key not in allowed:
                problems.append(_line(f"{group}.{key}", key, _value(node, key), group, allowed, group))
    return problems


def _value(node: DictConfig, key):
    """The value as written (an interpolation unresolved)."""
    return OmegaConf.to_container(node, resolve=False, throw_on_missing=False).get(key)


def _line(full: str, key, value, where: str, allowed: List[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(str(key), allowed, n=1)
    hint = f" (did you mean {prefix + '.' if prefix else ''}{close[0]}?)" if close else ""
    return (f"{full}={value!r} is not allowed: {where} has no key {key!r}{hint}; its keys are "
            + ", ".join(allowed))
