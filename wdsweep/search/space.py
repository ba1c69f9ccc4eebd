"""Hydra's sweep syntax turned into Optuna distributions.

    choice(a, b, c)              -> CategoricalDistribution
    range(1, 4)                  -> IntDistribution(1, 3): half-open, like Hydra's own range
    range(0.1, 0.5, 0.1)         -> FloatDistribution(0.1, 0.4, step=0.1)
    interval(0, 1)               -> FloatDistribution(0, 1)
    tag(log, interval(1e-5, 1))  -> FloatDistribution(1e-5, 1, log=True)
    tag(int, interval(1, 64))    -> IntDistribution(1, 64)
    a plain value                -> fixed: passed to every trial as it is
"""
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution


class SearchSpaceError(ValueError):
    """A sweep entry Optuna cannot search; the message names the key and the value."""


@dataclass
class SearchSpace:
    distributions: Dict[str, BaseDistribution] = field(default_factory=dict)
    fixed: Dict[str, str] = field(default_factory=dict)  # key -> value as Hydra override text

    def grid(self) -> Dict[str, List[Any]]:
        """Every searched key's finite list of values, for GridSampler."""
        grid = {}
        for key, dist in self.distributions.items():
            if isinstance(dist, CategoricalDistribution):
                grid[key] = list(dist.choices)
            elif isinstance(dist, IntDistribution) and not dist.log:
                grid[key] = list(range(dist.low, dist.high + 1, dist.step))
            elif isinstance(dist, FloatDistribution) and dist.step is not None:
                n = int(round((dist.high - dist.low) / dist.step)) + 1
                grid[key] = [dist.low + i * dist.step for i in range(n)]
            else:
                raise SearchSpaceError(f"{key}: the grid sampler needs choice(...) or range(...), "
                                       f"not a continuous {type(dist).__name__}")
        return grid


def parse_search_space(config_params: Dict[str, Any], arguments: Sequence[str]) -> SearchSpace:
    """Entries from the config's `params` block, then the command line (which wins per key)."""
    parser = OverridesParser.create()
    entries = [f"{k}={v}" for k, v in (config_params or {}).items()] + list(arguments)
    try:
        overrides = parser.parse_overrides(entries)
    except Exception as err:  # Hydra's parse errors run over several lines
        raise SearchSpaceError(" ".join(str(err).split())) from None
    space = SearchSpace()
    for override in overrides:
        key = override.get_key_element()
        space.distributions.pop(key, None)
        space.fixed.pop(key, None)
        if override.is_sweep_override():
            space.distributions[key] = to_distribution(override)
        else:
            space.fixed[key] = override.get_value_element_as_str()
    return space


def to_distribution(override: Override) -> BaseDistribution:
    key, sweep = override.get_key_element(), override.value()
    tags = set(getattr(sweep, "tags", set()) or set())
    if isinstance(sweep, ChoiceSweep):
        if getattr(sweep, "simple_form", False) and len(sweep.list) < 2:
            raise SearchSpaceError(f"{key}: a choice needs two or more values")
        return CategoricalDistribution([_plain(v, key) for v in sweep.list])
    if isinstance(sweep, RangeSweep):
        start, stop, step = sweep.start, sweep.stop, sweep.step
        if not step or step < 0:
            raise SearchSpaceError(f"{key}: range({start}, {stop}, {step}) needs a positive step")
        # The small slack keeps float rounding (0.3 + 6 * 0.1 > 0.9) from taking in the stop value.
        count = math.ceil((stop - start) / step - 1e-9)
        if count < 1:
            raise SearchSpaceError(f"{key}: range({start}, {stop}, {step}) is empty")
        last = start + step * (count - 1)
        if all(isinstance(v, int) for v in (start, stop, step)):
            return IntDistribution(start, last, step=step, log="log" in tags and step == 1)
        if count == 1:
            return FloatDistribution(start, start)
        return FloatDistribution(float(start), float(last), step=float(step))
    if isinstance(sweep, IntervalSweep):
        low, high = sweep.start, sweep.end
        if not low < high:
            raise SearchSpaceError(f"{key}: interval({low}, {high}) needs low < high")
        if "log" in tags and low <= 0:
            raise SearchSpaceError(f"{key}: a log interval needs low > 0, got interval({low}, {high})")
        if "int" in tags:
            # The integers inside [low, high]: int() would truncate interval(1.2, 1.8) to {1},
            # a value outside it, and interval(0.5, 0.9) to a single 0.
            first, last = math.ceil(low), math.floor(high)
            if first > last:
                raise SearchSpaceError(f"{key}: tag(int, interval({low}, {high})) holds no integer")
            return IntDistribution(first, last, log="log" in tags)
        return FloatDistribution(float(low), float(high), log="log" in tags)
    raise SearchSpaceError(f"{key}: {override.input_line!r} is not a sweep Optuna can search "
                           f"(use choice, range, interval or tag(log, interval(...)))")


def _plain(value: Any, key: str) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise SearchSpaceError(f"{key}: choice values must be plain numbers or strings, got {value!r}")
