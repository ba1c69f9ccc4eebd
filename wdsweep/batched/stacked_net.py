"""The built-in mlp and linear of K members as stacked weights, (K, in, out) per layer, whose
layers are batched matrix products (`torch.baddbmm`) and whose backward writes the gradients in
place, into buffers that live for the run (or straight into SGD's momentum buffers).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import nn

from wdsweep.train.models import _ACTIVATIONS


class _GradientSink:
    """Where a stacked layer's backward puts its gradients: weight = beta * weight + dL/dW,
    and likewise the bias. beta=0 makes them plain gradient buffers; for SGD with momentum
    (no Nesterov) they are the momentum buffers themselves, with beta = momentum."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, beta: float) -> None:
        self.weight, self.bias, self.beta = weight, bias, beta

    def take(self, x: torch.Tensor, g: torch.Tensor) -> None:
        # baddbmm_ with beta=0 ignores what the buffer held (NaN included), as a fresh
        # gradient would.
        self.weight.baddbmm_(x.transpose(1, 2), g, beta=self.beta)
        if self.beta == 0:
            torch.sum(g, dim=1, keepdim=True, out=self.bias)
        else:
            self.bias.mul_(self.beta).add_(g.sum(dim=1, keepdim=True))


class _SinkingLinear(torch.autograd.Function):
    """x @ w + b for K members at once, whose backward writes dL/dw and dL/db into a
    _GradientSink instead of handing them to autograd.

    Why: a stacked weight gradient is tens of MB that autograd allocates afresh every step
    (glibc hands blocks that big back to the kernel, so each one costs page faults) and that
    the optimizer then reads once more to add into its momentum buffer. Written in place into
    a buffer that lives for the whole run, and straight into the momentum buffer where that is
    all the gradient is used for, the step takes about half the time (profiled on the weight-decay article's
    MLP, 64 members). The weights still require grad, so autograd builds the graph through
    every layer; this backward returns no gradient for them."""

    @staticmethod
    def forward(ctx, x, w, b, sink):  # noqa: D102 - torch.autograd.Function's protocol
        ctx.save_for_backward(x, w)
        ctx.sink = sink
        return torch.baddbmm(b, x, w)

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        x, w = ctx.saved_tensors
        ctx.sink.take(x, g)
        grad_x = torch.bmm(g, w.transpose(1, 2)) if ctx.needs_input_grad[0] else None
        return grad_x, None, None, None


class StackedNet:
    """The members' nets as stacked weights: layer i is (K, in, out), transposed from
    nn.Linear's (out, in) so that the weight gradient comes out of the batched product in
    the weight's own layout (with (K, out, in) every step paid a copy of every weight), and
    (K, 1, out) biases. Its interface is FuncNet's (wdsweep.batched.func_net)."""

    sinks_momentum = True  # its backward can write SGD's momentum buffers itself

    def __init__(self, nets: Sequence[nn.Module], activation: str, device: torch.device) -> None:
        self.k = len(nets)
        per_net = [[m for m in net.modules() if isinstance(m, nn.Linear)] for net in nets]
        self.weights = [torch.stack([layers[i].weight.detach().t() for layers in per_net])
                        .contiguous().to(device) for i in range(len(per_net[0]))]
        self.biases = [torch.stack([layers[i].bias.detach() for layers in per_net]).unsqueeze(1).to(device)
                       for i in range(len(per_net[0]))]
        for q in self.params():
            q.requires_grad_(True)
        self.activation = _ACTIVATIONS[activation]()
        self.is_matrix = [i % 2 == 0 for i in range(2 * len(self.weights))]
        self._grads: List[torch.Tensor] = []
        self._sinks: List[_GradientSink] = []

    def params(self) -> List[torch.Tensor]:
        """In nn.Module order: weight, bias of each layer."""
        return [q for pair in zip(self.weights, self.biases) for q in pair]

    def sink_gradients(self, momentum: float) -> None:
        """Make the backward write into buffers that live for the run: plain gradients
        (momentum 0), or SGD's momentum buffers themselves."""
        self._grads = [torch.zeros_like(q, requires_grad=False) for q in self.params()]
        self._sinks = [_GradientSink(w, b, momentum) for w, b in zip(self._grads[0::2], self._grads[1::2])]

    def train_outputs(self, x: torch.Tensor) -> torch.Tensor:
        return self(x, self._sinks)

    def grads(self) -> List[torch.Tensor]:
        return self._grads

    @torch.no_grad()
    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)

    def snapshot(self, k: int) -> List[torch.Tensor]:
        return [q[k].detach().cpu().clone() for q in self.params()]

    @staticmethod
    def load(net: nn.Module, tensors: List[torch.Tensor]) -> None:
        """A member's weights (weight (in, out), bias per layer, as params()) into its own net."""
        layers = [m for m in net.modules() if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for layer, w, b in zip(layers, tensors[0::2], tensors[1::2]):
                layer.weight.copy_(w.t())
                layer.bias.copy_(b.view(-1))

    def __call__(self, x: torch.Tensor, sinks: Optional[Sequence[_GradientSink]] = None) -> torch.Tensor:
        """The members' outputs; with `sinks` (one per layer), a backward pass from them fills
        the sinks."""
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w) if sinks is None else _SinkingLinear.apply(x, w, b, sinks[i])
            if i < last:
                x = self.activation(x)
        return x
