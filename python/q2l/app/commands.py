"""``q2l evaluate``, ``predict``, ``visualize`` and ``export`` on a training checkpoint or a
model folder (``config.json`` + ``model.safetensors``, see :meth:`q2l.Query2Label.save_pretrained`)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import _native, data
from .._files import read_json
from .._validate import class_names, float_arg
from ..errors import InternalError, InvalidArgumentError
from ..models import BackboneModel, MLDecoder, Query2Label, load_pretrained
from ..models.ml_decoder import label_embeddings_arg
from . import build, checkpoint, report
from .config import TrainConfig


@dataclass
class Loaded:
    """A model ready for inference, with what is needed to feed it."""

    model: nn.Module
    cfg: TrainConfig
    classes: list[str]
    mean: Sequence[float] = data.transforms.IMAGENET_MEAN
    std: Sequence[float] = data.transforms.IMAGENET_STD

    def __iter__(self):  # model, cfg, classes = load_model(...)
        return iter((self.model, self.cfg, self.classes))

    def prepare(self, image_path: str):
        return build.prepare(data.decode_image(image_path), self.cfg.img_size, self.mean, self.std)


def load_model(path: str, which: str = "best") -> Loaded:
    """The model of a training checkpoint or of a model folder, its configuration and classes.

    Args:
        path: A ``.pt`` checkpoint written by ``q2l train`` or a model folder.
        which: ``"model"``, ``"ema"``, or ``"best"`` (the one that scored best when saved);
            checkpoints only.
    """
    if which not in ("best", "model", "ema"):
        raise InvalidArgumentError(f"which must be 'model', 'ema' or 'best', got {which!r}")
    if os.path.isdir(path):
        return _load_folder(path)
    ckpt = checkpoint.load(path)
    cfg = checkpoint.config_of(ckpt, path)
    classes = class_names(ckpt["classes"], None, f"{path}: key 'classes'")
    if which == "best":
        which = ckpt["best"].get("which") or "model"
    state = ckpt[which]
    # A zero-shot head's label embeddings are part of its weights; the file they came from is not read.
    embeddings = state.get("label_embeddings") if cfg.head == "ml-decoder" and cfg.label_embeddings else None
    if embeddings is not None and not isinstance(embeddings, torch.Tensor):
        raise InvalidArgumentError(f"{path}: {which!r} weights: 'label_embeddings' must be a tensor")
    model = build.model(cfg, len(classes), backbone_weights=False, embeddings=embeddings)
    checkpoint.load_state(model, state, f"{path}: {which!r} weights")
    return Loaded(model.eval(), cfg, classes)


def _load_folder(path: str) -> Loaded:
    model = load_pretrained(path)
    where = os.path.join(path, "config.json")
    if model.classes is None:
        raise InvalidArgumentError(f"{where}: has no 'classes'; save with save_pretrained(..., classes=[...])")
    if model.preprocessing is None:
        raise InvalidArgumentError(f"{where}: has no 'preprocessing'; save with save_pretrained(..., img_size=...)")
    pre = model.preprocessing
    cfg = TrainConfig(img_size=pre["img_size"], head=model.HEAD_TYPE)
    return Loaded(model, cfg, list(model.classes), tuple(pre["mean"]), tuple(pre["std"]))


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


def evaluate(
    path: str, which: str = "best", overrides: dict[str, Any] | None = None, device: str = "auto"
) -> dict[str, Any]:
    """Every metric on the checkpoint's validation set (or the one the overrides name)."""
    from .train import evaluate as run

    loaded = load_model(path, which)
    model, cfg, classes = loaded
    for k, v in (overrides or {}).items():
        if v is not None:
            setattr(cfg, k, v)
    cfg.device = device
    dev = build.device_of(cfg)
    val = build.datasets(cfg, splits=("val",), classes=classes)[0]
    if val.classes != classes:
        raise InvalidArgumentError("the evaluation dataset's classes differ from the checkpoint's")
    transform = data.Compose([data.transforms.Resize(cfg.img_size)], normalize=(tuple(loaded.mean), tuple(loaded.std)))
    loader = data.Loader(val, transform, batch_size=max(cfg.batch_size, 64))
    result = run(model.to(dev), loader, dev)
    result["classes"] = classes
    result["checkpoint"] = os.fspath(path)
    result["images"] = len(val)
    return _jsonable(result)


def _thresholds(classes: Sequence[str], threshold: float, thresholds_file: str | None) -> torch.Tensor:
    t = torch.full((len(classes),), float_arg("--threshold", threshold))
    if thresholds_file is None:
        return t
    path = os.fspath(thresholds_file)
    given = read_json(path)
    if isinstance(given, list):
        if len(given) != len(classes):
            raise InvalidArgumentError(f"{path}: {len(given)} thresholds for {len(classes)} classes")
        return torch.tensor([float_arg(f"{path}: threshold {i}", v) for i, v in enumerate(given)])
    if not isinstance(given, dict):
        raise InvalidArgumentError(
            f"{path}: expected a list of thresholds or an object {{class: threshold}}, got {type(given).__name__}"
        )
    unknown = set(given) - set(classes)
    if unknown:
        raise InvalidArgumentError(f"{path}: unknown classes {sorted(unknown)}")
    for name, value in given.items():
        t[classes.index(name)] = float_arg(f"{path}: threshold of {name!r}", value)
    return t


def zero_shot_labels(
    model: nn.Module, names_file: str | None, embeddings_file: str | None
) -> tuple[list[str], torch.Tensor] | None:
    """The names and embeddings of ``--label-names`` / ``--label-embeddings``: labels a
    zero-shot model scores instead of its training ones (``None`` without the options)."""
    if names_file is None and embeddings_file is None:
        return None
    if names_file is None or embeddings_file is None:
        raise InvalidArgumentError(
            "--label-names and --label-embeddings go together: the names of the embeddings' rows"
        )
    if not isinstance(model, MLDecoder) or model.label_embeddings is None:
        raise InvalidArgumentError(
            "--label-embeddings needs a zero-shot model (q2l train --head ml-decoder --label-embeddings FILE); "
            "this one has fixed label queries"
        )
    names = class_names(_native.read_class_file(path=os.fspath(names_file)), None, os.fspath(names_file))
    emb = label_embeddings_arg(embeddings_file, f"--label-embeddings {os.fspath(embeddings_file)!r}")
    if len(emb) != len(names):
        raise InvalidArgumentError(
            f"--label-embeddings {os.fspath(embeddings_file)!r} has {len(emb)} rows but --label-names "
            f"{os.fspath(names_file)!r} has {len(names)} names: one row per name"
        )
    width = model.label_embeddings.shape[1]
    if emb.shape[1] != width:
        raise InvalidArgumentError(
            f"--label-embeddings {os.fspath(embeddings_file)!r} has width {emb.shape[1]} but the model was "
            f"trained on embeddings of width {width}: use the same embedding model"
        )
    return names, emb


def predict(
    path: str,
    images: Sequence[str],
    threshold: float = 0.5,
    thresholds_file: str | None = None,
    which: str = "best",
    label_names: str | None = None,
    label_embeddings: str | None = None,
) -> list[dict[str, Any]]:
    """Labels (score at or above the threshold) and every score, per image.

    ``label_names`` and ``label_embeddings`` (files) give a zero-shot model other labels
    to score, seen in training or not."""
    loaded = load_model(path, which)
    model, _cfg, classes = loaded
    queried = zero_shot_labels(model, label_names, label_embeddings)
    extra: dict[str, Any] = {}
    if queried is not None:
        classes, emb = queried
        extra = {"label_embeddings": emb}
    cut = _thresholds(classes, threshold, thresholds_file)
    results = []
    for image_path in images:
        _, x = loaded.prepare(image_path)
        with torch.no_grad():
            scores = model(x, **extra).sigmoid()[0]
        labels = [
            {"label": classes[k], "score": round(float(scores[k]), 4)}
            for k in torch.argsort(scores, descending=True).tolist()
            if scores[k] >= cut[k]
        ]
        results.append(
            {
                "image": os.fspath(image_path),
                "labels": labels,
                "scores": {c: round(float(s), 4) for c, s in zip(classes, scores, strict=False)},
            }
        )
    return results


def format_table(results: list[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        found = ", ".join(f"{x['label']} ({x['score']:.2f})" for x in r["labels"]) or "(no label above threshold)"
        lines.append(f"{r['image']}: {found}")
    return "\n".join(lines)


def visualize(path: str, images: Sequence[str], output: str, labels: int = 4, which: str = "best") -> list[str]:
    """One PNG per image: the image and the attention maps of its top labels."""
    loaded = load_model(path, which)
    model, cfg, classes = loaded
    if not isinstance(model, Query2Label):
        raise InvalidArgumentError(
            f"{path}: visualize draws a query2label head's attention maps; this model's head is {cfg.head!r}"
        )
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for image_path in images:
        shown, x = loaded.prepare(image_path)
        with torch.no_grad():
            logits, maps = model(x, return_attention=True)
        target = out / (Path(image_path).stem + "_attention.png")
        report.attention_figure(shown, maps[-1][0], logits[0].sigmoid(), classes, target, max_labels=labels)
        written.append(os.fspath(target))
    return written


def export(path: str, output: str, which: str = "best", batch: int = 2, fmt: str = "onnx") -> dict[str, Any]:
    """Writes the model as ONNX or as a model folder.

    ``fmt="onnx"``: an ONNX model (input ``images [B, 3, S, S]``, output ``logits [B, K]``),
    checked in onnxruntime against the PyTorch model on random images.
    ``fmt="safetensors"``: a model folder (``config.json`` + ``model.safetensors``) that
    :meth:`q2l.Query2Label.from_pretrained` and every ``q2l`` command read.
    """
    loaded = load_model(path, which)
    model, cfg, classes = loaded
    if fmt == "safetensors":
        if not isinstance(model, BackboneModel):
            raise InvalidArgumentError(
                f"{path}: a model folder holds a query2label or ml-decoder model; "
                f"this checkpoint's head is {cfg.head!r}"
            )
        model.save_pretrained(output, classes=classes, img_size=cfg.img_size, mean=loaded.mean, std=loaded.std)
        return {"folder": os.fspath(output), "classes": classes, "input_size": cfg.img_size}
    if fmt != "onnx":
        raise InvalidArgumentError(f"format must be 'onnx' or 'safetensors', got {fmt!r}")
    # onnxruntime's telemetry, on by default, looks up its collector's host and writes
    # ~/.cache/Microsoft/DeveloperTools when the module is imported; the variable, read at
    # import, keeps the check offline and its writes in the output.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime as ort

    ort.disable_telemetry_events()  # for a module already imported without the variable
    twin = model.export().eval()
    x = torch.randn(batch, 3, cfg.img_size, cfg.img_size)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(twin, (x,), os.fspath(output), input_names=["images"], output_names=["logits"], dynamo=True)
    ours = ort.InferenceSession(os.fspath(output)).run(None, {"images": x.numpy()})[0]
    with torch.no_grad():
        ref = model(x)
    diff = float((torch.from_numpy(ours) - ref).abs().max())
    if diff > 1e-3:
        raise InternalError(f"the ONNX model differs from PyTorch by {diff:.3g} (max abs logit)")
    return {"onnx": os.fspath(output), "max_abs_difference": diff, "classes": classes, "input_size": cfg.img_size}
