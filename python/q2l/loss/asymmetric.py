"""The asymmetric loss (Ridnik et al., ICCV 2021), as Query2Label trains with it.

For a logit ``x`` with ``p = sigmoid(x)``, the shifted probability of a negative
``p_m = max(p - clip, 0)`` and a clamp ``eps``, each element's loss is::

    positive (y = 1):  -(1 - p)^gamma_pos * log(max(p, eps))
    negative (y = 0):  -p_m^gamma_neg * log(max(1 - p_m, eps))

and a soft target ``y`` in (0, 1) mixes both as the official code does. Everything is
computed in the log-sigmoid domain in float32 (float64 for float64 logits), so logits
of +-100 give finite losses and gradients in every dtype, float16 included.
"""

import torch
from torch import nn

from .. import _native
from ..errors import InvalidArgumentError
from ._function import run
from ._ops import asymmetric_loss_op

#: The defaults of :class:`AsymmetricLoss` and :func:`asymmetric_loss` (the official ASL
#: class's, but with the gradient through the focal weight), defined once in Rust
#: (``AslOptions::default()`` in ``src/loss/options.rs``).
DEFAULTS: dict = dict(_native.ASL_DEFAULTS)

#: Named configurations reproducing each reference implementation exactly.
#:
#: * ``"asl"``: ``AsymmetricLoss`` of the official ASL repository (its defaults, the focal
#:   weight detached, summed).
#: * ``"query2label"``: Query2Label's training criterion, ``AsymmetricLossOptimized`` as
#:   ``main_mlc.py`` builds it (gamma_neg=2, gamma_pos=0, clip=0, eps=1e-5), averaged over
#:   the batch and classes and multiplied by 1000.
#: * ``"mmpretrain"``: mmpretrain's ``AsymmetricLoss`` in its multi-label head (gamma_pos=0,
#:   gamma_neg=4, clip=0.05, eps=1e-8), summed and divided by the batch size.
PRESETS = {
    "asl": {**DEFAULTS, "disable_torch_grad_focal_loss": True},
    "query2label": {
        **DEFAULTS,
        "gamma_neg": 2.0,
        "gamma_pos": 0.0,
        "clip": 0.0,
        "eps": 1e-5,
        "reduction": "mean",
        "scale": 1000.0,
    },
    "mmpretrain": {**DEFAULTS, "gamma_pos": 0.0, "reduction": "batchmean"},
}

_REDUCTIONS = tuple(_native.REDUCTIONS)


def asymmetric_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    gamma_neg: float = DEFAULTS["gamma_neg"],
    gamma_pos: float = DEFAULTS["gamma_pos"],
    clip: float | None = DEFAULTS["clip"],
    eps: float = DEFAULTS["eps"],
    disable_torch_grad_focal_loss: bool = DEFAULTS["disable_torch_grad_focal_loss"],
    reduction: str = DEFAULTS["reduction"],
    scale: float = DEFAULTS["scale"],
    class_weight: torch.Tensor | None = None,
    validate: bool = True,
    backend: str = "auto",
) -> torch.Tensor:
    """Asymmetric loss of multi-label logits, with a fused Rust forward and backward.

    Args:
        logits: Raw scores, any floating dtype, last dimension the classes.
        targets: Same shape as ``logits``: 1 (present), 0 (absent), -1 (not annotated:
            contributes neither loss nor gradient) or a soft label in (0, 1). Bool,
            integer or floating dtype.
        gamma_neg: Focusing exponent of negatives.
        gamma_pos: Focusing exponent of positives.
        clip: Probability margin shifted off negatives; 0 or None disables it.
        eps: Lower clamp of the probabilities inside the logarithms.
        disable_torch_grad_focal_loss: Stop the gradient through the focal weight, as
            the official flag of that name does (without touching global grad mode).
        reduction: ``"sum"``, ``"mean"`` (over annotated elements), ``"batchmean"`` (sum
            divided by the number of rows) or ``"none"``.
        scale: Multiplier applied after the reduction.
        class_weight: Optional non-negative weight per class, shape ``[C]``.
        validate: Raise ``ValueError`` on NaN logits and on targets outside {-1} and
            [0, 1]. With ``False`` no value is checked and NaN propagates to the loss.
        backend: ``"auto"`` (fused kernel on CPU, libtorch ops elsewhere), ``"kernel"``
            or ``"tensor"``.

    Returns:
        The loss: a 0-dim tensor, or per element for ``reduction="none"``; float32 for
        float16/bfloat16/float32 logits and float64 for float64 logits. An empty batch,
        or one with every target -1, gives 0 and zero gradients rather than 0/0.

    Shape:
        - logits: ``(*, C)``
        - targets: ``(*, C)``
        - output: ``()`` or ``(*, C)`` for ``reduction="none"``
    """
    kwargs = dict(
        gamma_pos=float(gamma_pos),
        gamma_neg=float(gamma_neg),
        clip=0.0 if clip is None else float(clip),
        eps=float(eps),
        disable_torch_grad_focal_loss=bool(disable_torch_grad_focal_loss),
        reduction=reduction,
        scale=float(scale),
        validate=bool(validate),
        backend=backend,
    )
    return run(
        _native.asymmetric_loss,
        asymmetric_loss_op,
        logits,
        {"targets": targets, "class_weight": class_weight},
        kwargs,
    )


class AsymmetricLoss(nn.Module):
    """Asymmetric loss module, a drop-in for the official ``AsymmetricLoss``.

    The positional arguments and their defaults are those of the official class in the
    Query2Label repository (``lib/models/aslloss.py``), so replacing the import is enough.
    The ASL repository's class differs only in detaching the focal weight by default:
    use ``AsymmetricLoss.from_preset("asl")`` for it. The official Query2Label class also
    clamps probabilities at ``1 - eps``, which has no effect in float32 and is not
    reproduced.

    Args:
        gamma_neg: Focusing exponent of negatives.
        gamma_pos: Focusing exponent of positives.
        clip: Probability margin shifted off negatives; 0 or None disables it.
        eps: Lower clamp of the probabilities inside the logarithms.
        disable_torch_grad_focal_loss: Stop the gradient through the focal weight.
        reduction: ``"sum"`` (official), ``"mean"``, ``"batchmean"`` or ``"none"``.
        scale: Multiplier applied after the reduction.
        class_weight: Optional weight per class, shape ``[C]``; kept as a buffer, so it
            follows ``.to()`` and is saved in the ``state_dict``.
        validate: See :func:`asymmetric_loss`.
        backend: See :func:`asymmetric_loss`.

    Shape:
        - logits: ``(*, C)``
        - targets: ``(*, C)``, values in {-1, 0, 1} or soft in [0, 1]
        - output: ``()`` or ``(*, C)`` for ``reduction="none"``

    Example:
        >>> criterion = AsymmetricLoss.from_preset("query2label")
        >>> loss = criterion(model(images), targets)
    """

    class_weight: torch.Tensor | None

    def __init__(
        self,
        gamma_neg: float = DEFAULTS["gamma_neg"],
        gamma_pos: float = DEFAULTS["gamma_pos"],
        clip: float | None = DEFAULTS["clip"],
        eps: float = DEFAULTS["eps"],
        disable_torch_grad_focal_loss: bool = DEFAULTS["disable_torch_grad_focal_loss"],
        *,
        reduction: str = DEFAULTS["reduction"],
        scale: float = DEFAULTS["scale"],
        class_weight: torch.Tensor | None = None,
        validate: bool = True,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        # Checked when built rather than at the first forward; the names come from Rust.
        if reduction not in _REDUCTIONS:
            raise InvalidArgumentError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.gamma_neg = float(gamma_neg)
        self.gamma_pos = float(gamma_pos)
        self.clip = 0.0 if clip is None else float(clip)
        self.eps = float(eps)
        self.disable_torch_grad_focal_loss = bool(disable_torch_grad_focal_loss)
        self.reduction = reduction
        self.scale = float(scale)
        self.validate = bool(validate)
        self.backend = backend
        if class_weight is not None:
            class_weight = torch.as_tensor(class_weight).detach().clone()
        self.register_buffer("class_weight", class_weight)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "AsymmetricLoss":
        """Builds the loss of a reference implementation by name (see :data:`PRESETS`).

        Args:
            name: ``"asl"``, ``"query2label"`` or ``"mmpretrain"``.
            **overrides: Constructor arguments that replace the preset's.
        """
        if name not in PRESETS:
            raise InvalidArgumentError(f"unknown preset {name!r}; known presets: {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return asymmetric_loss(
            logits,
            targets,
            gamma_neg=self.gamma_neg,
            gamma_pos=self.gamma_pos,
            clip=self.clip,
            eps=self.eps,
            disable_torch_grad_focal_loss=self.disable_torch_grad_focal_loss,
            reduction=self.reduction,
            scale=self.scale,
            class_weight=self.class_weight,
            validate=self.validate,
            backend=self.backend,
        )

    def extra_repr(self) -> str:
        return (
            f"gamma_neg={self.gamma_neg}, gamma_pos={self.gamma_pos}, clip={self.clip}, "
            f"eps={self.eps}, disable_torch_grad_focal_loss={self.disable_torch_grad_focal_loss}, "
            f"reduction={self.reduction!r}, scale={self.scale}"
        )


class AsymmetricLossOptimized(AsymmetricLoss):
    """Query2Label's training criterion, a drop-in for its ``AsymmetricLossOptimized``.

    Same arguments and defaults as the official class (``eps=1e-5``); the loss is the
    mean over batch and classes times 1000, as in the official code. ``main_mlc.py``
    builds it with ``gamma_neg=2, gamma_pos=0, clip=0``, which is the ``"query2label"``
    preset. (The ASL repository's class of the same name sums instead: use
    ``AsymmetricLoss(..., reduction="sum")`` for that one.)
    """

    def __init__(
        self,
        gamma_neg: float = 4,
        gamma_pos: float = 1,
        clip: float | None = 0.05,
        eps: float = 1e-5,
        disable_torch_grad_focal_loss: bool = False,
        **kwargs,
    ) -> None:
        kwargs.setdefault("reduction", "mean")
        kwargs.setdefault("scale", 1000.0)
        super().__init__(gamma_neg, gamma_pos, clip, eps, disable_torch_grad_focal_loss, **kwargs)
