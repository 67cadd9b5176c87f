"""q2l-rs: Query2Label for PyTorch, with its heavy lifting in Rust.

Public parts (each a drop-in for the usual PyTorch piece):

* :mod:`q2l.loss` -- the asymmetric loss (:class:`AsymmetricLoss`) and its single-label
  variant, fused forward+backward kernels.
* :mod:`q2l.heads` -- the Query2Label head (:class:`Query2LabelHead`) and ML-Decoder
  (:class:`MLDecoderHead`).
* :mod:`q2l.models` -- full models (:class:`Query2Label`, :class:`MLDecoder`), backbones by
  name, model folders (:func:`load_pretrained`)
  and official checkpoints.
* :mod:`q2l.metrics` -- mAP (every definition, named), threshold and top-k metrics, and a
  streaming accumulator.
* :mod:`q2l.errors` -- the exceptions: every one is a :class:`Q2LError` and the built-in
  it stands for (``ValueError``, ``TypeError``, ``OSError``, ...).

``import torch`` happens first: the native module resolves libtorch's symbols from it.
"""

import torch  # must precede the native import

from ._torch_check import check_torch_version

check_torch_version(torch.__version__)

from . import _native, data, errors, metrics
from .errors import Q2LError
from .heads import MLDecoderHead, Query2LabelHead
from .loss import (
    PRESETS,
    AsymmetricLoss,
    AsymmetricLossOptimized,
    AsymmetricLossSingleLabel,
    asymmetric_loss,
    asymmetric_loss_single_label,
)
from .models import MLDecoder, Query2Label, load_pretrained

__version__ = _native.__version__

__all__ = [
    "PRESETS",
    "AsymmetricLoss",
    "AsymmetricLossOptimized",
    "AsymmetricLossSingleLabel",
    "MLDecoder",
    "MLDecoderHead",
    "Q2LError",
    "Query2Label",
    "Query2LabelHead",
    "__version__",
    "asymmetric_loss",
    "asymmetric_loss_single_label",
    "data",
    "errors",
    "load_pretrained",
    "metrics",
]
