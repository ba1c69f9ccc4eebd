"""One training per distinct configuration: which jobs of a sweep would train the same thing.

With reg.lam = 0 the regularizer does nothing, so reg.p, reg.mode, reg.scope, reg.l1_ratio,
reg.eps and reg.impl cannot change a job's training (tests/jobs/test_canonical.py trains such jobs
and compares their numbers bit for bit); nor can data.crop_padding and data.flip with
data.augment=false. A grid that crosses lam=0 with them, as
`experiment=lp_vs_global` does, would train the same network several times. The sweepers
train the first job of each group of equal `canonical_hash` and write every other one as a
record of that result (`same_as` in its metrics.json, naming the job that trained, and
train_seconds 0). `hydra.sweeper.dedupe=false` trains every job.

What such a record cannot share: `sparsity` counts zeros among the tensors in reg.scope, so a
record of scope=all holds the trained job's count over that job's scope (a ReLU net trained
without decay has no zero weights, so both are 0 in practice); the `decay` counts (decayed and
kept tensors) are left out. No torch here: the grid sweeper calls it before launching.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig

log = logging.getLogger(__name__)

# What a lam = 0 regularizer ignores.
IDLE_REG_KEYS = ("p", "mode", "scope", "l1_ratio", "eps", "impl", "momentum_corrected")


# What data.augment=false ignores.
IDLE_AUGMENT_KEYS = ("crop_padding", "flip")


def canonical_tree(tree: dict) -> dict:
    """A resolved job config (wdsweep.tracking.results.job_tree) with what cannot matter set to one
    value; `tree` itself is left as it is."""
    reg, data = tree.get("reg"), tree.get("data")
    if isinstance(reg, dict) and reg.get("lam") == 0:
        tree = {**tree, "reg": {k: (None if k in IDLE_REG_KEYS else v) for k, v in reg.items()}}
    if isinstance(data, dict) and not data.get("augment"):
        tree = {**tree, "data": {k: (None if k in IDLE_AUGMENT_KEYS else v) for k, v in data.items()}}
    return tree


def canonical_hash(cfg: DictConfig) -> str:
    from wdsweep.tracking.results import digest, job_tree

    return digest(canonical_tree(job_tree(cfg)))


def write_twin_record(source_dir: Path, job_dir: Path, cfg: DictConfig, overrides: Sequence[str],
                      same_as: str) -> dict:
    """Write job_dir's result as a record of the job in source_dir, which trained the same
    canonical config: its metrics under this job's own config, overrides and config_hash,
    `same_as` naming the source (relative to the sweep folder), train_seconds 0, and its
    history.csv and model.pt as hard links (copies where links cannot be made). A source
    without a finished result gives a `failed` record, which resume runs again. metrics.json
    is written last, as a trained job's is."""
    from wdsweep.jobs.resume import DONE_STATUSES, read_record
    from wdsweep.tracking.mlflow_export import export_job
    from wdsweep.tracking.results import HISTORY_FILE, MODEL_FILE, config_hash, resolved_config, write_metrics

    source = read_record(source_dir)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if source is not None and source.get("status") in DONE_STATUSES:
        # decay counts are per scope; the Optuna trial link is the source's own
        record = {k: v for k, v in source.items() if k not in ("decay", "optuna")}
        for name in (HISTORY_FILE, MODEL_FILE):
            if (source_dir / name).is_file():
                _link_or_copy(source_dir / name, job_dir / name)
    else:
        record = {"status": "failed", "objective": None,
                  "error": f"the job it shares its configuration with ({same_as}) has no finished result"}
    record.update(overrides=list(overrides), config_hash=config_hash(cfg), config=resolved_config(cfg),
                  run_id=uuid.uuid4().hex, same_as=same_as, train_seconds=0.0, eval_seconds=0.0,
                  started_at=now, finished_at=now)
    write_metrics(job_dir, record)
    export_job(cfg, job_dir, record)  # logger=mlflow; never raises
    return record


class RecordTwin:
    """A task for Hydra's run_job: write the job's folder as a record of the job in `source`
    (a sweeper's twin, which trains nothing), so its .hydra/ files are Hydra's own."""

    def __init__(self, source: Path, same_as: str) -> None:
        self.source, self.same_as = Path(source), same_as
        self.record: dict = {}

    def __call__(self, cfg: DictConfig) -> Any:
        from hydra.core.hydra_config import HydraConfig

        from wdsweep.jobs.resume import job_lock

        hydra_cfg = HydraConfig.get()
        job_dir = Path(hydra_cfg.runtime.output_dir)
        overrides = list(hydra_cfg.overrides.task)
        with job_lock(job_dir):
            self.record = write_twin_record(self.source, job_dir, cfg, overrides, self.same_as)
        log.info("%s | same as %s (not trained) | %s", " ".join(overrides), self.same_as,
                 self.record["status"])
        value = self.record.get("objective")
        if value is None:
            return math.nan
        return tuple(value) if isinstance(value, list) else value


def _link_or_copy(source: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        os.link(source, tmp)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)
