"""The full Query2Label model: any backbone that yields a feature map, plus the head."""

from typing import Any

import torch
from torch import nn

from ..errors import InvalidArgumentError, InvalidTypeError
from ..heads import Query2LabelHead
from . import pretrained
from .backbones import _RESNETS, _is_channels_last, freeze_resnet_stem, frozen_batchnorm, named_backbone


def backbone_features(backbone: nn.Module, images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """The feature map ``[B, C, H, W]`` of ``backbone`` on ``images``: the last of a dict or
    list it returns, and channels moved first for a channels-last backbone."""
    out = backbone(images)
    if isinstance(out, dict):
        out = list(out.values())[-1]
    elif isinstance(out, (list, tuple)):
        out = out[-1]
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        raise InvalidArgumentError("the backbone must return a 4-D feature map (or a dict/list ending with one)")
    return out.permute(0, 3, 1, 2) if channels_last else out


class Query2Label(nn.Module):
    """Backbone + :class:`Query2LabelHead`.

    Args:
        backbone: A module returning a feature map (``[B, C, H, W]``, a dict or list of
            them, whose last is used, or channels-last ``[B, H, W, C]`` with
            ``channels_last=True``), a torchvision name (see :func:`torchvision_backbone`),
            ``"timm:<name>"`` for a timm model (see :func:`timm_backbone`), or ``"tiny"``
            (:class:`TinyBackbone`).
        num_classes: Number of labels.
        weights: The pretrained weights of a backbone given by name: for torchvision a
            weights name (``"IMAGENET1K_V1"``, ``"DEFAULT"``) or enum member, for either
            library a local file (for timm, the full classifier checkpoint it publishes).
            See :func:`torchvision_backbone` for where names are looked up.
        pretrained: Start a ``"timm:<name>.<tag>"`` backbone from timm's weights of that
            tag (see :func:`timm_backbone`).
        channels_last: The backbone returns ``[B, H, W, C]`` (Swin-style). ``None``: true
            for timm models that declare NHWC features, false otherwise.
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
        backbone: str | nn.Module,
        num_classes: int,
        *,
        weights: Any = None,
        pretrained: bool = False,
        channels_last: bool | None = None,
        freeze_stem: bool = False,
        frozen_bn: bool = False,
        **head_kwargs,
    ) -> None:
        super().__init__()
        self.backbone_name = backbone if isinstance(backbone, str) else None
        #: What a named backbone started from (``config.json``'s ``backbone_weights``).
        self.backbone_weights: dict[str, Any] | None = None
        if isinstance(backbone, str):
            name = backbone
            backbone, source = named_backbone(name, weights, pretrained)
            self.backbone_weights = None if source is None else source.to_json()
            if freeze_stem and name in _RESNETS:
                freeze_resnet_stem(backbone)
        elif not isinstance(backbone, nn.Module):
            raise InvalidTypeError(f"backbone must be an nn.Module or a backbone name, got {type(backbone).__name__}")
        elif weights is not None or pretrained:
            raise InvalidArgumentError(
                "weights and pretrained are for backbones given by name; load your module's weights yourself"
            )
        if frozen_bn:
            frozen_batchnorm(backbone)
        self.backbone = backbone
        self.channels_last = _is_channels_last(backbone) if channels_last is None else bool(channels_last)
        self.freeze_stem = bool(freeze_stem)
        self.frozen_bn = bool(frozen_bn)
        # Set by from_pretrained from the model folder's config.
        self.classes: list[str] | None = None
        self.preprocessing: dict[str, Any] | None = None
        if "in_channels" not in head_kwargs:
            head_kwargs["in_channels"] = self._probe_channels()
        self.head = Query2LabelHead(num_classes=num_classes, **head_kwargs)

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        return backbone_features(self.backbone, images, self.channels_last)

    def _probe_channels(self) -> int:
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            param = next(self.backbone.parameters(), None)
            device = param.device if param is not None else "cpu"
            # timm models with a fixed input size (Swin) say which; others take any size.
            size = tuple((getattr(self.backbone, "pretrained_cfg", None) or {}).get("input_size", (3, 64, 64)))
            with torch.no_grad():
                return int(self._features(torch.zeros(1, *size, device=device)).shape[1])
        finally:
            self.backbone.train(was_training)

    def forward(self, images: torch.Tensor, return_attention: bool = False):
        return self.head(self._features(images), return_attention=return_attention)

    def parameter_groups(self, lr_backbone: float, lr_head: float) -> list[dict]:
        """Optimizer groups with separate learning rates for backbone and head."""
        backbone = [p for p in self.backbone.parameters() if p.requires_grad]
        return [{"params": backbone, "lr": lr_backbone}, {"params": list(self.head.parameters()), "lr": lr_head}]

    def config(self) -> dict[str, Any]:
        """The architecture as ``from_pretrained`` rebuilds it (``backbone`` is ``None`` for
        a backbone passed as a module), and the weights the backbone started from."""
        return {
            "backbone": self.backbone_name,
            "backbone_weights": self.backbone_weights,
            "channels_last": self.channels_last,
            "freeze_stem": self.freeze_stem,
            "frozen_bn": self.frozen_bn,
            "head": self.head.config(),
        }

    # Model folders (q2l/models/pretrained.py): the functions are the methods.
    save_pretrained = pretrained.save_pretrained
    from_pretrained = classmethod(pretrained.from_pretrained)
