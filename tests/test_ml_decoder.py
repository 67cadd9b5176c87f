"""MLDecoderHead against a reference written here from the official ML-Decoder module
(Alibaba-MIIL/ML_Decoder, src_files/ml_decoder/ml_decoder.py): sequence-first
nn.MultiheadAttention, the group FC as the official per-group loop, weights copied by name."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import q2l
from q2l.errors import InvalidArgumentError, InvalidTypeError
from q2l.heads.ml_decoder import _torch_forward, duplicate_factor


class RefLayer(nn.Module):
    """The official TransformerDecoderLayerOptimal."""

    def __init__(self, d, nhead, ff, dropout):
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.multihead_attn = nn.MultiheadAttention(d, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d, ff)
        self.linear2 = nn.Linear(ff, d)
        self.norm2 = nn.LayerNorm(d)
        self.norm3 = nn.LayerNorm(d)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, tgt, memory):  # [Q, B, E], [T, B, E]
        tgt = self.norm1(tgt + self.dropout1(tgt))
        tgt = self.norm2(tgt + self.dropout2(self.multihead_attn(tgt, memory, memory)[0]))
        return self.norm3(tgt + self.dropout3(self.linear2(self.dropout(F.relu(self.linear1(tgt))))))


class RefMLDecoder(nn.Module):
    """The official MLDecoder: same attribute layout, same forward."""

    def __init__(
        self, num_classes, num_of_groups=-1, decoder_embedding=768, initial_num_features=2048, zsl=0, word_dim=300
    ):
        super().__init__()
        groups = 100 if num_of_groups < 0 else num_of_groups
        groups = min(groups, num_classes)
        self.decoder = nn.Module()
        self.decoder.layers = nn.ModuleList([RefLayer(decoder_embedding, 8, 64, 0.1)])
        self.decoder.embed_standart = nn.Linear(initial_num_features, decoder_embedding)
        self.zsl = zsl
        if zsl:
            # Official: 300-wide word vectors, no projection when the decoder is 300 wide.
            proj = decoder_embedding != word_dim
            self.wordvec_proj = nn.Linear(word_dim, decoder_embedding) if proj else nn.Identity()
            self.decoder.duplicate_pooling = nn.Parameter(torch.randn(decoder_embedding, 1))
            self.decoder.duplicate_pooling_bias = nn.Parameter(torch.randn(1))
            self.duplicate_factor = 1
        else:
            self.decoder.query_embed = nn.Embedding(groups, decoder_embedding)
            self.decoder.query_embed.requires_grad_(False)
            self.num_classes = num_classes
            self.duplicate_factor = int(num_classes / groups + 0.999)
            self.decoder.duplicate_pooling = nn.Parameter(torch.randn(groups, decoder_embedding, self.duplicate_factor))
            self.decoder.duplicate_pooling_bias = nn.Parameter(torch.randn(num_classes))

    def forward(self, x, wordvecs=None):
        tokens = x.flatten(2).transpose(1, 2) if x.dim() == 4 else x
        memory = F.relu(self.decoder.embed_standart(tokens))
        bs = memory.shape[0]
        query = F.relu(self.wordvec_proj(wordvecs)) if self.zsl else self.decoder.query_embed.weight
        tgt = query.unsqueeze(1).expand(-1, bs, -1)
        for layer in self.decoder.layers:
            tgt = layer(tgt, memory.transpose(0, 1))
        h = tgt.transpose(0, 1)
        out = torch.zeros(h.shape[0], h.shape[1], self.duplicate_factor, dtype=h.dtype)
        pooling = self.decoder.duplicate_pooling
        for i in range(h.shape[1]):
            out[:, i, :] = h[:, i, :] @ (pooling[i] if pooling.dim() == 3 else pooling)
        logits = out.flatten(1) if self.zsl else out.flatten(1)[:, : self.num_classes]
        return logits + self.decoder.duplicate_pooling_bias


def _pair(k, g, e=32, c=24, zsl=0, dtype=torch.float64, seed=0, word_dim=300):
    torch.manual_seed(seed)
    ref = RefMLDecoder(k, g, e, c, zsl=zsl, word_dim=word_dim).to(dtype).eval()
    head = q2l.MLDecoderHead(
        num_classes=None if zsl else k,
        in_channels=c,
        num_groups=None if zsl else (None if g < 0 else g),
        d_model=e,
        dim_feedforward=64,
        zsl=bool(zsl),
        embedding_dim=word_dim if zsl else None,
    )
    head.load_state_dict(ref.state_dict())  # strict: the names are the official ones
    return ref, head.to(dtype).eval()


@pytest.mark.parametrize(
    "k,g,e", [(80, -1, 32), (80, 20, 32), (10, 4, 32), (7, 7, 32), (250, 100, 32), (5, 1, 32), (20, 8, 256)]
)
def test_matches_the_official_module(k, g, e):
    # e = 256 with 8 groups takes the reassociated cross-attention, the others project.
    ref, head = _pair(k, g, e=e)
    x = torch.randn(3, 24, 5, 6, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(head(x), ref(x), atol=1e-10, rtol=1e-10)
    assert head.num_groups == min(k, 100 if g < 0 else g)
    assert head.decoder.duplicate_pooling.shape[2] == duplicate_factor(k, head.num_groups)


@pytest.mark.parametrize("e,k,word_dim", [(32, 12, 300), (32, 9, 32), (16, 200, 300)])
def test_zero_shot_matches_the_official_module(e, k, word_dim):
    # word_dim == e: no projection (the official nn.Identity); k = 200 with e = 16 takes
    # the projected cross-attention path instead of the reassociated one.
    ref, head = _pair(k, -1, e=e, zsl=1, word_dim=word_dim)
    assert (head.wordvec_proj is None) == (e == word_dim)
    x = torch.randn(2, 24, 4, 4, dtype=torch.float64)
    words = torch.randn(k, word_dim, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(head(x, words), ref(x, words), atol=1e-10, rtol=1e-10)
        # Any labels at call time: a subset gives the subset's logits.
        assert torch.allclose(head(x, words[:3]), ref(x, words)[:, :3], atol=1e-10)


def test_float32_and_token_inputs():
    ref, head = _pair(40, 8, dtype=torch.float32)
    tokens = torch.randn(4, 30, 24)
    with torch.no_grad():
        assert torch.allclose(head(tokens), ref(tokens), atol=1e-5)


def test_gradients_match_and_every_trainable_parameter_gets_one():
    ref, head = _pair(30, 7)
    ref.train()
    head.train()
    for m in list(ref.modules()) + list(head.modules()):
        if isinstance(m, (nn.Dropout, nn.MultiheadAttention)):
            m.p = 0.0
            m.dropout = 0.0
    head.dropout = 0.0
    x = torch.randn(2, 24, 3, 3, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    target = torch.randn(2, 30, dtype=torch.float64)
    (head(x) * target).sum().backward()
    (ref(x_ref) * target).sum().backward()
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-10)
    ref_params = dict(ref.named_parameters())
    for name, p in head.named_parameters():
        if name == "decoder.query_embed.weight":
            assert not p.requires_grad and p.grad is None  # fixed queries
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        assert torch.allclose(p.grad, ref_params[name].grad, atol=1e-9), name


def test_gradcheck_float64():
    _, head = _pair(6, 4, e=16, c=8)
    head.dropout = 0.0
    x = torch.randn(2, 8, 2, 3, dtype=torch.float64, requires_grad=True)
    names = ["decoder.embed_standart.weight", "decoder.layers.0.multihead_attn.in_proj_weight"]
    names.append("decoder.duplicate_pooling")
    params = dict(head.named_parameters())

    def f(x, *weights):
        replaced = {**params, **dict(zip(names, weights, strict=True))}
        return torch.func.functional_call(head, replaced, (x,))

    weights = [params[n].detach().clone().requires_grad_() for n in names]
    assert torch.autograd.gradcheck(f, (x, *weights))

    _, zsl = _pair(5, -1, e=16, c=8, zsl=1)
    zsl.dropout = 0.0
    words = torch.randn(5, 300, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: zsl(x, w), (x, words))


@settings(max_examples=15, deadline=None)
@given(
    k=st.integers(1, 40),
    g=st.integers(1, 40),
    batch=st.integers(1, 3),
    h=st.integers(1, 4),
    w=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_hypothesis_sweep_against_the_official_module(k, g, batch, h, w, seed):
    g = min(g, k)
    ref, head = _pair(k, g, e=16, c=8, seed=seed)
    x = torch.randn(batch, 8, h, w, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(head(x), ref(x), atol=1e-10)


def test_the_torch_twin_meta_and_compile():
    _, head = _pair(20, 6, dtype=torch.float32)
    x = torch.randn(2, 24, 3, 3)
    with torch.no_grad():
        want = head(x)
        assert torch.allclose(_torch_forward(head, x, None, False), want, atol=1e-5)
        assert copy.deepcopy(head).to("meta")(x.to("meta")).shape == (2, 20)
    compiled = torch.compile(head, fullgraph=True)
    with torch.no_grad():
        assert torch.allclose(compiled(x), want, atol=1e-5)


def test_dropout_in_training_only():
    _, head = _pair(12, 4, dtype=torch.float32)
    x = torch.randn(2, 24, 3, 3)
    head.train()
    assert not torch.equal(head(x), head(x))
    head.eval()
    assert torch.equal(head(x), head(x))


def test_from_official_reads_a_whole_model_state_dict(tmp_path):
    ref, _ = _pair(25, 10, dtype=torch.float32)
    state = {f"module.head.{k}": v for k, v in ref.state_dict().items()}
    state["module.body.conv1.weight"] = torch.randn(3, 3)
    path = tmp_path / "model.pth"
    torch.save({"model": state}, path)
    head = q2l.MLDecoderHead.from_official(path).eval()
    assert (head.num_classes, head.num_groups, head.d_model, head.in_channels) == (25, 10, 32, 24)
    x = torch.randn(2, 24, 3, 3)
    with torch.no_grad():
        assert torch.allclose(head(x), ref(x), atol=1e-5)
    zsl_ref, _ = _pair(5, -1, zsl=1, dtype=torch.float32)
    zsl = q2l.MLDecoderHead.from_official({f"fc.{k}": v for k, v in zsl_ref.state_dict().items()}).eval()
    words = torch.randn(5, 300)
    assert zsl.zsl and zsl.embedding_dim == 300
    with torch.no_grad():
        assert torch.allclose(zsl(x, words), zsl_ref(x, words), atol=1e-5)
    with pytest.raises(InvalidArgumentError, match="not an ML-Decoder"):
        q2l.MLDecoderHead.from_official({"fc.weight": torch.zeros(2, 2)})


def test_bad_input_is_named():
    with pytest.raises(InvalidArgumentError, match=r"num_groups must be None or an int in \[1, num_classes=5\]"):
        q2l.MLDecoderHead(num_classes=5, num_groups=6)
    with pytest.raises(InvalidTypeError, match="num_classes must be an integer, got None"):
        q2l.MLDecoderHead()
    with pytest.raises(InvalidArgumentError, match="num_classes must be a positive int, got 0"):
        q2l.MLDecoderHead(num_classes=0)
    with pytest.raises(InvalidTypeError, match="num_classes must be an integer, got the bool True"):
        q2l.MLDecoderHead(num_classes=True)
    with pytest.raises(InvalidArgumentError, match="embedding_dim is the width of a zero-shot head's"):
        q2l.MLDecoderHead(num_classes=5, embedding_dim=512)
    with pytest.raises(InvalidArgumentError, match="divisible by nhead"):
        q2l.MLDecoderHead(num_classes=5, d_model=30)
    _, head = _pair(8, 4, dtype=torch.float32)
    x = torch.randn(2, 24, 3, 3)
    with pytest.raises(InvalidArgumentError, match="features must have shape"):
        head(torch.randn(24, 9))
    with pytest.raises(InvalidArgumentError, match="24"):
        head(torch.randn(2, 23, 3, 3))
    with pytest.raises(InvalidArgumentError, match="label_embeddings are for zsl=True"):
        head(x, torch.randn(8, 300))
    with pytest.raises(InvalidArgumentError, match="features are torch.float64"):
        head(x.double())
    del head.decoder.duplicate_pooling_bias
    head.decoder.duplicate_pooling_bias = nn.Parameter(torch.zeros(9))
    shape = r"decoder.duplicate_pooling. has shape \[4, 32, 2\], expected \[4, 32, 3\]"
    with pytest.raises(InvalidArgumentError, match=shape):
        head(x)
    _, zsl = _pair(5, -1, zsl=1, dtype=torch.float32)
    with pytest.raises(InvalidArgumentError, match="needs label_embeddings"):
        zsl(x)
    width = r"label_embeddings must have shape \[num_labels, 300\], got \[5, 299\]"
    with pytest.raises(InvalidArgumentError, match=width):
        zsl(x, torch.randn(5, 299))
    with pytest.raises(InvalidArgumentError, match="label_embeddings"):
        zsl(x, torch.randint(0, 3, (5, 300)))
    assert math.isfinite(zsl(x, torch.randn(1, 300)).sum().item())


# Group decoding in the Query2Label head --------------------------------------------------


def _q2l(num_groups, k=10, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(num_classes=k, in_channels=12, d_model=16, nhead=2, dim_feedforward=32, num_groups=num_groups)
    return q2l.Query2LabelHead(**{**cfg, **kw}).double().eval()


def test_grouped_q2l_with_one_group_per_label_is_the_per_label_head():
    per_label = _q2l(None)
    grouped = _q2l(10)
    state = per_label.state_dict()
    state["fc.weight"] = state.pop("fc.W")[0].unsqueeze(-1)  # [K, d, 1]
    state["fc.bias"] = state.pop("fc.b")[0]
    grouped.load_state_dict(state)
    x = torch.randn(3, 12, 4, 5, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(grouped(x), per_label(x), atol=1e-12)


@pytest.mark.parametrize("k,g", [(10, 4), (9, 3), (30, 1)])
def test_grouped_q2l_applies_the_official_group_fc(k, g):
    head = _q2l(g, k=k)
    x = torch.randn(2, 12, 3, 3, dtype=torch.float64)
    captured = {}
    head.decoder.norm.register_forward_hook(lambda m, i, o: captured.setdefault("h", o))
    with torch.no_grad():
        q2l.heads.functional.forward(head, x)  # the twin fills the hook
        h = captured["h"].expand(2, -1, -1)
        f = duplicate_factor(k, g)
        out = torch.zeros(2, g, f, dtype=torch.float64)
        for i in range(g):  # the official GroupFC loop
            out[:, i, :] = h[:, i, :] @ head.fc.weight[i]
        want = out.flatten(1)[:, :k] + head.fc.bias
        assert torch.allclose(head(x), want, atol=1e-12)
        _, maps = head(x, return_attention=True)
        assert maps[0].shape == (2, k, 3, 3)  # label k shows its group's map
        group_maps = q2l.heads.functional.forward(head, x, return_attention=True)[1][0]
        assert torch.allclose(maps[0][:, k - 1], group_maps[:, (k - 1) // f], atol=1e-12)
    assert head.query_embed.weight.shape == (g, 16)


def test_grouped_q2l_gradients_compile_and_config():
    head = _q2l(4).train()
    head.dropout = 0.0
    x = torch.randn(2, 12, 3, 3, dtype=torch.float64, requires_grad=True)
    head(x).square().sum().backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert torch.autograd.gradcheck(lambda x: head(x), (x,))
    rebuilt = q2l.Query2LabelHead(**head.config())
    assert rebuilt.num_groups == 4 and rebuilt.fc.weight.shape == (4, 16, 3)
    config = q2l.models.head_config_from_state_dict(head.state_dict(), nhead=2)
    assert config["num_groups"] == 4 and config["num_classes"] == 10
    head.eval().float()
    compiled = torch.compile(head, fullgraph=True)
    xf = x.detach().float()
    with torch.no_grad():
        assert torch.allclose(compiled(xf), head(xf), atol=1e-5)
    with pytest.raises(InvalidArgumentError, match=r"num_groups must be None or an int in \[1, num_classes=10\]"):
        _q2l(11)


def test_label_embeddings_load_from_local_files(tmp_path):
    import numpy as np
    from safetensors.torch import save_file

    from q2l.heads import load_label_embeddings

    emb = torch.randn(6, 300)
    np.save(tmp_path / "e.npy", emb.numpy())
    torch.save({"embeddings": emb}, tmp_path / "e.pt")
    save_file({"embeddings": emb}, tmp_path / "e.safetensors")
    for name in ("e.npy", "e.pt", "e.safetensors"):
        assert torch.equal(load_label_embeddings(tmp_path / name), emb), name
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(q2l.errors.Q2LError, match="not a readable .npy"):
        load_label_embeddings(tmp_path / "obj.npy")
    np.save(tmp_path / "flat.npy", np.zeros(5, dtype=np.float32))
    with pytest.raises(InvalidArgumentError, match=r"non-empty float \[num_labels, dim\]"):
        load_label_embeddings(tmp_path / "flat.npy")
    with pytest.raises(FileNotFoundError, match="no label embeddings"):
        load_label_embeddings(tmp_path / "missing.pt")
    with pytest.raises(InvalidArgumentError, match="must be a .npy"):
        load_label_embeddings(tmp_path / "e.txt")
