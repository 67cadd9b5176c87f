"""Losses: the asymmetric loss for multi-label training and its single-label variant."""

from .asymmetric import (
    PRESETS,
    AsymmetricLoss,
    AsymmetricLossOptimized,
    asymmetric_loss,
)
from .single_label import AsymmetricLossSingleLabel, asymmetric_loss_single_label

__all__ = [
    "PRESETS",
    "AsymmetricLoss",
    "AsymmetricLossOptimized",
    "AsymmetricLossSingleLabel",
    "asymmetric_loss",
    "asymmetric_loss_single_label",
]
