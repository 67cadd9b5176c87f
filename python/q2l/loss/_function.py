"""Autograd plumbing shared by the losses: Rust computes loss and gradient in one call."""

from collections.abc import Callable
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from .._tracing import needs_torch_ops
from ..errors import InvalidArgumentError, InvalidTypeError
from ._ops import LossOp

NativeLoss = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]


def _is_one(t: torch.Tensor) -> bool:
    # Only checked on the CPU: on an accelerator the comparison would cost a sync.
    return t.device.type == "cpu" and t.dim() == 0 and bool(t == 1)


class _FusedLoss(torch.autograd.Function):
    """Runs a native loss that returns ``(loss, d loss / d logits)``.

    The forward keeps that gradient (one logits-sized buffer). The backward returns it
    as it is when ``grad_output`` is 1, the usual ``loss.backward()``: autograd then
    adopts the buffer as ``.grad`` without a copy. Otherwise it is multiplied.
    """

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, native: NativeLoss, tensors: dict, options: dict) -> torch.Tensor:
        loss, grad = native(logits=logits, **tensors, options=options, need_grad=True)
        ctx.save_for_backward(grad)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: torch.Tensor):
        (grad,) = ctx.saved_tensors
        if _is_one(grad_output):
            return grad, None, None, None
        while grad_output.dim() < grad.dim() and grad_output.dim() > 0:
            grad_output = grad_output.unsqueeze(-1)
        return grad * grad_output.to(grad.dtype), None, None, None


def run(
    op: LossOp, logits: torch.Tensor, tensors: dict[str, torch.Tensor | None], options: dict[str, Any]
) -> torch.Tensor:
    """Calls ``op``'s native function through autograd when ``logits`` needs a gradient, or
    the custom operator where the call is traced or the tensors are fake.

    ``tensors`` are the other tensor arguments, by name: the loss treats them as constants,
    so one that requires a gradient is refused (silently dropping its gradient would be a
    trap). ``options`` are checked by Rust on every path.
    """
    if not isinstance(logits, torch.Tensor):
        raise InvalidTypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    need_grad = torch.is_grad_enabled() and logits.requires_grad
    if need_grad:
        for name, value in tensors.items():
            if isinstance(value, torch.Tensor) and value.requires_grad:
                raise InvalidArgumentError(
                    f"{name} requires grad, but the loss treats it as a constant and gives it no "
                    f"gradient; pass {name}.detach()"
                )
    if needs_torch_ops(logits):
        return op(logits, tensors, options, need_grad)[0]
    if need_grad:
        return _FusedLoss.apply(logits, op.native, tensors, options)
    loss, _ = op.native(logits=logits, **tensors, options=options, need_grad=False)
    return loss
