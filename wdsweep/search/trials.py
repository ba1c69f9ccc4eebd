"""What the search keeps on a study's trials, and the small words it uses about them: the
trial states that count as finished, the user attributes the sweeper writes, a count of
trials by state, and how a trial's values become Hydra overrides and a reason becomes one line.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

import optuna
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException
from optuna.trial import TrialState

from wdsweep.config.validation import composition_error_line  # torch-free
from wdsweep.errors import ConfigError
from wdsweep.search.space import SearchSpaceError
from wdsweep.tracking.trial_link import HEARTBEAT_ATTR, REASON_ATTR  # noqa: F401 - the job writes them too

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
CANONICAL_ATTR = "wdsweep_canonical"  # wdsweep.jobs.canonical's hash of the trial's config
JOB_DIR_ATTR = "wdsweep_job_dir"  # the trial's folder, for a later trial that shares its result
SAME_AS_ATTR = "wdsweep_same_as"  # the number of the trial whose result this one shares
REPLICATION_ATTR = "wdsweep_replication"  # study attr: the seeds each trial's value aggregates


def count_trials(study: optuna.Study, states: Sequence[TrialState]) -> int:
    return len(study.get_trials(deepcopy=False, states=tuple(states)))


def fail_reason(err: Exception) -> str:
    """One line for a trial that could not be composed, validated or hooked."""
    if isinstance(err, ConfigError):  # validate's own line, "invalid config: ..."
        return " ".join(str(err).split())
    if isinstance(err, SearchSpaceError):  # from a custom_search_space hook
        return f"invalid search space: {' '.join(str(err).split())}"
    if isinstance(err, (HydraException, OmegaConfBaseException)):  # Hydra could not compose it
        return composition_error_line(err)
    return f"{type(err).__name__}: {' '.join(str(err).split())}"


def one_line(err: BaseException) -> str:
    # A DBAPI error wrapped by SQLAlchemy says it best in the driver's own words.
    err = getattr(err, "orig", None) or err
    return f"{type(err).__name__}: {' '.join(str(err).split())}"


def override_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def quote(text: str) -> str:
    """Quote a string for Hydra's override grammar when it holds characters the grammar reads,
    so that the value Hydra and OmegaConf make of it is `text` exactly: in a quoted value a
    backslash escapes only a quote, another backslash before a quote or the end, and `${`
    (OmegaConf's interpolation, escaped as `\\${`); any other backslash stands for itself."""
    if text and all(c.isalnum() or c in "._-/:+@" for c in text):
        return text
    escaped = re.sub(r"\\+(?='|\$\{|$)", lambda run: run.group(0) * 2, text)
    return "'" + escaped.replace("'", "\\'").replace("${", "\\${") + "'"
