"""From a :class:`~q2l.app.config.TrainConfig` to datasets, transforms, model and device."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import torch
from torch import nn

from .. import data
from ..head import Query2Label
from .config import TrainConfig


def device_of(cfg: TrainConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(cfg.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {cfg.device!r} requested but CUDA is not available")
    return dev


def _split(value, default):
    return value if value is not None else default


def datasets(cfg: TrainConfig) -> Tuple[data.Dataset, data.Dataset]:
    """The training and validation datasets the configuration names."""
    root = Path(cfg.root) if cfg.root is not None else None
    if cfg.dataset == "scenes":
        return (data.Dataset.scenes(n=cfg.train_size, size=cfg.img_size, seed=cfg.seed, split="train"),
                data.Dataset.scenes(n=cfg.val_size, size=cfg.img_size, seed=cfg.seed, split="val"))
    if cfg.dataset == "fashion":
        kw = dict(size=cfg.img_size, seed=cfg.seed, root=root or data.FASHION_MNIST_ROOT)
        return (data.Dataset.fashion_mnist_scenes("train", n=cfg.train_size, **kw),
                data.Dataset.fashion_mnist_scenes("test", n=cfg.val_size, **kw))
    if cfg.dataset == "coco":
        tr, va = _split(cfg.train_split, "train2014"), _split(cfg.val_split, "val2014")
        return (data.Dataset.coco(root / "annotations" / f"instances_{tr}.json", root / tr),
                data.Dataset.coco(root / "annotations" / f"instances_{va}.json", root / va))
    if cfg.dataset == "voc":
        return (data.Dataset.voc(root, _split(cfg.train_split, "trainval")),
                data.Dataset.voc(root, _split(cfg.val_split, "test")))
    if cfg.dataset == "nuswide":
        return (data.Dataset.nus_wide(root, _split(cfg.train_split, "train")),
                data.Dataset.nus_wide(root, _split(cfg.val_split, "test")))
    if cfg.dataset == "openimages":
        classes = root / "class-descriptions.csv"
        cc = classes if classes.exists() else None
        if cfg.train_list is None or cfg.val_list is None:
            raise ValueError("dataset 'openimages' needs --train-list and --val-list (labels CSVs); --root is the image folder")
        return (data.Dataset.open_images(cfg.train_list, root, cc), data.Dataset.open_images(cfg.val_list, root, cc))
    if cfg.dataset == "csv":
        train = data.Dataset.from_list(cfg.train_list, image_root=root)
        if cfg.val_list is None:
            raise ValueError("dataset 'csv' needs --val-list as well")
        return train, data.Dataset.from_list(cfg.val_list, image_root=root, classes=train.classes)
    raise ValueError(f"unknown dataset {cfg.dataset!r}")


def transforms(cfg: TrainConfig) -> Tuple[data.Compose, data.Compose]:
    """The training transform (resize, flip, Cutout, RandAugment as configured) and the validation one."""
    train = data.train_transform(cfg.img_size, cutout=cfg.cutout, randaugment=cfg.randaugment, flip=cfg.flip)
    return train, data.eval_transform(cfg.img_size)


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class TinyBackbone(nn.Sequential):
    """A six-layer CNN with stride 8 and 128 channels: small enough to train on a laptop CPU."""

    def __init__(self, width: int = 32) -> None:
        w = width
        super().__init__(_block(3, w, 2), _block(w, w, 1), _block(w, 2 * w, 2), _block(2 * w, 2 * w, 1),
                         _block(2 * w, 4 * w, 2), _block(4 * w, 4 * w, 1))


class LinearBaseline(nn.Module):
    """The paper's baseline: the same backbone, global average pooling and one linear layer."""

    def __init__(self, q2l: Query2Label, num_classes: int) -> None:
        super().__init__()
        self.backbone = q2l.backbone
        self.channels_last = q2l.channels_last
        self.fc = nn.Linear(q2l.head.in_channels, num_classes)

    # The same feature extraction as Query2Label's (dicts, lists, channels-last).
    _features = Query2Label._features

    def forward(self, images: torch.Tensor, return_attention: bool = False):
        if return_attention:
            raise ValueError("the linear baseline has no attention maps")
        return self.fc(self._features(images).mean((2, 3)))


def model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    """Backbone (``tiny``, a torchvision name, or ``timm:<name>``) plus the configured head."""
    head = dict(d_model=cfg.d_model, nhead=cfg.nhead, num_encoder_layers=cfg.enc_layers,
                num_decoder_layers=cfg.dec_layers, dim_feedforward=cfg.dim_feedforward, dropout=cfg.dropout,
                pre_norm=cfg.pre_norm)
    if cfg.backbone == "tiny":
        if cfg.weights is not None:
            raise ValueError("--weights applies to torchvision/timm backbones, not 'tiny'")
        full = Query2Label(TinyBackbone(), num_classes, **head)
    else:
        full = Query2Label(cfg.backbone, num_classes, weights=cfg.weights, freeze_stem=cfg.freeze_stem, **head)
    return full if cfg.head == "q2l" else LinearBaseline(full, num_classes)


def prepare(image: torch.Tensor, size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """One uint8 ``[3, H, W]`` image as the validation transform sees it: the resized uint8
    image (for display) and the normalised float batch of one (for the model)."""
    resized = data.eval_transform(size).augment(image.permute(1, 2, 0).contiguous())
    return resized, data.transforms.normalize_on_device(resized[None])
