"""Losses: the asymmetric loss for multi-label training, its single-label variant, and CSL's
partial-label loss."""

from .asymmetric import (
    PRESETS,
    AsymmetricLoss,
    AsymmetricLossOptimized,
    asymmetric_loss,
)
from .partial import PARTIAL_MODES, PartialAsymmetricLoss, class_priors, partial_asymmetric_loss
from .single_label import AsymmetricLossSingleLabel, asymmetric_loss_single_label

__all__ = [
    "PARTIAL_MODES",
    "PRESETS",
    "AsymmetricLoss",
    "AsymmetricLossOptimized",
    "AsymmetricLossSingleLabel",
    "PartialAsymmetricLoss",
    "asymmetric_loss",
    "asymmetric_loss_single_label",
    "class_priors",
    "partial_asymmetric_loss",
]
