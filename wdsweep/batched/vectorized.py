"""Many configurations of one model trained at once, as one batched model.

(About 480 lines, on purpose: the batched loop, its evaluation, its optimizer steps and the
state its checkpoints hold are read together against the single job's loop,
wdsweep.train.training, which they must equal.)

A regularization sweep trains the same net again and again, varying only the regularizer,
the seed and the learning rate. Here K such jobs become one model. Two paths build it:
the built-in mlp and linear become stacked weights, (K, in, out), whose layers are batched
matrix products (`torch.baddbmm`, K small products as one larger one, with gradients written
in place: wdsweep.batched.stacked_net); any other module runs K times at once under `torch.func.vmap`
(wdsweep.batched.func_net.FuncNet: convolutions, BatchNorm, the user's own modules). Each member
keeps everything of its own: its data draw (and its augmentation draws), its initial
weights and batch order (from its own seed, in the order wdsweep.jobs.run uses),
its lam, p, mode, scope, l1_ratio, eps and momentum_corrected (as per-member tensors), its
learning rate and schedule, its divergence (a member whose loss is not finite is recorded as
diverged at that step and no longer counted; the others go on), and its Optuna trial, whose
pruner may stop it alone at an evaluation.

The optimizers are written out (SGD with momentum and Nesterov, Adam, AdamW) in torch's own
formulas, per member; so are the three decay modes. A member's metrics equal those of the same
job run alone to float rounding (tests/batched/test_vectorized.py: 1e-5).

Only what equals a single job exactly is batched (see `unbatchable_reason` and
`func_net.vectorize_problem`); the launcher in hydra_plugins/wdsweep_vectorized runs the rest
as ordinary jobs, with a line saying why.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.nn import functional as F

from wdsweep.batched.batch_checkpoints import BatchCheckpoints
from wdsweep.batched.func_net import FuncNet, vectorize_problem
from wdsweep.batched.members import Members, decays_before_step
from wdsweep.batched.stacked_net import StackedNet
from wdsweep.config.schema import STEP_LOGGERS
from wdsweep.jobs.lifeline import in_main_process
from wdsweep.jobs.run import augment_generator, objective_names, seed_and_draw_data
from wdsweep.jobs.threads import gemm_is_strict, job_threads, launcher_share
from wdsweep.tracking.monitors import Callbacks, PruningReporter, TrialWatch
from wdsweep.tracking.trial_link import TrialHeartbeat, TrialLink, heartbeat_seconds
from wdsweep.train.checkpoint import FORMAT, Checkpoints, UnusableCheckpoint, random_states, set_random_states
from wdsweep.train.data import SPLITS, data_info, derived_seed
from wdsweep.train.device import device_name
from wdsweep.train.epochs import planned_steps
from wdsweep.train.models import LINEAR_TARGET, MLP_TARGET, build_model, data_info_of, model_label
from wdsweep.train.regularizers import Regularizer, lp_elementwise, ordered_sum
from wdsweep.train.training import BatchSampler, Callback, StopRun, Throughput, TrainResult

# Keys whose values may differ between the members of one batch. Everything else must be equal.
BATCHABLE = ("reg", "seed", "optimizer.lr", "objective")


def batch_signature(cfg: DictConfig) -> str:
    """Jobs with equal signatures can be trained as one batch."""
    plain = {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
             for k, v in cfg.items() if k != "hydra"}
    for key in BATCHABLE:
        group, _, leaf = key.partition(".")
        if leaf:
            plain.get(group, {}).pop(leaf, None)
        else:
            plain.pop(group, None)
    return json.dumps(plain, sort_keys=True, default=str)


def unbatchable_reason(cfg: DictConfig) -> Optional[str]:
    """Why this job must run alone, or None if it can be a member of a batch. Builds the model
    once (and tries two copies of it under vmap) unless it is the built-in mlp or linear: call
    it once per batch_signature."""
    if cfg.logger.name in STEP_LOGGERS:  # logger=mlflow exports each member's files: it batches
        return f"logger={cfg.logger.name} logs one model's weights per step"
    if str(cfg.trainer.get("precision", "32")) != "32":
        return f"trainer.precision={cfg.trainer.precision}: the batched trainer trains in float32 only"
    if _stacks(cfg):
        return None
    info = data_info(cfg.data)
    problem = vectorize_problem(build_model(cfg.model, info), info.n_features)
    if problem:
        return f"model={model_label(cfg.model)} cannot be vectorized with torch.func ({problem})"
    return None


def _stacks(cfg: DictConfig) -> bool:
    """Whether the job's model takes the stacked-MLP path (else the general torch.func one)."""
    return cfg.model._target_ in (MLP_TARGET, LINEAR_TARGET)


@dataclass
class Trained:
    """One member's outcome: what wdsweep.jobs.run.record_trained writes for it."""
    result: TrainResult
    decay: dict
    data_sizes: dict
    model_state: dict
    threads: int  # torch threads the batch trained with
    thread_independent: bool  # stacked dense layers are, when MKL's gemm is strict; vmap'ed modules not
    device: str = "cpu"  # where the batch trained (trainer.device), and its name
    device_name: str = ""
    resumed_from: Optional[int] = None  # the step of the batch's checkpoint it continued from
    task: Optional[str] = None  # the data's: classification or regression


def _losses(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each member's mean loss, (K,): the weight-decay article's MSE, or cross-entropy."""
    if task == "regression":
        return ((out - y) ** 2).mean(dim=(1, 2))
    k, n, c = out.shape
    return F.cross_entropy(out.reshape(k * n, c), y.reshape(k * n), reduction="none").view(k, n).mean(1)


def train_batched(cfgs: Sequence[DictConfig], device: str = "cpu",
                  trials: Optional[Sequence[Optional[TrialLink]]] = None,
                  checkpoints: Optional[BatchCheckpoints] = None) -> List[Trained]:
    """Train the jobs `cfgs` (equal batch_signature, none unbatchable) as one batched model;
    return their outcomes in the same order. A member with an Optuna trial (`trials`, in the
    same order) reports to it at every evaluation and stops alone when its pruner says so,
    as a job run alone does (monitors.PruningReporter). With `checkpoints` (the launcher's,
    wdsweep.batched.batch_checkpoints) the batch continues from its checkpoint and writes
    them; the launcher calls its `finish` once every member's files are written."""
    # trainer.deterministic, as a job run alone sets it (equal for the batch: batch_signature)
    torch.use_deterministic_algorithms(bool(cfgs[0].trainer.get("deterministic", False)))
    # Members with the same p side by side, those that decay before the step first: each p's
    # decay is then one slice of the stack.
    order = sorted(range(len(cfgs)), key=lambda k: (float(cfgs[k].reg.p),
                                                    not decays_before_step(cfgs[k].reg)))
    trials = list(trials) if trials is not None else [None] * len(cfgs)
    sorted_cfgs, sorted_trials = [cfgs[k] for k in order], [trials[k] for k in order]
    try:
        trained = _train_sorted(sorted_cfgs, torch.device(device), sorted_trials, checkpoints)
    except UnusableCheckpoint as err:
        # It loaded, but does not fit this batch: set it aside and start over from fresh parts.
        checkpoints.discard(f"does not fit this batch ({err})")
        trained = _train_sorted(sorted_cfgs, torch.device(device), sorted_trials, checkpoints)
    outcomes: List[Optional[Trained]] = [None] * len(cfgs)
    for position, k in enumerate(order):
        outcomes[k] = trained[position]
    return outcomes


def _train_sorted(cfgs: Sequence[DictConfig], dev: torch.device, trials: Sequence[Optional[TrialLink]],
                  checkpoints: Optional[BatchCheckpoints]) -> List[Trained]:
    torch.set_flush_denormal(cfgs[0].trainer.flush_denormal)  # trainer.* is equal in a batch
    nets, splits, samplers, regs = [], [], [], []
    # Members of one seed draw the same data: it is built once per seed, and the random
    # states after it are restored for each member, so its init is as if it had drawn it.
    drawn: Dict[int, tuple] = {}
    for cfg in cfgs:  # each member built exactly as wdsweep.jobs.run._train builds its job
        if cfg.seed in drawn:
            member_splits, torch_state, np_state, py_state = drawn[cfg.seed]
            torch.set_rng_state(torch_state)
            np.random.set_state(np_state)
            random.setstate(py_state)
        else:
            member_splits = seed_and_draw_data(cfg)
            drawn[cfg.seed] = (member_splits, torch.get_rng_state(), np.random.get_state(),
                               random.getstate())
        net = build_model(cfg.model, data_info_of(member_splits))
        splits.append(member_splits)
        nets.append(net)
        regs.append(Regularizer(net, lam=cfg.reg.lam, p=cfg.reg.p, mode=cfg.reg.mode,
                                scope=cfg.reg.scope, optimizer=cfg.optimizer.name,
                                l1_ratio=cfg.reg.l1_ratio, eps=cfg.reg.eps, impl=cfg.reg.impl,
                                momentum_corrected=cfg.reg.momentum_corrected))
        samplers.append(BatchSampler(len(member_splits.y["train"]), cfg.trainer.batch_size,
                                     torch.Generator().manual_seed(derived_seed(cfg.seed, "batches"))))
    # Stacked dense layers give the same bits at any thread count (tests/jobs/test_threads.py), so
    # the batch takes the cores that are free now (trainer.* is equal in a batch); a vmap'ed
    # module (convolutions) keeps the fixed count its job alone would use.
    independent = _stacks(cfgs[0]) and gemm_is_strict()
    # (a batch submitted as one submitit job takes the CPUs it is given: cpus_per_task)
    threads = job_threads(cfgs[0].trainer.threads, launcher_share(cfgs[0].get("hydra", {}).get("launcher")),
                          thread_independent=independent)
    torch.set_num_threads(threads)
    first = cfgs[0]
    # (one seed draws one data set, and every seed's sizes are equal: the steps are too)
    task, eval_every = splits[0].task, first.trainer.eval_every
    steps = planned_steps(first.trainer, len(splits[0].y["train"]))
    # uint8 images are scaled once here: a batch holds K members' floats anyway.
    x = {s: torch.stack([sp.inputs(s) for sp in splits]).to(dev) for s in SPLITS}
    y = {s: torch.stack([sp.y[s] for sp in splits]).to(dev) for s in SPLITS}
    if task == "regression":  # (K, n, k): k targets a row, as the members' outputs
        y = {s: v.view(len(cfgs), v.shape[1], -1) for s, v in y.items()}
    if _stacks(first):
        net = StackedNet(nets, first.model.activation if first.model._target_ == MLP_TARGET else "relu", dev)
    else:
        net = FuncNet(nets, dev)
    members = Members(cfgs, dev, steps)
    augments = ([(sp.augment, augment_generator(cfg.seed)) for sp, cfg in zip(splits, cfgs)]
                if splits[0].augment is not None else None)
    trainer = _BatchedTrainer(first, net, members, x, y, task, samplers, dev, augments)
    reporters: List[Optional[Callbacks]] = []
    # In a process of its own (a submitit batch job) the batch keeps its members' trials alive
    # itself, and a member whose trial another sweep told stops alone (wdsweep.tracking.trial_link).
    heartbeat = TrialHeartbeat(trials, heartbeat_seconds(first.get("hydra")), in_main_process())
    try:  # built inside: if one cannot be made, those made before it are still closed
        for cfg, trial in zip(cfgs, trials):
            reporters.append(Callbacks([TrialWatch(heartbeat, trial)]
                                       + ([PruningReporter(trial, objective_names(cfg)[0])] if trial.reports else []))
                             if trial else None)
        if checkpoints is None:
            histories, outcomes, seconds = trainer.run(steps, eval_every, reporters)
        else:
            checkpoints.threads, checkpoints.thread_independent = threads, independent
            with checkpoints:  # SIGTERM and SIGUSR1 now wait for a checkpoint
                histories, outcomes, seconds = trainer.run(steps, eval_every, reporters, checkpoints)
    finally:
        heartbeat.close()
        for reporter in reporters:
            if reporter is not None:
                reporter.close()

    trained = []
    for k, (cfg, member_net, reg) in enumerate(zip(cfgs, nets, regs)):
        status, steps_done, diverged_at, tensors, stop_reason = outcomes[k]
        net.load(member_net, tensors)
        if steps_done:
            reg.note_every_step()  # a batched module's every trainable tensor gets a gradient
        result = TrainResult(status=status, steps=steps_done, steps_planned=steps, train_seconds=seconds[0] / len(cfgs),
                             eval_seconds=seconds[1] / len(cfgs), history=histories[k],
                             diverged_at_step=diverged_at, stop_reason=stop_reason, throughput=seconds[2])
        trained.append(Trained(result, reg.summary(), splits[k].sizes(), member_net.state_dict(),
                               threads, independent, str(dev), device_name(dev),
                               checkpoints.resumed_from if checkpoints is not None else None, splits[k].task))
    return trained


class _BatchedTrainer:
    """wdsweep.train.training.train for K members at once."""

    def __init__(self, cfg, net, members, x, y, task, samplers, dev, augments=None) -> None:
        self.net, self.m, self.x, self.y, self.task = net, members, x, y, task
        self.samplers, self.dev = samplers, dev
        self.augments = augments  # per member: (Augment, its generator), with data.augment
        self.k = len(samplers)
        # Which stacked tensors each member decays: weights (dim >= 2) always, the others
        # (biases, norm gains) with scope=all.
        self.decayed = [torch.ones_like(members.all_scope) if matrix else members.all_scope
                        for matrix in net.is_matrix]

        # Per tensor, each member's coefficient of the decay direction (None: nobody's).
        def coefficient(mode: torch.Tensor, mask: torch.Tensor, lam: torch.Tensor):
            on = mode & mask
            return torch.where(on, lam, 0.0) if bool(on.any()) else None

        self.coupled_coef = [coefficient(members.coupled, d, members.lam) for d in self.decayed]
        self.decoupled_coef = [coefficient(members.decoupled, d, members.decoupled_lam)
                               for d in self.decayed]
        self.proximal_mask = [(members.proximal & d) if bool((members.proximal & d).any()) else None
                              for d in self.decayed]
        # The optimizer's settings as plain values: read every step, and an OmegaConf
        # attribute costs microseconds.
        opt = OmegaConf.to_container(cfg.optimizer, resolve=True)
        self.opt = SimpleNamespace(name=opt["name"], momentum=float(opt.get("momentum") or 0.0),
                                   nesterov=bool(opt.get("nesterov")), betas=opt.get("betas"),
                                   eps=opt.get("eps"))
        # SGD with momentum and without Nesterov uses a gradient only to add it into the
        # momentum buffer: the stacked MLP's backward adds it there itself (see wdsweep.batched.stacked_net).
        self.into_momentum = (net.sinks_momentum and self.opt.name == "sgd" and bool(self.opt.momentum)
                              and not self.opt.nesterov)
        if net.sinks_momentum:
            net.sink_gradients(self.opt.momentum if self.into_momentum else 0.0)
        self.scratch = [torch.empty_like(q, requires_grad=False) if c is not None or d is not None else None
                        for q, c, d in zip(net.params(), self.coupled_coef, self.decoupled_coef)]
        self.state_of_tensors: Dict[int, dict] = {}  # the optimizer's, per stacked tensor
        self.step_count = 0

    # ----------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self) -> List[dict]:
        rows = [dict() for _ in range(self.k)]
        for split in SPLITS:
            out = self.net.outputs(self.x[split])
            losses = _losses(self.task, out, self.y[split])
            if self.task == "regression":
                errors = losses
            else:
                errors = (out.argmax(dim=2) != self.y[split]).float().mean(dim=1)
            for k in range(self.k):
                rows[k][f"{split}_loss"] = float(losses[k])
                rows[k][f"{split}_error"] = float(errors[k])
        params = self.net.params()
        matrices = [q for q, matrix in zip(params, self.net.is_matrix) if matrix]
        norms = (torch.stack([ordered_sum(q.pow(2), keep=1) for q in matrices]).sum(0).sqrt() if matrices
                 else torch.zeros(self.k, device=self.dev))
        penalty = torch.zeros(self.k, device=self.dev)
        zeros = torch.zeros(self.k, device=self.dev)
        total = torch.zeros(self.k, device=self.dev)
        m = self.m
        for q, mask in zip(params, self.decayed):
            mask = mask.view(-1)
            term = torch.cat([ordered_sum(lp_elementwise(q[rows], p, m.eps[rows]), keep=1)
                              for p, rows in m.p_slices])
            l1 = ordered_sum(q.abs(), keep=1)
            a = m.l1.view(-1)
            penalty += mask * torch.where(a > 0, (1 - a) * term + a * l1, term)
            zeros += mask * (q == 0).sum(dim=(1, 2))
            total += mask * q[0].numel()
        penalty = penalty * m.lam.view(-1) * (m.lam.view(-1) > 0) * m.reported.view(-1)
        for k in range(self.k):
            rows[k]["reg_loss"] = float(penalty[k])
            rows[k]["weight_norm"] = float(norms[k])
            rows[k]["sparsity"] = float(zeros[k] / total[k]) if total[k] else 0.0
        return rows

    # --------------------------------------------------------------- the optimizer
    @torch.no_grad()
    def update(self, lr: torch.Tensor) -> None:
        """One optimizer step from the gradients the backward left in net.grads() (with
        into_momentum, already the new momentum buffers)."""
        opt, m = self.opt, self.m
        for i, (q, g, coupled, decoupled) in enumerate(zip(self.net.params(), self.net.grads(),
                                                            self.coupled_coef, self.decoupled_coef)):
            if coupled is not None or decoupled is not None:
                m.add_decay(q, g, lr, coupled, decoupled, self.scratch[i])
            state = self.state_of_tensors.setdefault(i, {})
            if opt.name == "sgd":
                if opt.momentum and not self.into_momentum:
                    if "buf" not in state:
                        state["buf"] = g.clone()
                    else:  # buf = momentum * buf + g, in one pass
                        torch.add(g, state["buf"], alpha=opt.momentum, out=state["buf"])
                    if opt.nesterov:
                        g.add_(state["buf"], alpha=opt.momentum)  # g is rewritten by the next backward
                    else:
                        g = state["buf"]
                q.addcmul_(lr, g, value=-1.0)
                prox_step = lr * m.lam * m.gain if self.proximal_mask[i] is not None else None
            else:  # adam, adamw (their own weight_decay is 0: the regularizer owns decay)
                beta1, beta2 = opt.betas
                if "m" not in state:
                    state["m"], state["v"] = torch.zeros_like(q), torch.zeros_like(q)
                state["m"].lerp_(g, 1 - beta1)
                state["v"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
                t = self.step_count
                denom = (state["v"].sqrt() / math.sqrt(1 - beta2 ** t)).add_(opt.eps)
                q.addcdiv_(state["m"] * (lr / (1 - beta1 ** t)), denom, value=-1.0)
                # The prox step in Adam's own metric: per entry lr*lam / D, D its denominator.
                prox_step = torch.div(lr * m.lam, denom) if self.proximal_mask[i] is not None else None
            if prox_step is not None:
                q.copy_(torch.where(self.proximal_mask[i], m.prox(q, prox_step), q))

    # ----------------------------------------------------------- checkpoints
    def _tensors(self) -> List[torch.Tensor]:
        """Every tensor the batch's training changes in place: the members' weights (and
        buffers: BatchNorm's statistics), and the stacked MLP's momentum buffers, which its
        backward writes (StackedNet.sink_gradients)."""
        net = self.net
        if isinstance(net, FuncNet):
            return [*net.trainable.values(), *net.constants.values()]
        return [*net.params(), *(net.grads() if self.into_momentum else [])]

    def state(self, step: int, run: dict) -> dict:
        """The batch's whole state after `step` (wdsweep.batched.batch_checkpoints), with the
        loop's own (`run`: histories, outcomes, the members still training, the seconds)."""
        return {"format": FORMAT, "step": step, "tensors": [t.detach().cpu() for t in self._tensors()],
                "optimizer": {str(i): {k: v.cpu() for k, v in s.items()} for i, s in self.state_of_tensors.items()},
                "step_count": self.step_count, "random": random_states(),
                "samplers": [s.position() for s in self.samplers],
                "augment": [gen.get_state() for _, gen in self.augments] if self.augments else None, **run}

    @torch.no_grad()
    def restore(self, saved: dict) -> None:
        tensors = self._tensors()
        if len(saved["tensors"]) != len(tensors) or any(a.shape != b.shape for a, b in zip(saved["tensors"], tensors)):
            raise UnusableCheckpoint("its tensors are not this batch's")
        for mine, kept in zip(tensors, saved["tensors"]):
            mine.copy_(kept)
        self.state_of_tensors = {int(i): {k: v.to(self.dev) for k, v in s.items()}
                                 for i, s in saved["optimizer"].items()}
        self.step_count = int(saved["step_count"])
        set_random_states(saved["random"])
        for sampler, position in zip(self.samplers, saved["samplers"]):
            sampler.restore(position)
        for (_, gen), kept in zip(self.augments or [], saved["augment"] or []):
            gen.set_state(kept)

    # ----------------------------------------------------------------- the loop
    def run(self, steps: int, eval_every: int, reporters: Sequence[Optional[Callback]],
            checkpoints: Optional[Checkpoints] = None):
        histories: List[List[dict]] = [[] for _ in range(self.k)]
        outcomes: Dict[int, tuple] = {}
        alive = torch.ones(self.k, dtype=torch.bool, device=self.dev)
        start = time.perf_counter()
        eval_seconds = 0.0
        saved = checkpoints.load() if checkpoints is not None else None
        if saved is not None:
            try:
                self.restore(saved)
                histories, alive = saved["histories"], saved["alive"].to(self.dev)
                outcomes = {int(k): tuple(v) for k, v in saved["outcomes"].items()}
                eval_seconds, start = float(saved["eval_seconds"]), start - float(saved["train_seconds"])
            except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
                raise UnusableCheckpoint.of(err) from err
        first = int(saved["step"]) + 1 if saved is not None else 1
        # per member: its own rows per step, at the batch's step time (all members share it)
        throughput = Throughput(self.samplers[0].batch_size or self.x["train"].shape[1])

        def record(step: int, who, notify: bool = True) -> None:
            """Evaluate; append the rows of members `who`; with `notify`, show each its
            pruner, and stop those it prunes."""
            nonlocal eval_seconds
            tic = time.perf_counter()
            rows = self.evaluate()
            eval_seconds += time.perf_counter() - tic
            lrs = self.m.lr(step).view(-1)
            window = throughput.window()
            for k in who:
                row = {"step": step, "lr": float(lrs[k]), **rows[k], "seconds": time.perf_counter() - start, **window}
                histories[k].append(row)
                if notify and reporters[k] is not None:
                    try:
                        reporters[k].on_eval(step, row)
                    except StopRun as stop:  # this member ends here; the others go on
                        outcomes[k] = (stop.status, step, None, snapshot(k), stop.reason)
                        alive[k] = False

        snapshot = self.net.snapshot

        def run_state() -> dict:
            return {"histories": histories, "alive": alive.cpu(), "eval_seconds": eval_seconds,
                    "outcomes": {str(k): list(v) for k, v in outcomes.items()},
                    "train_seconds": time.perf_counter() - start}

        if first == 1:
            record(0, range(self.k))
        x_train, y_train = self.x["train"], self.y["train"]
        n_train = x_train.shape[1]
        # Member k's row i is row k * n_train + i of the flattened split (index_select on the
        # flat view is several times faster than indexing with (member, row) pairs).
        x_flat, y_flat = x_train.flatten(0, 1), y_train.flatten(0, 1)
        first_row = torch.arange(self.k, device=self.dev).unsqueeze(1) * n_train
        for step in range(first, steps + 1):
            began = time.perf_counter()
            rows = [s.next() for s in self.samplers]
            if rows[0] is None:
                xb, yb = x_train, y_train
            else:
                index = (torch.stack(rows).to(self.dev) + first_row).view(-1)  # each member's own rows
                xb = x_flat.index_select(0, index).view(self.k, -1, *x_train.shape[2:])
                yb = y_flat.index_select(0, index).view(self.k, -1, *y_train.shape[2:])
            if self.augments is not None:  # each member draws from its own stream, as alone
                xb = torch.stack([augment(xb[k].cpu(), gen).to(self.dev)
                                  for k, (augment, gen) in enumerate(self.augments)])
            data_ready = time.perf_counter()
            losses = _losses(self.task, self.net.train_outputs(xb), yb)
            finite = torch.isfinite(losses.detach())
            newly = (alive & ~finite).nonzero().view(-1).tolist()
            if newly:  # these members stop here, as a single job would: results of step - 1
                last = step - 1
                for k in newly:
                    if histories[k][-1]["step"] != last:
                        record(last, [k], notify=False)  # the member is over: no pruner acts
                    outcomes[k] = ("diverged", last, step, snapshot(k), None)
                alive &= finite
                if not alive.any():
                    break
            torch.where(alive, losses, torch.zeros_like(losses)).sum().backward()
            self.step_count += 1
            self.update(self.m.lr(step - 1))
            throughput.add(time.perf_counter() - began, data_ready - began)
            if step % eval_every == 0 or step == steps:
                record(step, [k for k in range(self.k) if bool(alive[k])])
                if not alive.any():  # all pruned
                    break
            if checkpoints is not None:
                checkpoints.after_step(step, lambda: self.state(step, run_state()))
        train_seconds = time.perf_counter() - start
        for k in range(self.k):
            if k not in outcomes:
                final = histories[k][-1]
                if math.isfinite(final["train_loss"]):
                    outcomes[k] = ("completed", steps, None, snapshot(k), None)
                else:  # the last update itself blew the weights up
                    outcomes[k] = ("diverged", steps, steps, snapshot(k), None)
        return histories, outcomes, (train_seconds, eval_seconds, throughput.overall())
