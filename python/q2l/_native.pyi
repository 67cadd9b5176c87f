"""Type stubs for the Rust extension module ``q2l._native``.

These functions are the stateless core; the public API in :mod:`q2l` wraps them in
``torch.nn.Module`` classes and ``torch.autograd.Function``s.
"""

from typing import Literal, Optional, Tuple

import torch

__version__: str
TORCH_VERSION: str

Reduction = Literal["none", "sum", "mean", "batchmean"]
Backend = Literal["auto", "kernel", "tensor"]

def simd_level() -> Literal["avx512", "avx2", "baseline"]:
    """The instruction set the CPU kernels use on this machine."""

def asymmetric_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    class_weight: Optional[torch.Tensor],
    *,
    gamma_pos: float,
    gamma_neg: float,
    clip: float,
    eps: float,
    focal_grad: bool,
    reduction: Reduction,
    scale: float,
    validate: bool,
    backend: Backend,
    need_grad: bool,
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Asymmetric loss.

    Returns ``(loss, grad)``: the reduced (or per-element) loss and, with ``need_grad``,
    its gradient with respect to ``logits`` (reduction and scale included; for
    ``reduction="none"`` the gradient of the sum), so that the backward pass is
    ``grad * grad_output``.

    Raises:
        ValueError: bad shapes, dtypes, devices, option values, NaN logits or invalid
            targets (the last two only with ``validate``).
        RuntimeError: a libtorch failure.
    """

def asymmetric_loss_single_label(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    gamma_pos: float,
    gamma_neg: float,
    smoothing: float,
    reduction: Reduction,
    scale: float,
    ignore_index: int,
    validate: bool,
    backend: Backend,
    need_grad: bool,
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Single-label (softmax) asymmetric loss; returns as :func:`asymmetric_loss`."""
