"""Full Query2Label models: any backbone that yields a feature map, plus the head."""

import os
from typing import List, Optional, Tuple, Union

import torch
from torch import nn

from .query2label import Query2LabelHead

_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d",
            "wide_resnet50_2", "wide_resnet101_2")


def _load_weights(model: nn.Module, path: Union[str, os.PathLike]) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"no weights file at {os.fspath(path)!r}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{os.fspath(path)!r} is not a readable PyTorch weights file: {err}") from err
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing:
        raise ValueError(f"weights file {os.fspath(path)!r} does not fit the backbone: missing {missing[:5]}...")


def torchvision_backbone(name: str, weights: Optional[Union[str, os.PathLike]] = None) -> nn.Module:
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
        raise ValueError(f"unknown torchvision backbone {name!r}") from None
    model = builder(weights=None)
    if weights is not None:
        _load_weights(model, weights)
    if name in _RESNETS:
        return nn.Sequential(*list(model.children())[:-2])
    if hasattr(model, "features"):
        return model.features
    raise ValueError(f"do not know where the feature map of {name!r} ends; pass the feature module itself")


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


class Query2Label(nn.Module):
    """Backbone + :class:`Query2LabelHead`.

    Args:
        backbone: A module returning a feature map (``[B, C, H, W]``, a dict or list of
            them, whose last is used, or channels-last ``[B, H, W, C]`` with
            ``channels_last=True``), a torchvision name (see :func:`torchvision_backbone`),
            or ``"timm:<name>"`` for a timm model (when timm is installed).
        num_classes: Number of labels.
        weights: Local weights file for a backbone given by name.
        channels_last: The backbone returns ``[B, H, W, C]`` (Swin-style).
        freeze_stem: Freeze a ResNet's conv1/bn1/layer1 (official recipe).
        frozen_bn: Replace BatchNorm by FrozenBatchNorm2d.
        **head_kwargs: Arguments of :class:`Query2LabelHead` (``in_channels`` is found
            by running the backbone once on a small input).

    Shape:
        - images: ``(B, 3, H, W)``
        - output: ``(B, num_classes)`` logits (and attention maps with
          ``return_attention=True``)
    """

    def __init__(
        self,
        backbone: Union[str, nn.Module],
        num_classes: int,
        *,
        weights: Optional[Union[str, os.PathLike]] = None,
        channels_last: bool = False,
        freeze_stem: bool = False,
        frozen_bn: bool = False,
        **head_kwargs,
    ) -> None:
        super().__init__()
        if isinstance(backbone, str):
            name = backbone
            if name.startswith("timm:"):
                try:
                    import timm
                except ImportError:
                    raise ValueError(f"{name!r} needs timm, which is not installed") from None
                backbone = timm.create_model(name[5:], pretrained=False, features_only=True)
                if weights is not None:
                    _load_weights(backbone, weights)
            else:
                backbone = torchvision_backbone(name, weights)
                if freeze_stem and name in _RESNETS:
                    freeze_resnet_stem(backbone)
        elif weights is not None:
            raise ValueError("weights is for backbones given by name; load your module's weights yourself")
        if frozen_bn:
            frozen_batchnorm(backbone)
        self.backbone = backbone
        self.channels_last = channels_last
        if "in_channels" not in head_kwargs:
            head_kwargs["in_channels"] = self._probe_channels()
        self.head = Query2LabelHead(num_classes=num_classes, **head_kwargs)

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        out = self.backbone(images)
        if isinstance(out, dict):
            out = list(out.values())[-1]
        elif isinstance(out, (list, tuple)):
            out = out[-1]
        if not isinstance(out, torch.Tensor) or out.dim() != 4:
            raise ValueError("the backbone must return a 4-D feature map (or a dict/list ending with one)")
        return out.permute(0, 3, 1, 2) if self.channels_last else out

    def _probe_channels(self) -> int:
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            param = next(self.backbone.parameters(), None)
            device = param.device if param is not None else "cpu"
            with torch.no_grad():
                return int(self._features(torch.zeros(1, 3, 64, 64, device=device)).shape[1])
        finally:
            self.backbone.train(was_training)

    def forward(self, images: torch.Tensor, return_attention: bool = False):
        return self.head(self._features(images), return_attention=return_attention)

    def parameter_groups(self, lr_backbone: float, lr_head: float) -> List[dict]:
        """Optimizer groups with separate learning rates for backbone and head."""
        backbone = [p for p in self.backbone.parameters() if p.requires_grad]
        return [{"params": backbone, "lr": lr_backbone}, {"params": list(self.head.parameters()), "lr": lr_head}]
