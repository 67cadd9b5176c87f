"""Autograd plumbing shared by the losses: Rust computes loss and gradient in one call."""

from collections.abc import Callable
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from .._tracing import needs_torch_ops
from ..errors import InvalidArgumentError, InvalidTypeError
from ._ops import LossOp, scaled_by

NativeLoss = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]


def _is_one(t: torch.Tensor) -> bool:
    # Only checked on the CPU: on an accelerator the comparison would cost a sync.
    if t.dim() != 0 or t.device.type != "cpu":
        return False
    return t.item() == 1


def _scaled(grad: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
    """``grad`` times ``grad_output``: ``grad`` itself when that is 1 (the usual
    ``loss.backward()``), so that autograd adopts the buffer as ``.grad`` without a copy."""
    return grad if _is_one(grad_output) else scaled_by(grad, grad_output)


class _FusedLoss(torch.autograd.Function):
    """Runs a native loss that returns ``(loss, d loss / d logits)`` and keeps that gradient
    (one logits-sized buffer) for the backward: the eager path."""

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, native: NativeLoss, tensors: dict, options: dict) -> torch.Tensor:
        loss, grad = native(logits=logits, **tensors, options=options, need_grad=True)
        ctx.save_for_backward(grad)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: torch.Tensor):
        (grad,) = ctx.saved_tensors
        return _scaled(grad, grad_output), None, None, None


def _transformed(logits: torch.Tensor, tensors: dict[str, torch.Tensor | None]) -> bool:
    """Whether a ``torch.func`` transform wraps any tensor argument, or ``logits`` carries a
    forward-mode tangent (``torch.autograd.forward_ad``)."""
    wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    if any(isinstance(t, torch.Tensor) and wrapped(t) for t in (logits, *tensors.values())):
        return True
    fwd = torch.autograd.forward_ad
    return fwd._current_level >= 0 and fwd.unpack_dual(logits).tangent is not None


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
        # A torch.func transform cannot be told from a plain call while tracing, so the
        # gradient is computed wherever grad mode is on.
        return op(logits, tensors, options, torch.is_grad_enabled())[0]
    # torch.func transforms and forward-mode AD: the operator, whose autograd kernel has
    # the vmap and jvp rules (without them the loss would have no tangent).
    if _transformed(logits, tensors):
        return op(logits, tensors, options, True)[0]
    if need_grad:
        return _FusedLoss.apply(logits, op.native, tensors, options)
    loss, _ = op.native(logits=logits, **tensors, options=options, need_grad=False)
    return loss
