"""The Query2Label head: parity with the official architecture, gradients, checkpoints,
export, bad input."""

import inspect
import io
import sys

import pytest
import torch

import q2l
from q2l.heads import Query2LabelHead
from q2l.models import (
    Query2Label,
    head_config_from_state_dict,
    head_from_official,
    split_official_state_dict,
    to_official_state_dict,
)
from reference_head import official_forward, official_pe

TINY = dict(num_classes=6, in_channels=12, d_model=16, nhead=4, dim_feedforward=32)


def _head(seed=0, **kw):
    torch.manual_seed(seed)
    return Query2LabelHead(**{**TINY, **kw})


def _features(b=2, c=12, h=3, w=5, seed=1, dtype=torch.float32, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, h, w, generator=g, dtype=dtype).to(device)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        dict(keep_first_self_attn=True, keep_other_self_attn=True),
        dict(num_encoder_layers=2, num_decoder_layers=3),
        dict(in_channels=16, input_proj=False),
    ],
)
def test_logits_and_gradients_match_the_official_architecture(kw, device):
    head = _head(**kw).to(device).eval()
    x = _features(c=head.in_channels, device=device)
    ours = head(x)
    ours.square().sum().backward()
    grads = {n: p.grad.clone() for n, p in head.named_parameters()}
    head.zero_grad()
    ref = official_forward(head, x)
    ref.square().sum().backward()
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    for name, p in head.named_parameters():
        # Layer norms of the batch-independent first decoder layer amplify some gradients
        # to ~1e3; compare relative to each gradient's size.
        scale = max(1.0, p.grad.abs().max().item())
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-4, atol=1e-5 * scale, msg=name)


def test_the_coco_configuration_matches_the_official_architecture():
    torch.manual_seed(0)
    head = Query2LabelHead().eval()  # d=2048, FFN 8192, 4 heads, 1 encoder, 2 decoder layers, K=80
    x = torch.randn(1, 2048, 7, 7)
    with torch.no_grad():
        torch.testing.assert_close(head(x), official_forward(head, x), rtol=1e-5, atol=1e-5)


def test_positional_encoding_matches_the_official_buffer():
    from q2l import _native

    for h, w in [(14, 14), (18, 18), (3, 7)]:
        ours = _native.sine_encoding(height=h, width=w, d_model=64)
        official = official_pe(h, w, 64).flatten(2)[0].t()
        torch.testing.assert_close(ours, official, rtol=1e-5, atol=2e-6)


def test_gradcheck_float64():
    head = _head(dropout=0.0).double().eval()
    x = _features(b=2, h=2, w=3, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda inp: head(inp), (x,), eps=1e-6, atol=1e-6)
    w = head.decoder.layers[0].multihead_attn.in_proj_weight

    def through_weight(weight):
        saved = w.data.clone()
        params = dict(head.named_parameters())
        params["decoder.layers.0.multihead_attn.in_proj_weight"] = weight
        from q2l import _native

        out, _ = _native.head_forward(
            features=x.detach(),
            params=params,
            config={"d_model": 16, "nhead": 4, "dropout": 0.0},
            train=False,
            return_attention=False,
        )
        assert torch.equal(w.data, saved)
        return out

    assert torch.autograd.gradcheck(through_weight, (w.detach().clone().requires_grad_(),), eps=1e-6, atol=1e-6)


def test_every_parameter_gets_a_gradient():
    # Self-attention in the first decoder layer sees an all-zero target (official design),
    # so its weights get no gradient there; it is kept in the other layers only.
    head = _head(keep_other_self_attn=True, num_decoder_layers=3).train()
    head(_features()).sum().backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_batch_invariance_and_any_resolution():
    head = _head().eval()
    x = _features(b=4, h=5, w=2)
    with torch.no_grad():
        full = head(x)
        for i in range(4):
            torch.testing.assert_close(head(x[i : i + 1]), full[i : i + 1], rtol=1e-5, atol=1e-6)
        for h, w in [(1, 1), (7, 3), (14, 14)]:
            assert head(_features(h=h, w=w)).shape == (2, 6)


def test_permuting_label_embeddings_permutes_the_logits():
    head = _head().eval()
    x = _features()
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = head(x)
        head.query_embed.weight.copy_(head.query_embed.weight[perm])
        head.fc.W.copy_(head.fc.W[:, perm])
        head.fc.b.copy_(head.fc.b[:, perm])
        torch.testing.assert_close(head(x), before[:, perm], rtol=1e-5, atol=1e-6)


def test_train_mode_is_reproducible_under_a_seed_and_differs_from_eval():
    head = _head(dropout=0.3).train()
    x = _features()
    torch.manual_seed(42)
    a = head(x)
    torch.manual_seed(42)
    b = head(x)
    torch.manual_seed(43)
    c = head(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.allclose(a, head.eval()(x))


def test_attention_maps_are_distributions_over_the_feature_map():
    head = _head().eval()
    logits, maps = head(_features(h=4, w=6), return_attention=True)
    assert len(maps) == head.num_decoder_layers
    for m in maps:
        assert m.shape == (2, 6, 4, 6)
        torch.testing.assert_close(m.sum((-1, -2)), torch.ones(2, 6))
    torch.testing.assert_close(logits, head(_features(h=4, w=6)))


def test_pre_norm_runs_and_differs_from_post_norm():
    post = _head().eval()
    pre = _head(pre_norm=True).eval()
    x = _features()
    out = pre(x)
    assert torch.isfinite(out).all() and not torch.allclose(out, post(x))
    torch.testing.assert_close(pre.export()(x), out, rtol=1e-5, atol=1e-5)


def test_official_checkpoint_round_trip(tmp_path):
    head = _head(keep_first_self_attn=False)
    backbone_state = {"conv1.weight": torch.randn(4, 3, 3, 3)}
    official = to_official_state_dict(head, backbone_state, img_size=448)
    assert "module.transformer.encoder.layers.0.self_attn.in_proj_weight" in official
    assert "module.query_embed.weight" in official and "module.fc.W" in official
    assert official["module.backbone.1.pe"].shape == (1, 16, 14, 14)
    path = tmp_path / "checkpoint.pkl"
    torch.save({"epoch": 3, "state_dict": official}, path)
    loaded, backbone = head_from_official(path)
    assert torch.equal(backbone["conv1.weight"], backbone_state["conv1.weight"])
    x = _features()
    torch.testing.assert_close(loaded.eval()(x), head.eval()(x))
    head_state, _ = split_official_state_dict(official)
    cfg = head_config_from_state_dict(head_state)
    assert cfg["num_classes"] == 6 and cfg["num_encoder_layers"] == 1 and cfg["num_decoder_layers"] == 2
    pe = official["module.backbone.1.pe"]
    torch.testing.assert_close(pe, official_pe(14, 14, 16), rtol=1e-5, atol=2e-6)


def test_bad_checkpoints_raise(tmp_path):
    with pytest.raises(FileNotFoundError):
        head_from_official(tmp_path / "missing.pkl")
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable"):
        head_from_official(bad)
    with pytest.raises(ValueError, match="unexpected key"):
        split_official_state_dict({"module.something.else": torch.zeros(1)})


def test_onnx_export_runs_in_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    head = _head().eval()
    x = _features()
    exported = head.export()
    buf = io.BytesIO()
    torch.onnx.export(exported, (x,), buf, input_names=["features"], output_names=["logits"], dynamo=True)
    assert not head.training
    out = ort.InferenceSession(buf.getvalue()).run(None, {"features": x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(out), head(x), rtol=1e-4, atol=1e-4)


def test_float64_and_bfloat16_autocast():
    head = _head().double().eval()
    x = _features(dtype=torch.float64)
    # The official encoding is computed in float32 even for float64 models.
    torch.testing.assert_close(head(x), official_forward(head, x), rtol=1e-6, atol=1e-6)
    head32 = _head().eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = head32(_features().bfloat16())
    assert torch.isfinite(out).all()


def test_full_model_on_a_torchvision_backbone():
    pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = Query2Label("resnet18", num_classes=5, d_model=64, dim_feedforward=128, freeze_stem=True)
    assert model.head.in_channels == 512 and model.head.input_proj is not None
    assert not any(p.requires_grad for p in model.backbone[4].parameters())
    out = model(torch.randn(2, 3, 64, 96))
    assert out.shape == (2, 5)
    out.sum().backward()
    model2 = Query2Label("mobilenet_v2", num_classes=3, d_model=32, dim_feedforward=64, frozen_bn=True)
    assert model2(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    with pytest.raises(ValueError, match="unknown torchvision backbone"):
        Query2Label("resnet9000", num_classes=3)
    with pytest.raises(FileNotFoundError):
        Query2Label("resnet18", num_classes=3, weights="/nonexistent.pth")


@pytest.mark.parametrize(
    "features, match",
    [
        (torch.randn(2, 12, 3), r"\[batch, channels, height, width\]"),
        (torch.randn(2, 7, 3, 3), "7 channels but the head expects 12"),
        (torch.randn(0, 12, 3, 3), "non-empty"),
        (torch.randn(2, 12, 3, 3, dtype=torch.float64), "float64 but the head's parameters are torch.float32"),
    ],
)
def test_bad_input_raises_value_errors(features, match):
    with pytest.raises(ValueError, match=match):
        _head()(features)


def test_bad_configurations_raise():
    with pytest.raises(ValueError, match="num_classes"):
        Query2LabelHead(num_classes=0)
    with pytest.raises(ValueError, match="divisible"):
        Query2LabelHead(d_model=18, nhead=4)
    with pytest.raises(ValueError, match="input_proj=False"):
        Query2LabelHead(in_channels=12, d_model=16, nhead=4, input_proj=False)


def test_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    head = _head().eval()
    x = _features()
    torch.testing.assert_close(head.cuda()(x.cuda()).cpu(), head.cpu()(x), rtol=1e-4, atol=1e-4)


_SMALL = dict(num_classes=6, in_channels=8, d_model=8, nhead=2, dim_feedforward=16)


@pytest.mark.parametrize("name", ["num_classes", "in_channels", "d_model", "nhead", "dim_feedforward", "dropout"])
@pytest.mark.parametrize("bad", [True, -1, 2.5, None, "4"])
def test_both_heads_refuse_a_shared_argument_alike(name, bad):
    # One validator per argument (the configs' Rust checks for the architecture options,
    # q2l/_validate.py for the Python-only sizes), so the two heads cannot disagree.
    errors = []
    for cls in (Query2LabelHead, q2l.MLDecoderHead):
        with pytest.raises(q2l.Q2LError) as info:
            cls(**{**_SMALL, name: bad})
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1]


@pytest.mark.parametrize("cls", [Query2LabelHead, q2l.MLDecoderHead])
def test_head_options_come_from_the_rust_declaration(cls):
    module = sys.modules[cls.__module__]
    params = inspect.signature(cls).parameters
    for name, default in module.OPTIONS.defaults.items():
        assert params[name].default == default, name
        assert f"{name}: " in (cls.__doc__ or ""), name
    head = cls(**_SMALL, dropout=0.0)
    head.nhead = 3  # options are read at each forward, and checked there by Rust
    with pytest.raises(ValueError, match=r"d_model \(8\) must be .*divisible by nhead \(3\)"):
        head(torch.randn(1, 8, 2, 2))


@pytest.mark.parametrize("bad", [True, 0, 7, 2.0])
def test_both_heads_refuse_num_groups_alike(bad):
    errors = []
    for cls in (Query2LabelHead, q2l.MLDecoderHead):
        with pytest.raises(q2l.Q2LError) as info:
            cls(**_SMALL, num_groups=bad)
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1]


def test_the_old_import_path_names_the_same_objects():
    import q2l.head

    assert q2l.head.Query2LabelHead is q2l.heads.Query2LabelHead
    assert q2l.head.Query2Label is q2l.models.Query2Label
    assert q2l.head.functional is q2l.heads.functional
    assert set(q2l.head.__all__) == {*q2l.heads.__all__, *q2l.models.__all__}
