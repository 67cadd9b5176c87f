"""torch.func transforms, forward-mode AD, activation checkpointing and hooks through every
loss and head, against plain autograd on the same inputs (issue 32)."""

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch.utils.checkpoint import checkpoint

import q2l
from q2l.heads import MLDecoderHead, Query2LabelHead
from q2l.loss import PartialAsymmetricLoss


def _cases():
    """(name, loss, logits [3, 4, 6], targets of each slice's kind), float64."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 6, generator=g, dtype=torch.float64)
    binary = (torch.rand(3, 4, 6, generator=g) > 0.5).double()
    partial = torch.randint(-1, 2, (3, 4, 6), generator=g).double()
    index = torch.randint(0, 6, (3, 4), generator=g)
    return [
        ("asl", q2l.AsymmetricLoss(), x, binary),
        ("asl_none", q2l.AsymmetricLoss(reduction="none"), x, binary),
        ("asl_optimized", q2l.AsymmetricLossOptimized(), x, binary),
        ("single_label", q2l.AsymmetricLossSingleLabel(), x, index),
        ("partial_selective", PartialAsymmetricLoss(mode="selective", likelihood_topk=1), x, partial),
        ("partial_ignore", PartialAsymmetricLoss(mode="ignore"), x, partial),
    ]


CASES = _cases()
IDS = [c[0] for c in CASES]


def _autograd(loss, x, y):
    x = x.detach().clone().requires_grad_()
    out = loss(x, y)
    return torch.autograd.grad(out.sum(), x)[0]


@pytest.mark.parametrize("name, loss, x, y", CASES, ids=IDS)
def test_func_grad_equals_autograd(name, loss, x, y):
    got = torch.func.grad(lambda z: loss(z, y[0]).sum())(x[0])
    torch.testing.assert_close(got, _autograd(loss, x[0], y[0]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name, loss, x, y", CASES, ids=IDS)
def test_vmap_equals_a_loop_over_slices(name, loss, x, y):
    loop = torch.stack([loss(x[i], y[i]) for i in range(3)])
    torch.testing.assert_close(torch.vmap(loss)(x, y), loop, rtol=0, atol=1e-12)
    torch.testing.assert_close(torch.vmap(loss, in_dims=(1, 1))(x.transpose(0, 1), y.transpose(0, 1)), loop)
    shared = torch.stack([loss(x[0], y[i]) for i in range(3)])
    torch.testing.assert_close(torch.vmap(loss, in_dims=(None, 0))(x[0], y), shared)
    per_sample = torch.vmap(torch.func.grad(lambda z, t: loss(z, t).sum()))(x, y)
    torch.testing.assert_close(per_sample, torch.stack([_autograd(loss, x[i], y[i]) for i in range(3)]))


@pytest.mark.parametrize("name, loss, x, y", CASES, ids=IDS)
def test_forward_mode_gives_the_directional_derivative(name, loss, x, y):
    v = torch.randn(x[0].shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x0, y0 = x[0], y[0]
    out, tangent = torch.func.jvp(lambda z: loss(z, y0), (x0,), (v,))
    # The directional derivative from autograd: d/de loss(x + e v) = sum(J^T 1 * v) per output.
    expected = torch.func.jacrev(lambda z: loss(z, y0))(x0)
    dims = tuple(range(expected.dim() - x0.dim(), expected.dim()))
    torch.testing.assert_close(tangent, (expected * v).sum(dims), rtol=0, atol=1e-10)
    torch.testing.assert_close(out, loss(x0, y0))
    with fwAD.dual_level():
        dual = fwAD.unpack_dual(loss(fwAD.make_dual(x0, v), y0))
        assert dual.tangent is not None
        torch.testing.assert_close(dual.tangent, tangent, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name, loss, x, y", CASES, ids=IDS)
def test_checkpointed_losses_give_the_plain_gradients(name, loss, x, y):
    plain = _autograd(loss, x[0], y[0])
    for reentrant in (False, True):
        z = x[0].detach().clone().requires_grad_()
        checkpoint(lambda a: loss(a, y[0]), z, use_reentrant=reentrant).sum().backward()
        torch.testing.assert_close(z.grad, plain, rtol=0, atol=1e-12)


class _Boom(Exception):
    pass


def _raise(_):
    raise _Boom("raised by the pack hook")


def _heads():
    small = dict(num_classes=5, in_channels=8, d_model=8, nhead=2, dim_feedforward=16)
    return [Query2LabelHead(**small).double(), MLDecoderHead(**small).double()]


def _grads(module, x, run):
    """The gradients of ``run(x)`` (``module``'s forward, checkpointed or not) for ``x`` and
    every parameter, from the same dropout masks (checkpoint replays the RNG state)."""
    module.zero_grad()
    x = x.clone().requires_grad_()  # the reentrant mode needs an input that requires grad
    torch.manual_seed(5)
    run(x).pow(2).sum().backward()
    return [x.grad, *(p.grad.clone() for p in module.parameters() if p.grad is not None)]


def _assert_checkpointing_keeps_the_gradients(module, x):
    plain = _grads(module, x, module)
    for reentrant in (False, True):
        got = _grads(module, x, lambda z, r=reentrant: checkpoint(module, z, use_reentrant=r))
        assert len(got) == len(plain)
        for a, b in zip(got, plain, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("head", _heads(), ids=["query2label", "ml_decoder"])
def test_checkpointed_heads_give_the_plain_gradients(head):
    _assert_checkpointing_keeps_the_gradients(head, torch.randn(2, 8, 3, 3, dtype=torch.float64))


@pytest.mark.parametrize("head", _heads(), ids=["query2label", "ml_decoder"])
def test_an_exception_from_a_pack_hook_arrives_as_itself(head):
    f = torch.randn(2, 8, 3, 3, dtype=torch.float64, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(_raise, lambda t: t), pytest.raises(_Boom, match="pack hook"):
        head(f)
    assert head(f).shape == (2, 5)  # and nothing is left set


@pytest.mark.parametrize("backend", ["auto", "tensor"])
@pytest.mark.parametrize("name, loss, x, y", CASES, ids=IDS)
def test_an_exception_from_a_pack_hook_in_a_loss_arrives_as_itself(name, loss, x, y, backend):
    loss = type(loss)(**{**loss.options, "backend": backend})
    with torch.autograd.graph.saved_tensors_hooks(_raise, lambda t: t), pytest.raises(_Boom):
        loss(x[0].clone().requires_grad_(), y[0])
    assert torch.isfinite(loss(x[0], y[0])).all()


def test_a_checkpointed_backbone_and_head_give_the_plain_gradients():
    from q2l.models import Query2Label

    torch.manual_seed(0)
    model = Query2Label("tiny", 5, d_model=16, dim_feedforward=32).double()
    _assert_checkpointing_keeps_the_gradients(model, torch.randn(2, 3, 32, 32, dtype=torch.float64))


def test_no_rust_panic_reaches_stderr():
    script = textwrap.dedent(
        """
        import torch, q2l
        x = torch.randn(3, 4, 6); y = (torch.rand(3, 4, 6) > 0.5).float()
        for loss in (q2l.AsymmetricLoss(), q2l.AsymmetricLoss(backend="tensor")):
            torch.vmap(loss)(x, y)
            torch.func.jvp(lambda z: loss(z, y[0]), (x[0],), (torch.ones(4, 6),))
        try:
            torch.vmap(q2l.AsymmetricLoss(backend="kernel"))(x, y)
        except Exception:
            pass
        try:
            torch.vmap(lambda s, t: torch.tensor(q2l.metrics.mean_average_precision(s, t)))(x, y)
        except Exception:
            pass
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "panicked" not in run.stderr and "RUST_BACKTRACE" not in run.stderr, run.stderr
