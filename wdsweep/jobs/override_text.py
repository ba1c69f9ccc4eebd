"""How a job's overrides read in a log line: long floats (an Optuna sample) shortened. Only the
line: the job's config, folder and metrics.json keep every digit. Used by the job's summary
line (wdsweep.jobs.run) and by the launchers' "#N : overrides" lines."""
from __future__ import annotations

import re
from typing import Sequence

# A float written with more digits than a reader can use (an Optuna sample, 0.0005547119471592127).
_LONG_FLOAT = re.compile(r"(?<![\w.])-?\d+\.\d{7,}(?:[eE][-+]?\d+)?(?![\w.])|(?<![\w.])-?\d\.\d{7,}[eE][-+]?\d+")


def readable_overrides(overrides: Sequence[str]) -> str:
    """Overrides joined for a log line, long floats shown to 4 significant digits. Only the
    line: the job's config, folder and metrics.json keep every digit."""
    return " ".join(_LONG_FLOAT.sub(lambda m: f"{float(m.group()):.4g}", o) for o in overrides)
