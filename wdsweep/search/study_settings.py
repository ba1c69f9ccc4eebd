"""What a study's trials were made with, besides the point each trial tried: its fixed settings.

A study's default name is a digest of the search space and the overrides on the command line,
so the same command resumes the same study. A config file edited since (trainer.steps in a
preset, another data file under the same data.path) leaves the name as it was: the study would
then take trials of other settings under one name, and compare them as if alike. So the study
keeps the fixed settings of its first search (the resolved config without the searched keys,
the seeds a replicated search draws, what only says where results go, and the data files'
fingerprints), and a search whose settings differ is refused with the keys that differ, unless
hydra.sweeper.mix_settings=true asks to mix them.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List

from omegaconf import DictConfig

FIXED_ATTR = "wdsweep_fixed_settings"
# What a search with mix_settings=true added that differs from FIXED_ATTR ("key: before -> now"):
# the analysis names it beside the study's trials.
MIXED_ATTR = "wdsweep_mixed_settings"

# Where results go and how jobs are run, never what they compute (see also
# wdsweep.tracking.results.NEUTRAL_KEYS, which the config hash leaves out the same way).
_WHERE_RESULTS_GO = ("logger.",)


def fixed_settings(config: DictConfig, searched: Iterable[str], replicated: bool) -> Dict[str, str]:
    """{dotted key: value as JSON text} of the job config `config` (a sweep's, hydra node and
    all) without the searched keys, plus "data files" (their fingerprint digests)."""
    from wdsweep.tracking.fingerprint import fingerprint
    from wdsweep.tracking.results import NEUTRAL_KEYS, job_tree

    skip = set(searched) | {f"{group}.{key}" for group, key in NEUTRAL_KEYS}
    if replicated:
        skip.add("seed")
    flat = {key: json.dumps(value, sort_keys=True, default=str) for key, value in _flatten(job_tree(config))
            if key not in skip and not key.startswith(_WHERE_RESULTS_GO)}
    data = fingerprint(config)["data"]
    if data:
        flat["data files"] = json.dumps(data, sort_keys=True)
    return flat


def differences(recorded: Dict[str, str], current: Dict[str, str], limit: int = 4) -> List[str]:
    """The keys whose values differ, as "key: before -> now", at most `limit` of them and a count
    of the rest."""
    keys = sorted(k for k in set(recorded) | set(current) if recorded.get(k) != current.get(k))
    said = [f"{k}: {_shown(recorded.get(k))} -> {_shown(current.get(k))}" for k in keys[:limit]]
    if len(keys) > limit:
        said.append(f"and {len(keys) - limit} more")
    return said


def _shown(text: Any) -> str:
    if text is None:
        return "(not set)"
    return text if len(text) <= 40 else text[:37] + "..."


def _flatten(tree: Any, prefix: str = "") -> Iterable[tuple]:
    if isinstance(tree, dict) and tree:
        for key, value in tree.items():
            yield from _flatten(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], tree
