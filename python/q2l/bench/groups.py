"""Group decoding for many labels: q2l-rs's ML-Decoder and grouped Query2Label heads against
the official ML-Decoder module, for K = 80, 1,000 and 9,605 labels with G = min(K, 100).

The reference is the official ``MLDecoder.forward`` (sequence-first ``nn.MultiheadAttention``,
the group FC as its per-group loop) run on the q2l-rs module's own weights, so both compute
the same logits; each is timed in this process, eager, at batch 8 on a 14x14 feature map
of 2048 channels (a ResNet-101 at 448 pixels), the three heads of a row in turns so that
their ratios survive a machine whose speed drifts. The grouped Query2Label head is the
paper's COCO configuration (d=2048, FFN 8192, 1 encoder and 2 decoder layers) with G queries.
"""

from typing import Any

import torch
import torch.nn.functional as F

from ..heads import MLDecoderHead, Query2LabelHead
from ._measure import fmt_ms, interleaved_medians


def official_ml_decoder_forward(head: Any, features: torch.Tensor) -> torch.Tensor:
    """The official ``MLDecoder.forward`` on ``head``'s modules (fixed group queries)."""
    tokens = features.flatten(2).transpose(1, 2) if features.dim() == 4 else features
    memory = F.relu(head.decoder.embed_standart(tokens)).transpose(0, 1)  # [T, B, E]
    drop = head.dropout if head.training else 0.0
    tgt = head.decoder.query_embed.weight.unsqueeze(1).expand(-1, features.shape[0], -1)
    for layer in head.decoder.layers:
        tgt = layer.norm1(tgt + F.dropout(tgt, drop))
        tgt = layer.norm2(tgt + F.dropout(layer.multihead_attn(tgt, memory, memory)[0], drop))
        tgt2 = layer.linear2(F.dropout(F.relu(layer.linear1(tgt)), drop))
        tgt = layer.norm3(tgt + F.dropout(tgt2, drop))
    h = tgt.transpose(0, 1)
    pooling = head.decoder.duplicate_pooling
    out = torch.zeros(h.shape[0], h.shape[1], pooling.shape[2], device=h.device, dtype=h.dtype)
    for i in range(h.shape[1]):
        out[:, i, :] = torch.matmul(h[:, i, :], pooling[i])
    return out.flatten(1)[:, : head.num_classes] + head.decoder.duplicate_pooling_bias


def _step(module, fn, x):
    def run():
        module.zero_grad(set_to_none=False)
        fn(x).square().mean().backward()

    return run


def _measure(ml: MLDecoderHead, grouped: Query2LabelHead, x, min_time, dev) -> tuple[list[float], list[float]]:
    """Inference and training-step medians of (ML-Decoder, official, grouped Q2L), in turns."""
    official = lambda t: official_ml_decoder_forward(ml, t)  # noqa: E731
    for m in (ml, grouped):
        m.eval()
    with torch.no_grad():
        infer = interleaved_medians([lambda: ml(x), lambda: official(x), lambda: grouped(x)], min_time, 3, 1, dev)
    for m in (ml, grouped):
        m.train()
    steps = [_step(ml, ml, x), _step(ml, official, x), _step(grouped, grouped, x)]
    return infer, interleaved_medians(steps, min_time, 3, 1, dev)


def main(quick: bool = False, device: str = "cpu") -> int:
    dev = torch.device(device)
    torch.manual_seed(0)
    if quick:
        sizes, batch, side, channels = [8, 30], 2, 4, 32
        ml_kwargs: dict[str, Any] = dict(in_channels=channels, d_model=32, dim_feedforward=64)
        q2l_kwargs: dict[str, Any] = dict(in_channels=channels, d_model=32, dim_feedforward=64)
        min_time = 0.05
    else:
        sizes, batch, side, channels = [80, 1000, 9605], 8, 14, 2048
        ml_kwargs, q2l_kwargs, min_time = {}, {}, 2.0
    x = torch.randn(batch, channels, side, side, device=dev)
    print(f"\nGroup decoding: batch {batch}, {side}x{side}, {channels} channels, float32, {dev}; eager; medians in ms.")
    print(
        f"{'K':>6} {'G':>4} | {'infer ML-Dec':>12} {'official':>9} {'ratio':>6} | {'train ML-Dec':>12}"
        f" {'official':>9} {'ratio':>6} | {'infer Q2L-G':>11} {'train Q2L-G':>11}"
    )
    rows = []
    for k in sizes:
        g = min(k, 100)
        ml = MLDecoderHead(num_classes=k, num_groups=g, **ml_kwargs).to(dev)
        grouped = Query2LabelHead(num_classes=k, num_groups=g, **q2l_kwargs).to(dev)
        ml.eval()
        with torch.no_grad():
            torch.testing.assert_close(ml(x), official_ml_decoder_forward(ml, x), rtol=1e-4, atol=1e-4)
        infer, train = _measure(ml, grouped, x, min_time, dev)
        ours, ref, q2l_g = (infer[0], train[0]), (infer[1], train[1]), (infer[2], train[2])
        rows.append((k, ours, q2l_g))
        print(
            f"{k:>6} {g:>4} | {fmt_ms(ours[0]):>12} {fmt_ms(ref[0])} {ref[0] / ours[0]:5.2f}x |"
            f" {fmt_ms(ours[1]):>12} {fmt_ms(ref[1])} {ref[1] / ours[1]:5.2f}x |"
            f" {fmt_ms(q2l_g[0]):>11} {fmt_ms(q2l_g[1]):>11}"
        )
    (k0, ml0, q0), (k1, ml1, q1) = rows[0], rows[-1]
    print(
        f"K={k1} over K={k0}: ML-Decoder inference {ml1[0] / ml0[0]:.2f}x, training {ml1[1] / ml0[1]:.2f}x;"
        f" grouped Q2L inference {q1[0] / q0[0]:.2f}x, training {q1[1] / q0[1]:.2f}x."
    )
    print("ratio: official / q2l-rs (above 1: q2l-rs faster).")
    return 0
