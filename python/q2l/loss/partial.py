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

import torch
from torch import nn

from .. import _native
from ..errors import InvalidArgumentError
from ._function import run
from ._ops import partial_asymmetric_loss_op

#: The modes, and the official ``train.py`` defaults, defined once in Rust
#: (``src/loss/partial.rs``).
PARTIAL_MODES: tuple[str, ...] = tuple(_native.PARTIAL_MODES)
PARTIAL_DEFAULTS: dict = dict(_native.PARTIAL_DEFAULTS)


def _check_mode(mode: str) -> None:
    if mode not in PARTIAL_MODES:
        raise InvalidArgumentError(f"unknown partial-label mode {mode!r}; expected one of {', '.join(PARTIAL_MODES)}")


def partial_asymmetric_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    mode: str = "negative",
    priors: torch.Tensor | None = None,
    gamma_pos: float = PARTIAL_DEFAULTS["gamma_pos"],
    gamma_neg: float = PARTIAL_DEFAULTS["gamma_neg"],
    gamma_unann: float = PARTIAL_DEFAULTS["gamma_unann"],
    alpha_pos: float = PARTIAL_DEFAULTS["alpha_pos"],
    alpha_neg: float = PARTIAL_DEFAULTS["alpha_neg"],
    alpha_unann: float = PARTIAL_DEFAULTS["alpha_unann"],
    clip: float = PARTIAL_DEFAULTS["clip"],
    likelihood_topk: int = PARTIAL_DEFAULTS["likelihood_topk"],
    prior_threshold: float = PARTIAL_DEFAULTS["prior_threshold"],
    backend: str = "auto",
) -> torch.Tensor:
    """CSL's partial-label loss, summed over the batch (see the module docstring).

    Args:
        logits: ``(B, K)`` float logits.
        targets: ``(B, K)`` in {1, 0, -1}; -1 is a label nobody annotated.
        mode: ``"negative"``, ``"ignore"``, ``"ignore_normalize_classes"`` or ``"selective"``.
        priors: ``(K,)`` class priors for the selective mode (for example
            :func:`class_priors` of a model's predictions); ``None``: no prior filter.
        gamma_pos, gamma_neg, gamma_unann: Focusing of positives, negatives, unannotated.
        alpha_pos, alpha_neg, alpha_unann: Their weights.
        clip: Probability margin added to the probability of absence (0: none).
        likelihood_topk: Unannotated labels per image the selective mode leaves out.
        prior_threshold: Classes with a prior above it leave their unannotated labels out
            (selective mode with priors; 0 turns it off).
        backend: ``"auto"`` (the fused kernel for CPU logits, libtorch ops elsewhere),
            ``"kernel"`` (CPU only) or ``"tensor"`` (libtorch ops everywhere).

    Returns:
        A 0-dim tensor (float32, float64 for float64 logits) with autograd.

    Shape:
        - logits, targets: ``(B, K)``
        - priors: ``(K,)``
        - output: ``()``
    """
    _check_mode(mode)
    options = dict(
        mode=mode,
        gamma_pos=float(gamma_pos),
        gamma_neg=float(gamma_neg),
        gamma_unann=float(gamma_unann),
        alpha_pos=float(alpha_pos),
        alpha_neg=float(alpha_neg),
        alpha_unann=float(alpha_unann),
        clip=float(clip),
        likelihood_topk=int(likelihood_topk),
        prior_threshold=float(prior_threshold),
        backend=backend,
    )
    return run(
        _native.partial_asymmetric_loss,
        partial_asymmetric_loss_op,
        logits,
        {"targets": targets, "priors": priors},
        options,
    )


def class_priors(probabilities: torch.Tensor) -> torch.Tensor:
    """Class priors as CSL estimates them: the mean predicted probability of each class.

    Shape:
        - probabilities: ``(N, K)``, sigmoid outputs of a model over the training set
        - output: ``(K,)``
    """
    return _native.class_priors(probabilities=probabilities)


class PartialAsymmetricLoss(nn.Module):
    """:func:`partial_asymmetric_loss` as a module; ``priors`` (if given) is a buffer, so it
    follows ``.to()`` and the state dict. Arguments as the function's.

    Shape:
        - logits, targets: ``(B, K)``
        - output: ``()``
    """

    def __init__(
        self, mode: str = "negative", priors: torch.Tensor | None = None, *, backend: str = "auto", **options
    ) -> None:
        super().__init__()
        _check_mode(mode)
        unknown = sorted(set(options) - set(PARTIAL_DEFAULTS))
        if unknown:
            raise InvalidArgumentError(f"unknown option {unknown[0]!r}; expected {', '.join(PARTIAL_DEFAULTS)}")
        self.mode = mode
        self.backend = backend
        self.options = {**PARTIAL_DEFAULTS, **options}
        self.register_buffer("priors", None if priors is None else torch.as_tensor(priors, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return partial_asymmetric_loss(
            logits, targets, mode=self.mode, priors=self.priors, backend=self.backend, **self.options
        )

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, backend={self.backend!r}, " + ", ".join(
            f"{k}={v}" for k, v in self.options.items()
        )
