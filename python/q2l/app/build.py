"""From a :class:`~q2l.app.config.TrainConfig` to datasets, transforms, model and device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import data
from ..errors import InvalidArgumentError
from ..models import MLDecoder, Query2Label, TinyBackbone, backbone_features  # noqa: F401  (TinyBackbone: an old home)
from ..models.backbone_weights import record as pretrained_source
from ..models.ml_decoder import label_embeddings_arg
from .config import TrainConfig


def device_of(cfg: TrainConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(cfg.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError(f"device {cfg.device!r} requested but CUDA is not available")
    return dev


def _split(value, default):
    return value if value is not None else default


def datasets(
    cfg: TrainConfig, splits: tuple[str, ...] = ("train", "val"), classes: list[str] | None = None
) -> tuple[data.Dataset, ...]:
    """The datasets the configuration names, one per entry of ``splits`` (``"train"``,
    ``"val"``); a split not asked for is not read (``q2l evaluate`` reads only validation).
    ``classes`` fixes the label table of a ``csv`` validation list (a model's classes).
    ``hide_annotations`` applies to the training split only."""
    return tuple(
        _hidden(cfg, _dataset(cfg, split, classes)) if split == "train" else _dataset(cfg, split, classes)
        for split in splits
    )


def _hidden(cfg: TrainConfig, train: data.Dataset) -> data.Dataset:
    if cfg.hide_annotations == 0:
        return train
    return train.with_hidden_annotations(cfg.hide_annotations, seed=cfg.seed)


def _dataset(cfg: TrainConfig, split: str, classes: list[str] | None) -> data.Dataset:
    root = Path(cfg.root) if cfg.root is not None else None
    train = split == "train"
    if cfg.dataset == "scenes":
        n = cfg.train_size if train else cfg.val_size
        return data.Dataset.scenes(n=n, size=cfg.img_size, seed=cfg.seed, split=split)
    if cfg.dataset == "fashion":
        n = cfg.train_size if train else cfg.val_size
        return data.Dataset.fashion_mnist_scenes(
            "train" if train else "test",
            n=n,
            size=cfg.img_size,
            seed=cfg.seed,
            root=root or data.FASHION_MNIST_ROOT,
            cell_labels=cfg.cell_labels,
        )
    listed = cfg.train_list if train else cfg.val_list
    if cfg.dataset == "shards":
        if listed is None:
            raise InvalidArgumentError(f"dataset 'shards' needs --{'data' if train else 'val-data'} shards:PATTERN")
        # Validation shares the training shards' label table unless the model gives one.
        table: list[str] | Path | None = classes
        if table is None and cfg.train_list is not None:
            beside = Path(data.expand_shards(cfg.train_list)[0]).parent / "classes.txt"
            table = beside if beside.is_file() else None
        return data.Dataset.shards(listed, classes=table)
    if cfg.dataset == "csv":
        # Relative image paths start at --root, or at each list's own folder without it.
        if listed is None:
            raise InvalidArgumentError(f"dataset 'csv' needs --{split}-list")
        if train:
            return data.Dataset.from_list(listed, image_root=root)
        # The label table is the model's or the training list's, so that logits line up.
        if classes is None and cfg.train_list is not None:
            classes = data.Dataset.from_list(cfg.train_list, image_root=root).classes
        return data.Dataset.from_list(listed, image_root=root, classes=classes)
    if root is None:  # refused by config.validate already; the readers below need a folder
        raise InvalidArgumentError(f"--root is needed for dataset {cfg.dataset!r}")
    if cfg.dataset == "coco":
        name = _split(cfg.train_split, "train2014") if train else _split(cfg.val_split, "val2014")
        return data.Dataset.coco(root / "annotations" / f"instances_{name}.json", root / name)
    if cfg.dataset == "voc":
        return data.Dataset.voc(root, _split(cfg.train_split, "trainval") if train else _split(cfg.val_split, "test"))
    if cfg.dataset == "nuswide":
        return data.Dataset.nus_wide(root, _split(cfg.train_split, "train") if train else _split(cfg.val_split, "test"))
    if cfg.dataset == "openimages":
        table = root / "class-descriptions.csv"
        if listed is None:
            raise InvalidArgumentError(
                f"dataset 'openimages' needs --{split}-list (a labels CSV); --root is the image folder"
            )
        return data.Dataset.open_images(listed, root, table if table.exists() else None)
    raise InvalidArgumentError(f"unknown dataset {cfg.dataset!r}")


def transforms(cfg: TrainConfig) -> tuple[data.Compose, data.Compose]:
    """The training transform (resize, flip, Cutout, RandAugment as configured) and the validation one."""
    train = data.train_transform(cfg.img_size, cutout=cfg.cutout, randaugment=cfg.randaugment, flip=cfg.flip)
    return train, data.eval_transform(cfg.img_size)


class LinearBaseline(nn.Module):
    """The paper's baseline: the same backbone, global average pooling and one linear layer."""

    def __init__(self, q2l: Query2Label, num_classes: int) -> None:
        super().__init__()
        self.backbone = q2l.backbone
        self.channels_last = q2l.channels_last
        self.fc = nn.Linear(q2l.head.in_channels, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(backbone_features(self.backbone, images, self.channels_last).mean((2, 3)))

    def export(self) -> nn.Module:
        return self


def label_embeddings(cfg: TrainConfig, num_classes: int) -> torch.Tensor | None:
    """The training labels' embeddings of ``--label-embeddings`` (one row per class, in the
    dataset's class order), or ``None`` without that option."""
    if cfg.label_embeddings is None:
        return None
    emb = label_embeddings_arg(cfg.label_embeddings, f"--label-embeddings {cfg.label_embeddings!r}")
    if len(emb) != num_classes:
        raise InvalidArgumentError(
            f"--label-embeddings {cfg.label_embeddings!r} has {len(emb)} rows but the dataset has {num_classes} "
            f"classes: one row per class, in the order of the dataset's classes"
        )
    return emb


def model(
    cfg: TrainConfig, num_classes: int, *, backbone_weights: bool = True, embeddings: torch.Tensor | None = None
) -> nn.Module:
    """Backbone (``tiny``, a torchvision name, or ``timm:<name>``) plus the configured head.

    Args:
        backbone_weights: Load the backbone's pretrained weights (``--weights``,
            ``--pretrained``). False when a checkpoint will supply every weight: the model
            then only records what the backbone started from.
        embeddings: The label embeddings of a zero-shot ML-Decoder, when they come from a
            checkpoint rather than from ``--label-embeddings``.
    """
    # What both decoders take, under the same names.
    shared: dict[str, Any] = dict(
        weights=cfg.weights if backbone_weights else None,
        pretrained=cfg.pretrained and backbone_weights,
        freeze_stem=cfg.freeze_stem,
        d_model=cfg.d_model,
        nhead=cfg.nhead,
        dim_feedforward=cfg.dim_feedforward,
        dropout=cfg.dropout,
        num_groups=cfg.num_groups,
    )
    full: Query2Label | MLDecoder
    if cfg.head == "ml-decoder":
        if embeddings is None:
            embeddings = label_embeddings(cfg, num_classes)
        full = MLDecoder(cfg.backbone, num_classes, label_embeddings=embeddings, num_layers=cfg.dec_layers, **shared)
    else:
        full = Query2Label(
            cfg.backbone,
            num_classes,
            num_encoder_layers=cfg.enc_layers,
            num_decoder_layers=cfg.dec_layers,
            pre_norm=cfg.pre_norm,
            **shared,
        )
    if not backbone_weights:
        source = pretrained_source(cfg.backbone, cfg.weights, cfg.pretrained)
        full.backbone_weights = None if source is None else source.to_json()
    if cfg.head == "linear":
        assert isinstance(full, Query2Label)
        return LinearBaseline(full, num_classes)
    return full


def prepare(
    image: torch.Tensor, size: int, mean=data.transforms.IMAGENET_MEAN, std=data.transforms.IMAGENET_STD
) -> tuple[torch.Tensor, torch.Tensor]:
    """One uint8 ``[3, H, W]`` image as the validation transform sees it: the resized uint8
    image (for display) and the normalised float batch of one (for the model)."""
    resized = data.eval_transform(size).augment(image.permute(1, 2, 0).contiguous())
    return resized, data.transforms.normalize_on_device(resized[None], mean, std)
