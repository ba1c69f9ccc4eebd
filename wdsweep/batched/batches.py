"""The vectorized launcher's work apart from Hydra: which jobs of a sweep train together as one
batched model (plan_batches), the folder locks a batch holds from before its training to the
last member's files (claim), and the task that writes one member's result through Hydra's
run_job (RecordMember). The plugin (hydra_plugins/wdsweep_vectorized) runs them.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Dict, List, Tuple

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from wdsweep.batched.vectorized import batch_signature, unbatchable_reason
from wdsweep.jobs.resume import done_record, job_lock, remove_stale_temp_files
from wdsweep.jobs.run import record_trained, start_record
from wdsweep.tracking.fingerprint import fingerprint
from wdsweep.tracking.results import config_hash
from wdsweep.tracking.trial_link import TrialLink

log = logging.getLogger(__name__)

# A job below is (its number, its overrides, its composed config).


class RecordMember:
    """The task Hydra's run_job calls for a batched job: write the member's result. The
    launcher holds the job folder's lock (claim, below) from before the training."""

    def __init__(self, trained: Any) -> None:
        self.trained = trained

    def __call__(self, cfg: DictConfig) -> Any:
        hydra_cfg = HydraConfig.get()
        job_dir = Path(hydra_cfg.runtime.output_dir)
        overrides = list(hydra_cfg.overrides.task)
        t = self.trained
        record = start_record(cfg, overrides, config_hash(cfg))
        record.update(torch_threads=t.threads, thread_independent=t.thread_independent, batched=True,
                      device=t.device, device_name=t.device_name)
        if t.resumed_from is not None:
            record["resumed_from_step"] = t.resumed_from
        return record_trained(record, cfg, job_dir, overrides, t.result, t.decay, t.data_sizes,
                              t.model_state, TrialLink.from_env(), task=t.task)


def plan_batches(jobs: List[tuple], max_batch: int) -> Tuple[List[List[tuple]], List[tuple]]:
    """The batches (chunks of at most max_batch jobs that differ only in what can be
    batched) and the jobs that run alone, each with a log line saying why."""
    groups: Dict[str, List[tuple]] = {}
    for job in jobs:
        groups.setdefault(batch_signature(job[2]), []).append(job)
    chunks: List[List[tuple]] = []
    alone: List[tuple] = []
    for members in groups.values():
        # Equal signatures mean equal model, data and logger: one answer for the group
        # (it builds the model once and tries it under vmap).
        reason = unbatchable_reason(members[0][2])
        if reason:
            for job in members:
                log.info("#%d runs alone: %s", job[0], reason)
            alone += members
            continue
        if len(members) == 1:
            log.info("#%d runs alone: no other job of this sweep differs from it only in "
                     "reg, seed or optimizer.lr", members[0][0])
            alone += members
            continue
        chunks += [members[start:start + max_batch] for start in range(0, len(members), max_batch)]
    return chunks, alone


def claim(chunk: List[tuple], locks: contextlib.ExitStack, resume: bool) -> tuple:
    """Take the folder lock of every job of the chunk (in folder order, so two launchers
    never wait on each other in a cycle) and keep it through training and writing, as a
    job run alone holds its own: a second sweep into the same folder waits, then finds the
    jobs done. Returns the jobs to train and those already done (with resume on), and
    clears the temporary files of a write that was killed."""
    folders = {job[0]: Path(str(job[2].hydra.sweep.dir)) / str(job[2].hydra.sweep.subdir)
               for job in chunk}
    # flock on a second open file of one folder would wait on ourselves: each folder once;
    # a later job of the same folder (the same job twice, dedupe off) runs after, alone.
    first: Dict[str, int] = {}
    for index in sorted(folders, key=lambda i: str(folders[i])):
        if str(folders[index]) in first:
            continue
        first[str(folders[index])] = index
        folders[index].mkdir(parents=True, exist_ok=True)
        locks.enter_context(job_lock(folders[index]))
    train, done = [], []
    for job in chunk:
        if first[str(folders[job[0]])] != job[0]:
            done.append(job)  # runs alone once the locks are released, and finds itself done
        elif resume and done_record(folders[job[0]], config_hash(job[2]), fingerprint=fingerprint(job[2])) is not None:
            done.append(job)
        else:
            remove_stale_temp_files(folders[job[0]])
            train.append(job)
    return train, done
