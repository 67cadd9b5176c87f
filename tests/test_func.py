"""torch.func transforms, forward-mode AD, activation checkpointing and hooks through every
loss and head, against plain autograd on the same inputs (issue 32)."""

import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch.utils.checkpoint import checkpoint

import q2l
from q2l.heads import MLDecoderHead, Query2LabelHead
from q2l.loss import PartialAsymmetricLoss
from reference_losses import asl_reference, asl_single_label_reference, partial_reference


def _official(loss):
    """The official pure-PyTorch loss (``reference_losses``) with ``loss``'s options."""
    o = loss.options
    if isinstance(loss, PartialAsymmetricLoss):
        args = SimpleNamespace(partial_loss_mode=o["mode"], **o)
        return lambda x, y: partial_reference(x, y, args)
    if isinstance(loss, q2l.AsymmetricLossSingleLabel):
        return lambda x, t: asl_single_label_reference(
            x, t, gamma_pos=o["gamma_pos"], gamma_neg=o["gamma_neg"], eps=o["eps"], reduction=o["reduction"]
        )
    kw = {k: o[k] for k in ("gamma_neg", "gamma_pos", "clip", "eps", "reduction", "scale")}
    return lambda x, y: asl_reference(x, y, **kw)


def _cases():
    """(name, loss, official, logits [3, 4, 6], targets of each slice's kind), float64."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 6, generator=g, dtype=torch.float64)
    binary = (torch.rand(3, 4, 6, generator=g) > 0.5).double()
    partial = torch.randint(-1, 2, (3, 4, 6), generator=g).double()
    index = torch.randint(0, 6, (3, 4), generator=g)
    losses = [
        ("asl", q2l.AsymmetricLoss(), binary),
        ("asl_none", q2l.AsymmetricLoss(reduction="none"), binary),
        ("asl_optimized", q2l.AsymmetricLossOptimized(), binary),
        ("single_label", q2l.AsymmetricLossSingleLabel(), index),
        ("partial_selective", PartialAsymmetricLoss(mode="selective", likelihood_topk=1), partial),
        ("partial_ignore", PartialAsymmetricLoss(mode="ignore"), partial),
    ]
    return [(name, loss, _official(loss), x, y) for name, loss, y in losses]


CASES = _cases()
IDS = [c[0] for c in CASES]
TOL = dict(rtol=1e-10, atol=1e-10)  # float64: q2l's fused arithmetic against the official ops


def _autograd(loss, x, y):
    x = x.detach().clone().requires_grad_()
    out = loss(x, y)
    return torch.autograd.grad(out.sum(), x)[0]


def _directional(official, x, y, v):
    """The derivative of ``official(x, y)`` along ``v``, from its reverse mode: sum(J * v)
    per output. (Its own forward mode would differ: the official CSL loss detaches its focal
    factor with ``torch.no_grad()``, which forward-mode AD does not obey.)"""
    jac = torch.func.jacrev(lambda z: official(z, y))(x)
    return (jac * v).sum(tuple(range(jac.dim() - x.dim(), jac.dim())))


@pytest.mark.parametrize("name, loss, official, x, y", CASES, ids=IDS)
def test_func_grad_equals_the_official_gradient(name, loss, official, x, y):
    got = torch.func.grad(lambda z: loss(z, y[0]).sum())(x[0])
    torch.testing.assert_close(got, _autograd(official, x[0], y[0]), **TOL)
    torch.testing.assert_close(got, _autograd(loss, x[0], y[0]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name, loss, official, x, y", CASES, ids=IDS)
def test_vmap_equals_a_loop_of_the_official_loss(name, loss, official, x, y):
    loop = torch.stack([official(x[i], y[i]) for i in range(3)])
    torch.testing.assert_close(torch.vmap(loss)(x, y), loop, **TOL)
    torch.testing.assert_close(torch.vmap(loss, in_dims=(1, 1))(x.transpose(0, 1), y.transpose(0, 1)), loop, **TOL)
    shared = torch.stack([official(x[0], y[i]) for i in range(3)])
    torch.testing.assert_close(torch.vmap(loss, in_dims=(None, 0))(x[0], y), shared, **TOL)
    per_sample = torch.vmap(torch.func.grad(lambda z, t: loss(z, t).sum()))(x, y)
    torch.testing.assert_close(per_sample, torch.stack([_autograd(official, x[i], y[i]) for i in range(3)]), **TOL)


@pytest.mark.parametrize("name, loss, official, x, y", CASES, ids=IDS)
def test_forward_mode_gives_the_official_directional_derivative(name, loss, official, x, y):
    v = torch.randn(x[0].shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x0, y0 = x[0], y[0]
    out, tangent = torch.func.jvp(lambda z: loss(z, y0), (x0,), (v,))
    torch.testing.assert_close(tangent, _directional(official, x0, y0, v), **TOL)
    torch.testing.assert_close(out, official(x0, y0), **TOL)
    with fwAD.dual_level():
        dual = fwAD.unpack_dual(loss(fwAD.make_dual(x0, v), y0))
        assert dual.tangent is not None
        torch.testing.assert_close(dual.tangent, tangent, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name, loss, official, x, y", CASES, ids=IDS)
def test_jacrev_equals_the_official_jacobian(name, loss, official, x, y):
    x0, y0 = x[0, :2], y[0, :2]  # small: jacrev runs one backward per output element
    got = torch.func.jacrev(lambda z: loss(z, y0))(x0)
    torch.testing.assert_close(got, torch.func.jacrev(lambda z: official(z, y0))(x0), **TOL)


@pytest.mark.parametrize("name, loss, official, x, y", CASES, ids=IDS)
def test_transforms_compile_fullgraph(name, loss, official, x, y):
    def compiled(f):
        torch._dynamo.reset()
        return torch.compile(f, fullgraph=True, backend="aot_eager")

    x0, y0, v = x[0], y[0], torch.ones_like(x[0])
    torch.testing.assert_close(compiled(loss)(x0, y0), official(x0, y0), **TOL)
    torch.testing.assert_close(compiled(torch.vmap(loss))(x, y), torch.vmap(loss)(x, y), rtol=0, atol=1e-12)
    grad = compiled(torch.func.grad(lambda z: loss(z, y0).sum()))(x0)
    torch.testing.assert_close(grad, _autograd(official, x0, y0), **TOL)
    per_sample = compiled(torch.vmap(torch.func.grad(lambda z, t: loss(z, t).sum())))(x, y)
    torch.testing.assert_close(per_sample, torch.vmap(torch.func.grad(lambda z, t: loss(z, t).sum()))(x, y))
    _, tangent = compiled(lambda z: torch.func.jvp(lambda w: loss(w, y0), (z,), (v,)))(x0)
    torch.testing.assert_close(tangent, torch.func.jvp(lambda w: loss(w, y0), (x0,), (v,))[1], rtol=0, atol=1e-12)
    meta = loss(x0.to("meta").requires_grad_(), y0.to("meta"))
    assert meta.device.type == "meta" and meta.shape == official(x0, y0).shape


@pytest.mark.parametrize("name, loss, official, x, y", CASES, ids=IDS)
def test_the_operator_itself_takes_every_transform(name, loss, official, x, y):
    # torch.ops.q2l.<loss>, as a traced graph calls it, rather than through the module.
    op = sys.modules[type(loss).__module__]._OP

    def call(z, t):
        return op(z, {**dict.fromkeys(op.tensors), "targets": t}, loss.options, True)[0]

    x0, y0 = x[0], y[0]
    torch.testing.assert_close(torch.func.grad(lambda z: call(z, y0).sum())(x0), _autograd(official, x0, y0), **TOL)
    torch.testing.assert_close(torch.vmap(call)(x, y), torch.stack([official(x[i], y[i]) for i in range(3)]), **TOL)
    v = torch.ones_like(x0)
    tangent = torch.func.jvp(lambda z: call(z, y0), (x0,), (v,))[1]
    torch.testing.assert_close(tangent, _directional(official, x0, y0, v), **TOL)


@pytest.mark.parametrize("name, loss, official, x, y", CASES, ids=IDS)
def test_checkpointed_losses_give_the_plain_gradients(name, loss, official, x, y):
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
@pytest.mark.parametrize("name, loss, official, x, y", CASES, ids=IDS)
def test_an_exception_from_a_pack_hook_in_a_loss_arrives_as_itself(name, loss, official, x, y, backend):
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


def test_forward_mode_of_a_loss_traced_without_grad_is_a_clear_error():
    loss, x, y = q2l.AsymmetricLoss(), torch.randn(4, 6), (torch.rand(4, 6) > 0.5).float()
    torch._dynamo.reset()
    jvp = lambda z: torch.func.jvp(lambda w: loss(w, y), (z,), (torch.ones_like(z),))  # noqa: E731
    f = torch.compile(jvp, fullgraph=True, backend="eager")
    with torch.no_grad(), pytest.raises(Exception, match="q2l::asymmetric_loss: forward-mode AD .* torch.no_grad"):
        f(x)
