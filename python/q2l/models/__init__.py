"""Full models and their files: :class:`Query2Label` and :class:`MLDecoder` (a backbone plus
a head), backbones by name, model folders (``save_pretrained`` / ``from_pretrained``) and the official
Query2Label checkpoints mapped to the head and back."""

from .backbones import TinyBackbone, freeze_resnet_stem, frozen_batchnorm, timm_backbone, torchvision_backbone
from .ml_decoder import MLDecoder
from .model import BackboneModel, Query2Label, backbone_features, load_pretrained
from .official import (
    head_config_from_state_dict,
    head_from_official,
    read_official_checkpoint,
    split_official_state_dict,
    to_official_state_dict,
)

__all__ = [
    "BackboneModel",
    "MLDecoder",
    "Query2Label",
    "TinyBackbone",
    "backbone_features",
    "freeze_resnet_stem",
    "frozen_batchnorm",
    "head_config_from_state_dict",
    "head_from_official",
    "load_pretrained",
    "read_official_checkpoint",
    "split_official_state_dict",
    "timm_backbone",
    "to_official_state_dict",
    "torchvision_backbone",
]
