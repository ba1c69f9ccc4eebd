"""`hydra/launcher=vectorized`: the jobs of a sweep that differ only in what can be batched
(reg.*, seed, optimizer.lr, objective) are trained together as one batched model, in chunks
of at most `max_batch`, in this process; each job then gets its folder, `.hydra/`, log,
metrics.json, history.csv and model.pt exactly as if it had run alone (Hydra's own run_job
writes them, with a task that records the member's result). The built-in mlp and linear are
stacked; any other module is vmap'ed with torch.func (wdsweep.batched.func_net). Jobs that cannot be
batched (a module that draws random numbers in its forward, TensorBoard logging, a group of
one) run as ordinary jobs, with a log line saying why; so
do the jobs of a batch whose training raised (out of memory, say), each then failing or not on
its own.

A batch trains on its jobs' trainer.device (the same key as every launcher's; `auto`: CUDA when
torch sees a GPU, else the CPU; the launcher's own `device` key is gone). The Optuna sweeper may
use it too: each round of `n_jobs` asked trials becomes one batch, and the sweep's pruner
stops single members of it (a pruned member no longer counts in the batch's loss).

`hydra/launcher=vectorized_submitit_local` and `vectorized_submitit_slurm` (with the submitit
extra) submit each batch as one submitit job instead of training it here: decided for, since
a batch is one process's work and on a cluster the batch is the unit worth submitting (one
Slurm job for 24 members rather than 24 queue waits and Python and torch starts). They are
separate launcher configs rather than a `submitit=` key on this one so that they take
hydra-submitit-launcher's own schemas (timeout_min, cpus_per_task, mem_gb, partition, ...,
with Hydra's type checks) beside max_batch, and read as its submitit_local and
submitit_slurm do. The sweep process plans the batches; each submitit job runs this module's
in-process code (_launch_here) on its jobs: see VectorizedSubmititLauncher.
"""
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, configure_log, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


@dataclass
class VectorizedLauncherConf:
    _target_: str = "hydra_plugins.wdsweep_vectorized.vectorized_launcher.VectorizedLauncher"
    # Members per batched model; more use more memory, and past a point no more speed.
    max_batch: int = 64
    # Replaced by trainer.device, one key for every launcher: set that instead (a value here
    # is refused with one line saying so).
    device: Optional[str] = None


ConfigStore.instance().store(group="hydra/launcher", name="vectorized",
                             node=VectorizedLauncherConf, provider="wdsweep")


class VectorizedLauncher(Launcher):
    # Our grid sweeper then hands over the job configs it validated instead of having
    # load_sweep_config compose them again.
    runs_jobs_in_this_process = True

    def __init__(self, max_batch: int = 64, device: Optional[str] = None) -> None:
        # before the sweep writes or launches anything (Hydra makes the launcher first)
        from wdsweep.errors import ConfigError

        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            ConfigError(f"invalid config: hydra.launcher.max_batch={max_batch!r} is not allowed: "
                        "an integer >= 1 (the members of one batched model)").exit()
        if device is not None:
            ConfigError(f"invalid config: hydra.launcher.device={device!r} is not allowed: null; the "
                        f"device is trainer.device={device}, one key for every launcher").exit()
        self.max_batch = max_batch
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.task_function: Optional[TaskFunction] = None
        self.returns: Dict[int, JobReturn] = {}

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        return self.launch_numbered([(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)])

    def launch_numbered(self, numbered_overrides: Sequence[Tuple[int, List[str]]]) -> List[JobReturn]:
        """Hydra's launch, for jobs whose numbers need not follow each other: our sweeper hands
        over every job a resumed sweep still has to run at once (the jobs it skipped as done
        leave gaps), so that the members of a batch train together again, from their batch's
        checkpoint, and not one by one."""
        return self._launch_here(list(numbered_overrides))

    def _launch_here(self, numbered_overrides: Sequence[Tuple[int, List[str]]]) -> List[JobReturn]:
        """Train these jobs (job number, overrides) in this process: each batch as one batched
        model, the others one by one; their JobReturns in the same order."""
        from wdsweep.batched.batch_checkpoints import BatchCheckpoints
        from wdsweep.batched.batches import RecordMember, claim, plan_batches
        from wdsweep.batched.vectorized import train_batched
        from wdsweep.jobs.inprocess import prepare_for_many_jobs
        from wdsweep.tracking.trial_link import TrialLink
        from wdsweep.train.device import resolve_device

        prepare_for_many_jobs()
        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        jobs = [(index, overrides, self._config(index, overrides)) for index, overrides in numbered_overrides]
        chunks, alone = plan_batches(jobs, self.max_batch)
        for chunk in chunks:
            with contextlib.ExitStack() as locks:
                chunk, done = claim(chunk, locks, bool(self.config.hydra.sweeper.get("resume", False)))
                alone += done  # finished by another process meanwhile: the task says so
                if len(chunk) < 2:
                    alone += chunk
                    continue
                # the batch's trainer.device (one for the batch: it is part of batch_signature)
                device = str(resolve_device(chunk[0][2].trainer.device, chunk[0][0]))
                log.info("training %d jobs as one batched model on %s: #%s", len(chunk), device,
                         ", #".join(str(j[0]) for j in chunk))
                checkpoints = BatchCheckpoints([cfg for _, _, cfg in chunk])
                try:
                    trained = train_batched([cfg for _, _, cfg in chunk], device,
                                            [TrialLink.from_env(cfg.hydra.job.env_set) for _, _, cfg in chunk],
                                            checkpoints)
                except Exception as err:  # noqa: BLE001 - each job then fails, or not, on its own
                    log.warning("batched training failed (%s: %s); running these %d jobs one "
                                "by one", type(err).__name__, err, len(chunk))
                    alone += chunk
                    continue
                for (index, overrides, cfg), member in zip(chunk, trained):
                    self._run(index, overrides, cfg, RecordMember(member))
                checkpoints.finish()
        for index, overrides, cfg in alone:
            self._run(index, overrides, cfg, self.task_function)
        return [self.returns.pop(index) for index, _, _ in jobs]

    def _config(self, index: int, overrides: Sequence[str]) -> DictConfig:
        from wdsweep.jobs.inprocess import numbered

        return numbered(self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides)),
                        index)

    def _run(self, index: int, overrides: List[str], cfg: DictConfig, task: Any) -> None:
        from wdsweep.jobs.inprocess import run_sweep_job

        self.returns[index] = run_sweep_job(self.hydra_context, task, cfg, index, overrides)


class VectorizedSubmititLauncher(VectorizedLauncher):
    """`hydra/launcher=vectorized_submitit_local` and `vectorized_submitit_slurm`: the batches
    of the vectorized launcher, each submitted as one submitit job (a process of its own, or a
    Slurm job), with hydra-submitit-launcher's keys (timeout_min, cpus_per_task, mem_gb,
    partition, ...; see submitit_local and submitit_slurm) beside max_batch.

    The sweep process plans as the in-process launcher does (wdsweep.batched.batches.plan_batches: which
    jobs batch together, in chunks of max_batch, and which run alone), then submits one
    submitit job per batch and one per job that runs alone. Each submitit job runs
    VectorizedLauncher._launch_here on its jobs: the same code as the in-process launcher (it
    takes the jobs' folder locks, trains the batch as one model, and writes every member's
    files through Hydra's run_job), so each job's folder holds what the in-process launcher
    writes, and the JobReturns come back to the sweeper in the jobs' order. A submitit job
    that ends without a result (killed, out of memory, past its time limit) fails its jobs,
    not the sweep (wdsweep.cluster.submitit_launch).

    Why: a batch is one process's work (it trains with the cores it has: cpus_per_task), so on
    a cluster the natural unit of submission is the batch, not the job: 64 small jobs become
    one Slurm job of 64 members instead of 64 Slurm jobs that each pay a Python and torch start
    and a queue wait. Several batches (several groups, or more jobs than max_batch, or an
    Optuna round's batch) run as several submitit jobs at once.
    """

    runs_jobs_in_this_process = False  # our grid sweeper hands over overrides, not configs
    _EXECUTOR = "abstract"

    def __init__(self, max_batch: int = 64, device: Optional[str] = None, **params: Any) -> None:
        super().__init__(max_batch=max_batch, device=device)
        # hydra-submitit-launcher's keys, as its launcher keeps them (wdsweep.cluster.submitit_launch
        # builds the executor from them the same way)
        self.params = {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
                       for k, v in params.items()}

    def launch_numbered(self, numbered_overrides: Sequence[Tuple[int, List[str]]]) -> List[JobReturn]:
        from hydra.core.singleton import Singleton

        from wdsweep.batched.batches import plan_batches
        from wdsweep.cluster import submitit_launch
        from wdsweep.jobs.override_text import readable_overrides

        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        jobs = [(index, list(o), self._config(index, o)) for index, o in numbered_overrides]
        chunks, alone = plan_batches(jobs, self.max_batch)
        units = sorted(chunks + [[job] for job in alone], key=lambda unit: unit[0][0])
        log.info("Submitit '%s' sweep output dir : %s; %d jobs as %d submitit jobs (%d batches)",
                 self._EXECUTOR, self.config.hydra.sweep.dir, len(jobs), len(units), len(chunks))
        submitit_launch.prepare_sweep_dir(self.config)
        for unit in units:
            if len(unit) > 1:
                log.info("\t#%s : one submitit job, a batch of %d", ", #".join(str(j[0]) for j in unit), len(unit))
            else:
                shown = [o for o in unit[0][1] if not o.lstrip("+~").startswith("hydra.")]
                log.info("\t#%d : %s", unit[0][0], readable_overrides(shown))
        state = Singleton.get_state()
        submitted = submitit_launch.submit(self.params, self._EXECUTOR, self,
                                           [([(index, overrides) for index, overrides, _ in unit], state)
                                            for unit in units])
        returns: Dict[int, JobReturn] = {}
        for unit, job in zip(units, submitted):
            got = submitit_launch.result_or_lost(
                job, "#" + ", #".join(str(j[0]) for j in unit),
                lambda reason, unit=unit: [submitit_launch.failed_return(o, reason) for _, o, _ in unit])
            returns.update({index: ret for (index, _, _), ret in zip(unit, got)})
        return [returns[index] for index, _, _ in jobs]

    def __call__(self, numbered_overrides: List[Tuple[int, List[str]]], singleton_state: Dict[Any, Any]
                 ) -> List[JobReturn]:
        """In the submitit job: these jobs, as the in-process launcher runs them."""
        from hydra.core.singleton import Singleton

        Singleton.set_state(singleton_state)
        return self._launch_here(numbered_overrides)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """As hydra-submitit-launcher's: on a time-out with max_num_timeout > 0, submit the same
        call again (the jobs finished meanwhile are found done under their locks)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


class VectorizedSubmititLocalLauncher(VectorizedSubmititLauncher):
    _EXECUTOR = "local"


class VectorizedSubmititSlurmLauncher(VectorizedSubmititLauncher):
    _EXECUTOR = "slurm"


try:  # the submitit extra: its launchers' config schemas, extended by max_batch
    from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf
except ImportError:
    pass
else:
    @dataclass
    class VectorizedSubmititLocalConf(LocalQueueConf):
        _target_: str = "hydra_plugins.wdsweep_vectorized.vectorized_launcher.VectorizedSubmititLocalLauncher"
        max_batch: int = 64
        device: Optional[str] = None  # refused: trainer.device

    @dataclass
    class VectorizedSubmititSlurmConf(SlurmQueueConf):
        _target_: str = "hydra_plugins.wdsweep_vectorized.vectorized_launcher.VectorizedSubmititSlurmLauncher"
        max_batch: int = 64
        device: Optional[str] = None  # refused: trainer.device

    ConfigStore.instance().store(group="hydra/launcher", name="vectorized_submitit_local",
                                 node=VectorizedSubmititLocalConf, provider="wdsweep")
    ConfigStore.instance().store(group="hydra/launcher", name="vectorized_submitit_slurm",
                                 node=VectorizedSubmititSlurmConf, provider="wdsweep")
