"""The Query2Label head, full models on torchvision/timm backbones, official checkpoints."""

from .query2label import GroupWiseLinear, Query2LabelHead, TorchQuery2LabelHead

__all__ = ["GroupWiseLinear", "Query2LabelHead", "TorchQuery2LabelHead"]
