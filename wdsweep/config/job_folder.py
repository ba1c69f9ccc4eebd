"""The name of a sweep job's folder, made from its overrides (the resolver `wdsweep.job_dir` in
conf/config.yaml): a stable function of what the job ran, so a resumed sweep finds each job's
folder whatever its position in the grid.
"""
from __future__ import annotations

import hashlib
import re

_UNSAFE_DIR_CHARS = re.compile(r"[^A-Za-z0-9._,=+\-]")
_MAX_DIR_LEN = 120


# A float literal standing alone as a value (after = , or [, before , ] or the end).
_FLOAT_VALUE = re.compile(r"(?<=[=,\[])[-+]?(?:\d+\.\d*|\.\d+|\d+(?:\.\d*)?[eE][-+]?\d+)(?=[,\]]|$)")


def _same_number_same_text(match: re.Match) -> str:
    """reg.p=1.0 and reg.p=1, reg.lam=1e-3 and reg.lam=0.001 are the same job: one spelling,
    Python's shortest repr of the float, without a trailing .0. Distinct floats keep distinct
    text; integers are left as typed (a seed past 2**53 has no exact float)."""
    text = repr(float(match.group(0)))
    return text[:-2] if text.endswith(".0") else text


def job_dir_name(override_dirname: str) -> str:
    """A file-system-safe, stable job folder name made from a job's overrides.

    Numbers are spelled one way (_same_number_same_text), so that `reg.p=1,2` and then
    `reg.p=1.0,2.0` name the same folders and the second finds the first's results. Hydra's
    override_dirname may hold '/' (a csv path) or be very long; such names are sanitized and,
    past _MAX_DIR_LEN characters, shortened with a hash so that distinct override sets never
    share a folder.
    """
    override_dirname = _FLOAT_VALUE.sub(_same_number_same_text, override_dirname)
    safe = _UNSAFE_DIR_CHARS.sub("_", override_dirname)
    if safe == override_dirname and 0 < len(safe) <= _MAX_DIR_LEN:
        return safe
    if not override_dirname:
        return "default"
    digest = hashlib.sha1(override_dirname.encode()).hexdigest()[:8]
    return f"{safe[: _MAX_DIR_LEN - 9]}-{digest}"


# ${hydra.job.num} / ${hydra.job.id} (or ${hydra:job.num}): a job's position in its sweep.
_JOB_NUMBER = re.compile(r"\$\{\s*hydra\s*[.:]\s*job\s*\.\s*(num|id)\s*\}")


def numbered_subdir(hydra_cfg) -> str | None:
    """hydra.sweep.subdir as written, if it names a job's folder by the job's number (Hydra's
    own default, ${hydra.job.num}), else None. wdsweep refuses it before a sweep starts: the
    grid finds a job's results by its folder, and a number moves when the grid changes (a
    grown grid would resume the wrong job's folder); the Optuna sweeper names each trial's
    folder itself (trial-NNNNN), and its jobs could not resolve the number when validated."""
    from omegaconf import OmegaConf

    sweep = OmegaConf.to_container(hydra_cfg.sweep, resolve=False)
    subdir = sweep.get("subdir")
    return subdir if isinstance(subdir, str) and _JOB_NUMBER.search(subdir) else None
