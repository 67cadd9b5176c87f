"""ML-Decoder (Ridnik et al. 2023): G fixed group queries decode the image, a group
fully-connected layer maps them to K logits, so the cost hardly grows with K; in its
zero-shot mode the queries are label embeddings through a shared projection.

:class:`MLDecoderHead` computes what the official module (``Alibaba-MIIL/ML_Decoder``,
``src_files/ml_decoder/ml_decoder.py``) computes, with its parameter names, so an official
state dict loads key for key; its ``forward`` is one Rust call. Under ``torch.compile``, on
the meta device and on fake tensors the same computation runs as plain PyTorch ops.
"""

import os
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import _native
from .._files import read_official_checkpoint
from .._options import Options, documented
from .._tracing import needs_torch_ops
from .._validate import check_buildable, num_groups_arg, positive_int, transformer_parameters
from ..errors import InvalidArgumentError, InvalidTypeError, MissingFileError
from . import functional
from .query2label import CrossAttentionLayer, check_features, duplicate_factor


class MLDecoderLayer(CrossAttentionLayer):
    """ML-Decoder's decoder layer (the official ``TransformerDecoderLayerOptimal``): the
    self-attention of a Transformer decoder layer is removed and ``tgt + dropout(tgt)``
    kept in its place, then cross-attention over the image tokens, then the FFN, each
    followed by its LayerNorm.

    Args:
        d_model: Width E.
        nhead: Attention heads.
        dim_feedforward: FFN width.
        dropout: Dropout kept by ``nn.MultiheadAttention`` (the forward takes the head's).

    Shape:
        - tgt: ``(B or 1, Q, E)``; memory: ``(B, T, E)``
        - output: ``(B, Q, E)``
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.add_cross_attention_and_ffn(d_model, nhead, dim_feedforward, dropout)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, cfg: functional.LayerConfig) -> torch.Tensor:
        if cfg.training and cfg.dropout > 0:
            tgt = tgt.expand(memory.shape[0], -1, -1)
        tgt = self.norm1(tgt + functional.drop(tgt, cfg))
        attended, _ = functional.cross_attention(tgt, memory, memory, self.multihead_attn, cfg, False)
        tgt = functional.residual(tgt, self.norm2, cfg, lambda _: attended)
        return functional.residual(tgt, self.norm3, cfg, lambda t: functional.ffn(t, self, cfg))


class _MLDecoderStack(nn.Module):
    """The official ``MLDecoder.decoder``: layers plus the attributes the official module
    hangs on its ``nn.TransformerDecoder`` (so the state dict keys match)."""

    def __init__(
        self, layers: list[MLDecoderLayer], embed_standart: nn.Linear, query_embed: nn.Embedding | None
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.embed_standart = embed_standart
        self.query_embed = query_embed

    # Set by MLDecoderHead, under the official names.
    duplicate_pooling: nn.Parameter
    duplicate_pooling_bias: nn.Parameter


#: The options of the ML-Decoder's attention, declared once in Rust (``MlDecoderConfig`` in
#: ``src/decoder/config.rs``): their defaults, documentation and checks.
OPTIONS = Options("ml_decoder_head")


@documented(OPTIONS)
class MLDecoderHead(nn.Module):
    """ML-Decoder on a backbone's feature map or token sequence.

    Defaults are the official module's (``decoder_embedding=768``, 8 heads, one layer,
    FFN 2048, dropout 0.1, at most 100 groups).

    Args:
        num_classes: Number of labels K (ignored by a zero-shot head, which has as many
            labels as the embeddings given to ``forward``).
        in_channels: Channels C of the features (official ``initial_num_features``).
        num_groups: Group queries G; ``None`` is the official ``min(100, K)``. Must be at
            most K.
        num_layers: Decoder layers (1 officially).
        dim_feedforward: FFN width.
        zsl: Zero-shot mode: the queries are label embeddings ``(K, embedding_dim)``
            through ``wordvec_proj`` and a ReLU, scored by one shared linear map.
        embedding_dim: Width of a zero-shot head's label embeddings (default 300, as officially:
            word2vec); when it equals ``d_model`` there is no projection (the official
            ``nn.Identity``). Only for ``zsl=True``.
        {options}

    Shape:
        - features: ``(B, C, H, W)`` or ``(B, T, C)``; label_embeddings: ``(K, embedding_dim)``
        - output: ``(B, K)`` logits.
    """

    decoder: _MLDecoderStack
    wordvec_proj: nn.Linear | None

    def __init__(
        self,
        num_classes: int | None = None,
        in_channels: int = 2048,
        num_groups: int | None = None,
        d_model: int = OPTIONS.defaults["d_model"],
        nhead: int = OPTIONS.defaults["nhead"],
        num_layers: int = 1,
        dim_feedforward: int = 2048,
        dropout: float = OPTIONS.defaults["dropout"],
        zsl: bool = False,
        embedding_dim: int | None = None,
    ) -> None:
        super().__init__()
        config = OPTIONS.resolve(dict(d_model=d_model, nhead=nhead, dropout=dropout))
        positive_int("in_channels", in_channels)
        positive_int("num_layers", num_layers)
        positive_int("dim_feedforward", dim_feedforward)
        if not isinstance(zsl, bool):
            raise InvalidTypeError(f"zsl must be a bool, got {zsl!r}")
        self.zsl = zsl
        for name, value in (("num_classes", num_classes), ("num_groups", num_groups)):
            if zsl and value is not None:
                raise InvalidArgumentError(
                    f"{name} is for heads with fixed label queries; a zero-shot head (zsl=True) has as many"
                    f" labels as the embeddings given to forward, so leave {name} out (got {value!r})"
                )
        if not zsl and embedding_dim is not None:
            raise InvalidArgumentError(
                f"embedding_dim is the width of a zero-shot head's label embeddings; this head has fixed"
                f" label queries (zsl=False), so leave it out or set zsl=True (got {embedding_dim!r})"
            )
        # A zero-shot head has as many labels as embeddings given to forward.
        classes = 0 if self.zsl else positive_int("num_classes", num_classes)
        if self.zsl:
            embedding_dim = positive_int("embedding_dim", 300 if embedding_dim is None else embedding_dim)
        else:
            embedding_dim = 0
        # The official default: one group per label up to 100.
        groups = 0 if self.zsl else num_groups_arg(num_groups, classes) or min(100, classes)
        check_buildable(
            "MLDecoderHead",
            in_channels * d_model
            + (embedding_dim * d_model if self.zsl else 0)
            + (0 if self.zsl else classes + groups * d_model)
            + d_model * (1 if self.zsl else classes)
            + transformer_parameters(d_model, dim_feedforward, num_layers, attentions=1),
            dict(in_channels=in_channels, d_model=d_model, num_layers=num_layers, dim_feedforward=dim_feedforward)
            | ({"embedding_dim": embedding_dim} if self.zsl else {"num_classes": classes}),
        )
        self.num_classes = None if self.zsl else classes
        self.num_groups = None if self.zsl else groups
        self.in_channels = in_channels
        self.d_model: int = config["d_model"]
        self.nhead: int = config["nhead"]
        self.dim_feedforward = dim_feedforward
        self.dropout: float = config["dropout"]
        self.embedding_dim = embedding_dim if self.zsl else None
        query_embed = None
        if not self.zsl:
            query_embed = nn.Embedding(groups, d_model)
            query_embed.requires_grad_(False)  # fixed queries, as in the official module
        self.decoder = _MLDecoderStack(
            [MLDecoderLayer(d_model, nhead, dim_feedforward, dropout) for _ in range(num_layers)],
            nn.Linear(in_channels, d_model),
            query_embed,
        )
        if self.zsl:
            self.wordvec_proj = nn.Linear(embedding_dim, d_model) if embedding_dim != d_model else None
            pooling = torch.empty(d_model, 1)
            bias = torch.empty(1)
        else:
            pooling = torch.empty(groups, d_model, duplicate_factor(classes, groups))
            bias = torch.empty(classes)
        self.decoder.duplicate_pooling = nn.Parameter(pooling)
        self.decoder.duplicate_pooling_bias = nn.Parameter(bias)
        nn.init.xavier_normal_(self.decoder.duplicate_pooling)
        nn.init.zeros_(self.decoder.duplicate_pooling_bias)

    @property
    def num_layers(self) -> int:
        return len(self.decoder.layers)

    def config(self) -> dict:
        """The constructor arguments that rebuild this head (JSON-ready)."""
        out = {
            "in_channels": self.in_channels,
            "d_model": self.d_model,
            "nhead": self.nhead,
            "num_layers": self.num_layers,
            "dim_feedforward": self.dim_feedforward,
            "dropout": self.dropout,
            "zsl": self.zsl,
        }
        if self.zsl:
            return {**out, "embedding_dim": self.embedding_dim}
        return {**out, "num_classes": self.num_classes, "num_groups": self.num_groups}

    def forward(self, features: torch.Tensor, label_embeddings: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of every label.

        Args:
            features: Backbone feature map ``(B, C, H, W)`` or tokens ``(B, T, C)``.
            label_embeddings: ``(K, embedding_dim)``, required by (and only by) a zero-shot
                head: any labels, seen in training or not.
        """
        param = self.decoder.embed_standart.weight
        check_features(features, param, dims=(3, 4))
        if self.zsl and label_embeddings is None:
            raise InvalidArgumentError("a zero-shot MLDecoderHead needs label_embeddings of shape [K, embedding_dim]")
        if not self.zsl and label_embeddings is not None:
            raise InvalidArgumentError("label_embeddings are for zsl=True heads; this head has fixed group queries")
        if needs_torch_ops(features):
            return _torch_forward(self, features, label_embeddings, self.training)
        return _native.ml_decoder_forward(
            features=features,
            params=dict(self.named_parameters()),
            label_embeddings=label_embeddings,
            config={name: getattr(self, name) for name in OPTIONS.names},
            train=self.training,
        )

    def extra_repr(self) -> str:
        if self.zsl:
            return (
                f"zsl=True, in_channels={self.in_channels}, d_model={self.d_model}, embedding_dim={self.embedding_dim}"
            )
        return (
            f"num_classes={self.num_classes}, num_groups={self.num_groups}, in_channels={self.in_channels}, "
            f"d_model={self.d_model}"
        )

    @classmethod
    def from_official(cls, source: str | os.PathLike | Mapping, *, nhead: int = 8, dropout: float = 0.1):
        """An :class:`MLDecoderHead` with the head weights of an official ML-Decoder model.

        Args:
            source: A checkpoint file (read with ``weights_only=True``) or a state dict of
                a whole model (``head.decoder...`` for TResNet, ``fc.decoder...`` for
                ResNet) or of the ``MLDecoder`` module alone.
            nhead: Attention heads, which weights do not show (8 officially).
            dropout: Dropout rate to train with.
        """
        state = read_official_checkpoint(source)
        anchor = "decoder.embed_standart.weight"
        prefixes = {k[: -len(anchor)] for k in state if k.endswith(anchor)}
        if len(prefixes) != 1:
            raise InvalidArgumentError(f"not an ML-Decoder state dict: expected one key ending in {anchor!r}")
        prefix = prefixes.pop()
        head_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        head_state = {k: v for k, v in head_state.items() if k.startswith(("decoder.", "wordvec_proj."))}
        d_model, in_channels = head_state[anchor].shape
        pooling = head_state.get("decoder.duplicate_pooling")
        if pooling is None or "decoder.layers.0.linear1.weight" not in head_state:
            raise InvalidArgumentError(
                "not an ML-Decoder state dict: decoder.duplicate_pooling or its layers are missing"
            )
        zsl = pooling.dim() == 2
        layers = len({k.split(".")[2] for k in head_state if k.startswith("decoder.layers.")})
        kwargs = dict(
            in_channels=int(in_channels),
            d_model=int(d_model),
            nhead=nhead,
            num_layers=layers,
            dim_feedforward=int(head_state["decoder.layers.0.linear1.weight"].shape[0]),
            dropout=dropout,
            zsl=zsl,
        )
        if zsl:
            proj = head_state.get("wordvec_proj.weight")
            kwargs["embedding_dim"] = int(proj.shape[1]) if proj is not None else int(d_model)
        else:
            kwargs["num_classes"] = int(head_state["decoder.duplicate_pooling_bias"].shape[0])
            kwargs["num_groups"] = int(pooling.shape[0])
        head = cls(**kwargs)
        missing, unexpected = head.load_state_dict(head_state, strict=False)
        if missing or unexpected:
            raise InvalidArgumentError(f"checkpoint does not fit the head: missing {missing}, unexpected {unexpected}")
        return head


def load_label_embeddings(path: str | os.PathLike) -> torch.Tensor:
    """Label embeddings ``(K, D)`` (float32) for a zero-shot head, from a local file; nothing
    is downloaded and nothing in the file runs.

    ``.npy`` (read without pickle), ``.pt`` / ``.pth`` (``weights_only``; a tensor, or a dict
    with one tensor) or ``.safetensors`` (one tensor, or one named ``"embeddings"``).
    """

    from .._files import CheckpointError, load_torch_file

    name = os.fsdecode(path)
    ext = os.path.splitext(name)[1].lower()
    if ext not in (".npy", ".pt", ".pth", ".safetensors"):
        raise InvalidArgumentError(f"{name!r}: label embeddings must be a .npy, .pt, .pth or .safetensors file")
    if not os.path.isfile(name):
        raise MissingFileError(f"no label embeddings at {name!r}")
    value: Any
    if ext == ".npy":
        # Read in Rust: the header's shape must match the bytes that follow it, so a crafted
        # header cannot ask for more memory than the file holds.
        value = _native.read_npy(path=name)
    elif ext == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            tensors = load_file(name)
        except (SafetensorError, OSError, ValueError) as err:
            raise CheckpointError(f"{name!r} is not a readable safetensors file ({err})") from None
        value = tensors.get("embeddings", next(iter(tensors.values())) if len(tensors) == 1 else None)
    else:
        value = load_torch_file(name, "label embeddings")
        if isinstance(value, Mapping) and len(value) == 1:
            value = next(iter(value.values()))
    if not isinstance(value, torch.Tensor):
        raise InvalidArgumentError(f"{name!r} must hold one tensor of label embeddings (or one named 'embeddings')")
    if value.dim() != 2 or 0 in value.shape or not value.is_floating_point():
        raise InvalidArgumentError(
            f"{name!r}: label embeddings must be a non-empty float [num_labels, dim] array, got "
            f"{value.dtype} {tuple(value.shape)}"
        )
    return value.float().contiguous()


def _torch_forward(
    head: MLDecoderHead, features: torch.Tensor, label_embeddings: torch.Tensor | None, training: bool
) -> torch.Tensor:
    """The Rust forward's computation in PyTorch ops, for tracing, meta and fake tensors."""
    src = features.flatten(2).transpose(1, 2) if features.dim() == 4 else features
    memory = F.relu(head.decoder.embed_standart(src))
    if head.zsl:
        assert label_embeddings is not None  # forward checked it
        proj, emb = head.wordvec_proj, label_embeddings.to(features.dtype)  # as the Rust forward
        queries = F.relu(proj(emb) if proj is not None else emb)
    else:
        assert head.decoder.query_embed is not None
        queries = head.decoder.query_embed.weight
    cfg = functional.LayerConfig(head.nhead, False, head.dropout, training)
    tgt = queries[None]
    for layer in head.decoder.layers:
        tgt = layer(tgt, memory, cfg)
    tgt = tgt.expand(memory.shape[0], -1, -1)
    pooling, bias = head.decoder.duplicate_pooling, head.decoder.duplicate_pooling_bias
    if head.zsl:
        return (tgt @ pooling).flatten(1) + bias
    return functional.group_fc(tgt, pooling, bias)


__all__ = ["MLDecoderHead", "MLDecoderLayer", "load_label_embeddings"]
