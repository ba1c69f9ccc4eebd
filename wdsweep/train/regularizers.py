"""The regularizer: which tensors decay, the penalty's value, and the coupled, decoupled and
proximal updates.

One lambda convention throughout (the docs' "regularizer math" page has the derivations):

    penalty(W) = lam * sum_w [ l1_ratio * |w| + (1 - l1_ratio) * |w|^p / p ]
    gradient   = lam * [ l1_ratio * sign(w) + (1 - l1_ratio) * sign(w) |w|^(p-1) ]

so at p=2, l1_ratio=0 the gradient is lam*w: torch's `weight_decay=lam`, in every mode.
For p < 1, |w| is smoothed to sqrt(w^2 + eps^2), which keeps the gradient finite at 0.

Around each optimizer step:
    loss_term()   -> added to the loss (impl=loss only)
    before_step() -> coupled: adds the gradient term; decoupled: shrinks the weights
    after_step()  -> proximal: the closed-form prox step (soft-threshold / rescale)
`attach(optimizer)` runs the last two from torch's own step hooks (register_step_pre_hook and
register_step_post_hook), each parameter group with its own current lr, so that any loop
calling optimizer.step() gets them: the harness's (wdsweep.train.training) and a user's, plain
or Lightning (the public wdsweep.penalty.WeightPenalty is this class). Where step() is given a
closure (Lightning's automatic optimization, LBFGS), the gradient exists only once the closure
has run, so the pre-step part runs at the closure's end instead (and, coupled, the closure's
value becomes loss + penalty, the objective the step descends). When torch's own
`weight_decay` computes the same update (impl=optimizer, or auto), it is handed to the
optimizer through `param_groups()` and the hooks do nothing.

A tensor that gets no gradient in a step (a parameter the forward did not use) is not stepped,
decay included, by every implementation: torch's optimizers skip a tensor whose .grad is None,
weight_decay and AdamW's decoupled decay with it, and so do the hooks here (coupled: no gradient
to add to; decoupled and proximal: only the tensors the optimizer steps). impl=loss penalizes
only the tensors the step's data loss reaches (its autograd graph), so that the penalty's own
gradient does not decay a tensor the data never touched. The optimizer is
built from `param_groups()` and then handed back with `bind(optimizer)`: the decoupled and
proximal steps depend on it (below). Unbound, they act as under plain gradient descent.

Which objective each mode minimizes. A run converges to a point where the optimizer's step
and the decay's step cancel; write ∂P for the subgradient of penalty/lam and g for the data
loss's gradient there.

* coupled: the optimizer steps along g + lam ∂P, so its fixed point is g + lam ∂P ∋ 0, the
  minimizer of loss + penalty, under every optimizer.
* proximal, SGD: with momentum mu and dampening d (torch's SGD; ours is always 0: the
  optimizer schema has no such key and build_optimizer never sets it), the buffer at a fixed
  point holds buf = mu buf + (1 - d) g, so buf = (1 - d) g / (1 - mu), and the heavy-ball step
  lr buf and the Nesterov step lr (g + mu buf) (torch allows Nesterov only with d = 0) both
  equal lr g / (1 - mu) =: lr G g, G the momentum's gain. The prox step with step size t,
  w = argmin_v t P(v) + |v - u|^2 / 2 from u = w - lr G g, holds still where
  lr G g ∈ -t ∂P(w). With t = lr lam G that is g + lam ∂P ∋ 0: loss + penalty exactly.
  (t = lr lam, as a plain proximal-gradient step has it, gave loss + (1 - mu) penalty.)
* proximal, Adam/AdamW: Adam's step is lr m_hat / D, D = sqrt(v_hat) + eps per entry, with
  v_hat = exp_avg_sq / (1 - beta2^step) read from the optimizer's state (as proximal adaptive
  methods do). Soft-thresholding by lr lam after it would hold still where
  g / D + lam ∂P ∋ 0: no fixed penalty. The prox step in Adam's own metric,
  argmin_v lr lam P(v) + sum_i D_i (v_i - u_i)^2 / 2, is per entry the plain prox with
  t_i = lr lam / D_i, and holds still where lr g / D ∈ -(lr lam / D) ∂P(w): again
  g + lam ∂P ∋ 0. A tensor Adam has no state for (it never had a gradient, so Adam never
  stepped it) has no metric yet and is left alone this step, as Adam leaves it.
* decoupled, SGD: w -= lr lam ∂P before a step of lr G g holds still where
  G g + lam ∂P ∋ 0: loss + penalty / G, i.e. (1 - mu) penalty at d = 0. This is PyTorch's
  AdamW/SGDW convention and stays the default; momentum_corrected=True steps by lr lam G ∂P
  instead, whose fixed point is loss + penalty.
* decoupled, Adam/AdamW: AdamW's fixed point is g / D + lam w = 0 (p = 2), i.e.
  g + lam D w = 0 with D the state's own per-entry scale: the minimizer of no fixed penalty,
  so there is no exact correction (validation refuses momentum_corrected with Adam).

`penalty()` (metrics.json's reg_loss) reports the penalty of the objective the run converges
to: lam * sum above, except decoupled decay under SGD without the correction, which reports
lam / G * sum ((1 - mu) lam * sum; each tensor with the G of its own parameter group, whose
step it takes, where groups or optimizers differ in momentum), and decoupled decay under Adam/AdamW, which has no
objective and reports the nominal lam * sum.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple, Union

import torch
from torch import nn
from torch.nn import functional as F

from wdsweep.train.native_decay import has_native_decay

NamedParams = List[Tuple[str, nn.Parameter]]


def matrix_params(model: nn.Module) -> NamedParams:
    """Tensors with dim >= 2: weight matrices and kernels; no biases, no norm gains (nanoGPT's rule)."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.dim() >= 2]


def ordered_sum(t: torch.Tensor, keep: int = 0) -> torch.Tensor:
    """t summed over every dim after the first `keep`, in an order that does not depend on
    torch's thread count. A plain .sum() over more than 32k entries splits the work among
    threads and adds their partial sums, so a reported penalty or norm changed in its last
    bits with the thread count (wdsweep.jobs.threads); rows of 256 summed one per thread do not.
    Zero padding changes no sum."""
    flat = t.reshape(*t.shape[:keep], -1)
    while flat.shape[-1] > 256:
        flat = F.pad(flat, (0, (-flat.shape[-1]) % 256)).view(*flat.shape[:keep], -1, 256).sum(-1)
    return flat.sum(-1)


def weight_norm(model: nn.Module) -> float:
    """The L2 norm over all dim >= 2 tensors, whatever the regularizer's scope."""
    with torch.no_grad():
        squares = [ordered_sum(p.pow(2)) for _, p in matrix_params(model)]
        return float(torch.stack(squares).sum().sqrt()) if squares else 0.0


def lp_term(w: torch.Tensor, p: float, eps: float) -> torch.Tensor:
    """sum |w|^p / p, smoothed for p < 1. Differentiable, so it also serves impl=loss."""
    return ordered_sum(lp_elementwise(w, p, eps))


def lp_elementwise(w: torch.Tensor, p: float, eps) -> torch.Tensor:
    """|w|^p / p per entry, smoothed for p < 1. eps: a number, or a tensor broadcasting over w
    (wdsweep.batched.vectorized: one per member of a batch)."""
    if p == 2:
        return w.pow(2) / 2
    if p < 1:
        return ((w.pow(2) + eps * eps).pow(p / 2) - eps**p) / p
    return w.abs().pow(p) / p


def lp_grad(w: torch.Tensor, p: float, eps) -> torch.Tensor:
    """d/dw of lp_elementwise: sign(w)|w|^(p-1), or w (w^2 + eps^2)^(p/2 - 1) for p < 1. The
    single-tensor form of Regularizer._directions (which works on lists, for speed); used by
    wdsweep.batched.vectorized. At p=2 it returns w itself, to be read, not written."""
    if p == 2:
        return w
    if p == 1:
        return torch.sign(w)
    if p == 3:
        return w * w.abs()
    if p < 1:
        return w * (w * w + eps * eps).pow(p / 2 - 1)
    return torch.sign(w) * w.abs().pow(p - 1)


MODES = ("coupled", "decoupled", "proximal")
SCOPES = ("weights", "all")


def check_settings(*, lam: float, p: float, mode: str, scope: str, l1_ratio: float, eps: float) -> None:
    """Refuse a regularizer no update is defined for, in one line naming the setting, its value
    and what is allowed (the config's validation says the same about reg.*, before any job)."""
    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    problems = [
        (not number(lam) or lam < 0, "lam", lam, "a finite number >= 0"),
        (not number(p) or p <= 0, "p", p, "a finite number > 0 (p < 1 is smoothed by eps)"),
        (mode not in MODES, "mode", mode, " or ".join(MODES)),
        (scope not in SCOPES, "scope", scope, "weights (tensors with dim >= 2) or all"),
        (not number(l1_ratio) or not 0 <= l1_ratio <= 1, "l1_ratio", l1_ratio, "a finite number in [0, 1]"),
        (not number(eps) or eps < 0, "eps", eps, "a finite number >= 0"),
    ]
    for bad, key, value, allowed in problems:
        if bad:
            raise ValueError(f"{key}={value!r} is not allowed: {allowed}")
    if mode == "proximal" and p not in (1, 2):
        raise ValueError(f"p={p!r} is not allowed with mode='proximal': 1 or 2 (the only p with a "
                         "closed-form prox step)")
    if p < 1 and not eps > 0:
        raise ValueError(f"eps={eps!r} is not allowed with p={p!r}: > 0 when p < 1 (it smooths |w| at 0)")


def sgd_gain(group: dict) -> float:
    """SGD momentum's gain G = (1 - dampening) / (1 - momentum) for a parameter group."""
    return (1.0 - group.get("dampening", 0.0)) / (1.0 - group.get("momentum", 0.0))


class Regularizer:
    """The penalty over one model's tensors in scope and its updates (module docstring).
    `optimizer`: the harness's optimizer name (sgd, adam, adamw), which decides whether torch's
    own weight_decay can carry the decay (impl=auto); None for an optimizer that exists already
    (a user's, wdsweep.penalty), which the decay then follows through attach()."""

    def __init__(self, model: nn.Module, *, lam: float, p: float, mode: str, scope: str,
                 optimizer: Optional[str] = None, l1_ratio: float = 0.0, eps: float = 1e-3,
                 impl: str = "auto", momentum_corrected: bool = False) -> None:
        check_settings(lam=lam, p=p, mode=mode, scope=scope, l1_ratio=l1_ratio, eps=eps)
        self.lam, self.p, self.mode, self.scope = float(lam), float(p), mode, scope
        self.l1_ratio, self.eps = float(l1_ratio), float(eps)
        self.momentum_corrected = bool(momentum_corrected)
        # What bind() reads from the optimizer; until then, plain gradient descent.
        self._gain = 1.0  # SGD momentum's gain G = (1 - dampening) / (1 - momentum)
        self._adam: Optional[torch.optim.Adam] = None  # Adam/AdamW: its state gives the metric
        # id(decayed tensor) -> the factor of lam in penalty() for it, from the group holding it
        # in the optimizer bound last (reported_scale's rule per tensor); 1 until bound.
        self._scale_of: dict = {}
        self._hooks: dict = {}  # id(optimizer) -> the handles of its step hooks (attach)
        named = [(n, q) for n, q in model.named_parameters() if q.requires_grad]
        in_scope = (lambda q: q.dim() >= 2) if scope == "weights" else (lambda q: True)
        self.decayed: NamedParams = [(n, q) for n, q in named if in_scope(q)]
        self.kept: NamedParams = [(n, q) for n, q in named if not in_scope(q)]
        self._params = [q for _, q in self.decayed]
        self._decayed_ids = {id(q) for q in self._params}
        # The decayed tensors some optimizer step found with a gradient (so torch stepped them and
        # the decay reached them), noted by the step hook; None until a step is seen. A tensor in
        # scope that no loss reaches (an unused layer) is never decayed: summary() tells both.
        self._stepped_ids: Optional[set] = None

        native = optimizer is not None and has_native_decay(self.p, self.l1_ratio, mode, optimizer)
        if impl == "auto":
            impl = "optimizer" if native else "manual"
        if impl == "optimizer" and not native:
            raise ValueError(f"torch's {optimizer} has no weight_decay equal to mode={mode}, p={p}")
        if impl == "loss" and mode != "coupled":
            raise ValueError("impl=loss is coupled decay; mode must be coupled")
        self.impl = impl
        self.active = self.lam > 0 and bool(self._params)

    # ------------------------------------------------------------------ set-up
    def param_groups(self) -> List[dict]:
        """Optimizer parameter groups: decayed and kept tensors, with torch's weight_decay set
        only where torch itself applies our decay (impl=optimizer)."""
        decay = self.lam if self.impl == "optimizer" else 0.0
        groups = [{"params": self._params, "weight_decay": decay},
                  {"params": [q for _, q in self.kept], "weight_decay": 0.0}]
        return [g for g in groups if g["params"]]

    def bind(self, optimizer: torch.optim.Optimizer) -> None:
        """Take the optimizer built from param_groups(), whose step the decoupled and proximal
        updates must match (see the module docstring): SGD's momentum gain, or Adam's state."""
        group = self._group_of(optimizer)
        if isinstance(optimizer, torch.optim.SGD):
            self._gain, self._adam = sgd_gain(group), None
        elif isinstance(optimizer, torch.optim.Adam):  # AdamW is an Adam to torch
            if group["amsgrad"] and self.mode == "proximal":  # its denominator is another state
                raise ValueError("the proximal step in Adam's metric does not support amsgrad")
            if self.momentum_corrected:  # as wdsweep.config.validation refuses it
                raise ValueError("momentum_corrected is SGD's: no exact correction exists under Adam/AdamW")
            self._gain, self._adam = 1.0, optimizer
        elif self.active and self.mode in ("decoupled", "proximal"):
            raise ValueError(f"no {self.mode} step is defined for {type(optimizer).__name__}: "
                             "SGD, Adam or AdamW (mode='coupled' works with any optimizer)")
        # Each tensor's share of penalty() follows its own group: groups (or optimizers) of
        # different momentum converge to different objectives, tensor by tensor, as the steps
        # (which read each group's gain) make them.
        for each in optimizer.param_groups:
            scale = self._scale_for(each if isinstance(optimizer, torch.optim.SGD) else None)
            self._scale_of.update((id(q), scale) for q in each["params"] if id(q) in self._decayed_ids)

    def _scale_for(self, sgd_group: Optional[dict]) -> float:
        """The factor of lam in penalty() for the tensors of an SGD parameter group (None: not
        SGD): 1 / G for uncorrected decoupled decay, else 1 (module docstring)."""
        if self.mode == "decoupled" and sgd_group is not None and not self.momentum_corrected:
            return 1.0 / sgd_gain(sgd_group)
        return 1.0

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        """bind(optimizer), then apply the decay in its every step() through torch's step hooks
        (module docstring): before_step's part before the update, after_step's after it, each
        parameter group with its own lr at that step (a scheduler's included). Only the decayed
        tensors the optimizer holds are touched; attaching twice to one optimizer is a no-op."""
        if id(optimizer) in self._hooks:
            return
        self.bind(optimizer)
        self._hooks[id(optimizer)] = (optimizer.register_step_pre_hook(self._pre_step),
                                      optimizer.register_step_post_hook(self._post_step))

    def detach(self) -> None:
        """Remove the step hooks of every optimizer attached to."""
        for handles in self._hooks.values():
            for handle in handles:
                handle.remove()
        self._hooks.clear()

    def _group_of(self, optimizer: torch.optim.Optimizer) -> dict:
        """The optimizer's parameter group holding the first decayed tensor (the harness puts
        them all in one)."""
        first = self._params[0] if self._params else None
        for group in optimizer.param_groups:
            if any(q is first for q in group["params"]):
                return group
        return optimizer.param_groups[0]

    def summary(self) -> dict:
        """The scope's sizes: decayed_* the tensors in scope (set at the start); stepped_* those of
        them an optimizer step of this run found with a gradient, the ones actually decayed (null
        when no step was seen: a run that failed or stopped before its first step). A verdict on
        scope is about the stepped ones: an unused layer is in scope and never decayed."""
        stepped = None if self._stepped_ids is None else [q for q in self._params if id(q) in self._stepped_ids]
        return {
            "decayed_tensors": len(self.decayed),
            "decayed_params": sum(q.numel() for _, q in self.decayed),
            "kept_tensors": len(self.kept),
            "kept_params": sum(q.numel() for _, q in self.kept),
            "stepped_tensors": None if stepped is None else len(stepped),
            "stepped_params": None if stepped is None else sum(q.numel() for q in stepped),
            "impl": self.impl,
        }

    def note_step(self) -> None:
        """Note the decayed tensors that have a gradient at this optimizer step (the step hook
        calls it; cheap: it stops looking once every decayed tensor has been seen)."""
        if self._stepped_ids is None:
            self._stepped_ids = set()
        if len(self._stepped_ids) < len(self._params):
            self._stepped_ids.update(id(q) for q in self._params if q.grad is not None)

    def note_every_step(self) -> None:
        """Every decayed tensor counts as stepped: for a trainer that steps them all by
        construction (the vectorized launcher batches only modules whose every trainable tensor
        gets a gradient, wdsweep.batched.func_net.vectorize_problem)."""
        self._stepped_ids = set(self._decayed_ids)

    # --------------------------------------------------------------- the step
    def loss_term(self, data_loss: Optional[torch.Tensor] = None) -> Optional[torch.Tensor]:
        """The penalty as a differentiable loss term, for impl=loss; None otherwise. Given the
        step's data loss, over the decayed tensors it reaches only (module docstring)."""
        if not self.active or self.impl != "loss":
            return None
        if data_loss is None:
            return self._penalty()
        reached = _reached(data_loss)
        params = [q for q in self._params if id(q) in reached]
        return self._penalty(params) if params else None

    def before_step(self, lr: float) -> None:
        """Coupled: grad += lam * dP; decoupled: w -= lr * lam * dP (times G, corrected), over
        the decayed tensors the optimizer steps now, the bound optimizer's gain."""
        self._before(self._stepped(), lr, self._gain)

    def after_step(self, lr: float) -> None:
        """The proximal step in the optimizer's metric: argmin_v lr*lam*P(v) + |v - w|_D^2 / 2,
        in closed form, with D = 1 / G under SGD (G its momentum's gain) and D = sqrt(v_hat) +
        eps per entry under Adam/AdamW: the step whose fixed point minimizes loss + penalty
        (module docstring)."""
        if self._adam is None:
            self._after(self._stepped(), lr, self._gain, None, None)
        else:
            self._after(self._stepped(), lr, 1.0, self._adam, self._group_of(self._adam))

    def _segments(self, optimizer: torch.optim.Optimizer):
        """Per parameter group of `optimizer`: the decayed tensors it steps now (those with a
        gradient), its current lr and the group itself."""
        for group in optimizer.param_groups:
            params = [q for q in group["params"] if id(q) in self._decayed_ids and q.grad is not None]
            if params:
                yield params, group["lr"], group

    def _pre_step(self, optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict):
        """torch's step pre-hook: the before-step part now, or, when step() was given a closure
        (which computes the gradient), at the closure's end."""
        if not self.active or self.impl != "manual":
            return None
        if getattr(optimizer, "grad_scale", None) is not None:
            # GradScaler.step on an optimizer that unscales inside its own step (fused=True):
            # the gradients are still scaled here, and a skipped step is decided inside it.
            raise RuntimeError(f"{type(optimizer).__name__} unscales its gradients inside its own step "
                               "(fused=True under a GradScaler), where no decay can follow it: "
                               "build it with fused=False")
        if self.mode == "proximal":  # all of it after the step
            return None
        # args hold the optimizer itself first, then step()'s own: (self, closure) at most
        closure = kwargs.get("closure", args[1] if len(args) > 1 else None)
        if closure is None:
            self._before_groups(optimizer)
            return None

        def closure_then_decay():
            loss = closure()
            self._before_groups(optimizer)
            if loss is None or self.mode != "coupled":
                return loss
            # The step descends loss + penalty: an optimizer that reads the closure's value (LBFGS's
            # line search and stopping rule) must see that objective, not the data loss alone.
            with torch.no_grad():
                return loss + float(self._penalty())

        if "closure" in kwargs:
            return args, {**kwargs, "closure": closure_then_decay}
        return (args[0], closure_then_decay, *args[2:]), kwargs

    def _post_step(self, optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        self.note_step()
        if not self.active or self.mode != "proximal":
            return
        adam = optimizer if isinstance(optimizer, torch.optim.Adam) else None
        for params, lr, group in self._segments(optimizer):
            self._after(params, lr, 1.0 if adam is not None else sgd_gain(group), adam, group)

    def _before_groups(self, optimizer: torch.optim.Optimizer) -> None:
        is_sgd = isinstance(optimizer, torch.optim.SGD)
        for params, lr, group in self._segments(optimizer):
            self._before(params, lr, sgd_gain(group) if is_sgd else 1.0, bool(group.get("maximize", False)))

    @torch.no_grad()
    def _before(self, params: List[torch.Tensor], lr: float, gain: float, maximize: bool = False) -> None:
        """before_step on `params` (tensors the optimizer steps now), with the optimizer's lr and
        momentum gain G; `maximize`: their group's optimizer ascends (torch's maximize=True)."""
        if not self.active or self.impl != "manual" or not params:
            return
        # Whole-list foreach ops, no Python loop over tensors: a few kernel launches per step
        # whatever the depth, so the decay costs next to nothing on small nets (benchmarks/).
        if self.mode == "coupled":
            # Under maximize=True torch negates the gradient, then adds its own weight_decay * w:
            # subtracting the term here lands it where torch's weight_decay does (the weights
            # still shrink). Decoupled and proximal act on the weights, so need no such turn.
            self._add_direction([q.grad for q in params], params, -self.lam if maximize else self.lam)
        elif self.mode == "decoupled":
            # Before the optimizer step and from the current weights, as torch.optim.AdamW does
            # (and, as it does, only to the tensors the optimizer will step).
            step = lr * self.lam * (gain if self.momentum_corrected else 1.0)
            if self._plain_l2:
                torch._foreach_mul_(params, 1.0 - step)
            else:
                self._add_direction(params, params, -step)

    @torch.no_grad()
    def _after(self, params: List[torch.Tensor], lr: float, gain: float,
               adam: Optional[torch.optim.Adam], group: Optional[dict]) -> None:
        """after_step on `params`: under SGD (adam None) with momentum gain G, under Adam with
        its state and the parameter group holding them."""
        if not self.active or self.mode != "proximal" or not params:
            return
        if adam is None:
            self._prox(params, lr * self.lam * gain)
        else:
            params, steps = self._adam_steps(params, lr, adam, group)
            if params:
                self._prox(params, steps)

    def _adam_steps(self, params: List[torch.Tensor], lr: float, adam: torch.optim.Adam,
                    group: dict) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Those of `params` Adam has stepped and their per-entry prox step sizes lr*lam / D, D
        Adam's own denominator sqrt(exp_avg_sq / (1 - beta2^step)) + eps, computed as torch's
        Adam computes it (the same bits)."""
        beta2, eps = group["betas"][1], group["eps"]
        stepped, steps = [], []
        for q in params:
            state = adam.state.get(q)
            if not state or q.grad is None:  # not stepped by Adam now: no metric, and Adam left it as it was
                continue
            bias_sqrt = (1 - beta2 ** float(state["step"])) ** 0.5
            denom = (state["exp_avg_sq"].sqrt() / bias_sqrt).add_(eps)
            stepped.append(q)
            steps.append(torch.div(lr * self.lam, denom))
        return stepped, steps

    def _prox(self, params: List[torch.Tensor], t: Union[float, List[torch.Tensor]]) -> None:
        """params = argmin_v t*P(v) + |v - params|^2 / 2 in place, t one step size or one per
        entry (a tensor per param): soft-threshold by t*l1_ratio (t at p=1), exact zeros where
        |w| <= that, then at p=2 divide by 1 + t*(1 - l1_ratio)."""
        a, per_entry = self.l1_ratio, not isinstance(t, float)
        threshold = t if self.p == 1 else (torch._foreach_mul(t, a) if per_entry else t * a)
        if self.p == 1 or a:  # w - clamp(w, -threshold, threshold)
            if per_entry:
                clamped = torch._foreach_maximum(params, torch._foreach_neg(threshold))
                torch._foreach_minimum_(clamped, threshold)
            else:
                clamped = torch._foreach_clamp_min(params, -threshold)
                torch._foreach_clamp_max_(clamped, threshold)
            torch._foreach_sub_(params, clamped)
        if self.p == 2 and a < 1:  # then rescale for the L2 part
            if per_entry:
                scale = torch._foreach_mul(t, 1.0 - a)
                torch._foreach_add_(scale, 1.0)
                torch._foreach_div_(params, scale)
            else:
                torch._foreach_div_(params, 1.0 + t * (1.0 - a))

    # ---------------------------------------------------------------- reports
    @torch.no_grad()
    def penalty(self) -> float:
        """The penalty of the objective the run converges to (0 when lam = 0): lam * sum, but
        lam / G * sum for uncorrected decoupled decay under SGD with momentum gain G (each
        tensor with the G of the parameter group that steps it, as its step has), and the
        nominal lam * sum for decoupled decay under Adam/AdamW, which minimizes no fixed
        objective (module docstring)."""
        if not self.active:
            return 0.0
        scales = [self._scale_of.get(id(q), 1.0) for q in self._params]
        if len(set(scales)) == 1:  # one group's gain (the harness's case): one sum, as ever
            return float(self._penalty()) * scales[0]
        return sum(float(self._penalty([q for q, s in zip(self._params, scales) if s == scale])) * scale
                   for scale in sorted(set(scales)))

    @property
    def reported_scale(self) -> float:
        """The factor of lam in penalty(): 1 / G for uncorrected decoupled decay under SGD, G
        the gain of the group holding the decayed tensors (the first's, if groups differ)."""
        return self._scale_of.get(id(self._params[0]), 1.0) if self._params else 1.0

    @torch.no_grad()
    def sparsity(self) -> float:
        """The fraction of exactly-zero entries among the tensors in scope."""
        total = sum(q.numel() for q in self._params)
        zeros = sum(int((q == 0).sum()) for q in self._params)
        return zeros / total if total else 0.0

    # ---------------------------------------------------------------- helpers
    @property
    def _plain_l2(self) -> bool:
        return self.p == 2 and self.l1_ratio == 0

    def _penalty(self, params: Optional[List[torch.Tensor]] = None) -> torch.Tensor:
        params = self._params if params is None else params
        a = self.l1_ratio
        total = sum(lp_term(q, self.p, self.eps) for q in params)
        if a:
            total = (1 - a) * total + a * sum(ordered_sum(q.abs()) for q in params)
        return self.lam * total

    def _stepped(self) -> List[torch.Tensor]:
        """The decayed tensors the optimizer steps now: those with a gradient (all, usually)."""
        return [q for q in self._params if q.grad is not None]

    def _add_direction(self, targets: List[torch.Tensor], params: List[torch.Tensor],
                       scale: float) -> None:
        """targets += scale * d(penalty / lam)/dw, in place, in as few foreach kernels as the
        case allows (one or two for p in {1, 2, 3}); targets may be the params themselves."""
        p, a = self.p, self.l1_ratio
        if p == 3 and not a:  # sign(w)|w|^2 = w|w|
            torch._foreach_addcmul_(targets, params, torch._foreach_abs(params), value=scale)
        elif (p == 2 and not a) and targets is not params:
            torch._foreach_add_(targets, params, alpha=scale)
        elif p == 1:  # L1 mixed with L1 is still L1
            torch._foreach_add_(targets, torch._foreach_sign(params), alpha=scale)
        else:
            torch._foreach_add_(targets, self._directions(params), alpha=scale)

    def _directions(self, params: List[torch.Tensor]) -> List[torch.Tensor]:
        """d(penalty / lam)/dw for each tensor, as new tensors: sign(w)|w|^(p-1) (smoothed to
        w (w^2 + eps^2)^(p/2 - 1) for p < 1), mixed with sign(w) by l1_ratio."""
        p, a = self.p, self.l1_ratio
        if p == 2:
            g = torch._foreach_mul(params, 1.0)
        elif p == 1:
            g = torch._foreach_sign(params)
        elif p < 1:
            g = torch._foreach_mul(params, params)
            torch._foreach_add_(g, self.eps * self.eps)
            torch._foreach_pow_(g, p / 2 - 1)
            torch._foreach_mul_(g, params)
        else:
            g = torch._foreach_abs(params)
            torch._foreach_pow_(g, p - 1)
            torch._foreach_mul_(g, torch._foreach_sign(params))
        if a and p != 1:
            torch._foreach_mul_(g, 1 - a)
            torch._foreach_add_(g, torch._foreach_sign(params), alpha=a)
        return g


def _reached(loss: torch.Tensor) -> set:
    """The ids of the leaf tensors `loss`'s autograd graph reaches (those a backward from it
    gives a gradient to)."""
    seen, found, stack = set(), set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)  # an AccumulateGrad: a leaf's gradient sink
        if variable is not None:
            found.add(id(variable))
        stack.extend(next_node for next_node, _ in node.next_functions)
    return found
