"""Plain-PyTorch reference formulas of the losses, written from the papers' code semantics.

They follow the official implementations op for op (sigmoid, clamp, log, pow), so that
autograd through them gives the reference gradients.
"""

import torch


def asl_reference(
    x,
    y,
    gamma_neg=4.0,
    gamma_pos=1.0,
    clip=0.05,
    eps=1e-8,
    detach_focal=False,
    reduction="sum",
    scale=1.0,
    class_weight=None,
):
    """The official ASL formula; -1 targets are masked out (a q2l extension)."""
    valid = (y != -1).to(x.dtype)
    y = y.to(x.dtype) * valid
    p = torch.sigmoid(x)
    p_neg = 1 - p
    if clip is not None and clip > 0:
        p_neg = (p_neg + clip).clamp(max=1)
    ce = y * torch.log(p.clamp(min=eps)) + (1 - y) * torch.log(p_neg.clamp(min=eps))
    with torch.set_grad_enabled(torch.is_grad_enabled() and not detach_focal):
        pt = p * y + p_neg * (1 - y)
        w = torch.pow(1 - pt, gamma_pos * y + gamma_neg * (1 - y))
    loss = -(ce * w) * valid
    if class_weight is not None:
        loss = loss * class_weight
    if reduction == "none":
        return loss * scale
    total = loss.sum()
    if reduction == "mean":
        total = total / valid.sum().clamp(min=1)
    elif reduction == "batchmean":
        total = total / max(x.numel() // max(x.shape[-1], 1), 1)
    return total * scale


def asl_single_label_reference(x, t, gamma_pos=0.0, gamma_neg=4.0, eps=0.1, reduction="mean"):
    """ASL's ``ASLSingleLabel``: softmax, asymmetric focusing, label smoothing."""
    num_classes = x.shape[-1]
    log_preds = torch.log_softmax(x, dim=-1)
    targets = torch.zeros_like(x).scatter_(1, t.long().unsqueeze(1), 1)
    anti = 1 - targets
    xs_pos = torch.exp(log_preds)
    xs_neg = 1 - xs_pos
    w = torch.pow(1 - xs_pos * targets - xs_neg * anti, gamma_pos * targets + gamma_neg * anti)
    log_preds = log_preds * w
    smoothed = targets.mul(1 - eps).add(eps / num_classes)
    loss = -(smoothed * log_preds).sum(dim=-1)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
