"""The losses as PyTorch custom operators (``torch.ops.q2l.*``), for compiled and fake tensors.

Eager calls go straight to Rust through :class:`~q2l.loss._function._FusedLoss`, which lets
``loss.backward()`` adopt the kernel's gradient buffer as ``.grad`` without a copy. Under
``torch.compile``/``torch.export`` and on meta or fake tensors (see
:func:`q2l._tracing.needs_torch_ops`) the same Rust call runs as a custom operator instead:
a schema Dynamo can put in a graph, a fake implementation that gives shapes and dtypes
without computing, and the analytic gradient registered as its autograd formula.

Each operator returns ``(loss, grad)``; ``grad`` is ``d loss / d logits`` (the reduction and
scale included) when ``need_grad`` is true and an empty tensor otherwise, since an operator
cannot return ``None``.
"""

import torch
from torch import Tensor

from .. import _native
from ..errors import InternalError, InvalidArgumentError


def _loss_dtype(logits: Tensor) -> torch.dtype:
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def _check_fake(logits: Tensor, targets: Tensor, target_shape, **others: Tensor | None) -> None:
    # What the Rust checks would refuse, refused at trace time too (they never run on fakes).
    for name, t in {"targets": targets, **others}.items():
        if t is not None and t.device != logits.device:
            raise InvalidArgumentError(
                f"{name} is on {t.device} but logits is on {logits.device}; move both to the same device"
            )
    if tuple(targets.shape) != tuple(target_shape):
        raise InvalidArgumentError(f"targets must have shape {list(target_shape)}, got {list(targets.shape)}")
    if not logits.dtype.is_floating_point:
        raise InvalidArgumentError(f"logits must be a floating tensor, got {logits.dtype}")


def _grad_like(logits: Tensor, need_grad: bool) -> Tensor:
    return torch.empty_like(logits, memory_format=torch.contiguous_format) if need_grad else logits.new_empty(0)


@torch.library.custom_op("q2l::asymmetric_loss", mutates_args=(), device_types=None)
def asymmetric_loss_op(
    logits: Tensor,
    targets: Tensor,
    class_weight: Tensor | None,
    gamma_pos: float,
    gamma_neg: float,
    clip: float,
    eps: float,
    disable_torch_grad_focal_loss: bool,
    reduction: str,
    scale: float,
    validate: bool,
    backend: str,
    need_grad: bool,
) -> tuple[Tensor, Tensor]:
    loss, grad = _native.asymmetric_loss(
        logits=logits,
        targets=targets,
        class_weight=class_weight,
        gamma_pos=gamma_pos,
        gamma_neg=gamma_neg,
        clip=clip,
        eps=eps,
        disable_torch_grad_focal_loss=disable_torch_grad_focal_loss,
        reduction=reduction,
        scale=scale,
        validate=validate,
        backend=backend,
        need_grad=need_grad,
    )
    return loss, grad if grad is not None else logits.new_empty(0)


@asymmetric_loss_op.register_fake
def _(
    logits,
    targets,
    class_weight,
    gamma_pos,
    gamma_neg,
    clip,
    eps,
    disable_torch_grad_focal_loss,
    reduction,
    scale,
    validate,
    backend,
    need_grad,
):
    _check_fake(logits, targets, logits.shape, class_weight=class_weight)
    shape = logits.shape if reduction == "none" else ()
    return logits.new_empty(shape, dtype=_loss_dtype(logits)), _grad_like(logits, need_grad)


@torch.library.custom_op("q2l::asymmetric_loss_single_label", mutates_args=(), device_types=None)
def asymmetric_loss_single_label_op(
    logits: Tensor,
    targets: Tensor,
    gamma_pos: float,
    gamma_neg: float,
    smoothing: float,
    reduction: str,
    scale: float,
    ignore_index: int,
    validate: bool,
    backend: str,
    need_grad: bool,
) -> tuple[Tensor, Tensor]:
    loss, grad = _native.asymmetric_loss_single_label(
        logits=logits,
        targets=targets,
        gamma_pos=gamma_pos,
        gamma_neg=gamma_neg,
        smoothing=smoothing,
        reduction=reduction,
        scale=scale,
        ignore_index=ignore_index,
        validate=validate,
        backend=backend,
        need_grad=need_grad,
    )
    return loss, grad if grad is not None else logits.new_empty(0)


@asymmetric_loss_single_label_op.register_fake
def _(logits, targets, gamma_pos, gamma_neg, smoothing, reduction, scale, ignore_index, validate, backend, need_grad):
    _check_fake(logits, targets, logits.shape[:1])
    shape = logits.shape[:1] if reduction == "none" else ()
    return logits.new_empty(shape, dtype=_loss_dtype(logits)), _grad_like(logits, need_grad)


@torch.library.custom_op("q2l::partial_asymmetric_loss", mutates_args=(), device_types=None)
def partial_asymmetric_loss_op(
    logits: Tensor,
    targets: Tensor,
    priors: Tensor | None,
    mode: str,
    gamma_pos: float,
    gamma_neg: float,
    gamma_unann: float,
    alpha_pos: float,
    alpha_neg: float,
    alpha_unann: float,
    clip: float,
    likelihood_topk: int,
    prior_threshold: float,
    backend: str,
    need_grad: bool,
) -> tuple[Tensor, Tensor]:
    loss, grad = _native.partial_asymmetric_loss(
        logits=logits,
        targets=targets,
        priors=priors,
        mode=mode,
        gamma_pos=gamma_pos,
        gamma_neg=gamma_neg,
        gamma_unann=gamma_unann,
        alpha_pos=alpha_pos,
        alpha_neg=alpha_neg,
        alpha_unann=alpha_unann,
        clip=clip,
        likelihood_topk=likelihood_topk,
        prior_threshold=prior_threshold,
        backend=backend,
        need_grad=need_grad,
    )
    return loss, grad if grad is not None else logits.new_empty(0)


@partial_asymmetric_loss_op.register_fake
def _(
    logits,
    targets,
    priors,
    mode,
    gamma_pos,
    gamma_neg,
    gamma_unann,
    alpha_pos,
    alpha_neg,
    alpha_unann,
    clip,
    likelihood_topk,
    prior_threshold,
    backend,
    need_grad,
):
    _check_fake(logits, targets, logits.shape, priors=priors)
    if logits.dim() != 2:
        raise InvalidArgumentError(f"logits and targets must both be [batch, classes], got {list(logits.shape)}")
    return logits.new_empty((), dtype=_loss_dtype(logits)), _grad_like(logits, need_grad)


def _setup_context(ctx, inputs, output) -> None:
    ctx.save_for_backward(output[1])
    ctx.n_inputs = len(inputs)


def _backward(ctx, grad_loss: Tensor, _grad_of_grad: Tensor | None):
    (grad,) = ctx.saved_tensors
    if grad.numel() == 0 and grad_loss.numel() != 0:
        raise InternalError("q2l loss: backward through a call made with need_grad=False")
    # The kernel's gradient is that of the (reduced) loss; for reduction="none" it is the
    # gradient of the sum, so each element scales by its own upstream gradient.
    while grad_loss.dim() < grad.dim() and grad_loss.dim() > 0:
        grad_loss = grad_loss.unsqueeze(-1)
    return (grad * grad_loss.to(grad.dtype),) + (None,) * (ctx.n_inputs - 1)


for _name in ("q2l::asymmetric_loss", "q2l::asymmetric_loss_single_label", "q2l::partial_asymmetric_loss"):
    torch.library.register_autograd(_name, _backward, setup_context=_setup_context)
