"""The single-label (softmax) asymmetric loss with label smoothing, as in ASL and timm."""

import torch
from torch import nn

from .. import _native
from ..errors import InvalidArgumentError
from ._function import run
from ._ops import asymmetric_loss_single_label_op

# The constructor checks early what the core checks at every call ("batchmean" is refused:
# a single-label loss has one term per row already).
_REDUCTIONS = tuple(r for r in _native.REDUCTIONS if r != "batchmean")


def asymmetric_loss_single_label(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    eps: float = 0.1,
    reduction: str = "mean",
    scale: float = 1.0,
    ignore_index: int = -100,
    validate: bool = True,
    backend: str = "auto",
) -> torch.Tensor:
    """Single-label asymmetric loss with a fused Rust forward and backward.

    With ``lp = log_softmax(logits)``, ``p = exp(lp)`` and the target class ``t``, the
    focal weights are ``(1 - p_t)^gamma_pos`` for ``t`` and ``p_j^gamma_neg`` for the
    others; the loss of a row is ``-sum_j s_j * w_j * lp_j`` with the smoothed target
    ``s = (1 - eps) * onehot(t) + eps / C``. The gradient flows through the weights, as
    in ASL's ``ASLSingleLabel`` and timm's ``AsymmetricLossSingleLabel``.

    Args:
        logits: Raw scores ``[N, C]``, any floating dtype.
        targets: Class indices ``[N]``, integer dtype.
        gamma_pos: Focusing exponent of the target class.
        gamma_neg: Focusing exponent of the other classes.
        eps: Label smoothing in [0, 1] (the official name).
        reduction: ``"mean"`` (over rows not ignored), ``"sum"`` or ``"none"``.
        scale: Multiplier applied after the reduction.
        ignore_index: Rows with this target contribute neither loss nor gradient.
        validate: Raise ``ValueError`` on NaN logits.
        backend: ``"auto"``, ``"kernel"`` (CPU) or ``"tensor"``.

    Returns:
        The loss, 0-dim or ``[N]`` for ``reduction="none"``; float32 (float64 for
        float64 logits).
    """
    kwargs = dict(
        gamma_pos=float(gamma_pos),
        gamma_neg=float(gamma_neg),
        smoothing=float(eps),
        reduction=reduction,
        scale=float(scale),
        ignore_index=int(ignore_index),
        validate=bool(validate),
        backend=backend,
    )
    return run(
        _native.asymmetric_loss_single_label, asymmetric_loss_single_label_op, logits, {"targets": targets}, kwargs
    )


class AsymmetricLossSingleLabel(nn.Module):
    """Single-label asymmetric loss module, a drop-in for ASL's ``ASLSingleLabel``.

    Args:
        gamma_pos: Focusing exponent of the target class.
        gamma_neg: Focusing exponent of the other classes.
        eps: Label smoothing.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        ignore_index: Rows with this target are skipped.

    Shape:
        - logits: ``(N, C)``
        - targets: ``(N,)`` class indices
        - output: ``()`` or ``(N,)`` for ``reduction="none"``
    """

    def __init__(
        self,
        gamma_pos: float = 0,
        gamma_neg: float = 4,
        eps: float = 0.1,
        reduction: str = "mean",
        *,
        ignore_index: int = -100,
        validate: bool = True,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise InvalidArgumentError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.gamma_pos = float(gamma_pos)
        self.gamma_neg = float(gamma_neg)
        self.eps = float(eps)
        self.reduction = reduction
        self.ignore_index = int(ignore_index)
        self.validate = bool(validate)
        self.backend = backend

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return asymmetric_loss_single_label(
            logits,
            targets,
            gamma_pos=self.gamma_pos,
            gamma_neg=self.gamma_neg,
            eps=self.eps,
            reduction=self.reduction,
            ignore_index=self.ignore_index,
            validate=self.validate,
            backend=self.backend,
        )

    def extra_repr(self) -> str:
        return f"gamma_pos={self.gamma_pos}, gamma_neg={self.gamma_neg}, eps={self.eps}, reduction={self.reduction!r}"
