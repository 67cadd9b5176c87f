"""The asymmetric loss: parity with the official formula, gradients, dtypes, bad input."""

import inspect
import math
from importlib import metadata

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import q2l
from q2l import PRESETS, AsymmetricLoss, AsymmetricLossOptimized, asymmetric_loss
from reference_losses import asl_reference

BACKENDS = ["kernel", "tensor"]


def _backends(device):
    return BACKENDS if device == "cpu" else ["auto"]


def _preset_reference_kwargs(name):
    cfg = _official_kwargs(name)
    cfg["detach_focal"] = cfg.pop("disable_torch_grad_focal_loss")
    return cfg


def _data(shape, device, dtype=torch.float32, seed=0, soft=False, partial=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 3
    y = (torch.rand(shape, generator=g) < 0.3).double()
    if soft:
        y = torch.where(torch.rand(shape, generator=g) < 0.3, torch.rand(shape, generator=g, dtype=torch.float64), y)
    if partial:
        y[torch.rand(shape, generator=g) < 0.2] = -1
    return x.to(device=device, dtype=dtype), y.to(device)


def _ours_and_grad(x, y, backend, **kw):
    x = x.detach().clone().requires_grad_()
    loss = asymmetric_loss(x, y, backend=backend, **kw)
    loss.sum().backward()
    return loss.detach(), x.grad


def _reference_and_grad(x, y, **kw):
    x = x.detach().to(torch.float64).clone().requires_grad_()
    loss = asl_reference(x, y.to(torch.float64), **kw)
    loss.sum().backward()
    return loss.detach(), x.grad


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("shape", [(7, 5), (64, 80), (3, 1001)])
def test_presets_match_the_official_formula_in_float32(preset, shape, device):
    x, y = _data(shape, device)
    ref_loss, ref_grad = _reference_and_grad(x, y, **_preset_reference_kwargs(preset))
    for backend in _backends(device):
        loss, grad = _ours_and_grad(x, y, backend, **_official_kwargs(preset))
        assert loss.dtype == torch.float32
        torch.testing.assert_close(loss.double(), ref_loss, rtol=1e-6, atol=0)
        torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-6, atol=1e-6 * ref_grad.abs().max().item())


def _official_kwargs(preset):
    # The preset's options that the reference formula takes, and any other it sets to a
    # value of its own (the reference then refuses it, loudly); the backend, validation and
    # options left at their defaults are not part of a reference.
    taken = set(inspect.signature(asl_reference).parameters) | {"disable_torch_grad_focal_loss"}
    defaults = q2l.loss.asymmetric.DEFAULTS
    return {k: v for k, v in PRESETS[preset].items() if k in taken or v != defaults[k]}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_from_preset_equals_the_functional_form(preset):
    x, y = _data((9, 11), "cpu")
    module = AsymmetricLoss.from_preset(preset)
    torch.testing.assert_close(module(x, y), asymmetric_loss(x, y, **PRESETS[preset]))


def test_optimized_class_is_the_query2label_criterion():
    x, y = _data((16, 80), "cpu")
    official = AsymmetricLossOptimized(gamma_neg=2, gamma_pos=0, clip=0, eps=1e-5)
    torch.testing.assert_close(official(x, y), AsymmetricLoss.from_preset("query2label")(x, y))
    expected = asl_reference(x.double(), y, gamma_neg=2, gamma_pos=0, clip=0, eps=1e-5).item() / x.numel() * 1000
    assert math.isclose(official(x, y).item(), expected, rel_tol=1e-6)


# The stop-gradient variant (disable_torch_grad_focal_loss) is deliberately not the true
# derivative, so gradcheck covers the full gradient; the "asl" preset parity test covers
# the detached one against the official code.
@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
@pytest.mark.parametrize("clip", [0.0, 0.05])
@pytest.mark.parametrize("gammas", [(4.0, 1.0), (2.0, 0.0), (2.5, 0.5)])
def test_gradcheck_float64(reduction, clip, gammas, device):
    x, y = _data((4, 6), device, torch.float64, soft=True, partial=True)
    w = torch.rand(6, dtype=torch.float64, device=device) + 0.5
    for backend in _backends(device):

        def fn(inp):
            return asymmetric_loss(
                inp,
                y,
                gamma_neg=gammas[0],
                gamma_pos=gammas[1],
                clip=clip,
                reduction=reduction,
                scale=3.0,
                class_weight=w,
                backend=backend,
            )

        assert torch.autograd.gradcheck(fn, (x.clone().requires_grad_(),), eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
def test_soft_partial_and_weighted_targets_match_the_reference(reduction, device):
    x, y = _data((12, 33), device, soft=True, partial=True)
    w = torch.rand(33, device=device) * 2
    kw = dict(gamma_neg=3.0, gamma_pos=0.5, clip=0.05, eps=1e-8, reduction=reduction, scale=2.0)
    ref_loss, ref_grad = _reference_and_grad(x, y, class_weight=w.double(), **kw)
    for backend in _backends(device):
        loss, grad = _ours_and_grad(x, y, backend, class_weight=w, **kw)
        torch.testing.assert_close(loss.double(), ref_loss, rtol=2e-6, atol=1e-6)
        torch.testing.assert_close(grad.double(), ref_grad, rtol=2e-6, atol=1e-6 * ref_grad.abs().max().item())


def test_unannotated_targets_contribute_neither_loss_nor_gradient(device):
    x, y = _data((10, 20), device, partial=True)
    for backend in _backends(device):
        loss, grad = _ours_and_grad(x, y, backend, reduction="none")
        assert (loss[y == -1] == 0).all()
        assert (grad[y == -1] == 0).all()
        total, _ = _ours_and_grad(x, y, backend, reduction="sum")
        keep = y != -1
        subset, _ = _ours_and_grad(x[keep].reshape(1, -1), y[keep].reshape(1, -1), backend, reduction="sum")
        torch.testing.assert_close(total, subset)
        mean, _ = _ours_and_grad(x, y, backend, reduction="mean")
        torch.testing.assert_close(mean, total / keep.sum())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_extreme_logits_give_finite_losses_and_gradients(dtype, device):
    x = torch.tensor([[-100.0, 100.0, -100.0, 100.0, 0.0, 30.0]], dtype=dtype, device=device)
    y = torch.tensor([[1.0, 1.0, 0.0, 0.0, 1.0, 0.0]], device=device)
    for preset in PRESETS:
        for backend in _backends(device):
            loss, grad = _ours_and_grad(x, y, backend, **_official_kwargs(preset))
            assert torch.isfinite(loss).all() and torch.isfinite(grad).all(), (preset, backend)
            assert grad.dtype == dtype
            ref, _ = _reference_and_grad(x, y, **_preset_reference_kwargs(preset))
            torch.testing.assert_close(loss.double(), ref, rtol=1e-3, atol=1e-3)


def test_the_official_float16_computation_gives_nan_where_ours_does_not():
    x = torch.tensor([[30.0, -30.0]], dtype=torch.float16)
    y = torch.tensor([[0.0, 1.0]], dtype=torch.float16)
    p = torch.sigmoid(x)
    official = -(y * torch.log(p.clamp(min=1e-8)) + (1 - y) * torch.log((1 - p).clamp(min=1e-8))).sum()
    assert not torch.isfinite(official)
    assert torch.isfinite(asymmetric_loss(x, y))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_reduced_precision_logits_agree_with_float32(dtype, device):
    x, y = _data((16, 40), device)
    x = x.to(dtype)
    loss, grad = _ours_and_grad(x, y, "auto")
    loss32, grad32 = _ours_and_grad(x.float(), y, "auto")
    tol = {torch.float16: 1e-3, torch.bfloat16: 1e-2, torch.float64: 1e-6}[dtype]
    torch.testing.assert_close(loss.float(), loss32, rtol=tol, atol=tol)
    torch.testing.assert_close(grad.float(), grad32, rtol=tol * 10, atol=tol)


@pytest.mark.parametrize(
    "target_dtype",
    [
        torch.bool,
        torch.uint8,
        torch.int8,
        torch.int16,
        torch.int32,
        torch.int64,
        torch.float16,
        torch.bfloat16,
        torch.float32,
        torch.float64,
    ],
)
def test_every_target_dtype_gives_the_same_loss(target_dtype, device):
    x, y = _data((8, 30), device)
    expected = asymmetric_loss(x, y.float())
    torch.testing.assert_close(asymmetric_loss(x, y.to(target_dtype)), expected)


def test_empty_batch_gives_zero_loss_and_an_empty_gradient(device):
    x = torch.zeros(0, 80, device=device, requires_grad=True)
    y = torch.zeros(0, 80, device=device)
    for reduction in ["sum", "mean", "batchmean"]:
        loss = asymmetric_loss(x, y, reduction=reduction)
        loss.backward()
        assert loss.item() == 0.0 and x.grad.shape == (0, 80)
    assert asymmetric_loss(x, y, reduction="none").shape == (0, 80)


def test_all_unannotated_batch_gives_zero_mean(device):
    x = torch.randn(4, 5, device=device, requires_grad=True)
    y = -torch.ones(4, 5, device=device)
    loss = asymmetric_loss(x, y, reduction="mean")
    loss.backward()
    assert loss.item() == 0.0 and (x.grad == 0).all()


def test_non_contiguous_and_broadcast_inputs(device):
    x, y = _data((20, 12), device)
    xt = x.t()
    yt = y.t()
    assert not xt.is_contiguous()
    torch.testing.assert_close(asymmetric_loss(xt, yt), asymmetric_loss(xt.contiguous(), yt.contiguous()))
    row = y[:1]
    expanded = row.expand(20, 12)
    torch.testing.assert_close(asymmetric_loss(x, expanded), asymmetric_loss(x, expanded.contiguous()))


def test_higher_rank_inputs_use_the_last_dimension_as_classes(device):
    x, y = _data((2, 3, 7), device)
    torch.testing.assert_close(asymmetric_loss(x, y), asymmetric_loss(x.reshape(6, 7), y.reshape(6, 7)))
    w = torch.rand(7, device=device)
    torch.testing.assert_close(
        asymmetric_loss(x, y, class_weight=w), asymmetric_loss(x.reshape(6, 7), y.reshape(6, 7), class_weight=w)
    )


def test_results_do_not_depend_on_the_thread_count():
    x, y = _data((300, 1000), "cpu", partial=True)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one, g1 = _ours_and_grad(x, y, "kernel", reduction="mean")
        torch.set_num_threads(2)
        two, g2 = _ours_and_grad(x, y, "kernel", reduction="mean")
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two) and torch.equal(g1, g2)


def test_no_grad_and_inference_mode(device):
    x, y = _data((5, 9), device)
    x.requires_grad_()
    expected = asymmetric_loss(x.detach(), y)
    with torch.no_grad():
        assert not asymmetric_loss(x, y).requires_grad
        torch.testing.assert_close(asymmetric_loss(x, y), expected)
    with torch.inference_mode():
        torch.testing.assert_close(asymmetric_loss(x.detach(), y), expected)


def test_autocast_bfloat16_on_cpu():
    torch.manual_seed(0)
    layer = torch.nn.Linear(16, 10)
    inputs = torch.randn(8, 16)
    y = (torch.rand(8, 10) < 0.3).float()
    criterion = AsymmetricLoss.from_preset("query2label")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = layer(inputs)
        assert logits.dtype == torch.bfloat16
        loss = criterion(logits, y)
    assert loss.dtype == torch.float32
    loss.backward()
    assert layer.weight.grad is not None and torch.isfinite(layer.weight.grad).all()


def test_backward_with_a_non_unit_grad_output_and_retain_graph(device):
    x, y = _data((6, 7), device)
    x.requires_grad_()
    loss = asymmetric_loss(x, y)
    (g1,) = torch.autograd.grad(loss, x, retain_graph=True)
    (g3,) = torch.autograd.grad(loss * 3, x, retain_graph=True)
    (g1_again,) = torch.autograd.grad(loss, x)
    torch.testing.assert_close(g3, 3 * g1)
    torch.testing.assert_close(g1_again, g1)


def test_every_parameter_of_a_model_gets_a_gradient():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(12, 20), torch.nn.ReLU(), torch.nn.Linear(20, 5))
    y = (torch.rand(4, 5) < 0.5).float()
    AsymmetricLoss.from_preset("asl")(model(torch.randn(4, 12)), y).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_module_state_and_device_moves():
    w = torch.arange(1.0, 6.0)
    module = AsymmetricLoss(class_weight=w, reduction="mean")
    assert torch.equal(module.state_dict()["class_weight"], w)
    module = module.double()
    assert module.class_weight.dtype == torch.float64
    assert "reduction='mean'" in repr(module)
    x, y = _data((3, 5), "cpu", torch.float64)
    torch.testing.assert_close(module(x, y), asymmetric_loss(x, y, reduction="mean", class_weight=w.double()))


def test_nan_logits_raise_by_default_and_propagate_when_asked(device):
    x, y = _data((4, 6), device)
    x[2, 3] = float("nan")
    for backend in _backends(device):
        with pytest.raises(ValueError, match=r"NaN.*\[2, 3\]"):
            asymmetric_loss(x, y, backend=backend)
        assert torch.isnan(asymmetric_loss(x, y, backend=backend, validate=False))


@pytest.mark.parametrize("bad", [2.0, -0.5, float("nan"), 1.5])
def test_targets_outside_the_allowed_values_raise(bad, device):
    x, y = _data((4, 6), device)
    y[1, 2] = bad
    for backend in _backends(device):
        with pytest.raises(ValueError, match=r"targets must be .*\[1, 2\]"):
            asymmetric_loss(x, y, backend=backend)


def test_integer_targets_outside_the_allowed_values_raise():
    x, _ = _data((3, 4), "cpu")
    with pytest.raises(ValueError, match="the first is 3"):
        asymmetric_loss(x, torch.full((3, 4), 3, dtype=torch.int64))


@pytest.mark.parametrize(
    "logits, targets, match",
    [
        (torch.zeros(3, 4), torch.zeros(3, 5), r"targets must have the shape of logits \[3, 4\], got \[3, 5\]"),
        (torch.zeros(3, 4, dtype=torch.int64), torch.zeros(3, 4), "logits must be a floating tensor"),
        (torch.zeros(()), torch.zeros(()), "at least one dimension"),
        (torch.zeros(3, 4), torch.zeros(3, 4, dtype=torch.complex64), "targets must be a bool, integer or floating"),
    ],
)
def test_bad_shapes_and_dtypes_raise_value_errors(logits, targets, match):
    with pytest.raises(ValueError, match=match):
        asymmetric_loss(logits, targets)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(gamma_neg=-1.0), "gamma_neg"),
        (dict(gamma_pos=float("inf")), "gamma_pos"),
        (dict(clip=1.5), "clip"),
        (dict(eps=-1.0), "eps"),
        (dict(reduction="avg"), "reduction"),
        (dict(backend="gpu"), "backend"),
        (dict(class_weight=torch.ones(3)), r"class_weight must have shape \[4\]"),
        (dict(class_weight=-torch.ones(4)), "class_weight must be finite and >= 0"),
        (dict(class_weight=torch.ones(4, dtype=torch.int32)), "class_weight must be a floating tensor"),
    ],
)
def test_bad_options_raise_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        asymmetric_loss(torch.zeros(3, 4), torch.zeros(3, 4), **kwargs)


def test_targets_or_weights_requiring_grad_are_refused():
    x = torch.randn(3, 4, requires_grad=True)
    y = torch.rand(3, 4, requires_grad=True)
    with pytest.raises(ValueError, match=r"targets requires grad.*detach"):
        asymmetric_loss(x, y)
    w = torch.nn.Parameter(torch.ones(4))
    with pytest.raises(ValueError, match="class_weight requires grad"):
        asymmetric_loss(x, y.detach(), class_weight=w)


def test_non_tensor_inputs_raise_type_errors():
    with pytest.raises(TypeError):
        asymmetric_loss([[0.0]], torch.zeros(1, 1))
    with pytest.raises(TypeError):
        asymmetric_loss(torch.zeros(1, 1), [[0.0]])


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="unknown preset 'coco'"):
        AsymmetricLoss.from_preset("coco")


def test_the_kernel_backend_refuses_other_devices():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    x = torch.zeros(2, 3, device="cuda")
    with pytest.raises(ValueError, match="CPU tensors only"):
        asymmetric_loss(x, torch.zeros_like(x), backend="kernel")


def test_cuda_and_cpu_agree_and_mixed_devices_raise():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    x, y = _data((32, 50), "cpu", partial=True, soft=True)
    cpu_loss, cpu_grad = _ours_and_grad(x, y, "auto", reduction="mean")
    gpu_loss, gpu_grad = _ours_and_grad(x.cuda(), y.cuda(), "auto", reduction="mean")
    torch.testing.assert_close(gpu_loss.cpu(), cpu_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gpu_grad.cpu(), cpu_grad, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="same device"):
        asymmetric_loss(x.cuda(), y)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(0, 40),
    cols=st.integers(1, 300),
    dtype=st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64]),
    gamma_neg=st.sampled_from([0.0, 1.0, 2.0, 3.0, 4.0, 1.5]),
    gamma_pos=st.sampled_from([0.0, 1.0, 0.7]),
    clip=st.sampled_from([0.0, 0.05, 0.2]),
    reduction=st.sampled_from(["none", "sum", "mean", "batchmean"]),
    seed=st.integers(0, 2**16),
)
def test_kernel_and_tensor_backends_agree(rows, cols, dtype, gamma_neg, gamma_pos, clip, reduction, seed):
    x, y = _data((rows, cols), "cpu", dtype, seed=seed, soft=seed % 2 == 0, partial=seed % 3 == 0)
    kw = dict(gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip, reduction=reduction)
    k_loss, k_grad = _ours_and_grad(x, y, "kernel", **kw)
    t_loss, t_grad = _ours_and_grad(x, y, "tensor", **kw)
    tol = {torch.float16: 2e-3, torch.bfloat16: 2e-2, torch.float32: 1e-5, torch.float64: 1e-10}[dtype]
    torch.testing.assert_close(k_loss, t_loss, rtol=tol, atol=tol)
    torch.testing.assert_close(k_grad.double(), t_grad.double(), rtol=tol, atol=tol)
    if rows > 0 and dtype in (torch.float32, torch.float64):
        ref, ref_grad = _reference_and_grad(x, y, **kw)
        torch.testing.assert_close(k_loss.double(), ref, rtol=tol * 2, atol=tol)
        torch.testing.assert_close(
            k_grad.double(), ref_grad, rtol=tol * 2, atol=tol * max(1.0, ref_grad.abs().max().item())
        )


def test_package_metadata():
    # One version: Cargo.toml's, which maturin writes into the package metadata.
    assert q2l.__version__ == metadata.version("q2l-rs")
    assert q2l._native.simd_level() in {"avx512", "avx2", "baseline"}


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("reduction", ["sum", "mean", "none"])
def test_label_smoothing_equals_the_loss_of_smoothed_targets(smoothing, reduction, device):
    x, y = _data((9, 13), device, dtype=torch.float64, partial=True)
    # The reference: annotated targets y become y (1 - s) + s / 2, -1 stays unannotated.
    smoothed = torch.where(y == -1, y, y * (1 - smoothing) + smoothing / 2)
    ref_loss, ref_grad = _reference_and_grad(x, smoothed, reduction=reduction)
    for backend in _backends(device):
        loss, grad = _ours_and_grad(x, y, backend, reduction=reduction, label_smoothing=smoothing)
        torch.testing.assert_close(loss, ref_loss, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-12)


def test_label_smoothing_keeps_invalid_targets_invalid():
    x, y = torch.randn(2, 3), torch.tensor([[1.0, 0.0, -0.5], [1.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match="the first is -0.5 at index"):
        asymmetric_loss(x, y, label_smoothing=0.9)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
        AsymmetricLoss(label_smoothing=1.0)
