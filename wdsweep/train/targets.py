"""Calling a config's `_target_` (a user's model class or data loader): which keyword arguments
it takes, which config keys it has no parameter for, and calling it so that its own exception,
not Hydra's wrapper, reaches the one-line error."""
from __future__ import annotations

import difflib
import inspect
from typing import Any, Optional, Sequence

from omegaconf import DictConfig

# How alike a key and a named parameter must be (difflib's ratio) to count as a misspelling of
# it under a **kwargs target: widht/width 0.8, n_feature/n_features 0.95; depth/width (0.6) and
# lr/wd are different keys. A target without **kwargs refuses any unknown key; the hint there
# names a parameter down to HINT_RATIO.
NEAR_MISS_RATIO = 0.8
HINT_RATIO = 0.6


def call_target(instantiate, spec: dict, extra: dict) -> Any:
    """instantiate(spec, **extra), raising what the target raised (out of memory, the user's
    own error) rather than Hydra's InstantiationException around it."""
    from hydra.errors import InstantiationException

    try:
        return instantiate(spec, _convert_="all", **extra)
    except InstantiationException as err:
        if err.__cause__ is not None:
            raise err.__cause__
        raise


def accepts(target: Any, name: str, through_kwargs: bool = True) -> bool:
    """Whether `target` takes a keyword argument `name`: a parameter of that name, or (with
    through_kwargs) a **kwargs."""
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):  # a builtin without a signature: offer nothing
        return False
    return name in params or (through_kwargs and any(p.kind is inspect.Parameter.VAR_KEYWORD
                                                     for p in params.values()))


def unknown_parameter(cfg: DictConfig, group: str, skip: Sequence[str] = ()) -> Optional[str]:
    """The first key of the group's config that its `_target_` has no parameter for, in one line
    naming the key, the nearest parameter and all of them; else None.

    A target without **kwargs would fail on such a key with a TypeError from inside the call,
    naming neither the group nor the key as the user wrote it. A target that takes **kwargs
    takes any key without complaint, so there only a key that is a near miss of a named
    parameter (`+model.widht=64` beside `width`) is refused: it would be passed on and ignored,
    and the job would train at the default width; a key near no named parameter is the target's
    own business (passed through **kwargs, as the user means it). Hydra's own keys
    (`_partial_`, ...) and `skip` (wdsweep's keys of the group) are not the target's."""
    from hydra._internal.utils import _locate as get_object

    try:
        params = inspect.signature(get_object(str(cfg.get("_target_")))).parameters
    except Exception:  # noqa: BLE001 - a target that cannot be found is reported when called
        return None
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = [n for n, p in params.items() if p.kind not in (inspect.Parameter.VAR_KEYWORD,
                                                             inspect.Parameter.VAR_POSITIONAL)]
    for key in map(str, cfg):
        if key in skip or key in named or (key.startswith("_") and key.endswith("_")):
            continue
        close = difflib.get_close_matches(key, named, n=1, cutoff=NEAR_MISS_RATIO if takes_any else HINT_RATIO)
        if takes_any and not close:
            continue
        hint = f" (did you mean {group}.{close[0]}?)" if close else ""
        why = "; it takes **kwargs, so the key would be passed on and ignored" if takes_any else ""
        return (f"{group}.{key}={cfg[key]!r} is not allowed: {cfg.get('_target_')} has no parameter {key!r}"
                f"{hint}{why}: its parameters are {', '.join(named) or '(none)'}")
    return None
