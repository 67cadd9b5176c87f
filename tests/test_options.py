"""Options declared once in Rust: signatures, docs, checks and attributes all follow from it."""

import inspect

import pytest
import torch

import q2l
from q2l._options import Options
from q2l.errors import InvalidArgumentError, InvalidTypeError

_OPS = {
    "asymmetric_loss": (q2l.asymmetric_loss, q2l.AsymmetricLoss),
    "asymmetric_loss_single_label": (q2l.asymmetric_loss_single_label, q2l.AsymmetricLossSingleLabel),
    "partial_asymmetric_loss": (q2l.loss.partial_asymmetric_loss, q2l.loss.PartialAsymmetricLoss),
    "average_precision": (
        q2l.metrics.average_precision,
        q2l.metrics.mean_average_precision,
        q2l.metrics.MultilabelMetrics,
    ),
}


@pytest.mark.parametrize("op", sorted(_OPS))
def test_signatures_and_docs_list_every_option_with_its_default(op):
    options = Options(op)
    assert options.names, op
    for fn in _OPS[op]:
        params = inspect.signature(fn).parameters
        doc = inspect.getdoc(fn) or ""
        assert "{options}" not in doc
        for field in options.fields:
            assert params[field.name].default == field.default, (fn, field.name)
            assert f"{field.name}: " in doc, (fn, field.name)


@pytest.mark.parametrize("op", sorted(_OPS))
def test_defaults_resolve_to_themselves(op):
    options = Options(op)
    assert options.resolve({}) == options.defaults


def test_every_check_is_the_rust_one():
    options = Options("asymmetric_loss")
    with pytest.raises(InvalidTypeError, match="gamma_neg must be a number, got the bool True"):
        options.resolve({"gamma_neg": True})
    with pytest.raises(InvalidArgumentError, match="gamma_neg must be a finite number"):
        options.resolve({"gamma_neg": float("nan")})
    with pytest.raises(InvalidArgumentError, match=r"clip must be in \[0, 1\)"):
        options.resolve({"clip": 1.5})
    with pytest.raises(
        InvalidArgumentError, match="unknown option 'gama_neg' of AslOptions; expected one of gamma_neg"
    ):
        options.resolve({"gama_neg": 2})
    with pytest.raises(
        InvalidArgumentError, match="reduction must be one of 'none', 'sum', 'mean', 'batchmean', got 'avg'"
    ):
        options.resolve({"reduction": "avg"})
    with pytest.raises(InvalidTypeError, match="validate must be a bool, got the int 1"):
        options.resolve({"validate": 1})
    # NumPy and torch scalars are numbers.
    assert options.resolve({"gamma_neg": torch.tensor(2.0)})["gamma_neg"] == 2.0


def test_the_functional_form_checks_like_the_module():
    x, y = torch.randn(2, 3), torch.ones(2, 3)
    for call in (lambda: q2l.asymmetric_loss(x, y, gamma_pos=-1), lambda: q2l.AsymmetricLoss(gamma_pos=-1)):
        with pytest.raises(InvalidArgumentError, match="gamma_pos must be >= 0, got -1"):
            call()


def test_options_are_attributes_checked_when_set():
    criterion = q2l.AsymmetricLoss(2, 0)
    assert (criterion.gamma_neg, criterion.gamma_pos) == (2.0, 0.0)
    criterion.gamma_neg = 3
    assert criterion.options["gamma_neg"] == 3.0
    with pytest.raises(InvalidArgumentError, match="eps must be in"):
        criterion.eps = 2.0
    assert criterion.eps == 1e-8
    assert "gamma_neg=3.0" in repr(criterion)


def test_positional_options_follow_the_official_order():
    assert q2l.AsymmetricLoss(1, 2, None, 1e-3, True).options == {
        **q2l.loss.asymmetric.DEFAULTS,
        "gamma_neg": 1.0,
        "gamma_pos": 2.0,
        "clip": 0.0,
        "eps": 1e-3,
        "disable_torch_grad_focal_loss": True,
    }
    assert q2l.AsymmetricLossSingleLabel(1, 2, 0.2, "sum").options["reduction"] == "sum"
    with pytest.raises(TypeError, match="both as a positional and as a keyword"):
        q2l.AsymmetricLoss(1, gamma_neg=2)


@pytest.mark.parametrize(
    "fn, op",
    [
        (q2l.data.Loader, "loader"),
        (q2l.data.decode_image, "decode"),
        (q2l.heads.Query2LabelHead, "query2label_head"),
        (q2l.heads.MLDecoderHead, "ml_decoder_head"),
    ],
)
def test_public_defaults_are_the_declared_ones(fn, op):
    params = inspect.signature(fn).parameters
    shared = [name for name in Options(op).names if name in params]
    assert shared
    for name in shared:
        # A Python default of None stands for one that depends on the machine or on
        # torch.distributed (the loader's threads, rank and world size).
        assert params[name].default in (Options(op).defaults[name], None), name


def test_seeds_take_the_full_64_bit_range():
    loader = q2l.data.Loader(q2l.data.Dataset.scenes(n=4, size=16), q2l.data.eval_transform(16), seed=2**64 - 1)
    assert loader.seed == 2**64 - 1
    with pytest.raises(InvalidArgumentError, match="seed is out of range"):
        q2l.data.Loader(q2l.data.Dataset.scenes(n=4, size=16), q2l.data.eval_transform(16), seed=2**64)
    with pytest.raises(InvalidArgumentError, match="seed must be >= 0, got -1"):
        q2l.data.Loader(q2l.data.Dataset.scenes(n=4, size=16), q2l.data.eval_transform(16), seed=-1)


def test_loader_options_are_read_only():
    # The native loader holds them: an assignment that changed nothing would be a trap.
    loader = q2l.data.Loader(q2l.data.Dataset.scenes(n=4, size=16), q2l.data.eval_transform(16), batch_size=3)
    assert (loader.batch_size, loader.options["batch_size"], len(loader)) == (3, 3, 2)
    with pytest.raises(AttributeError):
        loader.batch_size = 4
    with pytest.raises(TypeError):
        loader.options["batch_size"] = 4  # type: ignore[index]
    assert set(loader.options) == set(Options("loader").names)
