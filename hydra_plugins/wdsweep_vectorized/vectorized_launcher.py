"""`hydra/launcher=vectorized`: the jobs of a sweep that differ only in what can be batched
(reg.*, seed, optimizer.lr, objective) are trained together as one batched model, in chunks
of at most `max_batch`, in this process; each job then gets its folder, `.hydra/`, log,
metrics.json, history.csv and model.pt exactly as if it had run alone (Hydra's own run_job
writes them, with a task that records the member's result). The built-in mlp and linear are
stacked; any other module is vmap'ed with torch.func (wdsweep.func_net). Jobs that cannot be
batched (a module that draws random numbers in its forward, TensorBoard logging, a group of
one) run as ordinary jobs, with a log line saying why; so
do the jobs of a batch whose training raised (out of memory, say), each then failing or not on
its own.

`device=auto` trains on CUDA when torch sees a GPU, else on the CPU. The Optuna sweeper may
use it too: each round of `n_jobs` asked trials becomes one batch, and the sweep's pruner
stops single members of it (a pruned member no longer counts in the batch's loss).
"""
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, configure_log, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

log = logging.getLogger(__name__)


@dataclass
class VectorizedLauncherConf:
    _target_: str = "hydra_plugins.wdsweep_vectorized.vectorized_launcher.VectorizedLauncher"
    # Members per batched model; more use more memory, and past a point no more speed.
    max_batch: int = 64
    # auto: cuda when available, else cpu. Or cpu, cuda, cuda:1, ...
    device: str = "auto"


ConfigStore.instance().store(group="hydra/launcher", name="vectorized",
                             node=VectorizedLauncherConf, provider="wdsweep")


class _RecordMember:
    """The task Hydra's run_job calls for a batched job: write the member's result. The
    launcher holds the job folder's lock (VectorizedLauncher._claim) from before the training."""

    def __init__(self, trained: Any) -> None:
        self.trained = trained

    def __call__(self, cfg: DictConfig) -> Any:
        from wdsweep.results import config_hash
        from wdsweep.run import record_trained, start_record
        from wdsweep.trial_link import TrialLink

        hydra_cfg = HydraConfig.get()
        job_dir = Path(hydra_cfg.runtime.output_dir)
        overrides = list(hydra_cfg.overrides.task)
        t = self.trained
        record = start_record(cfg, overrides, config_hash(cfg))
        record.update(torch_threads=t.threads, thread_independent=t.thread_independent, batched=True)
        return record_trained(record, cfg, job_dir, overrides, t.result, t.decay, t.data_sizes,
                              t.model_state, TrialLink.from_env())


class VectorizedLauncher(Launcher):
    # Our grid sweeper then hands over the job configs it validated instead of having
    # load_sweep_config compose them again.
    runs_jobs_in_this_process = True

    def __init__(self, max_batch: int = 64, device: str = "auto") -> None:
        self.max_batch, self.device = max_batch, device
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.task_function: Optional[TaskFunction] = None
        self.returns: Dict[int, JobReturn] = {}

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from wdsweep.inprocess import prepare_for_many_jobs
        from wdsweep.trial_link import TrialLink
        from wdsweep.vectorized import batch_signature, train_batched, unbatchable_reason

        prepare_for_many_jobs()
        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        device = self._device()
        jobs = [(initial_job_idx + i, list(o), self._config(initial_job_idx + i, o))
                for i, o in enumerate(job_overrides)]
        groups: Dict[str, List[tuple]] = {}
        for job in jobs:
            groups.setdefault(batch_signature(job[2]), []).append(job)
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
            for start in range(0, len(members), self.max_batch):
                chunk = members[start:start + self.max_batch]
                with contextlib.ExitStack() as locks:
                    chunk, done = self._claim(chunk, locks)
                    alone += done  # finished by another process meanwhile: the task says so
                    if len(chunk) < 2:
                        alone += chunk
                        continue
                    log.info("training %d jobs as one batched model on %s: #%s", len(chunk), device,
                             ", #".join(str(j[0]) for j in chunk))
                    try:
                        trained = train_batched([cfg for _, _, cfg in chunk], device,
                                                [TrialLink.from_env(cfg.hydra.job.env_set) for _, _, cfg in chunk])
                    except Exception as err:  # noqa: BLE001 - each job then fails, or not, on its own
                        log.warning("batched training failed (%s: %s); running these %d jobs one "
                                    "by one", type(err).__name__, err, len(chunk))
                        alone += chunk
                        continue
                    for (index, overrides, cfg), member in zip(chunk, trained):
                        self._run(index, overrides, cfg, _RecordMember(member))
        for index, overrides, cfg in alone:
            self._run(index, overrides, cfg, self.task_function)
        return [self.returns.pop(index) for index, _, _ in jobs]

    def _claim(self, chunk: List[tuple], locks: contextlib.ExitStack) -> tuple:
        """Take the folder lock of every job of the chunk (in folder order, so two launchers
        never wait on each other in a cycle) and keep it through training and writing, as a
        job run alone holds its own: a second sweep into the same folder waits, then finds the
        jobs done. Returns the jobs to train and those already done (with resume on), and
        clears the temporary files of a write that was killed."""
        from wdsweep.resume import done_record, job_lock, remove_stale_temp_files
        from wdsweep.results import config_hash

        resume = bool(self.config.hydra.sweeper.get("resume", False))
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
            elif resume and done_record(folders[job[0]], config_hash(job[2])) is not None:
                done.append(job)
            else:
                remove_stale_temp_files(folders[job[0]])
                train.append(job)
        return train, done

    def _config(self, index: int, overrides: Sequence[str]) -> DictConfig:
        from wdsweep.inprocess import numbered

        return numbered(self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides)),
                        index)

    def _run(self, index: int, overrides: List[str], cfg: DictConfig, task: Any) -> None:
        from wdsweep.inprocess import run_sweep_job

        self.returns[index] = run_sweep_job(self.hydra_context, task, cfg, index, overrides)

    def _device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
