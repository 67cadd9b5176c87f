"""The full Query2Label model: any backbone that yields a feature map, plus the head."""

import inspect
import os
from typing import Any

import torch
from torch import nn

from ..errors import InvalidArgumentError, InvalidTypeError
from ..heads import Query2LabelHead
from ..heads.query2label import check_arguments as check_head_arguments
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


class BackboneModel(nn.Module):
    """A backbone plus a head on its feature map: what :class:`Query2Label` and
    :class:`~q2l.models.MLDecoder` share (the backbone by name or module, its weights, the
    model folder). A subclass sets :attr:`HEAD_TYPE` and builds ``self.head``.

    Args:
        backbone: A module returning a feature map (``[B, C, H, W]``, a dict or list of
            them, whose last is used, or channels-last ``[B, H, W, C]`` with
            ``channels_last=True``), a torchvision name (see :func:`torchvision_backbone`),
            ``"timm:<name>"`` for a timm model (see :func:`timm_backbone`), or ``"tiny"``
            (:class:`TinyBackbone`).
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
    """

    #: The ``head_type`` of the model folder (``config.json``).
    HEAD_TYPE: str = ""
    #: The head module's class, whose arguments are the folder's ``head`` keys.
    HEAD_CLASS: type[nn.Module]
    head: nn.Module

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        pretrained.MODEL_CLASSES[cls.HEAD_TYPE] = cls

    def __init__(
        self,
        backbone: str | nn.Module,
        *,
        weights: Any = None,
        pretrained: bool = False,
        channels_last: bool | None = None,
        freeze_stem: bool = False,
        frozen_bn: bool = False,
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

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        return backbone_features(self.backbone, images, self.channels_last)

    def _probe_channels(self) -> int:
        """The backbone's output channels, from one forward on a small input."""
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

    def parameter_groups(self, lr_backbone: float, lr_head: float) -> list[dict]:
        """Optimizer groups with separate learning rates for backbone and head."""
        backbone = [p for p in self.backbone.parameters() if p.requires_grad]
        return [{"params": backbone, "lr": lr_backbone}, {"params": list(self.head.parameters()), "lr": lr_head}]

    def head_config(self) -> dict[str, Any]:
        """The ``head`` entry of :meth:`config`: the arguments :meth:`from_config` takes."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The architecture as ``from_pretrained`` rebuilds it (``backbone`` is ``None`` for
        a backbone passed as a module), and the weights the backbone started from."""
        return {
            "head_type": self.HEAD_TYPE,
            "backbone": self.backbone_name,
            "backbone_weights": self.backbone_weights,
            "channels_last": self.channels_last,
            "freeze_stem": self.freeze_stem,
            "frozen_bn": self.frozen_bn,
            "head": self.head_config(),
        }

    @classmethod
    def from_config(cls, backbone: str | nn.Module, head: dict[str, Any], **backbone_kwargs: Any) -> "BackboneModel":
        """An untrained model of the architecture :meth:`config` describes (``head`` is its
        ``head`` entry), for weights to be loaded into."""
        raise NotImplementedError

    @classmethod
    def check_head_config(cls, head: dict[str, Any]) -> None:
        """Checks a model folder's ``head`` entry (keys, then values by the head's own
        checks) before anything is built; errors name the key."""
        allowed = set(inspect.signature(cls.HEAD_CLASS.__init__).parameters) - {"self"} | {"num_classes"}
        bad = sorted(set(head) - allowed)
        if bad:
            raise InvalidArgumentError(f"unknown key 'head.{bad[0]}'")
        if "num_classes" not in head:
            raise InvalidArgumentError("missing key 'head.num_classes'")
        try:
            cls.check_head_values(head)
        except (InvalidArgumentError, InvalidTypeError) as err:
            raise InvalidArgumentError(f"key 'head': {err}") from None

    @classmethod
    def check_head_values(cls, head: dict[str, Any]) -> None:
        """The values of a ``head`` entry whose keys are known, checked allocating nothing."""
        raise NotImplementedError

    def export(self) -> nn.Module:
        """A module of plain PyTorch ops computing the same logits from images (for ONNX)."""
        return self

    # Model folders (q2l/models/pretrained.py): the functions are the methods.
    save_pretrained = pretrained.save_pretrained
    from_pretrained = classmethod(pretrained.from_pretrained)


class Query2Label(BackboneModel):
    """Backbone + :class:`Query2LabelHead`.

    Args:
        backbone: A module returning a feature map, or a backbone name (see
            :class:`BackboneModel`).
        num_classes: Number of labels.
        weights: The pretrained weights of a backbone given by name (see
            :class:`BackboneModel`).
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

    HEAD_TYPE = "query2label"
    HEAD_CLASS = Query2LabelHead
    head: Query2LabelHead

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
        super().__init__(
            backbone,
            weights=weights,
            pretrained=pretrained,
            channels_last=channels_last,
            freeze_stem=freeze_stem,
            frozen_bn=frozen_bn,
        )
        if "in_channels" not in head_kwargs:
            head_kwargs["in_channels"] = self._probe_channels()
        self.head = Query2LabelHead(num_classes=num_classes, **head_kwargs)

    def forward(self, images: torch.Tensor, return_attention: bool = False):
        return self.head(self._features(images), return_attention=return_attention)

    def head_config(self) -> dict[str, Any]:
        return self.head.config()

    @classmethod
    def from_config(cls, backbone: str | nn.Module, head: dict[str, Any], **backbone_kwargs: Any) -> "Query2Label":
        head = dict(head)
        return cls(backbone, head.pop("num_classes"), **backbone_kwargs, **head)

    @classmethod
    def check_head_values(cls, head: dict[str, Any]) -> None:
        params = inspect.signature(Query2LabelHead.__init__).parameters
        check_head_arguments(**{name: head.get(name, p.default) for name, p in params.items() if name != "self"})

    def export(self) -> nn.Module:
        return _Exported(self.backbone, self.head.export(), self.channels_last)


class _Exported(nn.Module):
    """Backbone + a head's pure-PyTorch twin: what goes into ONNX."""

    def __init__(self, backbone: nn.Module, head: nn.Module, channels_last: bool) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.channels_last = channels_last

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(backbone_features(self.backbone, images, self.channels_last))


def load_pretrained(
    directory: str | os.PathLike, *, backbone: nn.Module | None = None, map_location: str | torch.device = "cpu"
) -> BackboneModel:
    """Any model folder, as the model its ``config.json`` names (:class:`Query2Label` or
    :class:`~q2l.models.MLDecoder`); arguments as :meth:`BackboneModel.from_pretrained`."""
    return BackboneModel.from_pretrained(directory, backbone=backbone, map_location=map_location)
