"""The Query2Label head's forward in plain PyTorch ops, on a :class:`Query2LabelHead`'s modules
(the layers' own ``forward`` methods call the blocks defined here).

The Rust forward (``q2l._native.head_forward``) is the one eager mode runs. This twin is
the same computation, reassociated cross-attention and the batch-of-one first decoder
layer included, written so that tools which cannot step into Rust can follow it:

* ``torch.compile``: Dynamo traces Python, not a native call. A custom operator is the
  wrong tool for the head: its backward is autograd over the libtorch ops of the forward,
  which an opaque operator would have to recompute. Traced as plain ops, Inductor fuses
  them and AOTAutograd derives the backward, so ``fullgraph=True`` holds.
* ``device="meta"`` and fake tensors: shapes propagate without data.
* ONNX: the exporter sees standard ops (``head.export()``).

Dropout (training mode) draws from torch's RNG like the Rust path, but in another order,
so the two agree exactly only without dropout.
"""

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


def sine_encoding(h: int, w: int, d: int, temperature: float, dtype: torch.dtype, device) -> torch.Tensor:
    """The 2-D sine positional encoding ``[h * w, d]`` (Query2Label's normalised DETR
    encoding), computed in float64 and cast, as the Rust ``sine_encoding`` does."""
    f = d // 2
    idx = torch.arange(f, dtype=torch.float64, device=device)
    dim_t = temperature ** (2 * torch.div(idx, 2, rounding_mode="floor") / f)

    def axis(n: int) -> torch.Tensor:
        c = torch.arange(1, n + 1, dtype=torch.float64, device=device) / (n + 1e-6) * 2 * math.pi
        a = c[:, None] / dim_t
        return torch.where(idx.remainder(2) == 0, a.sin(), a.cos())

    y = axis(h)[:, None, :].expand(h, w, f)
    x = axis(w)[None, :, :].expand(h, w, f)
    return torch.cat([y, x], dim=2).reshape(h * w, d).to(dtype)


class LayerConfig(NamedTuple):
    """What every layer's forward takes from its head: heads, norm placement, dropout, mode."""

    nhead: int
    pre_norm: bool
    dropout: float
    training: bool


def drop(x: torch.Tensor, cfg: LayerConfig) -> torch.Tensor:
    """``x`` through dropout of rate ``cfg.dropout`` in training mode."""
    return F.dropout(x, cfg.dropout, True) if cfg.training and cfg.dropout > 0 else x


def residual(x: torch.Tensor, norm: nn.LayerNorm, cfg: LayerConfig, branch: Callable) -> torch.Tensor:
    """``x + dropout(branch(x))`` with ``norm`` before the branch (pre-norm) or after the sum
    (post-norm, the official layout)."""
    if cfg.pre_norm:
        return x + drop(branch(norm(x)), cfg)
    return norm(x + drop(branch(x), cfg))


def ffn(x: torch.Tensor, layer: Any, cfg: LayerConfig) -> torch.Tensor:
    """``linear2(dropout(relu(linear1(x))))`` on ``layer``'s two linear layers."""
    return layer.linear2(drop(F.relu(layer.linear1(x)), cfg))


def self_attention(
    qk_in: torch.Tensor, v_in: torch.Tensor, mha: nn.MultiheadAttention, cfg: LayerConfig
) -> torch.Tensor:
    """Batch-first self-attention on ``mha``'s packed weights: queries and keys from
    ``qk_in`` [B, L, d], values from ``v_in``."""
    d = v_in.shape[-1]
    nhead = cfg.nhead
    dh = d // nhead
    w_qk, w_v = mha.in_proj_weight.split([2 * d, d])
    b_qk, b_v = mha.in_proj_bias.split([2 * d, d])
    q, k = F.linear(qk_in, w_qk, b_qk).split(d, dim=-1)

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(t.shape[0], t.shape[1], nhead, dh).transpose(1, 2)

    q, k, v = heads(q), heads(k), heads(F.linear(v_in, w_v, b_v))
    attn = drop(torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), dim=-1), cfg)
    o = (attn @ v).transpose(1, 2).reshape(v.shape[0], -1, d)
    return F.linear(o, mha.out_proj.weight, mha.out_proj.bias)


def cross_attention(
    query: torch.Tensor,
    key_in: torch.Tensor,
    memory: torch.Tensor,
    mha: nn.MultiheadAttention,
    cfg: LayerConfig,
    want_weights: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Label queries ``query`` [Bq, K, d] (Bq = 1 or B) over image tokens, reassociated as
    in ``src/decoder/attention.rs``: queries go through the key weights and the attention
    multiplies the raw ``memory`` [B, T, d] before the value weights.

    Returns the output [B, K, d] and, if asked, the head-averaged attention [B, K, T]."""
    bq, k, d = query.shape
    b, t, _ = memory.shape
    nhead = cfg.nhead
    dh = d // nhead
    w_q, w_k, w_v = mha.in_proj_weight.split(d)
    b_q, _, b_v = mha.in_proj_bias.split(d)  # the key bias shifts each row of scores: softmax drops it
    q = (F.linear(query, w_q, b_q) / math.sqrt(dh)).reshape(bq, k, nhead, dh).transpose(1, 2)
    qt = (q @ w_k.reshape(nhead, dh, d)).reshape(bq, nhead * k, d)
    attn = torch.softmax(qt @ key_in.transpose(1, 2), dim=-1)  # [B, H*K, T]
    weights = attn.reshape(b, nhead, k, t).mean(1) if want_weights else None
    dropped = drop(attn, cfg)
    o = (dropped @ memory).reshape(b, nhead, k, d) @ w_v.reshape(nhead, dh, d).transpose(1, 2)
    bias = b_v.reshape(nhead, 1, dh)
    if cfg.training and cfg.dropout > 0:
        # Rows of a dropped attention no longer sum to 1: the value bias is weighted by each.
        bias = dropped.sum(-1).reshape(b, nhead, k, 1) * bias
    o = (o + bias).transpose(1, 2).reshape(b, k, d)
    return F.linear(o, mha.out_proj.weight, mha.out_proj.bias), weights


def group_fc(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """ML-Decoder's group fully-connected layer: group g's output ``h[:, g]`` times
    ``weight[g]`` ``[d, f]`` gives logits ``g*f .. (g+1)*f``; the first ``K = len(bias)``
    of the ``G*f`` are kept. One batched matmul (the official code loops over groups)."""
    out = torch.bmm(h.transpose(0, 1), weight).transpose(0, 1).flatten(1)
    return out[:, : bias.shape[0]] + bias


def forward(
    head: Any, features: torch.Tensor, training: bool = False, return_attention: bool = False
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits ``[B, K]`` of a :class:`~q2l.Query2LabelHead` and, with ``return_attention``,
    each decoder layer's head-averaged cross-attention ``[B, K, H, W]``."""
    cfg = LayerConfig(head.nhead, head.pre_norm, head.dropout, training)
    x = head.input_proj(features) if head.input_proj is not None else features
    b, d, h, w = x.shape
    src = x.flatten(2).transpose(1, 2)
    pos = sine_encoding(h, w, d, head.temperature, src.dtype, src.device)[None]
    for layer in head.encoder.layers:
        src = layer(src, pos, cfg)
    if cfg.pre_norm and len(head.encoder.layers):
        src = head.encoder.norm(src)
    query_pos = head.query_embed.weight[None]  # [1, K, d]: the first layer runs on a batch of one
    tgt = torch.zeros_like(query_pos)
    key_in = src + pos
    maps = []
    for layer in head.decoder.layers:
        tgt, weights = layer(tgt, query_pos, src, key_in, cfg, return_attention)
        if weights is not None:
            maps.append(weights.reshape(b, -1, h, w))
    hs = head.decoder.norm(tgt).expand(b, -1, -1)
    return head.fc(hs), maps
