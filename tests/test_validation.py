"""Values checked where they enter (issue 30): options that would give NaN or a wrong
answer, inputs a mode ignores, files of every byte order and paths of every kind."""

import numpy as np
import pytest
import torch

import q2l
from q2l.heads import MLDecoderHead, Query2LabelHead
from q2l.heads.ml_decoder import load_label_embeddings
from q2l.loss import PartialAsymmetricLoss

SMALL = dict(num_classes=5, in_channels=8, d_model=8, nhead=2, dim_feedforward=16)


def test_a_zero_temperature_is_refused_not_nan():
    with pytest.raises(ValueError, match="temperature must be > 0, got 0"):
        Query2LabelHead(**SMALL, num_groups=4, temperature=0)


def _partial_batch():
    torch.manual_seed(0)
    x = torch.randn(6, 4)
    y = torch.randint(-1, 2, (6, 4)).float()
    return x, y


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(prior_threshold=-0.1), r"prior_threshold must be in \[0, 1\], got -0.1"),
        (dict(prior_threshold=1.5), r"prior_threshold must be in \[0, 1\], got 1.5"),
        (dict(prior_threshold=float("nan")), "prior_threshold must be a finite number"),
        (dict(gamma_unann=float("nan")), "gamma_unann must be a finite number"),
        (dict(alpha_neg=-1), "alpha_neg must be >= 0, got -1"),
        (dict(likelihood_topk=2.7), "likelihood_topk must be an integer, got the float 2.7"),
    ],
)
def test_csl_options_out_of_range_are_named(options, message):
    with pytest.raises((ValueError, TypeError), match=message):
        PartialAsymmetricLoss(mode="selective", **options)


def test_a_huge_top_k_leaves_every_unannotated_label_out_instead_of_wrapping():
    x, y = _partial_batch()
    everything = PartialAsymmetricLoss(mode="selective", likelihood_topk=1000)(x, y)
    torch.testing.assert_close(PartialAsymmetricLoss(mode="selective", likelihood_topk=2**62)(x, y), everything)
    # Leaving every unannotated label out is the ignore mode.
    torch.testing.assert_close(everything, PartialAsymmetricLoss(mode="ignore")(x, y))


@pytest.mark.parametrize(
    "mode, priors, message",
    [
        ("selective", [10.0, 50.0, 20.0, 5.0], r"found 10 at index \[0\] \(percentages\? divide by 100\)"),
        ("selective", [0.1, -0.2, 0.3, 0.4], r"found -0.2 at index \[1\]"),
        ("selective", [0.1, 0.2, float("nan"), 0.4], r"found NaN at index \[2\]"),
        ("ignore", [0.1, 0.2, 0.3, 0.4], "priors are used by mode='selective' only; this loss has mode='ignore'"),
    ],
)
def test_class_priors_are_probabilities_for_the_mode_that_reads_them(mode, priors, message):
    x, y = _partial_batch()
    with pytest.raises(ValueError, match=message):
        PartialAsymmetricLoss(mode=mode, priors=torch.tensor(priors))(x, y)


def test_zero_shot_heads_refuse_what_they_would_drop():
    for name in ("num_groups", "num_classes"):
        with pytest.raises(ValueError, match=f"{name} is for heads with fixed label queries"):
            MLDecoderHead(zsl=True, in_channels=8, d_model=8, nhead=2, **{name: 4})
    with pytest.raises(TypeError, match="zsl must be a bool"):
        MLDecoderHead(zsl="yes", in_channels=8, d_model=8, nhead=2)


def test_label_embeddings_are_cast_once_and_must_be_finite(tmp_path):
    torch.manual_seed(0)
    head = MLDecoderHead(zsl=True, in_channels=8, d_model=8, nhead=2, embedding_dim=5).eval()
    features, emb = torch.randn(2, 8, 3, 3), torch.randn(4, 5)
    # float64, numpy's default, gives the float32 answer (it used to be a libtorch error).
    torch.testing.assert_close(head(features, emb.double()), head(features, emb))
    emb[1, 2] = float("inf")
    with pytest.raises(ValueError, match=r"label_embeddings must be finite; found a NaN or infinity at index \[1, 2\]"):
        head(features, emb)
    np.save(tmp_path / "wide0.npy", np.zeros((3, 0), np.float32))
    with pytest.raises(ValueError, match="non-empty float"):
        load_label_embeddings(tmp_path / "wide0.npy")
    big_endian = np.arange(12, dtype=">f4").reshape(3, 4)
    np.save(tmp_path / "be.npy", big_endian)
    torch.testing.assert_close(load_label_embeddings(tmp_path / "be.npy"), torch.arange(12.0).view(3, 4))


def test_paths_may_be_bytes(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((6, 5, 3), 90, np.uint8)).save(tmp_path / "a.png")
    by_str = q2l.data.decode_image(str(tmp_path / "a.png"))
    assert torch.equal(q2l.data.decode_image(bytes(tmp_path / "a.png")), by_str)
    np.save(tmp_path / "e.npy", np.ones((2, 3), np.float32))
    assert load_label_embeddings(bytes(tmp_path / "e.npy")).shape == (2, 3)


def test_official_checkpoints_name_what_does_not_fit():
    from q2l.models import head_from_official, to_official_state_dict

    state = to_official_state_dict(Query2LabelHead(**SMALL))
    wrong_dtype = {**state, "module.fc.W": state["module.fc.W"].long()}
    with pytest.raises(ValueError, match="tensor 'fc.W' is torch.int64, the model expects torch.float32"):
        head_from_official(wrong_dtype, nhead=2)
    with pytest.raises(ValueError, match="'query_embed.weight' is a int, expected 2-D"):
        head_from_official({**state, "module.query_embed.weight": 3}, nhead=2)
    incomplete = {k: v for k, v in state.items() if not k.endswith("decoder.norm.weight")}
    with pytest.raises(ValueError, match="missing tensor 'decoder.norm.weight'"):
        head_from_official(incomplete, nhead=2)
    with pytest.raises(ValueError, match="must map parameter names to tensors"):
        head_from_official({"state_dict": 3})


def test_the_cli_checks_head_options_with_the_heads_validator():
    from q2l.app.config import TrainConfig, validate

    with pytest.raises(ValueError, match="num_groups is for the query2label and ml-decoder heads; head 'linear'"):
        validate(TrainConfig(head="linear", num_groups=4))
    with pytest.raises(ValueError, match="enc_layers must be >= 0, got -1"):
        validate(TrainConfig(enc_layers=-1))
    with pytest.raises(ValueError, match=r"d_model \(128\) must be even and divisible by nhead \(3\)"):
        validate(TrainConfig(nhead=3))


def test_json_files_nested_too_deeply_are_named(tmp_path):
    from q2l._files import read_json
    from q2l.app.config import resolve

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="deep.json: JSON nested too deeply"):
        read_json(deep)
    with pytest.raises(ValueError, match="deep.json: JSON nested too deeply"):
        resolve({}, config_file=str(deep))
