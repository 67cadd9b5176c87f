"""The Query2Label head: label embeddings query a Transformer over the backbone's features.

:class:`Query2LabelHead` owns the parameters (named as in the official model, so its
checkpoints map key for key); its ``forward`` is one Rust call on libtorch ops, so autograd,
AMP, ``.to()`` and optimizers work as for any module. Under ``torch.compile``, on the meta
device and on fake tensors the same computation runs as plain PyTorch ops
(:mod:`q2l.heads.functional`), which those tools can trace.
"""

import copy
import math
from typing import Any

import torch
from torch import nn

from .. import _native
from .._options import Options, documented
from .._tracing import needs_torch_ops
from .._validate import check_buildable, num_groups_arg, positive_int, transformer_parameters
from ..errors import InvalidArgumentError, InvalidTypeError
from . import functional


def check_features(features: torch.Tensor, param: torch.Tensor, dims: tuple[int, ...] = (4,)) -> None:
    """Refuses features that are not a tensor of ``dims`` dimensions on ``param``'s device and
    of its dtype (outside autocast), naming the problem."""
    if not isinstance(features, torch.Tensor):
        raise InvalidTypeError(f"features must be a torch.Tensor, got {type(features).__name__}")
    if features.dim() not in dims:
        layouts = {4: "[batch, channels, height, width]", 3: "[batch, tokens, channels]"}
        raise InvalidArgumentError(
            f"features must have shape {' or '.join(layouts[d] for d in dims)}, got {tuple(features.shape)}"
        )
    if features.device != param.device:
        raise InvalidArgumentError(
            f"features are on {features.device} but the head is on {param.device}; move one of them"
        )
    if features.dtype != param.dtype and not torch.is_autocast_enabled(features.device.type):
        raise InvalidArgumentError(
            f"features are {features.dtype} but the head's parameters are {param.dtype}; convert one of "
            f"them, or run under torch.autocast"
        )


class GroupWiseLinear(nn.Module):
    """One linear classifier per label: ``logit_k = <W_k, h_k> + b_k``.

    Args:
        num_classes: Number of labels K.
        hidden_dim: Width d of each label's feature.

    Shape:
        - input: ``(B, K, d)``
        - output: ``(B, K)``
    """

    def __init__(self, num_classes: int, hidden_dim: int) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.empty(1, num_classes, hidden_dim))
        self.b = nn.Parameter(torch.empty(1, num_classes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.W.shape[2])
        nn.init.uniform_(self.W, -bound, bound)
        nn.init.uniform_(self.b, -bound, bound)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return (self.W * h).sum(-1) + self.b


def duplicate_factor(num_classes: int, num_groups: int) -> int:
    """Logits per group query, ``ceil(K / G)``."""
    return -(-num_classes // num_groups)


class GroupFC(nn.Module):
    """ML-Decoder's group fully-connected layer: G group outputs give K logits, each group
    ``ceil(K / G)`` of them through its own ``[d, ceil(K / G)]`` map.

    Args:
        num_classes: Number of labels K.
        num_groups: Group queries G (at most K).
        hidden_dim: Width d of each group's feature.

    Shape:
        - input: ``(B, G, d)``
        - output: ``(B, K)``
    """

    def __init__(self, num_classes: int, num_groups: int, hidden_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_groups, hidden_dim, duplicate_factor(num_classes, num_groups)))
        self.bias = nn.Parameter(torch.empty(num_classes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_normal_(self.weight)  # ML-Decoder's initialisation
        nn.init.zeros_(self.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return functional.group_fc(h, self.weight, self.bias)


class CrossAttentionLayer(nn.Module):
    """What a decoder layer of either head has: cross-attention (``multihead_attn``), the FFN
    (``linear1``, ``linear2``) and their norms (``norm2``, ``norm3``), under the official
    names. A subclass makes its own modules first, then calls :meth:`add_cross_attention_and_ffn`,
    so that a seed gives the official initial weights."""

    multihead_attn: nn.MultiheadAttention
    linear1: nn.Linear
    linear2: nn.Linear
    norm2: nn.LayerNorm
    norm3: nn.LayerNorm

    def add_cross_attention_and_ffn(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)


class EncoderLayer(nn.Module):
    """One encoder layer over the image tokens: self-attention, then the FFN.

    Its parameters are named as in the official model. Its ``forward`` is the plain-PyTorch
    computation of :mod:`q2l.heads.functional`, which tracing and export use; the head's
    eager forward runs every layer in one Rust call instead.

    Args:
        d_model: Width d.
        nhead: Attention heads.
        dim_feedforward: FFN width.
        dropout: Dropout rate kept by ``nn.MultiheadAttention`` (the forward uses the
            head's, passed in ``cfg``).

    Shape:
        - x: ``(B, HW, d)`` tokens; pos: ``(1, HW, d)`` positional encoding
        - output: ``(B, HW, d)``
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, cfg: functional.LayerConfig) -> torch.Tensor:
        x = functional.residual(
            x, self.norm1, cfg, lambda t: functional.self_attention(t + pos, t, self.self_attn, cfg)
        )
        return functional.residual(x, self.norm2, cfg, lambda t: functional.ffn(t, self, cfg))


class DecoderLayer(CrossAttentionLayer):
    """One decoder layer of the label queries: optional self-attention among them, then
    cross-attention over the image tokens, then the FFN.

    Args:
        d_model: Width d.
        nhead: Attention heads.
        dim_feedforward: FFN width.
        dropout: Dropout rate kept by ``nn.MultiheadAttention``.
        self_attn: Keep self-attention among the queries (the official model removes it).

    Shape:
        - tgt: ``(B or 1, K, d)``; query_pos: ``(1, K, d)``; memory, key_in: ``(B, HW, d)``
        - output: ``(B or 1, K, d)``, and the head-averaged attention ``(B, K, HW)`` or None
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float, self_attn: bool) -> None:
        super().__init__()
        if self_attn:
            self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
            self.norm1 = nn.LayerNorm(d_model)
        self.add_cross_attention_and_ffn(d_model, nhead, dim_feedforward, dropout)

    def forward(
        self,
        tgt: torch.Tensor,
        query_pos: torch.Tensor,
        memory: torch.Tensor,
        key_in: torch.Tensor,
        cfg: functional.LayerConfig,
        want_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if hasattr(self, "self_attn"):
            tgt = functional.residual(
                tgt, self.norm1, cfg, lambda t: functional.self_attention(t + query_pos, t, self.self_attn, cfg)
            )
        maps: list[torch.Tensor] = []

        def cross(t: torch.Tensor) -> torch.Tensor:
            out, weights = functional.cross_attention(
                t + query_pos, key_in, memory, self.multihead_attn, cfg, want_weights
            )
            if weights is not None:
                maps.append(weights)
            return out

        tgt = functional.residual(tgt, self.norm2, cfg, cross)
        tgt = functional.residual(tgt, self.norm3, cfg, lambda t: functional.ffn(t, self, cfg))
        return tgt, (maps[0] if maps else None)


class _Stack(nn.Module):
    """Layers and an optional final LayerNorm, under the official names ``layers`` and ``norm``."""

    layers: nn.ModuleList
    norm: nn.LayerNorm

    def __init__(self, layers: list[nn.Module], norm: nn.LayerNorm | None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        if norm is not None:
            self.norm = norm


#: The head's architecture options, declared once in Rust (``HeadConfig`` in
#: ``src/decoder/config.rs``): their defaults, documentation and checks.
OPTIONS = Options("query2label_head")


def check_arguments(
    *,
    num_classes: Any,
    in_channels: Any,
    dim_feedforward: Any,
    input_proj: Any,
    num_groups: Any,
    **options: Any,
) -> tuple[dict[str, Any], int | None, bool]:
    """The one check of :class:`Query2LabelHead`'s arguments, the constructor's and a model
    folder's, before any tensor is built.

    Returns:
        The resolved options, ``num_groups`` and whether the head has an input projection.
    """
    config = OPTIONS.resolve(options)
    for name, value in (
        ("num_classes", num_classes),
        ("in_channels", in_channels),
        ("dim_feedforward", dim_feedforward),
    ):
        positive_int(name, value)
    groups = num_groups_arg(num_groups, num_classes)
    if input_proj is not None and not isinstance(input_proj, bool):
        raise InvalidTypeError(f"input_proj must be None, True or False, got {input_proj!r}")
    d_model = config["d_model"]
    use_proj = (in_channels != d_model) if input_proj is None else input_proj
    if not use_proj and in_channels != d_model:
        raise InvalidArgumentError(f"input_proj=False needs in_channels == d_model, got {in_channels} and {d_model}")
    return config, groups, use_proj


@documented(OPTIONS)
class Query2LabelHead(nn.Module):
    """The Query2Label head (Liu et al. 2021) on a backbone feature map.

    Defaults are the paper's COCO model. Differences from the official code, all
    deliberate: the input projection is used automatically when the backbone's channels
    differ from ``d_model`` (official issue #16); the positional encoding is computed for
    the actual feature size, so one model runs at any resolution; pre-norm works with
    decoder self-attention removed.

    Args:
        num_classes: Number of labels K (the label queries).
        in_channels: Channels C of the backbone feature map.
        dim_feedforward: FFN width.
        input_proj: ``None`` uses a 1x1 convolution C -> d only when C != d; ``True`` /
            ``False`` force it on / off.
        num_groups: ``None``: one query per label (Query2Label). G: ML-Decoder's group
            decoding, G learnable queries and a :class:`GroupFC` (``fc.weight``,
            ``fc.bias``) mapping them to the K logits, so the decoder's cost stops growing
            with K; ``1 <= G <= K``.
        {options}

    Shape:
        - features: ``(B, C, H, W)``
        - output: ``(B, K)`` logits, and with ``return_attention=True`` also a list (one
          per decoder layer) of head-averaged cross-attention maps ``(B, K, H, W)``; with
          groups, each label's map is its group's.
    """

    input_proj: nn.Conv2d | None
    query_embed: nn.Embedding
    encoder: "_Stack"
    decoder: "_Stack"
    fc: nn.Module

    def __init__(
        self,
        num_classes: int = 80,
        in_channels: int = 2048,
        d_model: int = OPTIONS.defaults["d_model"],
        nhead: int = OPTIONS.defaults["nhead"],
        num_encoder_layers: int = OPTIONS.defaults["num_encoder_layers"],
        num_decoder_layers: int = OPTIONS.defaults["num_decoder_layers"],
        dim_feedforward: int = 8192,
        dropout: float = OPTIONS.defaults["dropout"],
        pre_norm: bool = OPTIONS.defaults["pre_norm"],
        keep_first_self_attn: bool = OPTIONS.defaults["keep_first_self_attn"],
        keep_other_self_attn: bool = OPTIONS.defaults["keep_other_self_attn"],
        input_proj: bool | None = None,
        temperature: float = OPTIONS.defaults["temperature"],
        num_groups: int | None = None,
    ) -> None:
        super().__init__()
        config, num_groups, use_proj = check_arguments(
            num_classes=num_classes,
            in_channels=in_channels,
            dim_feedforward=dim_feedforward,
            input_proj=input_proj,
            num_groups=num_groups,
            d_model=d_model,
            nhead=nhead,
            num_encoder_layers=num_encoder_layers,
            num_decoder_layers=num_decoder_layers,
            dropout=dropout,
            pre_norm=pre_norm,
            keep_first_self_attn=keep_first_self_attn,
            keep_other_self_attn=keep_other_self_attn,
            temperature=temperature,
        )
        queries = num_classes if num_groups is None else num_groups
        check_buildable(
            "Query2LabelHead",
            in_channels * d_model
            + 2 * num_classes * d_model
            + queries * d_model
            + transformer_parameters(d_model, dim_feedforward, num_encoder_layers, attentions=1)
            + transformer_parameters(d_model, dim_feedforward, num_decoder_layers, attentions=2),
            dict(
                num_classes=num_classes,
                in_channels=in_channels,
                d_model=d_model,
                num_encoder_layers=num_encoder_layers,
                num_decoder_layers=num_decoder_layers,
                dim_feedforward=dim_feedforward,
            ),
        )
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.d_model: int = config["d_model"]
        self.nhead: int = config["nhead"]
        self.dim_feedforward = dim_feedforward
        self.dropout: float = config["dropout"]
        self.pre_norm: bool = config["pre_norm"]
        self.keep_first_self_attn: bool = config["keep_first_self_attn"]
        self.keep_other_self_attn: bool = config["keep_other_self_attn"]
        self.temperature: float = config["temperature"]
        self.num_groups = num_groups
        self.input_proj = nn.Conv2d(in_channels, d_model, kernel_size=1) if use_proj else None
        self.query_embed = nn.Embedding(num_classes if num_groups is None else num_groups, d_model)
        self.encoder = _Stack(
            [EncoderLayer(d_model, nhead, dim_feedforward, dropout) for _ in range(num_encoder_layers)],
            nn.LayerNorm(d_model) if pre_norm and num_encoder_layers > 0 else None,
        )
        self.decoder = _Stack(
            [
                DecoderLayer(
                    d_model, nhead, dim_feedforward, dropout, keep_first_self_attn if i == 0 else keep_other_self_attn
                )
                for i in range(num_decoder_layers)
            ],
            nn.LayerNorm(d_model),
        )
        self.fc = (
            GroupWiseLinear(num_classes, d_model) if num_groups is None else GroupFC(num_classes, num_groups, d_model)
        )
        for module in (self.encoder, self.decoder):
            for p in module.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this head (JSON-ready)."""
        return {
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "d_model": self.d_model,
            "nhead": self.nhead,
            "num_encoder_layers": self.num_encoder_layers,
            "num_decoder_layers": self.num_decoder_layers,
            "dim_feedforward": self.dim_feedforward,
            "dropout": self.dropout,
            "pre_norm": self.pre_norm,
            "keep_first_self_attn": self.keep_first_self_attn,
            "keep_other_self_attn": self.keep_other_self_attn,
            "input_proj": self.input_proj is not None,
            "temperature": self.temperature,
            "num_groups": self.num_groups,
        }

    @property
    def num_encoder_layers(self) -> int:
        return len(self.encoder.layers)

    @property
    def num_decoder_layers(self) -> int:
        return len(self.decoder.layers)

    def forward(
        self, features: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits of every label.

        Args:
            features: Backbone feature map ``(B, C, H, W)``, any H x W.
            return_attention: Also return each decoder layer's cross-attention maps
                ``(B, K, H, W)``, averaged over heads (before dropout).
        """
        check_features(features, self.query_embed.weight)
        if needs_torch_ops(features):
            logits, maps = functional.forward(self, features, self.training, return_attention)
            return (logits, self._per_label(maps)) if return_attention else logits
        logits, maps = _native.head_forward(
            features=features,
            params=dict(self.named_parameters()),
            config={name: getattr(self, name) for name in OPTIONS.names},
            train=self.training,
            return_attention=return_attention,
        )
        return (logits, self._per_label(maps)) if return_attention else logits

    def _per_label(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """Group maps ``(B, G, H, W)`` as label maps ``(B, K, H, W)``: label k is decided by
        group ``k // ceil(K / G)``."""
        if self.num_groups is None:
            return maps
        fc = self.fc
        assert isinstance(fc, GroupFC)
        group = torch.arange(self.num_classes, device=fc.bias.device) // fc.weight.shape[2]
        return [m.index_select(1, group) for m in maps]

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, in_channels={self.in_channels}, d_model={self.d_model}, "
            f"nhead={self.nhead}, pre_norm={self.pre_norm}"
            + (f", num_groups={self.num_groups}" if self.num_groups is not None else "")
        )

    def export(self) -> "TorchQuery2LabelHead":
        """A pure-PyTorch module with a copy of these weights and the same outputs, in eval
        mode, for ``torch.onnx.export`` and other tools that cannot call into Rust.

        It holds a copy, so switching its mode (as ``torch.onnx.export`` does) never
        changes this head's."""
        return TorchQuery2LabelHead(copy.deepcopy(self)).eval()


class TorchQuery2LabelHead(nn.Module):
    """The same computation as :class:`Query2LabelHead` in plain PyTorch ops (see
    :mod:`q2l.heads.functional`), in eval mode; obtained with ``head.export()``.
    """

    def __init__(self, head: Query2LabelHead) -> None:
        super().__init__()
        self.head = head

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return functional.forward(self.head, features, training=False)[0]
