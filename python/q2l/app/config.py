"""The training configuration: one dataclass, two sets of defaults, JSON in and out.

``q2l train`` with no arguments uses :data:`DEMO` (generated scenes, a small backbone, CPU
friendly). Naming a real dataset switches the unspecified options to :data:`PAPER`, the
Query2Label COCO recipe. A config file and command-line flags override either.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .._files import read_json
from ..errors import InvalidArgumentError, InvalidTypeError, MissingFileError
from ..loss.partial import PARTIAL_MODES

DATASETS = ("scenes", "fashion", "coco", "voc", "nuswide", "openimages", "csv", "shards")
#: The heads ``q2l train`` builds: Query2Label, ML-Decoder, and the paper's baseline
#: (global average pooling + linear).
HEADS = ("query2label", "ml-decoder", "linear")
#: Older names of heads, read from checkpoints written before the rename.
_HEAD_ALIASES = {"q2l": "query2label"}


def canonical_head(name: str) -> str:
    """The head's name in :data:`HEADS` (``"q2l"`` was ``"query2label"``'s name)."""
    return _HEAD_ALIASES.get(name, name)


@dataclass
class TrainConfig:
    """Every option of ``q2l train``; see ``q2l train --help`` for each one's meaning."""

    # Data
    dataset: str = "scenes"
    root: str | None = None
    train_split: str | None = None
    val_split: str | None = None
    train_list: str | None = None
    val_list: str | None = None
    train_size: int = 8000
    val_size: int = 1000
    img_size: int = 64
    hide_annotations: float = 0.0
    cell_labels: bool = False
    cutout: float | None = None
    randaugment: bool = False
    flip: bool = True
    workers: int = 0
    # Model
    head: str = "query2label"
    backbone: str = "tiny"
    weights: str | None = None
    pretrained: bool = False
    d_model: int = 128
    nhead: int = 4
    enc_layers: int = 1
    dec_layers: int = 2
    dim_feedforward: int = 256
    dropout: float = 0.1
    pre_norm: bool = False
    num_groups: int | None = None
    label_embeddings: str | None = None
    freeze_stem: bool = False
    # Optimisation
    epochs: int = 12
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    pct_start: float = 0.2
    ema: float = 0.99
    loss: str = "query2label"
    partial_labels: str | None = None
    amp: bool = True
    early_stop: int = 0
    grad_clip: float = 0.0
    # Run
    seed: int = 0
    device: str = "auto"
    output: str = "q2l-run"
    resume: str | None = None
    attention_images: int = 4
    log_every: int = 20

    def __post_init__(self) -> None:
        self.head = canonical_head(self.head)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def architecture(self, num_classes: int) -> dict[str, Any]:
        """What a checkpoint must match to be loaded into this model."""
        keys = (
            "head",
            "backbone",
            "img_size",
            "d_model",
            "nhead",
            "enc_layers",
            "dec_layers",
            "dim_feedforward",
            "pre_norm",
            "num_groups",
        )
        return {"num_classes": num_classes, **{k: getattr(self, k) for k in keys}}


#: Defaults of the built-in demo: generated 64x64 scenes, the small "tiny" backbone.
DEMO: dict[str, Any] = {}

#: Query2Label's COCO recipe (main_mlc.py), with its traps fixed: lr 1e-4 (not 0.1), no
#: batch-size lr scaling, a Cutout that works.
PAPER: dict[str, Any] = dict(
    img_size=448,
    cutout=0.5,
    randaugment=True,
    flip=False,
    backbone="resnet101",
    d_model=2048,
    nhead=4,
    enc_layers=1,
    dec_layers=2,
    dim_feedforward=8192,
    dropout=0.1,
    epochs=80,
    batch_size=64,
    lr=1e-4,
    weight_decay=1e-2,
    pct_start=0.2,
    ema=0.9997,
    early_stop=8,
    freeze_stem=False,
)


def field_names() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def _field_types() -> dict[str, tuple]:
    """For each option, the JSON types it accepts (``None`` included where it is optional)."""
    out = {}
    for name, kind in typing.get_type_hints(TrainConfig).items():
        args = typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, types.UnionType) else (kind,)
        out[name] = tuple(type(None) if a is type(None) else a for a in args)
    return out


def check_values(values: Any, source: str) -> dict[str, Any]:
    """``values`` as options of :class:`TrainConfig`; errors name ``source`` and the key.

    A JSON object is required; every key must be an option and every value of the option's
    type (an int is accepted for a float option, a bool for nothing but a bool option).
    """
    if not isinstance(values, dict):
        raise InvalidArgumentError(f"{source}: expected a JSON object of options, got {type(values).__name__}")
    types = _field_types()
    for key, value in values.items():
        if key not in types:
            raise InvalidArgumentError(f"{source}: unknown option {key!r}")
        allowed = types[key]
        ok = any(
            (t is float and isinstance(value, (int, float)) and not isinstance(value, bool))
            or (t is int and isinstance(value, int) and not isinstance(value, bool))
            or (t not in (int, float) and isinstance(value, t))
            for t in allowed
        )
        if not ok:
            names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
            raise InvalidArgumentError(f"{source}: option {key!r} must be {names}, got {value!r}")
    return values


def resolve(overrides: dict[str, Any], config_file: str | None = None) -> TrainConfig:
    """Defaults for the chosen dataset, then the config file, then explicit overrides."""
    known = set(field_names())
    from_file: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise MissingFileError(f"no config file at {config_file!r}")
        from_file = read_json(path)
        check_values(from_file, config_file)
    explicit = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(explicit) - known
    if unknown:
        raise InvalidArgumentError(f"unknown options {sorted(unknown)}")
    dataset = explicit.get("dataset", from_file.get("dataset", "scenes"))
    if dataset not in DATASETS:
        raise InvalidArgumentError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    base = dict(DEMO if dataset in ("scenes", "fashion") else PAPER)
    if dataset == "fashion":
        base.update(img_size=112, train_size=12000, val_size=2000)
    cfg = TrainConfig(**{**base, **from_file, **explicit})
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    """Rejects settings that cannot work, with the option named."""
    for f in fields(TrainConfig):
        value = getattr(cfg, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidArgumentError(f"{f.name} must be a finite number, got {value}")
    from ..loss import PRESETS

    losses = (*PRESETS, "bce")
    checks = [
        (cfg.epochs >= 1, "epochs must be at least 1"),
        (cfg.batch_size >= 1, "batch_size must be at least 1"),
        (cfg.train_size >= 1 and cfg.val_size >= 1, "train_size and val_size must be at least 1"),
        (cfg.img_size >= 16, "img_size must be at least 16"),
        (cfg.workers >= 0, f"workers must be >= 0 (0: all CPUs), got {cfg.workers}"),
        (cfg.cutout is None or 0 < cfg.cutout <= 1, f"cutout must be in (0, 1], got {cfg.cutout}"),
        (0 <= cfg.hide_annotations < 1, f"hide_annotations must be in [0, 1), got {cfg.hide_annotations}"),
        (0 < cfg.lr < 1, f"lr must be in (0, 1), got {cfg.lr}"),
        (cfg.weight_decay >= 0, f"weight_decay must be >= 0, got {cfg.weight_decay}"),
        (0 <= cfg.ema < 1, f"ema must be in [0, 1), got {cfg.ema}"),
        (0 < cfg.pct_start < 1, "pct_start must be in (0, 1)"),
        (cfg.dim_feedforward >= 1, f"dim_feedforward must be positive, got {cfg.dim_feedforward}"),
        (cfg.num_groups is None or cfg.num_groups >= 1, f"num_groups must be at least 1, got {cfg.num_groups}"),
        (
            cfg.head != "linear" or cfg.num_groups is None,
            f"num_groups is for the query2label and ml-decoder heads; head 'linear' has no label queries "
            f"(got num_groups={cfg.num_groups})",
        ),
        (
            cfg.label_embeddings is None or cfg.head == "ml-decoder",
            f"label_embeddings make a zero-shot ML-Decoder: use --head ml-decoder (got head {cfg.head!r})",
        ),
        (
            cfg.label_embeddings is None or cfg.num_groups is None,
            "num_groups is for fixed group queries; a zero-shot head (label_embeddings) queries with one embedding "
            f"per label (got num_groups={cfg.num_groups})",
        ),
        (cfg.early_stop >= 0 and cfg.grad_clip >= 0, "early_stop and grad_clip must be >= 0"),
        (cfg.seed >= 0, f"seed must be >= 0, got {cfg.seed}"),
        (cfg.attention_images >= 0 and cfg.log_every >= 1, "need attention_images >= 0 and log_every >= 1"),
        (cfg.loss in losses, f"loss must be one of {', '.join(losses)}, got {cfg.loss!r}"),
        (
            cfg.partial_labels is None or cfg.partial_labels in PARTIAL_MODES,
            f"partial_labels must be one of {', '.join(PARTIAL_MODES)}, got {cfg.partial_labels!r}",
        ),
        (cfg.head in HEADS, f"head must be one of {', '.join(HEADS)}, got {cfg.head!r}"),
        (
            cfg.device in ("auto", "cpu") or cfg.device.startswith("cuda"),
            f"device must be auto, cpu or cuda[:N], got {cfg.device!r}",
        ),
        (
            cfg.dataset in ("scenes", "fashion", "csv", "shards") or cfg.root is not None,
            f"--root is needed for dataset {cfg.dataset!r}",
        ),
        (
            cfg.dataset != "shards" or (cfg.train_list is not None and cfg.val_list is not None),
            "dataset 'shards' needs --data shards:TRAIN_PATTERN and --val-data shards:VAL_PATTERN",
        ),
        (cfg.dataset != "csv" or cfg.train_list is not None, "--train-list is needed for dataset 'csv'"),
        (
            not cfg.cell_labels or cfg.dataset == "fashion",
            f"cell_labels makes the fashion scenes' many-label set; dataset {cfg.dataset!r} has its own labels",
        ),
        (
            not cfg.pretrained or cfg.backbone.startswith("timm:"),
            f"--pretrained is for timm backbones; torchvision's {cfg.backbone!r} takes --weights DEFAULT "
            f"(or a weights name such as IMAGENET1K_V1)",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise InvalidArgumentError(message)
    _check_head(cfg)


def _check_head(cfg: TrainConfig) -> None:
    """The head's options through the head's own declaration (src/decoder/config.rs), the one
    place they are checked; errors use this command's option names."""
    from ..heads import ml_decoder, query2label

    given: dict[str, Any] = {"d_model": cfg.d_model, "nhead": cfg.nhead, "dropout": cfg.dropout}
    ours = {"enc_layers": "num_encoder_layers", "dec_layers": "num_decoder_layers"}
    if cfg.head == "ml-decoder":
        options, ours = ml_decoder.OPTIONS, {}
    else:
        options = query2label.OPTIONS
        given |= {"pre_norm": cfg.pre_norm} | {theirs: getattr(cfg, mine) for mine, theirs in ours.items()}
    try:
        options.resolve(given)
    except (InvalidArgumentError, InvalidTypeError) as err:
        message = str(err)
        for mine, theirs in ours.items():
            message = message.replace(theirs, mine)
        raise InvalidArgumentError(message) from None


__all__ = [
    "DATASETS",
    "DEMO",
    "HEADS",
    "PAPER",
    "TrainConfig",
    "canonical_head",
    "check_values",
    "resolve",
    "validate",
]
