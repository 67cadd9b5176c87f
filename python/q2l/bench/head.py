"""Query2Label head: q2l-rs against the official architecture in plain PyTorch.

COCO configuration (d=2048, FFN 8192, 4 heads, 1 encoder and 2 decoder layers, K=80),
float32, CPU. The reference runs the official computation (sequence-first
``nn.MultiheadAttention`` on the same modules, so the same weights); both are timed in
this process. Memory is the peak resident memory a training step adds beyond the
parameters and their gradients: the bytes of activations autograd saves for backward.
"""

import math

import torch
import torch.nn.functional as F

from ..head import Query2LabelHead
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


def official_forward(head: Query2LabelHead, features: torch.Tensor) -> torch.Tensor:
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


def main(quick: bool = False, device: str = "cpu") -> int:
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
    print(f"Query2Label head, float32, {dev}.", threads_line())
    n_params = sum(p.numel() for p in head.parameters())
    print(f"{n_params / 1e6:.1f} M parameters; times are medians.\n")
    print(f"{'batch, HxW':>12} | {'infer q2l ms':>12} {'ref ms':>9} {'speedup':>7} | {'train q2l ms':>12} {'ref ms':>9}"
          f" {'speedup':>7} | {'q2l MiB':>8} {'ref MiB':>8} {'ratio':>6}")
    for batch, side in cases:
        x = torch.randn(batch, head.in_channels, side, side, device=dev)
        head.eval()
        with torch.no_grad():
            torch.testing.assert_close(head(x), official_forward(head, x), rtol=1e-4, atol=1e-4)
            t_inf = median_seconds(lambda: head(x), min_time, min_runs=3, device=dev)
            r_inf = median_seconds(lambda: official_forward(head, x), min_time, min_runs=3, device=dev)
        head.train()

        def step(fn):
            def run():
                head.zero_grad(set_to_none=False)
                fn(head, x).square().mean().backward()

            return run

        ours = step(lambda m, inp: m(inp))
        ref = step(official_forward)
        params = list(head.parameters())
        m_ours = saved_activation_bytes(lambda: head(x).square().mean(), params)
        m_ref = saved_activation_bytes(lambda: official_forward(head, x).square().mean(), params)
        t_tr = median_seconds(ours, min_time, min_runs=3, device=dev)
        r_tr = median_seconds(ref, min_time, min_runs=3, device=dev)
        ratio = f"{m_ours / m_ref:6.2f}"

        def mib(v):
            return f"{v / 2**20:8.1f}"
        print(
            f"{f'{batch}, {side}x{side}':>12} | {fmt_ms(t_inf):>12} {fmt_ms(r_inf)} {r_inf / t_inf:6.2f}x |"
            f" {fmt_ms(t_tr):>12} {fmt_ms(r_tr)} {r_tr / t_tr:6.2f}x | {mib(m_ours)} {mib(m_ref)} {ratio}"
        )
    print("\nMiB: activations a training step keeps for backward (beyond parameters and gradients);")
    print("ratio: q2l / reference.")
    return 0
