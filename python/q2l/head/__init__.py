"""The Query2Label head, ML-Decoder, full models on torchvision/timm backbones, model folders, official checkpoints."""

from .checkpoint import (
    head_config_from_state_dict,
    head_from_official,
    read_official_checkpoint,
    split_official_state_dict,
    to_official_state_dict,
)
from .ml_decoder import MLDecoderHead, MLDecoderLayer, load_label_embeddings
from .model import Query2Label, TinyBackbone, freeze_resnet_stem, frozen_batchnorm, timm_backbone, torchvision_backbone
from .query2label import GroupFC, GroupWiseLinear, Query2LabelHead, TorchQuery2LabelHead

__all__ = [
    "GroupFC",
    "GroupWiseLinear",
    "MLDecoderHead",
    "MLDecoderLayer",
    "Query2Label",
    "Query2LabelHead",
    "TinyBackbone",
    "TorchQuery2LabelHead",
    "freeze_resnet_stem",
    "frozen_batchnorm",
    "head_config_from_state_dict",
    "head_from_official",
    "load_label_embeddings",
    "read_official_checkpoint",
    "split_official_state_dict",
    "timm_backbone",
    "to_official_state_dict",
    "torchvision_backbone",
]
