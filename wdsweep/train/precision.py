"""trainer.precision: `32` (the default), `bf16-mixed` or `16-mixed` (Lightning's names).

Mixed precision runs the forward pass and the data loss (training and evaluation) under
torch.autocast in bfloat16 or float16; the weights, their gradients, the optimizer's state and
everything the regularizer does (the penalty, the coupled and decoupled decay, the proximal
step) stay in float32, outside autocast. `16-mixed` scales the loss (torch.amp.GradScaler) so
that small float16 gradients do not flush to zero: the gradients are unscaled before the
regularizer and the optimizer see them, and a step whose gradients overflowed is skipped whole
(the decay included), as the scaler skips the optimizer's. At `32` nothing here runs: the step
is the float32 step, bit for bit.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, ContextManager, Optional

import torch

_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


@dataclass(frozen=True)
class Precision:
    name: str
    device_type: str

    @property
    def dtype(self) -> Optional[torch.dtype]:
        return _DTYPES.get(self.name)

    def autocast(self) -> ContextManager[Any]:
        """The context of the forward pass and the data loss."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> Optional["torch.amp.GradScaler"]:
        return torch.amp.GradScaler(self.device_type) if self.name == "16-mixed" else None


FLOAT32 = Precision("32", "cpu")


def precision_of(name: object, device: torch.device) -> Precision:
    return Precision(str(name), device.type)
