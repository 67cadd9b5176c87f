"""CSL's partial-label loss against the reference in ``reference_losses.py``, written from
the official PartialSelectiveLoss."""

from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import q2l
from q2l.errors import InvalidArgumentError
from q2l.loss import PARTIAL_MODES, PartialAsymmetricLoss, class_priors, partial_asymmetric_loss
from q2l.loss.partial import PARTIAL_DEFAULTS
from reference_losses import partial_reference as reference


def _args(mode, **kw):
    return SimpleNamespace(partial_loss_mode=mode, **{**PARTIAL_DEFAULTS, **kw})


def _batch(b=6, k=9, hidden=0.5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, k, generator=g, dtype=dtype) * 3
    targets = (torch.rand(b, k, generator=g) < 0.3).to(dtype)
    targets[torch.rand(b, k, generator=g) < hidden] = -1
    return logits, targets


OPTIONS = [{}, {"clip": 0.05, "gamma_pos": 1.0, "gamma_neg": 4.0, "alpha_unann": 0.5, "likelihood_topk": 2}]

# The options each mode never reads: given away from their defaults, they are refused.
IGNORED = {
    "negative": ("likelihood_topk", "prior_threshold"),
    "ignore": ("likelihood_topk", "prior_threshold", "gamma_unann", "alpha_unann"),
    "ignore_normalize_classes": ("likelihood_topk", "prior_threshold", "gamma_unann", "alpha_unann"),
    "selective": (),
}


def _used(mode, options):
    """``options`` without those ``mode`` ignores."""
    return {k: v for k, v in options.items() if k not in IGNORED[mode]}


@pytest.mark.parametrize("mode", PARTIAL_MODES)
@pytest.mark.parametrize("options", OPTIONS)
def test_every_mode_matches_the_official_loss_and_its_gradient(mode, options):
    options = _used(mode, options)
    logits, targets = _batch()
    x = logits.clone().requires_grad_()
    x_ref = logits.clone().requires_grad_()
    got = partial_asymmetric_loss(x, targets, mode=mode, **options)
    want = reference(x_ref, targets, _args(mode, **options))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    got.backward()
    want.backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("threshold", [0.05, 0.4, 0.0])
def test_selective_with_priors_matches_the_official_loss(threshold):
    logits, targets = _batch(b=8, k=12, seed=3)
    priors = torch.rand(12, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.6
    got = partial_asymmetric_loss(logits, targets, mode="selective", priors=priors, prior_threshold=threshold)
    want = reference(logits, targets, _args("selective", prior_threshold=threshold), priors=priors)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    module = PartialAsymmetricLoss("selective", priors=priors, prior_threshold=threshold).double()
    torch.testing.assert_close(module(logits, targets), want, rtol=1e-12, atol=1e-12)


def test_modes_differ_where_they_should():
    logits, targets = _batch(hidden=0.0)
    # Without unannotated labels every mode but the normalising one is the same loss.
    base = partial_asymmetric_loss(logits, targets, mode="negative")
    for mode in ("ignore", "selective"):
        torch.testing.assert_close(partial_asymmetric_loss(logits, targets, mode=mode), base)
    logits, targets = _batch(hidden=0.7)
    values = {m: partial_asymmetric_loss(logits, targets, mode=m).item() for m in PARTIAL_MODES}
    assert len(set(values.values())) == 4
    # Selective leaves out the unannotated labels with the highest scores first.
    one = partial_asymmetric_loss(logits, targets, mode="selective", likelihood_topk=0)
    torch.testing.assert_close(one, partial_asymmetric_loss(logits, targets, mode="negative"))


@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(1, 8),
    k=st.integers(1, 12),
    hidden=st.floats(0.0, 1.0),
    mode=st.sampled_from(PARTIAL_MODES),
    topk=st.integers(0, 4),
    seed=st.integers(0, 2**16),
)
def test_hypothesis_sweep_against_the_official_loss(b, k, hidden, mode, topk, seed):
    logits, targets = _batch(b, k, hidden, seed)
    options = _used(mode, {"likelihood_topk": topk})
    got = partial_asymmetric_loss(logits, targets, mode=mode, **options)
    want = reference(logits, targets, _args(mode, **options))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_gradcheck_float64_and_float32_result():
    logits, targets = _batch(b=3, k=4)
    x = logits.clone().requires_grad_()
    # The focal factor is held constant (as officially), so the loss's derivative is the
    # analytic one only without focusing.
    flat = dict(gamma_pos=0.0, gamma_neg=0.0, gamma_unann=0.0, clip=0.05)
    for mode in PARTIAL_MODES:
        kw = _used(mode, flat)
        assert torch.autograd.gradcheck(
            lambda t, m=mode, kw=kw: partial_asymmetric_loss(t, targets, mode=m, **kw), (x,)
        )
    assert partial_asymmetric_loss(logits.float(), targets).dtype == torch.float32
    assert partial_asymmetric_loss(logits.half(), targets.half()).dtype == torch.float32


def test_class_priors_are_the_mean_prediction():
    p = torch.rand(50, 7)
    torch.testing.assert_close(class_priors(p), p.mean(0))
    with pytest.raises(InvalidArgumentError, match="probabilities must be a non-empty"):
        class_priors(torch.rand(7))


def test_bad_input_is_named():
    logits, targets = _batch()
    with pytest.raises(
        InvalidArgumentError,
        match="mode must be one of 'negative', 'ignore', 'ignore_normalize_classes', 'selective', got 'partial'",
    ):
        partial_asymmetric_loss(logits, targets, mode="partial")
    with pytest.raises(InvalidArgumentError, match="mode must be one of"):
        PartialAsymmetricLoss("selectiv")
    with pytest.raises(InvalidArgumentError, match="unknown option 'gamma'"):
        PartialAsymmetricLoss("negative", gamma=2)
    with pytest.raises(InvalidArgumentError, match=r"logits and targets must both be \[batch, classes\]"):
        partial_asymmetric_loss(logits, targets[:, :3])
    bad = targets.clone()
    bad[1, 2] = 2
    with pytest.raises(InvalidArgumentError, match=r"targets must be 1, 0 or -1.*found 2.*\[1, 2\]"):
        partial_asymmetric_loss(logits, bad)
    with pytest.raises(InvalidArgumentError, match=r"priors must have one value per class, shape \[9\], got \[8\]"):
        partial_asymmetric_loss(logits, targets, mode="selective", priors=torch.rand(8, dtype=torch.float64))
    nan = logits.clone()
    nan[0, 0] = float("nan")
    with pytest.raises(InvalidArgumentError, match="logits contain NaN"):
        partial_asymmetric_loss(nan, targets)
    assert q2l.loss.PARTIAL_MODES == ("negative", "ignore", "ignore_normalize_classes", "selective")


@pytest.mark.parametrize("mode", PARTIAL_MODES)
@pytest.mark.parametrize("options", [*OPTIONS, {"gamma_unann": 1.0, "alpha_pos": 0.5}])
def test_kernel_and_tensor_paths_match_the_official_loss(mode, options):
    options = _used(mode, options)
    logits, targets = _batch(b=7, k=11, seed=5)
    priors = torch.linspace(0.0, 0.2, 11, dtype=torch.float64) if mode == "selective" else None
    want_x = logits.clone().requires_grad_()
    want = reference(want_x, targets, _args(mode, **options), priors=priors)
    want.backward()
    for backend in ("kernel", "tensor", "auto"):
        x = logits.clone().requires_grad_()
        got = partial_asymmetric_loss(x, targets, mode=mode, priors=priors, backend=backend, **options)
        got.backward()
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(x.grad, want_x.grad, rtol=1e-12, atol=1e-12)
    # float32 and float16 logits: both paths agree to rounding, gradients in the logits' dtype.
    for dtype, tol in ((torch.float32, 1e-5), (torch.float16, 2e-3)):
        outs = []
        for backend in ("kernel", "tensor"):
            x = logits.to(dtype).requires_grad_()
            loss = partial_asymmetric_loss(x, targets, mode=mode, priors=priors, backend=backend, **options)
            loss.backward()
            outs.append((loss, x.grad))
        assert outs[0][1].dtype == dtype
        torch.testing.assert_close(outs[0][0], outs[1][0], rtol=tol, atol=tol)
        torch.testing.assert_close(outs[0][1], outs[1][1], rtol=tol, atol=tol)


@pytest.mark.parametrize("clip", [0.0, 0.2])
def test_selective_kernel_and_tensor_paths_break_ties_alike(clip):
    # Logits on a grid of five values: most probabilities of absence tie, and which tied label
    # the top-k leaves out moves the gradient. Both paths leave out the lowest flat indices.
    logits, targets = _batch(b=16, k=40, seed=7)
    logits = (logits / 3).round().clamp(-2, 2)
    grads = []
    for backend in ("kernel", "tensor"):
        x = logits.clone().requires_grad_()
        partial_asymmetric_loss(x, targets, mode="selective", clip=clip, backend=backend).backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["kernel", "tensor"])
def test_integer_and_bool_targets_give_the_float_targets_loss(backend):
    logits, targets = _batch(b=5, k=7, seed=2)
    for mode in PARTIAL_MODES:
        for options in ({}, _used(mode, {"gamma_unann": 1.0})):
            want = partial_asymmetric_loss(logits, targets, mode=mode, backend=backend, **options)
            got = partial_asymmetric_loss(logits, targets.long(), mode=mode, backend=backend, **options)
            torch.testing.assert_close(got, want, rtol=0, atol=0)
            full = targets.clamp(min=0)
            want = partial_asymmetric_loss(logits, full, mode=mode, backend=backend, **options)
            got = partial_asymmetric_loss(logits, full.bool(), mode=mode, backend=backend, **options)
            torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("mode", PARTIAL_MODES)
def test_options_the_mode_ignores_are_refused(mode):
    logits, targets = _batch()
    changed = {"likelihood_topk": 2, "prior_threshold": 0.3, "gamma_unann": 1.0, "alpha_unann": 0.5}
    for name, value in changed.items():
        if name in IGNORED[mode]:
            with pytest.raises(InvalidArgumentError, match=f"{name} is used only by .*mode '{mode}' would ignore it"):
                PartialAsymmetricLoss(mode, **{name: value})
            with pytest.raises(InvalidArgumentError, match=f"{name} is used only by"):
                partial_asymmetric_loss(logits, targets, mode=mode, **{name: value})
        else:
            PartialAsymmetricLoss(mode, **{name: value})(logits, targets)
    # Defaults given explicitly change nothing and are taken.
    PartialAsymmetricLoss(mode, **{k: PARTIAL_DEFAULTS[k] for k in changed})(logits, targets)


def test_unknown_backend_is_named():
    logits, targets = _batch()
    expected = "backend must be one of 'auto', 'kernel', 'tensor', got 'fused'"
    with pytest.raises(InvalidArgumentError, match=expected):
        PartialAsymmetricLoss("ignore", backend="fused")(logits, targets)


def test_compiles_without_a_graph_break_and_matches_eager():
    logits, targets = _batch(b=4, k=6, dtype=torch.float32)
    priors = torch.full((6,), 0.3)
    for mode in PARTIAL_MODES:
        loss = PartialAsymmetricLoss(mode, priors=priors if mode == "selective" else None)
        x, x_c = logits.clone().requires_grad_(), logits.clone().requires_grad_()
        eager = loss(x, targets)
        compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")(x_c, targets)
        torch.testing.assert_close(compiled, eager)
        eager.backward()
        compiled.backward()
        torch.testing.assert_close(x_c.grad, x.grad)
    meta = partial_asymmetric_loss(logits.to("meta"), targets.to("meta"))
    assert meta.shape == () and meta.dtype == torch.float32
