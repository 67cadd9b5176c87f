"""Backbones by name (torchvision, timm, a tiny one for tests), and the official recipe's
freezing of a ResNet's stem and BatchNorm."""

import os

from torch import nn

from .._files import load_torch_file
from ..errors import InvalidArgumentError

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


def torchvision_backbone(name: str, weights: str | os.PathLike | None = None) -> nn.Module:
    """A torchvision classifier cut before its pooling: it returns ``[B, C, H, W]``.

    Args:
        name: ``resnet18`` ... ``resnet152`` (and ResNeXt / wide variants),
            ``mobilenet_v2``, ``mobilenet_v3_large``, ``efficientnet_b0`` ... ``b7``.
        weights: A local torchvision weights file for the *whole classifier* (for example
            ``mobilenet_v2-b0353104.pth``); nothing is ever downloaded.
    """
    import torchvision

    try:
        builder = getattr(torchvision.models, name)
    except AttributeError:
        raise InvalidArgumentError(f"unknown torchvision backbone {name!r}") from None
    model = builder(weights=None)
    if weights is not None:
        _load_weights(model, weights)
    if name in _RESNETS:
        return nn.Sequential(*list(model.children())[:-2])
    if hasattr(model, "features"):
        return model.features
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


def timm_backbone(name: str, weights: str | os.PathLike | None = None) -> nn.Module:
    """A timm model with ``features_only=True`` that returns its last feature map only.

    Args:
        name: A timm model name (``resnet50``, ``tresnet_m``, ``swin_tiny_patch4_window7_224``,
            ``convnext_tiny``, ...).
        weights: A local weights file for the features-only model; nothing is downloaded.
    """
    try:
        import timm
    except ImportError:
        raise InvalidArgumentError(
            f"backbone 'timm:{name}' needs timm, which is not installed (pip install timm)"
        ) from None
    if name not in timm.list_models():
        raise InvalidArgumentError(f"unknown timm backbone {name!r}; see timm.list_models()")
    try:
        model = timm.create_model(name, pretrained=False, features_only=True, out_indices=(-1,))
    except (RuntimeError, ValueError, TypeError) as err:
        raise InvalidArgumentError(f"timm cannot build {name!r} as a feature extractor: {err}") from None
    if weights is not None:
        _load_weights(model, weights)
    return model


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
