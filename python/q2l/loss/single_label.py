"""The single-label (softmax) asymmetric loss with label smoothing, as in ASL and timm."""

from typing import Any

import torch

from .. import _native
from .._options import Options, OptionsModule, bind_positional, documented
from ._function import run
from ._ops import LossOp

#: The options, declared once in Rust (``SingleLabelOptions`` in ``src/loss/options.rs``).
OPTIONS = Options("asymmetric_loss_single_label")

#: The official ``ASLSingleLabel``'s positional arguments, in order.
_POSITIONAL = ("gamma_pos", "gamma_neg", "eps", "reduction")

_OP = LossOp(
    _native.asymmetric_loss_single_label,
    OPTIONS,
    ("targets",),
    lambda logits, o: (logits.shape[:1], logits.shape[:1] if o["reduction"] == "none" else ()),
)


@documented(OPTIONS)
def asymmetric_loss_single_label(logits: torch.Tensor, targets: torch.Tensor, **options: Any) -> torch.Tensor:
    """Single-label asymmetric loss with a fused Rust forward and backward.

    With ``lp = log_softmax(logits)``, ``p = exp(lp)`` and the target class ``t``, the
    focal weights are ``(1 - p_t)^gamma_pos`` for ``t`` and ``p_j^gamma_neg`` for the
    others; the loss of a row is ``-sum_j s_j * w_j * lp_j`` with the smoothed target
    ``s = (1 - eps) * onehot(t) + eps / C``. The gradient flows through the weights, as
    in ASL's ``ASLSingleLabel`` and timm's ``AsymmetricLossSingleLabel``.

    Args:
        logits: Raw scores ``[N, C]``, any floating dtype.
        targets: Class indices ``[N]``, integer dtype.
        {options}

    Returns:
        The loss, 0-dim or ``[N]`` for ``reduction="none"``; float32 (float64 for
        float64 logits).

    Shape:
        - logits: ``(N, C)``
        - targets: ``(N,)`` class indices
        - output: ``()`` or ``(N,)`` for ``reduction="none"``
    """
    return run(_OP, logits, {"targets": targets}, options)


@documented(OPTIONS, _POSITIONAL)
class AsymmetricLossSingleLabel(OptionsModule):
    """Single-label asymmetric loss module, a drop-in for ASL's ``ASLSingleLabel``
    (positional ``gamma_pos, gamma_neg, eps, reduction``). Each option is an attribute too.

    Args:
        {options}

    Shape:
        - logits: ``(N, C)``
        - targets: ``(N,)`` class indices
        - output: ``()`` or ``(N,)`` for ``reduction="none"``
    """

    schema = OPTIONS

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(bind_positional(_POSITIONAL, args, options, type(self).__name__))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return run(_OP, logits, {"targets": targets}, self.options)
