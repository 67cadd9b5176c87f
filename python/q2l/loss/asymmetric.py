"""The asymmetric loss (Ridnik et al., ICCV 2021), as Query2Label trains with it.

For a logit ``x`` with ``p = sigmoid(x)``, the shifted probability of a negative
``p_m = max(p - clip, 0)`` and a clamp ``eps``, each element's loss is::

    positive (y = 1):  -(1 - p)^gamma_pos * log(max(p, eps))
    negative (y = 0):  -p_m^gamma_neg * log(max(1 - p_m, eps))

and a soft target ``y`` in (0, 1) mixes both as the official code does. Everything is
computed in the log-sigmoid domain in float32 (float64 for float64 logits), so logits
of +-100 give finite losses and gradients in every dtype, float16 included.
"""

from typing import Any

import torch

from .. import _native
from .._arrays import tensor_of
from .._options import Options, OptionsModule, bind_positional, documented
from ..errors import InvalidArgumentError
from ._function import run
from ._ops import LossOp

#: The options, declared once in Rust (``AslOptions`` in ``src/loss/options.rs``).
OPTIONS = Options("asymmetric_loss")

#: The defaults of :class:`AsymmetricLoss` and :func:`asymmetric_loss` (the official ASL
#: class's, but with the gradient through the focal weight).
DEFAULTS: dict[str, Any] = dict(OPTIONS.defaults)

#: Named configurations reproducing each reference implementation exactly (every option).
#:
#: * ``"asl"``: ``AsymmetricLoss`` of the official ASL repository (its defaults, the focal
#:   weight detached, summed).
#: * ``"query2label"``: Query2Label's training criterion, ``AsymmetricLossOptimized`` as
#:   ``main_mlc.py`` builds it (gamma_neg=2, gamma_pos=0, clip=0, eps=1e-5), averaged over
#:   the batch and classes and multiplied by 1000.
#: * ``"mmpretrain"``: mmpretrain's ``AsymmetricLoss`` in its multi-label head (gamma_pos=0,
#:   gamma_neg=4, clip=0.05, eps=1e-8), summed and divided by the batch size.
PRESETS: dict[str, dict[str, Any]] = {
    "asl": OPTIONS.resolve({"disable_torch_grad_focal_loss": True}),
    "query2label": OPTIONS.resolve(
        {"gamma_neg": 2.0, "gamma_pos": 0.0, "clip": 0.0, "eps": 1e-5, "reduction": "mean", "scale": 1000.0}
    ),
    "mmpretrain": OPTIONS.resolve({"gamma_pos": 0.0, "reduction": "batchmean"}),
}

#: The official class's positional arguments, in order.
_POSITIONAL = ("gamma_neg", "gamma_pos", "clip", "eps", "disable_torch_grad_focal_loss")

_OP = LossOp(
    _native.asymmetric_loss,
    OPTIONS,
    ("targets", "class_weight?"),
    lambda logits, o: (logits.shape, logits.shape if o["reduction"] == "none" else ()),
)


def _official(options: dict[str, Any]) -> dict[str, Any]:
    # The official classes take clip=None for "no clipping".
    if options.get("clip", 0.0) is None:
        options["clip"] = 0.0
    return options


@documented(OPTIONS)
def asymmetric_loss(
    logits: torch.Tensor, targets: torch.Tensor, *, class_weight: torch.Tensor | None = None, **options: Any
) -> torch.Tensor:
    """Asymmetric loss of multi-label logits, with a fused Rust forward and backward.

    Args:
        logits: Raw scores, any floating dtype, last dimension the classes.
        targets: Same shape as ``logits``: 1 (present), 0 (absent), -1 (not annotated:
            contributes neither loss nor gradient) or a soft label in (0, 1). Bool,
            integer or floating dtype.
        class_weight: Optional non-negative weight per class, shape ``[C]``.
        {options}

    Returns:
        The loss: a 0-dim tensor, or per element for ``reduction="none"``; float32 for
        float16/bfloat16/float32 logits and float64 for float64 logits. An empty batch,
        or one with every target -1, gives 0 and zero gradients rather than 0/0.

    Raises:
        InvalidArgumentError: an unknown option, a value out of range, NaN logits (with
            ``validate``), or tensors of the wrong shape or device.

    Shape:
        - logits: ``(*, C)``
        - targets: ``(*, C)``
        - output: ``()`` or ``(*, C)`` for ``reduction="none"``
    """
    return run(_OP, logits, {"targets": targets, "class_weight": class_weight}, _official(options))


@documented(OPTIONS, _POSITIONAL)
class AsymmetricLoss(OptionsModule):
    """Asymmetric loss module, a drop-in for the official ``AsymmetricLoss``.

    The positional arguments and their defaults are those of the official class in the
    Query2Label repository (``lib/models/aslloss.py``: ``gamma_neg, gamma_pos, clip, eps,
    disable_torch_grad_focal_loss``), so replacing the import is enough. The ASL
    repository's class differs only in detaching the focal weight by default: use
    ``AsymmetricLoss.from_preset("asl")`` for it. The official Query2Label class also
    clamps probabilities at ``1 - eps``, which has no effect in float32 and is not
    reproduced. Each option is an attribute too, checked again when set.

    Args:
        class_weight: Optional weight per class, shape ``[C]``; kept as a buffer, so it
            follows ``.to()`` and is saved in the ``state_dict``.
        {options}

    Shape:
        - logits: ``(*, C)``
        - targets: ``(*, C)``, values in {-1, 0, 1} or soft in [0, 1]
        - output: ``()`` or ``(*, C)`` for ``reduction="none"``

    Example:
        >>> criterion = AsymmetricLoss.from_preset("query2label")
        >>> loss = criterion(model(images), targets)
    """

    schema = OPTIONS
    class_weight: torch.Tensor | None

    def __init__(self, *args: Any, class_weight: torch.Tensor | None = None, **options: Any) -> None:
        super().__init__(_official(bind_positional(_POSITIONAL, args, options, type(self).__name__)))
        if class_weight is not None:
            class_weight = tensor_of(class_weight, "class_weight").clone()
        self.register_buffer("class_weight", class_weight)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "AsymmetricLoss":
        """Builds the loss of a reference implementation by name (see :data:`PRESETS`).

        Args:
            name: ``"asl"``, ``"query2label"`` or ``"mmpretrain"``.
            **overrides: Constructor arguments that replace the preset's.
        """
        if name not in PRESETS:
            raise InvalidArgumentError(f"unknown preset {name!r}; known presets: {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return run(_OP, logits, {"targets": targets, "class_weight": self.class_weight}, self.options)


#: Where the official ``AsymmetricLossOptimized``'s defaults differ from the options'.
_OPTIMIZED = {"eps": 1e-5, "reduction": "mean", "scale": 1000.0}


@documented(OPTIONS, _POSITIONAL, _OPTIMIZED)
class AsymmetricLossOptimized(AsymmetricLoss):
    """Query2Label's training criterion, a drop-in for its ``AsymmetricLossOptimized``.

    Same arguments and defaults as the official class (``eps=1e-5``); the loss is the
    mean over batch and classes times 1000, as in the official code. ``main_mlc.py``
    builds it with ``gamma_neg=2, gamma_pos=0, clip=0``, which is the ``"query2label"``
    preset. (The ASL repository's class of the same name sums instead: use
    ``AsymmetricLoss(..., reduction="sum")`` for that one.)
    """

    def __init__(self, *args: Any, **options: Any) -> None:
        options = bind_positional(_POSITIONAL, args, options, type(self).__name__)
        super().__init__(**{**_OPTIMIZED, **options})
