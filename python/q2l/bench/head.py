"""Query2Label head: q2l-rs against the official architecture in plain PyTorch.

COCO configuration (d=2048, FFN 8192, 4 heads, 1 encoder and 2 decoder layers, K=80),
float32, CPU. The reference runs the official computation (sequence-first
``nn.MultiheadAttention`` on the same modules, so the same weights); both are timed in
this process, eager and under ``torch.compile`` (``--compile``: Inductor by default; q2l-rs
compiles its plain-PyTorch twin, :mod:`q2l.heads.functional`). Memory is the peak resident
memory an eager training step adds beyond the parameters and their gradients: the bytes of
activations autograd saves for backward.
"""

import functools
import math
from typing import Any

import torch
import torch.nn.functional as F

from ..heads import Query2LabelHead
from ._measure import fmt_ms, median_seconds, saved_activation_bytes, threads_line


def official_pe(h: int, w: int, d: int, temperature: float) -> torch.Tensor:
    """The official PositionEmbeddingSine buffer for an h x w map, [h*w, 1, d]."""
    f = d // 2
    ones = torch.ones((1, h, w))
    y = ones.cumsum(1) / (h + 1e-6) * 2 * math.pi
    x = ones.cumsum(2) / (w + 1e-6) * 2 * math.pi
    dim_t = temperature ** (2 * (torch.arange(f, dtype=torch.float32) // 2) / f)
    px, py = x[..., None] / dim_t, y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=4).flatten(3)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((py, px), dim=3).flatten(1, 2).transpose(0, 1)


def official_forward(head: Any, features: torch.Tensor) -> torch.Tensor:
    """The official Transformer + GroupWiseLinear, sequence-first, on ``head``'s modules."""
    x = head.input_proj(features) if head.input_proj is not None else features
    b, d, h, w = x.shape
    src = x.flatten(2).permute(2, 0, 1)
    pos = official_pe(h, w, d, head.temperature).to(x)  # built on the CPU, as the official buffer
    drop = head.dropout if head.training else 0.0
    for layer in head.encoder.layers:
        src2 = layer.self_attn(src + pos, src + pos, value=src)[0]
        src = layer.norm1(src + F.dropout(src2, drop))
        src2 = layer.linear2(F.dropout(F.relu(layer.linear1(src)), drop))
        src = layer.norm2(src + F.dropout(src2, drop))
    query_pos = head.query_embed.weight.unsqueeze(1).repeat(1, b, 1)
    tgt = torch.zeros_like(query_pos)
    for layer in head.decoder.layers:
        tgt2 = layer.multihead_attn(query=tgt + query_pos, key=src + pos, value=src)[0]
        tgt = layer.norm2(tgt + F.dropout(tgt2, drop))
        tgt2 = layer.linear2(F.dropout(F.relu(layer.linear1(tgt)), drop))
        tgt = layer.norm3(tgt + F.dropout(tgt2, drop))
    hs = head.decoder.norm(tgt).transpose(0, 1)
    return (head.fc.W * hs).sum(-1) + head.fc.b


def _ratio(ref: float, ours: float) -> str:
    return f"{ref / ours:6.2f}x"


def main(quick: bool = False, device: str = "cpu", compile_backend: str = "inductor") -> int:
    dev = torch.device(device)
    torch.manual_seed(0)
    if quick:
        head = Query2LabelHead(num_classes=10, in_channels=64, d_model=64, dim_feedforward=128)
        cases = [(2, 4)]
    else:
        head = Query2LabelHead()
        cases = [(1, 14), (8, 14), (1, 18), (8, 18)]
    head = head.to(dev)
    min_time = 0.05 if quick else 2.0
    compiled = compile_backend != "none"
    ours_c: Any = torch.compile(head, backend=compile_backend) if compiled else None
    ref_c: Any = torch.compile(official_forward, backend=compile_backend) if compiled else None
    print(f"Query2Label head, float32, {dev}.", threads_line(), f"torch.compile backend: {compile_backend}.")
    n_params = sum(p.numel() for p in head.parameters())
    print(f"{n_params / 1e6:.1f} M parameters; times are medians in ms; c: compiled.\n")
    print(
        f"{'batch, HxW':>12} | {'infer q2l':>9} {'ref':>9} {'q2l c':>9} {'ref c':>9} {'ref/q2l':>7} {'rc/q2l':>7}"
        f" {'rc/q2lc':>7} | {'train q2l':>9} {'ref':>9} {'q2l c':>9} {'ref c':>9} {'ref/q2l':>7} {'rc/q2l':>7}"
        f" {'rc/q2lc':>7} | {'q2l MiB':>8} {'ref MiB':>8} {'ratio':>6}"
    )
    for batch, side in cases:
        x = torch.randn(batch, head.in_channels, side, side, device=dev)
        head.eval()
        with torch.no_grad():
            torch.testing.assert_close(head(x), official_forward(head, x), rtol=1e-4, atol=1e-4)
            eager: list[Any] = [lambda m, t: m(t), official_forward]
            inference = [median_seconds(functools.partial(f, head, x), min_time, min_runs=3, device=dev) for f in eager]
            if compiled:
                torch.testing.assert_close(ours_c(x), head(x), rtol=1e-4, atol=1e-4)
                inference += [
                    median_seconds(lambda: ours_c(x), min_time, min_runs=3, device=dev),
                    median_seconds(lambda: ref_c(head, x), min_time, min_runs=3, device=dev),
                ]
        head.train()

        def step(fn):
            def run():
                head.zero_grad(set_to_none=False)
                fn(head, x).square().mean().backward()

            return run

        params = list(head.parameters())
        m_ours = saved_activation_bytes(lambda: head(x).square().mean(), params)
        m_ref = saved_activation_bytes(lambda: official_forward(head, x).square().mean(), params)
        fns: list[Any] = [lambda m, t: m(t), official_forward]
        if compiled:
            fns += [lambda m, t: ours_c(t), ref_c]
        training = [median_seconds(step(f), min_time, min_runs=3, device=dev) for f in fns]

        def columns(t):
            if not compiled:
                return f"{fmt_ms(t[0])} {fmt_ms(t[1])} {'-':>9} {'-':>9} {_ratio(t[1], t[0])} {'-':>7} {'-':>7}"
            return (
                f"{fmt_ms(t[0])} {fmt_ms(t[1])} {fmt_ms(t[2])} {fmt_ms(t[3])} {_ratio(t[1], t[0])}"
                f" {_ratio(t[3], t[0])} {_ratio(t[3], t[2])}"
            )

        print(
            f"{f'{batch}, {side}x{side}':>12} | {columns(inference)} | {columns(training)} |"
            f" {m_ours / 2**20:8.1f} {m_ref / 2**20:8.1f} {m_ours / m_ref:6.2f}"
        )
    print("\nref/q2l: official eager over q2l eager; rc/q2l: official compiled over q2l eager; rc/q2lc: official")
    print("compiled over q2l compiled. MiB: activations an eager training step keeps for backward (beyond")
    print("parameters and gradients); ratio: q2l / reference.")
    from .groups import main as groups

    return groups(quick=quick, device=device)
