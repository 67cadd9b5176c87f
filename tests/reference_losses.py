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


def partial_reference(logits, targets, args, priors=None):
    """CSL's ``PartialSelectiveLoss`` (Alibaba-MIIL/PartialLabelingCSL,
    src/loss_functions/partial_asymmetric_loss.py) on the targets' device instead of a
    hard-coded CUDA one: weights by mode, BCE per kind, detached focal factor, -sum.

    ``args`` holds the official argument names (``partial_loss_mode``, ``clip``, ...)."""
    t_pos = (targets == 1).to(logits.dtype)
    t_neg = (targets == 0).to(logits.dtype)
    t_un = (targets == -1).to(logits.dtype)
    xs_pos = torch.sigmoid(logits)
    xs_neg = 1.0 - xs_pos
    if args.clip is not None and args.clip > 0:
        xs_neg = (xs_neg + args.clip).clamp(max=1)
    mode = args.partial_loss_mode
    if mode in (None, "negative"):
        w = 1.0
    elif mode == "ignore":
        w = torch.ones(targets.shape, dtype=logits.dtype)
        w[targets == -1] = 0
    elif mode == "ignore_normalize_classes":
        # The official code divides in float32 whatever the logits; here in their dtype.
        n_annotated = 1 + torch.sum(targets != -1, axis=1).to(logits.dtype)
        w = torch.ones(targets.shape, dtype=logits.dtype)
        w *= (1 / n_annotated + 1).repeat([targets.shape[1], 1]).T
        w[targets == -1] = 0
    else:  # selective
        w = torch.ones(targets.shape, dtype=logits.dtype)
        num_top_k = args.likelihood_topk * w.shape[0]
        if priors is not None and args.prior_threshold:
            w[:, torch.where(priors > args.prior_threshold)[0]] = 0
            w += (targets != -1).to(logits.dtype)
            w = w.bool()
        with torch.no_grad():
            cond = torch.where(targets.flatten() == -1)[0]
            flat = w.view(-1)
            order = torch.argsort(xs_neg.flatten()[cond])
            flat[cond[order[:num_top_k]]] = 0
    bce = args.alpha_pos * t_pos * torch.log(torch.clamp(xs_pos, min=1e-8))
    bce = bce + args.alpha_neg * t_neg * torch.log(torch.clamp(xs_neg, min=1e-8))
    bce = bce + args.alpha_unann * t_un * torch.log(torch.clamp(xs_neg, min=1e-8))
    with torch.no_grad():
        focal = torch.pow(
            1 - xs_pos * t_pos - xs_neg * (t_neg + t_un),
            args.gamma_pos * t_pos + args.gamma_neg * t_neg + args.gamma_unann * t_un,
        )
    return -(bce * focal * w).sum()
