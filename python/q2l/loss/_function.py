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
    # Only checked on the CPU (on an accelerator the comparison would cost a sync), and not
    # on the wrapped tensors of torch.func, whose value cannot be read.
    if t.dim() != 0 or t.device.type != "cpu" or torch._C._functorch.is_functorch_wrapped_tensor(t):
        return False
    return t.item() == 1


def _scaled(grad: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
    """``grad`` times ``grad_output``: ``grad`` itself when that is 1 (the usual
    ``loss.backward()``), so that autograd adopts the buffer as ``.grad`` without a copy."""
    if _is_one(grad_output):
        return grad
    while grad_output.dim() < grad.dim() and grad_output.dim() > 0:
        grad_output = grad_output.unsqueeze(-1)
    return grad * grad_output.to(grad.dtype)


class _FusedLoss(torch.autograd.Function):
    """Runs a native loss that returns ``(loss, d loss / d logits)`` and keeps that gradient
    (one logits-sized buffer) for the backward: the eager path.

    The other tensors (targets, weights, priors) are passed positionally after ``names``.
    """

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, native: NativeLoss, options: dict, names: tuple[str, ...], *values):
        loss, grad = native(logits=logits, **dict(zip(names, values, strict=True)), options=options, need_grad=True)
        ctx.save_for_backward(grad)
        ctx.num_values = len(values)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: torch.Tensor):
        (grad,) = ctx.saved_tensors
        return (_scaled(grad, grad_output), *(None,) * (3 + ctx.num_values))


class _TransformableLoss(torch.autograd.Function):
    """:class:`_FusedLoss` for ``torch.func`` transforms and forward-mode AD: the same
    gradient gives the backward and the forward-mode derivative (``jvp``), and under
    ``torch.vmap`` the loss runs once per slice of the mapped dimension (``vmap``), so every
    check and the fused kernel run on plain tensors.

    A separate class because transforms need the ``setup_context`` form, whose second output
    (the gradient) costs eager calls about 40 us each.
    """

    @staticmethod
    def forward(logits: torch.Tensor, native: NativeLoss, options: dict, names: tuple[str, ...], *values: Any):
        return native(logits=logits, **dict(zip(names, values, strict=True)), options=options, need_grad=True)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        loss, grad = output
        ctx.mark_non_differentiable(grad)
        ctx.set_materialize_grads(False)  # no logits-sized zeros for the gradient output
        ctx.save_for_backward(grad)
        ctx.save_for_forward(grad)
        ctx.loss_dim = loss.dim()
        ctx.num_values = len(inputs) - 4

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor, _unused: Any):
        (grad,) = ctx.saved_tensors
        return (_scaled(grad, grad_output), *(None,) * (3 + ctx.num_values))

    @staticmethod
    def jvp(ctx: Any, logits_tangent: torch.Tensor, *_unused: Any):
        (grad,) = ctx.saved_tensors
        tangent = grad * logits_tangent.to(grad.dtype)
        dims = tuple(range(ctx.loss_dim, grad.dim()))
        return (tangent.sum(dims) if dims else tangent), None

    @staticmethod
    def vmap(info: Any, in_dims: tuple, logits: torch.Tensor, native: NativeLoss, options: dict, names, *values):
        def part(t: Any, dim: int | None, i: int) -> Any:
            return t if dim is None or t is None else t.select(dim, i)

        value_dims = in_dims[4:]
        outs = [
            _TransformableLoss.apply(
                part(logits, in_dims[0], i),
                native,
                options,
                names,
                *(part(v, d, i) for v, d in zip(values, value_dims, strict=True)),
            )
            for i in range(info.batch_size)
        ]
        return (torch.stack([o[0] for o in outs]), torch.stack([o[1] for o in outs])), (0, 0)


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
        return op(logits, tensors, options, need_grad)[0]
    # torch.func transforms and forward-mode AD go through a Function with vmap and jvp
    # rules (without them the loss would have no tangent).
    names = tuple(tensors)
    if _transformed(logits, tensors):
        return _TransformableLoss.apply(logits, op.native, options, names, *tensors.values())[0]
    if need_grad:
        return _FusedLoss.apply(logits, op.native, options, names, *tensors.values())
    loss, _ = op.native(logits=logits, **tensors, options=options, need_grad=False)
    return loss
