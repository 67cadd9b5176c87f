"""The full ML-Decoder model: any backbone that yields a feature map, plus
:class:`~q2l.heads.MLDecoderHead`, with group queries or, zero-shot, label embeddings."""

import os
from typing import Any

import torch
from torch import nn

from .._arrays import tensor_of
from .._validate import check_buildable, positive_int
from ..errors import InvalidArgumentError
from ..heads import MLDecoderHead
from ..heads.ml_decoder import load_label_embeddings
from .model import BackboneModel


def label_embeddings_arg(value: Any, name: str = "label_embeddings") -> torch.Tensor:
    """``value`` (a tensor, array or a ``.npy`` / ``.safetensors`` / ``.pt`` file) as a
    float32 ``[K, D]`` tensor of finite label embeddings; errors name ``name``."""
    if isinstance(value, (str, os.PathLike)):
        emb = load_label_embeddings(value)  # checks the shape and dtype, naming the file
    else:
        emb = tensor_of(value, name)
        if emb.dim() != 2 or 0 in emb.shape or not emb.is_floating_point():
            raise InvalidArgumentError(
                f"{name} must be a non-empty float [num_labels, dim] array, got {emb.dtype} {tuple(emb.shape)}"
            )
        emb = emb.float()
    bad = (~torch.isfinite(emb)).nonzero()
    if len(bad):
        row, col = bad[0].tolist()
        raise InvalidArgumentError(f"{name}[{row}, {col}] is {emb[row, col].item()}: embeddings must be finite")
    return emb.contiguous()


class MLDecoder(BackboneModel):
    """Backbone + :class:`~q2l.heads.MLDecoderHead`.

    With ``label_embeddings`` the head is zero-shot: each label is queried by its embedding
    (from a word or sentence model), so :meth:`forward` scores any labels whose embeddings
    it is given, seen in training or not; the training labels' embeddings are kept as the
    ``label_embeddings`` buffer (saved with the weights).

    Args:
        backbone: A module returning a feature map, or a backbone name (see
            :class:`~q2l.models.model.BackboneModel`).
        num_classes: Number of labels K; with ``label_embeddings`` it may be left out, and
            must otherwise equal their count.
        label_embeddings: ``(K, D)`` embeddings of the labels (a tensor, an array, or a
            ``.npy`` / ``.safetensors`` / ``.pt`` file): makes the head zero-shot.
        weights: The pretrained weights of a backbone given by name.
        pretrained: Start a ``"timm:<name>.<tag>"`` backbone from timm's weights.
        channels_last: The backbone returns ``[B, H, W, C]``.
        freeze_stem: Freeze a ResNet's conv1/bn1/layer1.
        frozen_bn: Replace BatchNorm by FrozenBatchNorm2d.
        **head_kwargs: Arguments of :class:`~q2l.heads.MLDecoderHead` (``in_channels`` is
            found by running the backbone once; ``zsl`` and ``embedding_dim`` follow from
            ``label_embeddings``).

    Shape:
        - images: ``(B, 3, H, W)``; label_embeddings: ``(K', D)``
        - output: ``(B, K)`` logits, or ``(B, K')`` with embeddings given to ``forward``.
    """

    HEAD_TYPE = "ml-decoder"
    HEAD_CLASS = MLDecoderHead
    head: MLDecoderHead
    label_embeddings: torch.Tensor | None

    def __init__(
        self,
        backbone: str | nn.Module,
        num_classes: int | None = None,
        *,
        label_embeddings: Any = None,
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
        for key in ("zsl", "embedding_dim"):
            if key in head_kwargs:
                raise InvalidArgumentError(
                    f"{key} follows from label_embeddings (given: a zero-shot head of their width); leave it out"
                )
        emb = None
        if label_embeddings is not None:
            emb = label_embeddings_arg(label_embeddings)
            if num_classes is not None and num_classes != len(emb):
                raise InvalidArgumentError(
                    f"num_classes is {num_classes} but label_embeddings has {len(emb)} rows: one per label"
                )
            if head_kwargs.get("num_groups") is not None:
                raise InvalidArgumentError(
                    "num_groups is for heads with fixed group queries; a zero-shot head queries with one "
                    f"embedding per label (got num_groups={head_kwargs['num_groups']!r})"
                )
            head_kwargs.pop("num_groups", None)
            head_kwargs |= {"zsl": True, "embedding_dim": emb.shape[1]}
        elif num_classes is None:
            raise InvalidArgumentError("MLDecoder needs num_classes, or label_embeddings for a zero-shot head")
        self.register_buffer("label_embeddings", emb)
        if "in_channels" not in head_kwargs:
            head_kwargs["in_channels"] = self._probe_channels()
        self.head = MLDecoderHead(num_classes=None if emb is not None else num_classes, **head_kwargs)

    @property
    def num_classes(self) -> int:
        """The labels :meth:`forward` scores without embeddings given."""
        if self.label_embeddings is not None:
            return len(self.label_embeddings)
        assert self.head.num_classes is not None  # a head with group queries has its count
        return self.head.num_classes

    def forward(self, images: torch.Tensor, label_embeddings: Any = None) -> torch.Tensor:
        """Logits of every label.

        Args:
            images: ``(B, 3, H, W)``.
            label_embeddings: Zero-shot heads only: ``(K', D)`` embeddings of the labels to
                score instead of the training ones.
        """
        features = self._features(images)
        if not self.head.zsl:
            if label_embeddings is not None:
                raise InvalidArgumentError(
                    "label_embeddings are for zero-shot models (built with label_embeddings); this one has "
                    "fixed group queries"
                )
            return self.head(features)
        if label_embeddings is None:
            emb = self.label_embeddings
        elif isinstance(label_embeddings, torch.Tensor):
            # The head's Rust forward checks its shape, dtype and values; a second pass here
            # would repeat that on every call.
            emb = label_embeddings.to(features.device)
        else:
            emb = label_embeddings_arg(label_embeddings).to(features.device)
        return self.head(features, emb)

    def head_config(self) -> dict[str, Any]:
        return {**self.head.config(), "num_classes": self.num_classes}

    @classmethod
    def from_config(cls, backbone: str | nn.Module, head: dict[str, Any], **backbone_kwargs: Any) -> "MLDecoder":
        head = dict(head)
        num_classes = head.pop("num_classes")
        if not head.pop("zsl", False):
            head.pop("embedding_dim", None)
            return cls(backbone, num_classes, **backbone_kwargs, **head)
        dim = head.pop("embedding_dim")
        check_buildable("MLDecoder's label embeddings", num_classes * dim, {"num_classes": num_classes, "dim": dim})
        # Placeholders: the weights file holds the training labels' embeddings.
        return cls(backbone, num_classes, label_embeddings=torch.zeros(num_classes, dim), **backbone_kwargs, **head)

    @classmethod
    def check_head_values(cls, head: dict[str, Any]) -> None:
        head = dict(head)
        num_classes = positive_int("num_classes", head.pop("num_classes"))
        if not head.get("zsl", False):
            head["num_classes"] = num_classes
        with torch.device("meta"):  # the head's own checks, allocating nothing
            MLDecoderHead(**head)
