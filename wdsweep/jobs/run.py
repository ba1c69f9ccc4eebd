"""One job from a composed config: validate, build, train, record. Returns the objective.

Order matters for reproducibility: seed, then data (the weight-decay article draws its data first), then the
model, then the regularizer (which splits the parameters) and the optimizer.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import platform
import random
import traceback
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import numpy as np
import torch
from omegaconf import DictConfig

import wdsweep
from wdsweep.config.validation import validate
from wdsweep.errors import ConfigError
from wdsweep.jobs import lock_holder
from wdsweep.jobs.checkpoints import JobCheckpoints, remove_checkpoint
from wdsweep.jobs.lifeline import in_main_process
from wdsweep.jobs.override_text import readable_overrides
from wdsweep.jobs.resume import changed_since, done_record, job_lock, remove_stale_temp_files
from wdsweep.jobs.threads import dependent_threads, is_thread_independent, job_threads
from wdsweep.tracking.fingerprint import fingerprint
from wdsweep.tracking.mlflow_export import export_job
from wdsweep.tracking.monitors import ProgressBar, PruningReporter, TensorBoardLogger, TrialWatch
from wdsweep.tracking.results import (
    METRICS_FILE,
    SCHEMA_VERSION,
    config_hash,
    resolved_config,
    save_model,
    write_history,
    write_metrics,
)
from wdsweep.tracking.trial_link import TrialHeartbeat, TrialLink, heartbeat_seconds
from wdsweep.train.checkpoint import UnusableCheckpoint
from wdsweep.train.data import build_splits, derived_seed
from wdsweep.train.device import device_name, resolve_device
from wdsweep.train.epochs import planned_steps
from wdsweep.train.models import build_model, data_info_of
from wdsweep.train.optimizers import build_optimizer
from wdsweep.train.precision import precision_of
from wdsweep.train.regularizers import Regularizer
from wdsweep.train.streaming import Loading
from wdsweep.train.training import Callback, TrainResult, train

log = logging.getLogger(__name__)

FINAL_METRICS = ("train_loss", "train_error", "val_loss", "val_error", "test_loss", "test_error",
                 "reg_loss", "weight_norm", "sparsity")


def run(cfg: DictConfig, job_dir: Path, *, overrides: Sequence[str] = (), progress: bool = False,
        raise_failures: bool = False, resume: bool = False, launcher_jobs: object = None,
        one_by_one: bool = True, wait_for_lock: bool = True) -> float:
    """Train and record one job in `job_dir`; return its objective, NaN unless it completed.

    A failure after validation (an exception while building or training) is recorded as
    status `failed` and, unless raise_failures, swallowed: one bad job never ends a sweep.
    With `resume`, a job whose finished result for this very config is already in job_dir is
    not run again; its recorded objective is returned. `launcher_jobs` is what the
    launcher says about its jobs' cores (joblib's n_jobs, submitit's cpus_per_task: see
    wdsweep.jobs.threads.launcher_share), for the thread rule. `one_by_one`: the launcher trains
    each job alone, so a record of the job trained in a vectorized batch is not done
    (wdsweep.jobs.resume.done_record). `wait_for_lock` false (a single run): a folder another
    process is writing is refused in one line rather than waited for.
    """
    validate(cfg)
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    with _locked(job_dir, wait=wait_for_lock):
        cfg_hash = config_hash(cfg)
        prints = fingerprint(cfg)
        done = (done_record(job_dir, cfg_hash, dependent_threads(cfg.trainer.threads, launcher_jobs), prints,
                            one_by_one) if resume else None)
        if done is not None:
            log.info("%s | already done (%s), not run again", " ".join(overrides) or job_dir,
                     done["status"])
            return _recorded_objective(done, objective_names(cfg))
        if resume:
            why = changed_since(job_dir, cfg_hash, prints, one_by_one)
            if why:
                log.info("%s | trains again: %s since it was done", " ".join(overrides) or job_dir, why)
        remove_stale_temp_files(job_dir)  # left by a job killed while writing
        return _run(cfg, job_dir, cfg_hash, overrides, progress, raise_failures, launcher_jobs, prints)


@contextlib.contextmanager
def _locked(job_dir: Path, wait: bool) -> Iterator[None]:
    """The job folder's lock. A sweep's job waits for another process running it (then finds
    it done); a single run (`wait` false) refuses a folder another run is writing, in one line:
    two runs must never write into one folder (a clock-named one is claimed fresh before)."""
    try:
        with job_lock(job_dir, wait=wait):
            yield
    except lock_holder.FolderBusy as busy:
        raise ConfigError(f"invalid config: hydra.run.dir={str(job_dir)!r} is not allowed: a folder no other "
                          f"run is writing (it is locked by {busy}); wait for that run, or give another "
                          "hydra.run.dir") from None


def _run(cfg: DictConfig, job_dir: Path, cfg_hash: str, overrides: Sequence[str], progress: bool,
         raise_failures: bool, launcher_jobs: object, prints: dict) -> float:
    trial = TrialLink.from_env()  # set when our Optuna sweeper launched this job
    record = start_record(cfg, overrides, cfg_hash, prints)
    try:
        result, regularizer, model, splits = _train(cfg, job_dir, progress, trial, launcher_jobs, record)
    except Exception as err:  # noqa: BLE001 - recorded, then maybe re-raised
        log.error("job failed: %s", "".join(traceback.format_exception_only(err)).strip())
        log.debug("%s", traceback.format_exc())
        record.update(error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc())
        _finish(record, cfg, job_dir, trial)
        if raise_failures:
            raise
        return _failed_objective(objective_names(cfg))
    return record_trained(record, cfg, job_dir, overrides, result, regularizer.summary(),
                          splits.sizes(), cpu_state(model), trial, raise_failures, task=splits.task)


def cpu_state(model: torch.nn.Module) -> dict:
    """The model's state_dict on the CPU (model.pt loads anywhere; on the CPU, the same tensors)."""
    return {key: value.detach().cpu() for key, value in model.state_dict().items()}


def start_record(cfg: DictConfig, overrides: Sequence[str], cfg_hash: str, prints: Optional[dict] = None) -> dict:
    """metrics.json's fields known before training; status `failed` until training says more.
    The thread fields (torch_threads, thread_independent) are added once the model is built.
    `prints`: the job's fingerprint when the caller has it already (else it is taken here)."""
    names = objective_names(cfg)
    return {
        "schema_version": SCHEMA_VERSION,
        "status": "failed",
        "objective_name": names[0] if len(names) == 1 else names,
        "objective": None,
        "seed": cfg.seed,
        "overrides": list(overrides),
        "config_hash": cfg_hash,
        # Tells one execution from another: a resumed sweep must not have recomputed it.
        "run_id": uuid.uuid4().hex,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        # what trained it besides its config; resume compares it next time (wdsweep.tracking.fingerprint)
        "fingerprint": prints if prints is not None else fingerprint(cfg),
        # how: alone, or as a member of a vectorized batch (RecordMember sets it), whose numbers
        # differ by rounding; resume and the report tell the two apart (wdsweep.jobs.resume)
        "batched": False,
        "launcher": _launcher_name(),
    }


def _launcher_name() -> Optional[str]:
    """The Hydra launcher's class name (BasicLauncher, JoblibLauncher, VectorizedLauncher, ...),
    None outside a Hydra run."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    target = str(HydraConfig.get().launcher.get("_target_", "") or "")
    return target.rsplit(".", 1)[-1] or None


def record_trained(record: dict, cfg: DictConfig, job_dir: Path, overrides: Sequence[str],
                   result: TrainResult, decay: dict, data_sizes: dict, model_state: dict,
                   trial: Optional[TrialLink] = None, raise_failures: bool = False,
                   task: Optional[str] = None) -> float:
    """Write a trained job's history.csv, model.pt and (last) metrics.json; return its
    objective, NaN unless it completed. Also the path of jobs trained in a batch
    (wdsweep.batched.vectorized), so that their files are exactly those of a job run alone."""
    names = objective_names(cfg)
    final = result.final
    values = [final[name] for name in names]
    if decay.get("stepped_params") is not None and decay["stepped_params"] < decay["decayed_params"]:
        # the set-up line counted the scope; these are the tensors the decay actually reached
        log.info("decayed in fact: %d of the %d tensors in scope (%s of %s parameters); the others got no gradient",
                 decay["stepped_tensors"], decay["decayed_tensors"], f"{decay['stepped_params']:,}",
                 f"{decay['decayed_params']:,}")
    completed = result.status == "completed" and all(math.isfinite(v) for v in values)
    record.update(
        status=result.status,
        objective=(values[0] if len(values) == 1 else values) if completed else None,
        **{k: final[k] for k in FINAL_METRICS},
        train_seconds=result.train_seconds,
        eval_seconds=result.eval_seconds,
        steps=result.steps,
        steps_planned=result.steps_planned,
        diverged_at_step=result.diverged_at_step,
        stop_reason=result.stop_reason,
        skipped_steps=result.skipped_steps,
        # wall-clock figures of this execution: samples_per_second, step_ms, data_wait_share
        throughput=result.throughput,  # (NaN, as everywhere in metrics.json, is written as null)
        # a run stopped as failed (its trial told by another sweep) says why where failures do
        **({"error": result.stop_reason} if result.status == "failed" and result.stop_reason else {}),
        decay=decay,
        data_sizes=data_sizes,
        # what every *_error is: the error rate of a classification, the MSE of a regression
        **({"task": task, "error_metric": ERROR_METRICS[task]} if task in ERROR_METRICS else {}),
        history_rows=len(result.history),  # what resume checks history.csv against
    )
    try:
        write_history(job_dir, result.history)
        if cfg.trainer.save_model:
            save_model(job_dir, model_state)
    except (OSError, RuntimeError) as err:
        # A full disk fails this job, not the sweep. torch.save reports a short write as a
        # RuntimeError ("PytorchStreamWriter failed writing file"), not an OSError.
        log.error("could not write the results of this job in %s: %s", job_dir, err)
        completed = False
        record.update(status="failed", objective=None, error=f"{type(err).__name__}: {err}")
    if not _finish(record, cfg, job_dir, trial):
        completed = False
        if raise_failures:
            raise OSError(f"could not write {job_dir / METRICS_FILE}")
    _log_summary(record, overrides)
    if not completed:
        return _failed_objective(names)
    return values[0] if len(names) == 1 else tuple(values)


def _failed_objective(names: List[str]):
    return math.nan if len(names) == 1 else tuple(math.nan for _ in names)


def _recorded_objective(record: dict, names: List[str]):
    value = record.get("objective")
    if value is None:
        return _failed_objective(names)
    return value if len(names) == 1 else tuple(value)


def objective_names(cfg: DictConfig) -> List[str]:
    """`objective` is one metric name, or a list of them for multi-objective searches."""
    return [cfg.objective] if isinstance(cfg.objective, str) else list(cfg.objective)


def seed_and_draw_data(cfg: DictConfig):
    """Seed Python's, numpy's and torch's global generators from cfg.seed and draw the data
    splits, in the weight-decay article's order; the model's init then continues torch's global stream. Also
    how wdsweep.batched.vectorized builds each member, so a member starts as its job alone would."""
    random.seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    return build_splits(cfg.data, cfg.seed, torch.manual_seed(cfg.seed))


def set_threads(record: dict, requested: Optional[int], launcher_jobs: object,
                thread_independent: bool) -> int:
    """Set torch's thread count for the job about to train (process-wide: every job sets it,
    so one job's count never leaks into the next) and record it."""
    threads = job_threads(requested, launcher_jobs, thread_independent)
    torch.set_num_threads(threads)
    record.update(torch_threads=threads, thread_independent=thread_independent)
    return threads


def set_device(record: dict, trainer: DictConfig) -> torch.device:
    """The job's device (trainer.device), recorded in metrics.json, and torch's deterministic
    algorithms as trainer.deterministic says (process-wide: every job sets it)."""
    from hydra.core.hydra_config import HydraConfig

    job_num = HydraConfig.get().job.get("num") if HydraConfig.initialized() else None
    device = resolve_device(trainer.device, job_num)
    deterministic = bool(trainer.get("deterministic", False))
    if deterministic and device.type == "cuda":
        # cuBLAS is deterministic only with a fixed workspace, set before its first call.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    record.update(device=str(device), device_name=device_name(device))
    return device


def augment_generator(seed: int) -> torch.Generator:
    """The job's own stream of augmentation draws (data.augment), apart from the batches'."""
    return torch.Generator().manual_seed(derived_seed(seed, "augment"))


def _train(cfg: DictConfig, job_dir: Path, progress: bool, trial: Optional[TrialLink],
           launcher_jobs: object, record: dict):
    # A job in a process of its own keeps its trial alive itself, from the start (data loading
    # included), in case it outlives its sweep (wdsweep.tracking.trial_link).
    heartbeat = TrialHeartbeat([trial], job_heartbeat_seconds(), in_main_process())
    try:
        return _train_beating(cfg, job_dir, progress, trial, launcher_jobs, record, heartbeat)
    finally:
        heartbeat.close()


def job_heartbeat_seconds() -> float:
    """hydra.sweeper.heartbeat_seconds of the job's Hydra config, if Hydra runs the job."""
    from hydra.core.hydra_config import HydraConfig

    return heartbeat_seconds(HydraConfig.get() if HydraConfig.initialized() else None)


def _train_beating(cfg: DictConfig, job_dir: Path, progress: bool, trial: Optional[TrialLink],
                   launcher_jobs: object, record: dict, heartbeat: TrialHeartbeat):
    checkpoints = JobCheckpoints(job_dir, record["config_hash"], cfg.trainer.get("checkpoint_every"),
                                 float(cfg.trainer.get("checkpoint_seconds", 0)))
    try:
        return _build_and_train(cfg, job_dir, progress, trial, launcher_jobs, record, heartbeat, checkpoints)
    except UnusableCheckpoint as err:
        # It loaded, but does not fit this run: set it aside and start over from fresh parts.
        checkpoints.discard(f"does not fit this job ({err})")
        return _build_and_train(cfg, job_dir, progress, trial, launcher_jobs, record, heartbeat, checkpoints)


def _build_and_train(cfg: DictConfig, job_dir: Path, progress: bool, trial: Optional[TrialLink],
                     launcher_jobs: object, record: dict, heartbeat: TrialHeartbeat, checkpoints: JobCheckpoints):
    torch.set_flush_denormal(cfg.trainer.flush_denormal)  # process-wide: set by every job
    device = set_device(record, cfg.trainer)
    splits = seed_and_draw_data(cfg)  # (drawn serially: the thread count does not matter yet)
    model = build_model(cfg.model, data_info_of(splits))  # continues the global stream after the data draw
    rows = len(splits.y["train"]) if cfg.trainer.batch_size is None else min(cfg.trainer.batch_size,
                                                                              len(splits.y["train"]))
    set_threads(record, cfg.trainer.threads, launcher_jobs,
                is_thread_independent(model, rows * splits.n_outputs))
    checkpoints.threads, checkpoints.thread_independent = record["torch_threads"], record["thread_independent"]
    # Built on the CPU (the same initial weights on every device), then moved once, with the data
    # (unless workers read it: then each batch moves as it is read).
    loading = Loading.of(cfg.data)
    model, splits = model.to(device), splits.to(device, keep_inputs=loading.streams)
    reg = cfg.reg
    regularizer = Regularizer(model, lam=reg.lam, p=reg.p, mode=reg.mode, scope=reg.scope,
                              optimizer=cfg.optimizer.name, l1_ratio=reg.l1_ratio, eps=reg.eps,
                              impl=reg.impl, momentum_corrected=reg.momentum_corrected)
    s = regularizer.summary()
    log.info("decayed: %d tensors, %s parameters; not decayed: %d tensors, %s parameters "
             "(reg: mode=%s scope=%s p=%g lam=%g, via %s)",
             s["decayed_tensors"], f"{s['decayed_params']:,}", s["kept_tensors"],
             f"{s['kept_params']:,}", reg.mode, reg.scope, reg.p, reg.lam, s["impl"])
    if cfg.optimizer.name == "adamw" and reg.mode != "decoupled" and reg.lam > 0:
        log.warning("optimizer=adamw with reg.mode=%s: the decay is %s as reg says; "
                    "AdamW's own decoupled decay is reg.mode=decoupled", reg.mode, reg.mode)
    steps = planned_steps(cfg.trainer, len(splits.y["train"]))
    if cfg.trainer.get("epochs") is not None:
        log.info("trainer.epochs=%d: %s steps of %d rows over %s training rows (trainer.steps is not read)",
                 cfg.trainer.epochs, f"{steps:,}", rows, f"{len(splits.y['train']):,}")
    optimizer, scheduler = build_optimizer(cfg.optimizer, regularizer.param_groups(), steps)
    regularizer.bind(optimizer)  # its decoupled and proximal steps follow this optimizer's metric

    callbacks: List[Callback] = []
    batch_generator = torch.Generator().manual_seed(derived_seed(cfg.seed, "batches"))
    try:  # built inside: if one cannot be made, those made before it are still closed
        if progress and cfg.trainer.progress:
            callbacks.append(ProgressBar(steps, rows))
        if trial is not None:
            callbacks.append(TrialWatch(heartbeat, trial))
        if trial is not None and trial.reports:
            callbacks.append(PruningReporter(trial, objective_names(cfg)[0]))
        if cfg.logger.name == "tensorboard":
            callbacks.append(TensorBoardLogger(job_dir / "tensorboard", cfg.logger.histogram_every))
        with checkpoints:  # SIGTERM and SIGUSR1 now wait for a checkpoint
            result = train(model, splits, optimizer, scheduler, regularizer,
                           steps=steps, batch_size=cfg.trainer.batch_size,
                           eval_every=cfg.trainer.eval_every, generator=batch_generator,
                           augment_generator=augment_generator(cfg.seed), callbacks=callbacks,
                           precision=precision_of(cfg.trainer.get("precision", "32"), device),
                           checkpoints=checkpoints, loading=loading)
        if checkpoints.resumed_from is not None:
            record["resumed_from_step"] = checkpoints.resumed_from
    finally:
        for cb in callbacks:
            cb.close()
    return result, regularizer, model, splits


def _finish(record: dict, cfg: DictConfig, job_dir: Path, trial: Optional[TrialLink]) -> bool:
    """Write metrics.json (last, so that its presence means the job finished) and tell the
    Optuna trial. False if metrics.json could not be written: then the job has not succeeded,
    whatever its training did."""
    record["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record["versions"] = {"wdsweep": wdsweep.__version__, "torch": torch.__version__,
                          "python": platform.python_version()}
    record["config"] = resolved_config(cfg)
    if trial is not None:
        record["optuna"] = {"study": trial.study_name, "trial_id": trial.trial_id}
        if not trial.reports:  # a seed of a replicated trial, or a finalist: the sweeper tells
            record["optuna"]["role"] = trial.role
    if trial is not None and trial.reports:
        # Before metrics.json: once that file is there the job is done with the study, and a
        # sweep that finds the trial still RUNNING (its own sweep killed) tells it from the file.
        trial.record(record)
    try:
        write_metrics(job_dir, record)
    except OSError as err:
        log.error("could not write %s: %s: %s; this job has no result", job_dir / METRICS_FILE,
                  type(err).__name__, err)
        record.update(status="failed", objective=None, error=f"{type(err).__name__}: {err}")
        if trial is not None and trial.reports:
            trial.record(record)
        return False
    if not cfg.trainer.get("keep_checkpoint", False):
        remove_checkpoint(job_dir)  # the job is done: metrics.json is its record now
    export_job(cfg, job_dir, record)  # logger=mlflow: from the files just written; never raises
    return True


ERROR_METRICS = {"classification": "error rate (1 - accuracy)", "regression": "mean squared error"}


def _log_summary(record: dict, overrides: Sequence[str]) -> None:
    def fmt(key: str) -> str:
        value = record.get(key)
        return "nan" if value is None or not math.isfinite(value) else f"{value:.4g}"

    where = readable_overrides(overrides) or "(no overrides)"
    extra = {"diverged": f" at step {record['diverged_at_step']}",
             "pruned": f" at step {record['steps']}"}.get(record["status"], "")
    metric = f" ({record['error_metric']})" if record.get("error_metric") else ""
    log.info("%s | %s%s | val_error=%s test_error=%s%s weight_norm=%s sparsity=%s | %.1fs",
             where, record["status"], extra, fmt("val_error"), fmt("test_error"), metric,
             fmt("weight_norm"), fmt("sparsity"), record["train_seconds"])
