"""``q2l evaluate``, ``predict``, ``visualize`` and ``export`` on a training checkpoint."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import nn

from .. import data
from ..head import Query2Label
from . import build, checkpoint, report
from .config import TrainConfig


def load_model(path: str, which: str = "best") -> tuple:
    """The model of a checkpoint, its configuration and its classes.

    Args:
        which: ``"model"``, ``"ema"``, or ``"best"`` (the one that scored best when saved).
    """
    ckpt = checkpoint.load(path)
    cfg = TrainConfig(**ckpt["config"])
    classes = ckpt["classes"]
    if which == "best":
        which = ckpt["best"].get("which") or "model"
    if which not in ("model", "ema"):
        raise ValueError(f"which must be 'model', 'ema' or 'best', got {which!r}")
    cfg.weights = None  # the checkpoint holds every weight
    model = build.model(cfg, len(classes))
    model.load_state_dict(ckpt[which])
    return model.eval(), cfg, classes


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _jsonable(value.tolist())
    return value


def evaluate(path: str, which: str = "best", overrides: Optional[Dict[str, Any]] = None, device: str = "auto") -> Dict[str, Any]:
    """Every metric on the checkpoint's validation set (or the one the overrides name)."""
    from .train import evaluate as run

    model, cfg, classes = load_model(path, which)
    for k, v in (overrides or {}).items():
        if v is not None:
            setattr(cfg, k, v)
    cfg.device = device
    dev = build.device_of(cfg)
    _, val = build.datasets(cfg)
    if val.classes != classes:
        raise ValueError("the evaluation dataset's classes differ from the checkpoint's")
    loader = data.Loader(val, data.eval_transform(cfg.img_size), batch_size=max(cfg.batch_size, 64))
    result = run(model.to(dev), loader, dev)
    result["classes"] = classes
    result["checkpoint"] = os.fspath(path)
    result["images"] = len(val)
    return _jsonable(result)


def _thresholds(classes: Sequence[str], threshold: float, thresholds_file: Optional[str]) -> torch.Tensor:
    t = torch.full((len(classes),), float(threshold))
    if thresholds_file is None:
        return t
    given = json.loads(Path(thresholds_file).read_text())
    if isinstance(given, list):
        if len(given) != len(classes):
            raise ValueError(f"{thresholds_file}: {len(given)} thresholds for {len(classes)} classes")
        return torch.tensor(given, dtype=torch.float32)
    unknown = set(given) - set(classes)
    if unknown:
        raise ValueError(f"{thresholds_file}: unknown classes {sorted(unknown)}")
    for name, value in given.items():
        t[classes.index(name)] = float(value)
    return t


def predict(path: str, images: Sequence[str], threshold: float = 0.5, thresholds_file: Optional[str] = None,
            which: str = "best") -> List[Dict[str, Any]]:
    """Labels (score at or above the threshold) and every score, per image."""
    model, cfg, classes = load_model(path, which)
    cut = _thresholds(classes, threshold, thresholds_file)
    results = []
    for image_path in images:
        _, x = build.prepare(data.decode_image(image_path), cfg.img_size)
        with torch.no_grad():
            scores = model(x).sigmoid()[0]
        labels = [{"label": classes[k], "score": round(float(scores[k]), 4)}
                  for k in torch.argsort(scores, descending=True).tolist() if scores[k] >= cut[k]]
        results.append({"image": os.fspath(image_path), "labels": labels,
                        "scores": {c: round(float(s), 4) for c, s in zip(classes, scores)}})
    return results


def format_table(results: List[Dict[str, Any]]) -> str:
    lines = []
    for r in results:
        found = ", ".join(f"{x['label']} ({x['score']:.2f})" for x in r["labels"]) or "(no label above threshold)"
        lines.append(f"{r['image']}: {found}")
    return "\n".join(lines)


def visualize(path: str, images: Sequence[str], output: str, labels: int = 4, which: str = "best") -> List[str]:
    """One PNG per image: the image and the attention maps of its top labels."""
    model, cfg, classes = load_model(path, which)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for image_path in images:
        shown, x = build.prepare(data.decode_image(image_path), cfg.img_size)
        with torch.no_grad():
            logits, maps = model(x, return_attention=True)
        target = out / (Path(image_path).stem + "_attention.png")
        report.attention_figure(shown, maps[-1][0], logits[0].sigmoid(), classes, target, max_labels=labels)
        written.append(os.fspath(target))
    return written


class ExportedModel(nn.Module):
    """Backbone + the pure-PyTorch twin of the head: what goes into ONNX."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.head = model.head.export() if hasattr(model, "head") else nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), model.fc)
        self.channels_last = model.channels_last

    _features = Query2Label._features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self._features(images))


def export(path: str, output: str, which: str = "best", batch: int = 2) -> Dict[str, Any]:
    """Writes an ONNX model (input ``images [B, 3, S, S]``, output ``logits [B, K]``) and checks it
    in onnxruntime against the PyTorch model on random images."""
    import onnxruntime as ort

    model, cfg, classes = load_model(path, which)
    twin = ExportedModel(model).eval()
    x = torch.randn(batch, 3, cfg.img_size, cfg.img_size)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(twin, (x,), os.fspath(output), input_names=["images"], output_names=["logits"], dynamo=True)
    ours = ort.InferenceSession(os.fspath(output)).run(None, {"images": x.numpy()})[0]
    with torch.no_grad():
        ref = model(x)
    diff = float((torch.from_numpy(ours) - ref).abs().max())
    if diff > 1e-3:
        raise RuntimeError(f"the ONNX model differs from PyTorch by {diff:.3g} (max abs logit)")
    return {"onnx": os.fspath(output), "max_abs_difference": diff, "classes": classes, "input_size": cfg.img_size}
