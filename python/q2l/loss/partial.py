"""Training with labels nobody annotated: CSL's partial-label loss (Ben-Baruch et al. 2022,
``Alibaba-MIIL/PartialLabelingCSL``, ``PartialSelectiveLoss``).

Targets are 1 (present), 0 (absent) and -1 (not annotated). Each element's loss is::

    positive:     -alpha_pos   * (1 - p)^gamma_pos       * log(max(p, 1e-8))
    negative:     -alpha_neg   * (1 - q)^gamma_neg       * log(max(q, 1e-8))
    unannotated:  -alpha_unann * (1 - q)^gamma_unann     * log(max(q, 1e-8))

with ``p = sigmoid(x)``, ``q = min(1 - p + clip, 1)``, the focal factors held constant, times
a weight the ``mode`` sets, summed over the batch:

* ``"negative"``: every unannotated label is a negative (weight 1).
* ``"ignore"``: unannotated labels are left out (weight 0).
* ``"ignore_normalize_classes"``: left out, and each image weighted by
  ``1 + 1 / (1 + its annotated labels)``.
* ``"selective"``: negatives, except the ``likelihood_topk * batch`` unannotated labels of the
  batch the model finds most likely present; with class ``priors``, the unannotated labels of
  classes whose prior exceeds ``prior_threshold`` are left out too.

Computed in Rust with its analytic gradient: the mode's weights on libtorch ops (the selective
top-k spans the batch), then, for CPU tensors, the asymmetric loss's fused kernel with one
weight per element (one pass, or two where unannotated labels are focused differently from
negatives); libtorch ops on other devices.
"""

from typing import Any

import torch

from .. import _native
from .._arrays import tensor_of
from .._options import Options, OptionsModule, bind_positional, documented
from ..errors import InvalidArgumentError
from ._function import run
from ._ops import LossOp

#: The options, declared once in Rust (``PartialOptions`` in ``src/loss/options.rs``).
OPTIONS = Options("partial_asymmetric_loss")

#: The modes, and the official ``train.py`` defaults.
PARTIAL_MODES: tuple[str, ...] = OPTIONS.choices("mode")
PARTIAL_DEFAULTS: dict[str, Any] = dict(OPTIONS.defaults)


def _shapes(logits: torch.Tensor, _options: dict[str, Any]) -> tuple[Any, Any]:
    if logits.dim() != 2:
        raise InvalidArgumentError(f"logits and targets must both be [batch, classes], got {list(logits.shape)}")
    return logits.shape, ()


_OP = LossOp(_native.partial_asymmetric_loss, OPTIONS, ("targets", "priors?"), _shapes)


@documented(OPTIONS)
def partial_asymmetric_loss(
    logits: torch.Tensor, targets: torch.Tensor, *, priors: torch.Tensor | None = None, **options: Any
) -> torch.Tensor:
    """CSL's partial-label loss, summed over the batch (see the module docstring).

    Args:
        logits: ``(B, K)`` float logits.
        targets: ``(B, K)`` in {1, 0, -1}; -1 is a label nobody annotated.
        priors: ``(K,)`` class priors for the selective mode (for example
            :func:`class_priors` of a model's predictions); ``None``: no prior filter.
        {options}

    Returns:
        A 0-dim tensor (float32, float64 for float64 logits) with autograd.

    Shape:
        - logits, targets: ``(B, K)``
        - priors: ``(K,)``
        - output: ``()``
    """
    return run(_OP, logits, {"targets": targets, "priors": priors}, options)


def class_priors(probabilities: torch.Tensor) -> torch.Tensor:
    """Class priors as CSL estimates them: the mean predicted probability of each class.

    Shape:
        - probabilities: ``(N, K)``, sigmoid outputs of a model over the training set
        - output: ``(K,)``
    """
    return _native.class_priors(probabilities=probabilities)


@documented(OPTIONS, ("mode",))
class PartialAsymmetricLoss(OptionsModule):
    """:func:`partial_asymmetric_loss` as a module; ``priors`` (if given) is a buffer, so it
    follows ``.to()`` and the state dict. Each option is an attribute too.

    Args:
        priors: ``(K,)`` class priors for the selective mode.
        {options}

    Shape:
        - logits, targets: ``(B, K)``
        - output: ``()``
    """

    schema = OPTIONS

    def __init__(self, *args: Any, priors: torch.Tensor | None = None, **options: Any) -> None:
        super().__init__(bind_positional(("mode",), args, options, type(self).__name__))
        self.register_buffer("priors", None if priors is None else tensor_of(priors, "priors").float())

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return run(_OP, logits, {"targets": targets, "priors": self.priors}, self.options)
