"""Autograd plumbing shared by the losses: Rust computes loss and gradient in one call."""

from typing import Any, Callable, Optional, Tuple

import torch
from torch.autograd.function import once_differentiable

NativeLoss = Callable[..., Tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor]]


class _FusedLoss(torch.autograd.Function):
    """Runs a native loss that returns ``(loss, grad, grad_scale)``.

    The forward keeps the gradient of the unreduced loss (one logits-sized buffer);
    the backward multiplies it by ``grad_output * grad_scale``.
    """

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, native: NativeLoss, args: tuple, kwargs: dict) -> torch.Tensor:
        loss, grad, scale = native(logits, *args, need_grad=True, **kwargs)
        ctx.save_for_backward(grad, scale)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: torch.Tensor):
        grad, scale = ctx.saved_tensors
        factor = grad_output * scale
        if factor.dim() == 0:
            out = grad * factor
        else:
            while factor.dim() < grad.dim():
                factor = factor.unsqueeze(-1)
            out = grad * factor.to(grad.dtype)
        return out, None, None, None


def run(native: NativeLoss, logits: torch.Tensor, args: tuple, kwargs: dict, constants: dict) -> torch.Tensor:
    """Calls ``native`` through autograd when ``logits`` needs a gradient.

    ``constants`` names the tensor arguments that must not require a gradient: the loss
    treats them as constants, and silently dropping their gradient would be a trap.
    """
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    grad_wanted = torch.is_grad_enabled() and logits.requires_grad
    if grad_wanted:
        for name, value in constants.items():
            if isinstance(value, torch.Tensor) and value.requires_grad:
                raise ValueError(
                    f"{name} requires grad, but the loss treats it as a constant and gives it no "
                    f"gradient; pass {name}.detach()"
                )
        return _FusedLoss.apply(logits, native, args, kwargs)
    loss, _, _ = native(logits, *args, need_grad=False, **kwargs)
    return loss
