"""The official Query2Label head in plain PyTorch, written for the tests.

Sequence-first, `nn.MultiheadAttention` calls, the fixed-size positional-encoding buffer
computed as the official `PositionEmbeddingSine` does (float32 cumulative sums), post-norm
layers, self-attention removed from the decoder. It reads the weights of a
`q2l.Query2LabelHead` (same parameter names), so both compute with identical weights.
"""

import math

import torch
import torch.nn.functional as F


def official_pe(h, w, d, temperature=10000.0):
    f = d // 2
    ones = torch.ones((1, h, w))
    y = ones.cumsum(1, dtype=torch.float32)
    x = ones.cumsum(2, dtype=torch.float32)
    eps = 1e-6
    y = y / (y[:, -1:, :] + eps) * 2 * math.pi
    x = x / (x[:, :, -1:] + eps) * 2 * math.pi
    dim_t = torch.arange(f, dtype=torch.float32)
    dim_t = temperature ** (2 * (dim_t // 2) / f)
    px = x[:, :, :, None] / dim_t
    py = y[:, :, :, None] / dim_t
    px = torch.stack((px[:, :, :, 0::2].sin(), px[:, :, :, 1::2].cos()), dim=4).flatten(3)
    py = torch.stack((py[:, :, :, 0::2].sin(), py[:, :, :, 1::2].cos()), dim=4).flatten(3)
    return torch.cat((py, px), dim=3).permute(0, 3, 1, 2)  # [1, d, h, w]


def official_forward(head, features):
    """Logits of the official architecture with the weights of ``head`` (eval mode)."""
    x = head.input_proj(features) if head.input_proj is not None else features
    b, d, h, w = x.shape
    src = x.flatten(2).permute(2, 0, 1)  # [HW, B, d]
    pos = official_pe(h, w, d, head.temperature).to(x.dtype).flatten(2).permute(2, 0, 1)
    for layer in head.encoder.layers:
        q = k = src + pos
        src2 = layer.self_attn(q, k, value=src)[0]
        src = layer.norm1(src + src2)
        src = layer.norm2(src + layer.linear2(F.relu(layer.linear1(src))))
    memory = src
    query_pos = head.query_embed.weight.unsqueeze(1).repeat(1, b, 1)  # [K, B, d]
    tgt = torch.zeros_like(query_pos)
    for layer in head.decoder.layers:
        if hasattr(layer, "self_attn"):
            q = k = tgt + query_pos
            tgt = layer.norm1(tgt + layer.self_attn(q, k, value=tgt)[0])
        tgt2 = layer.multihead_attn(query=tgt + query_pos, key=memory + pos, value=memory)[0]
        tgt = layer.norm2(tgt + tgt2)
        tgt = layer.norm3(tgt + layer.linear2(F.relu(layer.linear1(tgt))))
    hs = head.decoder.norm(tgt).transpose(0, 1)  # [B, K, d]
    return (head.fc.W * hs).sum(-1) + head.fc.b
