"""The single-label asymmetric loss: parity with ASL's ASLSingleLabel, gradients, bad input."""

import pytest
import torch

from q2l import AsymmetricLossSingleLabel, asymmetric_loss_single_label
from reference_losses import asl_single_label_reference


def _backends(device):
    return ["kernel", "tensor"] if device == "cpu" else ["auto"]


def _data(rows, cols, device, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(rows, cols, generator=g, dtype=torch.float64) * 3).to(device=device, dtype=dtype)
    t = torch.randint(0, cols, (rows,), generator=g).to(device)
    return x, t


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("gammas", [(0.0, 4.0), (1.0, 2.0), (0.5, 1.5), (0.0, 0.0)])
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("shape", [(8, 10), (5, 1000)])
def test_matches_asl_single_label_in_float32(reduction, gammas, eps, shape, device):
    x, t = _data(*shape, device)
    xr = x.double().clone().requires_grad_()
    ref = asl_single_label_reference(xr, t, gamma_pos=gammas[0], gamma_neg=gammas[1], eps=eps, reduction=reduction)
    ref.sum().backward()
    for backend in _backends(device):
        xo = x.clone().requires_grad_()
        ours = asymmetric_loss_single_label(
            xo, t, gamma_pos=gammas[0], gamma_neg=gammas[1], eps=eps, reduction=reduction, backend=backend
        )
        ours.sum().backward()
        torch.testing.assert_close(ours.double(), ref.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(xo.grad.double(), xr.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck_float64(reduction, device):
    x, t = _data(5, 7, device, torch.float64)
    t[2] = -100
    for backend in _backends(device):

        def fn(inp):
            return asymmetric_loss_single_label(
                inp, t, gamma_pos=0.7, gamma_neg=2.5, reduction=reduction, backend=backend
            )

        assert torch.autograd.gradcheck(fn, (x.clone().requires_grad_(),), eps=1e-6, atol=1e-7)


def test_ignored_rows_contribute_nothing(device):
    x, t = _data(6, 9, device)
    t2 = t.clone()
    t2[[1, 4]] = -100
    for backend in _backends(device):
        xo = x.clone().requires_grad_()
        loss = asymmetric_loss_single_label(xo, t2, backend=backend)
        loss.backward()
        keep = t2 != -100
        torch.testing.assert_close(loss, asymmetric_loss_single_label(x[keep], t[keep], backend=backend))
        assert (xo.grad[~keep] == 0).all()


def test_module_matches_the_function_and_handles_low_precision():
    x, t = _data(16, 20, "cpu")
    module = AsymmetricLossSingleLabel(gamma_pos=0, gamma_neg=4, eps=0.1)
    torch.testing.assert_close(module(x, t), asymmetric_loss_single_label(x, t))
    for dtype in (torch.float16, torch.bfloat16):
        xl = x.to(dtype).requires_grad_()
        loss = module(xl, t)
        loss.backward()
        assert loss.dtype == torch.float32 and xl.grad.dtype == dtype
        torch.testing.assert_close(loss, module(x.to(dtype).float(), t), rtol=1e-3, atol=1e-3)


def test_extreme_logits_stay_finite(device):
    x = torch.tensor([[100.0, -100.0, 0.0], [-100.0, 100.0, 50.0]], device=device, requires_grad=True)
    t = torch.tensor([0, 0], device=device)
    loss = asymmetric_loss_single_label(x, t, gamma_pos=1.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize(
    "logits, targets, match",
    [
        (torch.zeros(3, 4), torch.zeros(3, 4, dtype=torch.int64), r"class indices of shape \[3\]"),
        (torch.zeros(3, 4, 5), torch.zeros(3, dtype=torch.int64), r"\[batch, num_classes\]"),
        (torch.zeros(3, 4), torch.zeros(3), "integer tensor of class indices"),
        (torch.zeros(3, 4), torch.tensor([0, 4, 1]), r"found 4 at row 1"),
        (torch.zeros(3, 0), torch.zeros(3, dtype=torch.int64), "at least one class"),
    ],
)
def test_bad_input_raises_value_errors(logits, targets, match):
    with pytest.raises(ValueError, match=match):
        asymmetric_loss_single_label(logits, targets)


def test_nan_logits_raise(device):
    x, t = _data(3, 4, device)
    x[1, 1] = float("nan")
    for backend in _backends(device):
        with pytest.raises(ValueError, match="NaN"):
            asymmetric_loss_single_label(x, t, backend=backend)


def test_bad_options_raise():
    x, t = _data(3, 4, "cpu")
    with pytest.raises(ValueError, match="label smoothing"):
        asymmetric_loss_single_label(x, t, eps=2.0)
    with pytest.raises(ValueError, match="reduction"):
        asymmetric_loss_single_label(x, t, reduction="batchmean")
