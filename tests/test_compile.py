"""torch.compile, torch.export, meta and fake tensors: the losses as custom operators, the
head as plain PyTorch ops (q2l.heads.functional), each against eager Rust."""

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import q2l
from q2l.heads import Query2LabelHead, functional
from q2l.models import Query2Label, TinyBackbone

TINY = dict(num_classes=6, in_channels=12, d_model=16, nhead=4, dim_feedforward=32, dropout=0.0)
CONFIGS = [
    {},
    dict(pre_norm=True),
    dict(keep_first_self_attn=True, keep_other_self_attn=True),
    dict(pre_norm=True, keep_other_self_attn=True, num_encoder_layers=0),
    dict(num_decoder_layers=3),
    dict(in_channels=16, input_proj=True),
]


def _head(**kw):
    torch.manual_seed(0)
    return Query2LabelHead(**{**TINY, **kw})


def _features(c=12, b=3, h=4, w=5, dtype=torch.float32):
    return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(1), dtype=dtype)


def _step(fn, params, *inputs):
    for p in params:
        p.grad = None
    out = fn(*inputs)
    out.backward()
    return out.detach(), [p.grad.clone() for p in params]


# The pure-PyTorch twin -----------------------------------------------------------------


@pytest.mark.parametrize("kw", CONFIGS)
@pytest.mark.parametrize("training", [False, True])
def test_functional_twin_equals_the_rust_head(kw, training):
    head = _head(**kw).double().train(training)
    x = _features(c=head.in_channels, dtype=torch.float64)
    ours, maps = head(x, return_attention=True)
    twin, twin_maps = functional.forward(head, x, training, return_attention=True)
    torch.testing.assert_close(twin, ours, rtol=1e-12, atol=1e-12)
    assert len(twin_maps) == len(maps) == head.num_decoder_layers
    for a, b in zip(twin_maps, maps, strict=False):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(head.export()(x), head.eval()(x), rtol=1e-12, atol=1e-12)


def test_reassociated_cross_attention_under_dropout_equals_the_direct_form():
    # With dropout the attention rows no longer sum to one, so the value bias must be weighted
    # by each row's sum. Same seed, same single random draw: the masks are identical.
    import math

    import torch.nn.functional as F

    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(16, 4).double()
    query = torch.randn(1, 6, 16, dtype=torch.float64)
    memory = torch.randn(3, 10, 16, dtype=torch.float64)
    key_in = memory + torch.randn(1, 10, 16, dtype=torch.float64)
    torch.manual_seed(5)
    cfg = functional.LayerConfig(nhead=4, pre_norm=False, dropout=0.5, training=True)
    out, _ = functional.cross_attention(query, key_in, memory, mha, cfg, want_weights=False)
    wq, wk, wv = mha.in_proj_weight.chunk(3)
    bq, bk, bv = mha.in_proj_bias.chunk(3)

    def heads(t):
        return t.reshape(t.shape[0], t.shape[1], 4, 4).transpose(1, 2)

    q, k, v = heads(F.linear(query, wq, bq)), heads(F.linear(key_in, wk, bk)), heads(F.linear(memory, wv, bv))
    attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(4), dim=-1)  # [B, H, K, T]
    torch.manual_seed(5)
    dropped = F.dropout(attn.reshape(3, 24, 10), 0.5, True).reshape(3, 4, 6, 10)
    direct = F.linear((dropped @ v).transpose(1, 2).reshape(3, 6, 16), mha.out_proj.weight, mha.out_proj.bias)
    torch.testing.assert_close(out, direct, rtol=1e-12, atol=1e-12)


# torch.compile ------------------------------------------------------------------------------


@pytest.mark.parametrize("kw", CONFIGS[:4])
def test_head_compiles_fullgraph_with_eager_gradients(kw):
    head = _head(**kw)
    x = _features(c=head.in_channels)
    params = list(head.parameters())
    compiled = torch.compile(head, fullgraph=True, backend="aot_eager")
    ref_out, ref_grads = _step(lambda t: head(t).square().mean(), params, x)
    out, grads = _step(lambda t: compiled(t).square().mean(), params, x)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-6)
    for (name, _), g, r in zip(head.named_parameters(), grads, ref_grads, strict=False):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6, msg=name)


def test_head_attention_maps_under_compile():
    head = _head().eval()
    x = _features()
    compiled = torch.compile(lambda t: head(t, return_attention=True), fullgraph=True, backend="aot_eager")
    logits, maps = compiled(x)
    ref_logits, ref_maps = head(x, return_attention=True)
    torch.testing.assert_close(logits, ref_logits)
    for a, b in zip(maps, ref_maps, strict=False):
        torch.testing.assert_close(a, b)


def _compiled_matches_eager(total, x, target):
    """``total(x, target)`` compiled in one graph (aot_eager) gives the eager value and gradient."""
    compiled = torch.compile(total, fullgraph=True, backend="aot_eager")
    ref, (ref_grad,) = _step(total, [x], x, target)
    out, (grad,) = _step(compiled, [x], x, target)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(grad, ref_grad)


@pytest.mark.parametrize("preset", ["query2label", "asl", "mmpretrain"])
@pytest.mark.parametrize("reduction", [None, "none"])
def test_asymmetric_loss_compiles_fullgraph(preset, reduction):
    kw = {} if reduction is None else {"reduction": reduction}
    crit = q2l.AsymmetricLoss.from_preset(preset, **kw)
    x = (torch.randn(8, 20, generator=torch.Generator().manual_seed(0)) * 3).requires_grad_()
    y = (torch.rand(8, 20, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    y[0, :3] = -1

    def total(a, b):
        return crit(a, b).sum()

    _compiled_matches_eager(total, x, y)


def test_single_label_loss_compiles_fullgraph():
    crit = q2l.AsymmetricLossSingleLabel(reduction="none")
    x = torch.randn(8, 10, generator=torch.Generator().manual_seed(0)).requires_grad_()
    t = torch.randint(0, 10, (8,), generator=torch.Generator().manual_seed(1))
    t[2] = -100
    weights = torch.linspace(0.5, 2, 8)

    def total(a, b):
        return (crit(a, b) * weights).sum()

    _compiled_matches_eager(total, x, t)


def test_head_and_loss_under_inductor():
    # One Inductor compile (forward and backward of head + loss): the configuration users run.
    head = _head()
    crit = q2l.AsymmetricLoss.from_preset("query2label")
    x = _features()
    y = (torch.rand(3, 6, generator=torch.Generator().manual_seed(2)) < 0.4).float()
    params = list(head.parameters())

    def step(t, target):
        return crit(head(t), target)

    ref, ref_grads = _step(step, params, x, y)
    out, grads = _step(torch.compile(step, fullgraph=True), params, x, y)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    for g, r in zip(grads, ref_grads, strict=False):
        torch.testing.assert_close(g, r, rtol=1e-3, atol=1e-4)


def test_loss_validation_still_raises_inside_compile():
    crit = q2l.AsymmetricLoss()
    compiled = torch.compile(lambda a, b: crit(a, b), fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 3)
    x[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        compiled(x, torch.zeros(2, 3))


# Custom operators ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_asymmetric_loss_op_passes_opcheck(dtype, reduction):
    x = torch.randn(4, 5, dtype=dtype, requires_grad=True)
    y = (torch.rand(4, 5) < 0.3).to(dtype)
    w = torch.linspace(0.5, 1.5, 5, dtype=dtype)
    options = q2l.loss.asymmetric.OPTIONS
    given = options.resolve({"disable_torch_grad_focal_loss": True, "reduction": reduction, "scale": 2.0})
    # The operator's schema: the tensors, every option in declaration order, need_grad.
    args = (x, y, w, *(given[name] for name in options.names), True)
    torch.library.opcheck(torch.ops.q2l.asymmetric_loss.default, args)


def test_single_label_loss_op_passes_opcheck():
    x = torch.randn(4, 5, requires_grad=True)
    t = torch.tensor([0, 4, -100, 2])
    options = q2l.loss.single_label.OPTIONS
    given = options.resolve({})
    args = (x, t, *(given[name] for name in options.names), True)
    torch.library.opcheck(torch.ops.q2l.asymmetric_loss_single_label.default, args)


# torch.export -------------------------------------------------------------------------------


def test_export_of_a_model_containing_the_head():
    torch.manual_seed(0)
    model = Query2Label(TinyBackbone(width=8), num_classes=5, d_model=32, dim_feedforward=64).eval()
    x = torch.randn(2, 3, 48, 48)
    program = torch.export.export(model, (x,))
    torch.testing.assert_close(program.module()(x), model(x), rtol=1e-5, atol=1e-5)
    other = torch.randn(2, 3, 48, 48)
    torch.testing.assert_close(program.module()(other), model(other), rtol=1e-5, atol=1e-5)


def test_export_of_a_loss():
    class Train(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.crit = q2l.AsymmetricLoss.from_preset("asl")

        def forward(self, x, y):
            return self.crit(x, y)

    x, y = torch.randn(4, 7), (torch.rand(4, 7) < 0.3).float()
    program = torch.export.export(Train(), (x, y))
    assert any("q2l.asymmetric_loss" in str(n.target) for n in program.graph.nodes)
    torch.testing.assert_close(program.module()(x, y), Train()(x, y))


# Meta and fake tensors ---------------------------------------------------------------------


def test_head_on_meta_gives_shapes():
    with torch.device("meta"):
        head = Query2LabelHead(num_classes=80, in_channels=2048)
    x = torch.empty(2, 2048, 14, 18, device="meta")
    logits, maps = head(x, return_attention=True)
    assert logits.shape == (2, 80) and logits.device.type == "meta"
    assert [m.shape for m in maps] == [(2, 80, 14, 18)] * 2
    logits.sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in head.parameters())


@pytest.mark.parametrize(
    "dtype,loss_dtype",
    [
        (torch.float16, torch.float32),
        (torch.bfloat16, torch.float32),
        (torch.float32, torch.float32),
        (torch.float64, torch.float64),
    ],
)
def test_losses_on_meta_give_shapes_and_dtypes(dtype, loss_dtype):
    x = torch.empty(4, 9, device="meta", dtype=dtype, requires_grad=True)
    y = torch.empty(4, 9, device="meta")
    loss = q2l.AsymmetricLoss()(x, y)
    assert loss.shape == () and loss.dtype == loss_dtype and loss.device.type == "meta"
    loss.backward()
    assert x.grad.shape == x.shape and x.grad.dtype == dtype
    assert q2l.asymmetric_loss(x, y, reduction="none").shape == (4, 9)
    t = torch.empty(4, device="meta", dtype=torch.long)
    assert q2l.AsymmetricLossSingleLabel()(x, t).shape == ()
    assert q2l.asymmetric_loss_single_label(x, t, reduction="none").shape == (4,)


def test_fake_tensors_propagate_shapes():
    head = _head()
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        x = mode.from_tensor(_features())
        logits = head(x)
        loss = q2l.AsymmetricLoss()(logits, torch.zeros(3, 6))
    assert logits.shape == (3, 6) and loss.shape == ()
