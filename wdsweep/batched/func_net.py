"""Any module's K copies as one batched model, with torch.func: the vectorized launcher's
general path (the built-in mlp and linear keep their faster stacked path in wdsweep.batched.vectorized).

The K members' parameters and buffers are stacked (`torch.func.stack_module_state`), and one
forward runs `functional_call` of a weightless copy of the module under `vmap`: each member
sees its own batch, weights and buffers, as if it ran alone. BatchNorm works as in a single
job: in training its running statistics are per member (stacked buffers, updated in place
under vmap), and evaluation uses them (the module is put in eval mode). A module that draws
random numbers in its forward (dropout) cannot give each member the draws its job alone would
make, so vmap runs with randomness="error" and such a module runs as ordinary jobs
(`vectorize_problem` says why before any training). So does a module of the user's own whose
methods assign one of its buffers or tensor attributes (`self.shift = ...`), in any branch:
only an in-place update is carried per member, and a branch taken after a warm-up is beyond
any probe (`_rebound_buffer`).

The trainer (wdsweep.batched.vectorized._BatchedTrainer) sees every stacked tensor as a
(K, 1, numel) view of its storage: its optimizer and decay formulas then broadcast per-member
(K, 1, 1) constants over any parameter shape.
"""
from __future__ import annotations

import copy
import functools
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
    """Why `model`'s forward may replace a buffer or a tensor attribute by a new tensor, or None.
    (functional_call runs each member on the stacked tensors and puts the module's own back after
    the call: a replaced buffer's new value is lost, and a plain tensor attribute is one for all
    members; an in-place update, as BatchNorm's running statistics, is kept per member.)

    A probe cannot prove a module safe: a forward that starts replacing a buffer after a warm-up
    (`if self.k > 3: self.shift = ...`) replaces none in the first forwards. So the rule is read
    from the source, every branch included: a module of the user's own (not torch's, whose
    buffers change only in place) that assigns one of its buffers or tensor attributes
    (`self.shift = ...`, `setattr(self, "shift", ...)`, `self.register_buffer("shift", ...)`) in
    any method but __init__ runs alone, as does one whose source cannot be read; then a
    training-mode forward of a copy catches what the source hides (a helper that rebinds one)."""
    for prefix, module in model.named_modules():
        said = _assigned_state(module, prefix + "." if prefix else "")
        if said:
            return said
    return _probe_rebinding(model, n_features)


def _own_classes(module: nn.Module) -> List[type]:
    """The classes of `module`'s MRO that are the user's: not torch's, not builtins."""
    return [c for c in type(module).__mro__
            if c is not object and c.__module__.split(".")[0] not in ("torch", "builtins", "torchvision")]


def _tensor_state(module: nn.Module) -> set:
    """The dotted names of `module`'s buffers (its submodules' included) and of its own plain
    tensor attributes: what a forward must not rebind."""
    names = {name for name, _ in module.named_buffers()}
    names.update(k for k, v in vars(module).items() if isinstance(v, torch.Tensor) and not k.startswith("_"))
    return names


def _assigned_state(module: nn.Module, prefix: str) -> Optional[str]:
    """The first buffer or tensor attribute a method of `module`'s own classes (but __init__)
    assigns, in words ("buffer shift is assigned (self.shift = ... in Net.forward, line 9), ..."),
    or None. `prefix` is the module's dotted name in the model ("" at the top)."""
    state = _tensor_state(module)
    if not state:
        return None
    buffers = {name for name, _ in module.named_buffers()}
    for cls in _own_classes(module):
        assignments = _assignments_of(cls)
        if assignments is None:
            return (f"its class {cls.__qualname__} has tensor state ({prefix}{sorted(state)[0]}) and no readable "
                    "source to show its forward never replaces it")
        for method, line, name in assignments:
            if name in state:
                kind = "buffer" if name in buffers else "tensor attribute"
                return (f"{kind} {prefix}{name} is assigned (self.{name} = ... in {cls.__qualname__}.{method}, "
                        f"line {line}), in some steps if not in all: a batched model keeps only in-place "
                        "updates of a member's tensors (as BatchNorm's)")
    return None


@functools.lru_cache(maxsize=256)
def _assignments_of(cls: type) -> Optional[tuple]:
    """(method, line, dotted name) of every `self.<name> = ...` (setattr, register_buffer) in the
    methods of `cls` but __init__, read from its source once per class; None if unreadable."""
    import ast
    import inspect
    import textwrap

    try:
        source = textwrap.dedent(inspect.getsource(cls))
        start = inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        return None
    found = []
    for func in ast.walk(ast.parse(source)):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)) or func.name == "__init__" \
                or not func.args.args:
            continue
        this = func.args.args[0].arg
        for node in ast.walk(func):
            found.extend((func.name, start + node.lineno - 1, name) for name in _assigned_names(node, this))
    return tuple(found)


def _assigned_names(node, this: str) -> List[str]:
    """The dotted names under `this` that an assignment node binds: `self.a.b = ...` -> a.b;
    setattr(self, "a", ...) and self.register_buffer("a", ...) -> a."""
    import ast

    def dotted(target) -> Optional[str]:
        parts = []
        while isinstance(target, ast.Attribute):
            parts.append(target.attr)
            target = target.value
        return ".".join(reversed(parts)) if isinstance(target, ast.Name) and target.id == this and parts else None

    def literal(arg) -> Optional[str]:
        return arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None

    def is_this(arg) -> bool:
        return isinstance(arg, ast.Name) and arg.id == this

    targets = []
    if isinstance(node, ast.Assign):
        for target in node.targets:
            targets.extend(target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target])
    elif isinstance(node, ast.AnnAssign):
        targets.append(node.target)
    names = [dotted(target) for target in targets]
    if isinstance(node, ast.Call) and node.args:
        func, args = node.func, node.args
        if isinstance(func, ast.Name) and func.id == "setattr" and len(args) >= 2 and is_this(args[0]):
            names.append(literal(args[1]))
        elif isinstance(func, ast.Attribute) and func.attr == "register_buffer" and is_this(func.value):
            names.append(literal(args[0]))
    return [n for n in names if n]


def _probe_rebinding(model: nn.Module, n_features: int) -> Optional[str]:
    """The first buffer or plain tensor attribute one training-mode forward of a copy of `model`
    replaces by a new tensor (or creates), in words, or None."""
    probe = copy.deepcopy(model).train()

    def tensors():
        found = {name: id(b) for name, b in probe.named_buffers()}
        for prefix, module in probe.named_modules():
            found.update({f"{prefix + '.' if prefix else ''}{k}": id(v) for k, v in vars(module).items()
                          if isinstance(v, torch.Tensor) and not isinstance(v, nn.Parameter)})
        return found

    before = tensors()
    try:
        with torch.no_grad():
            probe(torch.zeros(2, n_features))
    except Exception:  # noqa: BLE001 - the forward's own problems are vectorize_problem's to report
        return None
    after = tensors()
    name = next((n for n, i in after.items() if before.get(n) != i), None)
    if name is None:
        return None
    kind = "buffer" if name in dict(probe.named_buffers()) else "tensor attribute"
    return (f"its forward replaces {kind} {name} (self.{name.rsplit('.', 1)[-1]} = ...) instead of updating it "
            "in place, which a batched model cannot carry from step to step")


def vectorize_problem(model: nn.Module, n_features: int) -> Optional[str]:
    """Why K copies of `model` cannot train as one FuncNet (the error of a two-member forward
    and backward in training mode and a forward in eval mode, in one line), or None."""
    rebound = _rebound_buffer(model, n_features)
    if rebound:
        return rebound
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
