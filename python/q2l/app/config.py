"""The training configuration: one dataclass, two sets of defaults, JSON in and out.

``q2l train`` with no arguments uses :data:`DEMO` (generated scenes, a small backbone, CPU
friendly). Naming a real dataset switches the unspecified options to :data:`PAPER`, the
Query2Label COCO recipe. A config file and command-line flags override either.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional

DATASETS = ("scenes", "fashion", "coco", "voc", "nuswide", "openimages", "csv")


@dataclass
class TrainConfig:
    """Every option of ``q2l train``; see ``q2l train --help`` for each one's meaning."""

    # Data
    dataset: str = "scenes"
    root: Optional[str] = None
    train_split: Optional[str] = None
    val_split: Optional[str] = None
    train_list: Optional[str] = None
    val_list: Optional[str] = None
    train_size: int = 8000
    val_size: int = 1000
    img_size: int = 64
    cutout: Optional[float] = None
    randaugment: bool = False
    flip: bool = True
    workers: int = 0
    # Model
    head: str = "q2l"
    backbone: str = "tiny"
    weights: Optional[str] = None
    d_model: int = 128
    nhead: int = 4
    enc_layers: int = 1
    dec_layers: int = 2
    dim_feedforward: int = 256
    dropout: float = 0.1
    pre_norm: bool = False
    freeze_stem: bool = False
    # Optimisation
    epochs: int = 12
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    pct_start: float = 0.2
    ema: float = 0.99
    loss: str = "query2label"
    amp: bool = True
    early_stop: int = 0
    grad_clip: float = 0.0
    # Run
    seed: int = 0
    device: str = "auto"
    output: str = "q2l-run"
    resume: Optional[str] = None
    attention_images: int = 4
    log_every: int = 20

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def architecture(self, num_classes: int) -> Dict[str, Any]:
        """What a checkpoint must match to be loaded into this model."""
        keys = ("head", "backbone", "img_size", "d_model", "nhead", "enc_layers", "dec_layers", "dim_feedforward", "pre_norm")
        return {"num_classes": num_classes, **{k: getattr(self, k) for k in keys}}


#: Defaults of the built-in demo: generated 64x64 scenes, the small "tiny" backbone.
DEMO: Dict[str, Any] = {}

#: Query2Label's COCO recipe (main_mlc.py), with its traps fixed: lr 1e-4 (not 0.1), no
#: batch-size lr scaling, a Cutout that works.
PAPER: Dict[str, Any] = dict(
    img_size=448, cutout=0.5, randaugment=True, flip=False, backbone="resnet101", d_model=2048,
    nhead=4, enc_layers=1, dec_layers=2, dim_feedforward=8192, dropout=0.1, epochs=80, batch_size=64,
    lr=1e-4, weight_decay=1e-2, pct_start=0.2, ema=0.9997, early_stop=8, freeze_stem=False,
)


def field_names() -> List[str]:
    return [f.name for f in fields(TrainConfig)]


def resolve(overrides: Dict[str, Any], config_file: Optional[str] = None) -> TrainConfig:
    """Defaults for the chosen dataset, then the config file, then explicit overrides."""
    known = set(field_names())
    from_file: Dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise FileNotFoundError(f"no config file at {config_file!r}")
        try:
            from_file = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{config_file}: not valid JSON: {err}") from None
        unknown = set(from_file) - known
        if unknown:
            raise ValueError(f"{config_file}: unknown options {sorted(unknown)}")
    explicit = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(explicit) - known
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)}")
    dataset = explicit.get("dataset", from_file.get("dataset", "scenes"))
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    base = dict(DEMO if dataset in ("scenes", "fashion") else PAPER)
    if dataset == "fashion":
        base.update(img_size=112, train_size=12000, val_size=2000)
    cfg = TrainConfig(**{**base, **from_file, **explicit})
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    """Rejects settings that cannot work, with the option named."""
    checks = [
        (cfg.epochs >= 1, "epochs must be at least 1"),
        (cfg.batch_size >= 1, "batch_size must be at least 1"),
        (cfg.img_size >= 16, "img_size must be at least 16"),
        (0 < cfg.lr < 1, f"lr must be in (0, 1), got {cfg.lr}"),
        (0 <= cfg.ema < 1, f"ema must be in [0, 1), got {cfg.ema}"),
        (0 < cfg.pct_start < 1, "pct_start must be in (0, 1)"),
        (cfg.d_model % cfg.nhead == 0, f"d_model ({cfg.d_model}) must be divisible by nhead ({cfg.nhead})"),
        (cfg.loss in ("query2label", "asl", "mmpretrain", "bce"), f"loss must be query2label, asl, mmpretrain or bce, got {cfg.loss!r}"),
        (cfg.head in ("q2l", "linear"), f"head must be 'q2l' or 'linear' (global average pooling + linear), got {cfg.head!r}"),
        (cfg.device in ("auto", "cpu") or cfg.device.startswith("cuda"), f"device must be auto, cpu or cuda[:N], got {cfg.device!r}"),
        (cfg.dataset in ("scenes", "fashion") or cfg.root is not None or cfg.dataset == "csv", f"--root is needed for dataset {cfg.dataset!r}"),
        (cfg.dataset != "csv" or cfg.train_list is not None, "--train-list is needed for dataset 'csv'"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def load_json(path: str) -> TrainConfig:
    data = json.loads(Path(path).read_text())
    return TrainConfig(**{k: v for k, v in data.items() if k in set(field_names())})


__all__ = ["DATASETS", "DEMO", "PAPER", "TrainConfig", "field", "resolve", "validate", "load_json"]
