"""Any module's K copies as one batched model, with torch.func: the vectorized launcher's
general path (the built-in mlp and linear keep their faster stacked path in wdsweep.batched.vectorized).

The K members' parameters and buffers are stacked (`torch.func.stack_module_state`), and one
forward runs `functional_call` of a weightless copy of the module under `vmap`: each member
sees its own batch, weights and buffers, as if it ran alone. BatchNorm works as in a single
job: in training its running statistics are per member (stacked buffers, updated in place
under vmap), and evaluation uses them (the module is put in eval mode). A module that draws
random numbers in its forward (dropout) cannot give each member the draws its job alone would
make, so vmap runs with randomness="error" and such a module runs as ordinary jobs
(`vectorize_problem` says why before any training).

The trainer (wdsweep.batched.vectorized._BatchedTrainer) sees every stacked tensor as a
(K, 1, numel) view of its storage: its optimizer and decay formulas then broadcast per-member
(K, 1, 1) constants over any parameter shape.
"""
from __future__ import annotations

import copy
from typing import Dict, List, Optional

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from wdsweep.train.training import EVAL_ROWS


class FuncNet:
    """K copies of one module (equal architecture, own weights and buffers)."""

    # The stacked MLP writes SGD's momentum straight from its backward; this net does not.
    sinks_momentum = False

    def __init__(self, nets: List[nn.Module], device: torch.device) -> None:
        self.k = len(nets)
        params, buffers = stack_module_state(nets)
        trainable = {name for name, q in nets[0].named_parameters() if q.requires_grad}
        self.trainable: Dict[str, torch.Tensor] = {
            n: q.detach().to(device).requires_grad_(True) for n, q in params.items() if n in trainable}
        # Frozen parameters are constants to the optimizer, as in a single job: carried like buffers.
        self.constants: Dict[str, torch.Tensor] = {
            **{n: q.detach().to(device) for n, q in params.items() if n not in trainable},
            **{n: b.to(device) for n, b in buffers.items()}}
        self.base = _meta_copy(nets[0])  # the architecture only: no memory
        with torch.no_grad():
            self._views = [q.detach().view(self.k, 1, -1) for q in self.trainable.values()]
        self.is_matrix = [q.dim() - 1 >= 2 for q in self.trainable.values()]
        self._batched = vmap(self._one, randomness="error")

    def _one(self, params: Dict[str, torch.Tensor], constants: Dict[str, torch.Tensor],
             x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.base, (params, constants), (x,))

    def params(self) -> List[torch.Tensor]:
        """The trainable tensors as (K, 1, numel) views, in named_parameters order."""
        return self._views

    def train_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """The members' outputs (K, n, out) in training mode, for a backward that fills grads()."""
        for q in self.trainable.values():
            q.grad = None
        self.base.train()
        return self._batched(self.trainable, self.constants, x)

    def grads(self) -> List[torch.Tensor]:
        """The gradients of the last backward, shaped as params() (every trainable tensor has
        one: vectorize_problem refuses a module whose forward leaves one unused)."""
        return [q.grad.view(self.k, 1, -1) for q in self.trainable.values()]

    @torch.no_grad()
    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """The members' outputs in eval mode (BatchNorm from its running statistics), in
        chunks that hold about as many rows in all as a single job's evaluation does."""
        self.base.eval()
        rows = max(1, EVAL_ROWS // self.k)
        return torch.cat([self._batched(self.trainable, self.constants, x[:, s:s + rows])
                          for s in range(0, x.shape[1], rows)], dim=1)

    def snapshot(self, k: int) -> Dict[str, torch.Tensor]:
        """Member k's parameters and buffers, on the CPU."""
        return {n: q[k].detach().cpu().clone() for n, q in {**self.trainable, **self.constants}.items()}

    @staticmethod
    def load(net: nn.Module, snapshot: Dict[str, torch.Tensor]) -> None:
        """A member's snapshot into its own module."""
        tensors = {**dict(net.named_parameters()), **dict(net.named_buffers())}
        with torch.no_grad():
            for name, value in snapshot.items():
                tensors[name].copy_(value)


def _meta_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` whose parameters and buffers are on the meta device, keeping tied
    weights tied. (`.to("meta")` would untie them: it makes a new Parameter per registration, so
    functional_call would replace the first and leave the second a meta tensor; stacked state
    holds one tensor per tied weight, as named_parameters and the single job's optimizer do.)"""
    memo = {}
    for tensor in [*model.parameters(), *model.buffers()]:  # each tied tensor once
        meta = torch.empty_like(tensor, device="meta")
        memo[id(tensor)] = nn.Parameter(meta, tensor.requires_grad) if isinstance(tensor, nn.Parameter) else meta
    return copy.deepcopy(model, memo)


def _rebound_buffer(model: nn.Module, n_features: int) -> Optional[str]:
    """The first buffer a training-mode forward of a copy of `model` replaces by a new tensor, or
    None. (functional_call runs each member on the stacked tensors and puts the module's own back
    after the call: a replaced buffer's new value is lost, an in-place update, as BatchNorm's
    running statistics, is kept.)"""
    probe = copy.deepcopy(model).train()
    before = {name: id(b) for name, b in probe.named_buffers()}
    try:
        with torch.no_grad():
            probe(torch.zeros(2, n_features))
    except Exception:  # noqa: BLE001 - the forward's own problems are vectorize_problem's to report
        return None
    after = dict(probe.named_buffers())
    return next((name for name, i in before.items() if name in after and id(after[name]) != i), None)


def vectorize_problem(model: nn.Module, n_features: int) -> Optional[str]:
    """Why K copies of `model` cannot train as one FuncNet (the error of a two-member forward
    and backward in training mode and a forward in eval mode, in one line), or None."""
    rebound = _rebound_buffer(model, n_features)
    if rebound:
        return (f"its forward replaces buffer {rebound} (self.{rebound.rsplit('.', 1)[-1]} = ...) instead of "
                "updating it in place, which a batched model cannot carry from step to step")
    try:
        net = FuncNet([model, copy.deepcopy(model)], torch.device("cpu"))
        x = torch.zeros(2, 2, n_features)  # two rows: BatchNorm in training needs more than one
        net.train_outputs(x).sum().backward()
        net.outputs(x)
        # torch's optimizers skip a tensor without a gradient; a batched step would move it.
        unused = [n for n, q in net.trainable.items() if q.grad is None]
        if unused:
            return f"parameter {unused[0]} gets no gradient from the forward, so its job alone never steps it"
    except Exception as err:  # noqa: BLE001 - whatever vmap or the module refuses is the reason
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return f"{type(err).__name__}: {first}"
    return None
