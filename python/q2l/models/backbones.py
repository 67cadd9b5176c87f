"""Backbones by name (torchvision, timm, a tiny one for tests), and the official recipe's
freezing of a ResNet's stem and BatchNorm."""

import logging
import os
from typing import Any

from torch import nn

from .._files import load_torch_file
from ..errors import InvalidArgumentError
from . import backbone_weights as bw
from .backbone_weights import Pretrained

_RESNETS = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "wide_resnet50_2",
    "wide_resnet101_2",
)


def _load_weights(model: nn.Module, path: str | os.PathLike) -> None:
    state = load_torch_file(path, "weights file")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    missing, _unexpected = model.load_state_dict(state, strict=False)
    if missing:
        raise InvalidArgumentError(
            f"weights file {os.fspath(path)!r} does not fit the backbone: missing {missing[:5]}..."
        )


def torchvision_backbone(name: str, weights: Any = None) -> nn.Module:
    """A torchvision classifier cut before its pooling: it returns ``[B, C, H, W]``.

    Args:
        name: ``resnet18`` ... ``resnet152`` (and ResNeXt / wide variants),
            ``mobilenet_v2``, ``mobilenet_v3_large``, ``efficientnet_b0`` ... ``b7``.
        weights: torchvision's pretrained weights: a name (``"IMAGENET1K_V1"``,
            ``"DEFAULT"``), the weights enum member itself, or a local file holding the
            *whole classifier* (for example ``mobilenet_v2-b0353104.pth``). Names are read
            from torchvision's cache (``$TORCH_HOME/hub/checkpoints``) and downloaded only
            when missing there and ``HF_HUB_OFFLINE`` is not set.
    """
    return _torchvision(name, weights)[0]


def _torchvision(name: str, weights: Any) -> tuple[nn.Module, Pretrained | None]:
    import torchvision

    builder = getattr(torchvision.models, name, None)
    if builder is None or not callable(builder) or name.startswith("_"):
        raise InvalidArgumentError(f"unknown torchvision backbone {name!r}")
    source = None
    if weights is None:
        model = builder(weights=None)
    elif bw.is_file(weights):
        bw.check_weights_file(weights)
        model = builder(weights=None)
        _load_weights(model, weights)
        source = bw.file_record(weights)
    else:
        member = bw.torchvision_weights(name, weights)
        model = bw.load_torchvision(builder, name, member)
        source = bw.torchvision_record(member)
    if name in _RESNETS:
        return nn.Sequential(*list(model.children())[:-2]), source
    if hasattr(model, "features"):
        return model.features, source
    raise InvalidArgumentError(f"do not know where the feature map of {name!r} ends; pass the feature module itself")


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class TinyBackbone(nn.Sequential):
    """A six-layer CNN with stride 8 and ``4 * width`` channels (``Query2Label("tiny", ...)``):
    small enough to train on a laptop CPU; the demo of ``q2l train`` uses it."""

    def __init__(self, width: int = 32) -> None:
        w = width
        super().__init__(
            _block(3, w, 2),
            _block(w, w, 1),
            _block(w, 2 * w, 2),
            _block(2 * w, 2 * w, 1),
            _block(2 * w, 4 * w, 2),
            _block(4 * w, 4 * w, 1),
        )


def timm_backbone(name: str, weights: str | os.PathLike | None = None, pretrained: bool = False) -> nn.Module:
    """A timm model with ``features_only=True`` that returns its last feature map only.

    Args:
        name: A timm model name, with a pretrained tag where one is wanted
            (``resnet50``, ``tresnet_m``, ``convnext_tiny.fb_in22k``, ...).
        weights: A local weights file: the full classifier checkpoint as timm publishes it
            (read through timm's ``pretrained_cfg_overlay``), or the features-only weights.
        pretrained: Start from the tag's weights (the model's default tag without one),
            read from timm's cache (Hugging Face's, or torch's) and downloaded only when
            missing there and ``HF_HUB_OFFLINE`` is not set.
    """
    return _timm(name, weights, pretrained)[0]


def _timm(name: str, weights: Any, pretrained: bool) -> tuple[nn.Module, Pretrained | None]:
    try:
        import timm
        from timm.models import split_model_name_tag
    except ImportError:
        raise InvalidArgumentError(
            f"backbone 'timm:{name}' needs timm, which is not installed (pip install timm)"
        ) from None
    arch, _tag = split_model_name_tag(name)
    if not timm.is_model(arch):
        raise InvalidArgumentError(f"unknown timm backbone {arch!r}; see timm.list_models()")

    def create(**kw: Any) -> nn.Module:
        try:
            return timm.create_model(name, features_only=True, out_indices=(-1,), **kw)
        except (RuntimeError, ValueError, TypeError) as err:
            if kw.get("pretrained"):
                raise
            raise InvalidArgumentError(f"timm cannot build {name!r} as a feature extractor: {err}") from None

    if weights is not None:
        if not bw.is_file(weights):
            raise InvalidArgumentError(
                f"timm backbones take a local file as weights, not {weights!r}; for timm's own weights pass "
                f"pretrained=True with the tag in the name (timm:{arch}.<tag>)"
            )
        bw.check_weights_file(weights)
        return _timm_from_file(create, name, weights), bw.file_record(weights)
    if not pretrained:
        return create(pretrained=False), None
    found, source = bw.timm_weights_file(name)
    if found is not None:
        return _timm_strict(create, name, found), source
    try:
        return create(pretrained=True), source
    except Exception as err:  # the hub and urllib raise many kinds
        raise bw.timm_fetch_error(name, err) from None


class _MissingKeys(logging.Handler):
    """Collects the "Missing keys (...)" report of timm's pretrained loading."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.keys: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Missing keys ("):
            self.keys += message[len("Missing keys (") :].split(")")[0].split(", ")


def _timm_strict(create: Any, name: str, file: str) -> nn.Module:
    """``create`` with timm's pretrained loading from ``file``, refusing a file that leaves
    weights of the backbone unset: a feature extractor drops the classifier, so timm loads
    non-strictly and only logs the keys it did not find."""
    logger = logging.getLogger("timm.models._builder")
    handler, level = _MissingKeys(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        model = create(pretrained=True, pretrained_cfg_overlay={"file": file})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    # The classifier is dropped on purpose: its keys are reported missing too.
    classifiers = bw.timm_classifiers(name)
    missing = [k for k in handler.keys if not k.startswith(classifiers)]
    if missing:
        raise InvalidArgumentError(f"{file!r} misses {len(missing)} weights of the backbone: {missing[:5]}")
    return model


def _timm_from_file(create: Any, name: str, path: str | os.PathLike) -> nn.Module:
    """A full classifier checkpoint through timm's own loading (its key filters, the
    classifier dropped); failing that, the weights of the features-only model."""
    try:
        return _timm_strict(create, name, os.fspath(path))
    except Exception as err:  # timm's loaders raise many kinds
        full_error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    model = create(pretrained=False)
    try:
        _load_weights(model, path)
    except InvalidArgumentError as err:
        raise InvalidArgumentError(
            f"weights file {os.fspath(path)!r} fits neither timm model {name!r} as a classifier checkpoint "
            f"({full_error}) nor its feature extractor ({err})"
        ) from None
    return model


def named_backbone(name: str, weights: Any = None, pretrained: bool = False) -> tuple[nn.Module, Pretrained | None]:
    """The backbone ``Query2Label(name, ...)`` builds, and the weights it starts from."""
    if name == "tiny":
        if weights is not None or pretrained:
            raise InvalidArgumentError("weights and pretrained apply to torchvision/timm backbones, not 'tiny'")
        return TinyBackbone(), None
    if name.startswith("timm:"):
        return _timm(name[5:], weights, pretrained)
    if pretrained:
        raise InvalidArgumentError(
            f"pretrained=True is for timm backbones; torchvision's {name!r} takes weights='DEFAULT' "
            f"(or a weights name such as 'IMAGENET1K_V1')"
        )
    return _torchvision(name, weights)


def _is_channels_last(backbone: nn.Module) -> bool:
    # timm feature extractors of Swin-style models return NHWC and say so.
    return "NHWC" in str(getattr(backbone, "output_fmt", "NCHW"))


def freeze_resnet_stem(backbone: nn.Module) -> None:
    """Freezes conv1, bn1 and layer1 of a ResNet feature extractor, as the official code."""
    for i, child in enumerate(backbone.children()):
        if i <= 4:  # conv1, bn1, relu, maxpool, layer1
            for p in child.parameters():
                p.requires_grad_(False)


def frozen_batchnorm(module: nn.Module) -> nn.Module:
    """Replaces every BatchNorm2d by torchvision's FrozenBatchNorm2d (statistics kept)."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.weight.copy_(child.weight.detach())
            frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            frozen_batchnorm(child)
    return module
