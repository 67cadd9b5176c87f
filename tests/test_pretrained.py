"""Model folders (config.json + model.safetensors), safe loading, timm backbones."""

import json

import pytest
import torch
from torch import nn

import tiny_run
from q2l.models import Query2Label, TinyBackbone


def _model(**kw):
    torch.manual_seed(0)
    return Query2Label("tiny", 5, d_model=32, dim_feedforward=64, **kw).eval()


def _images(n=2, side=48):
    return torch.randn(n, 3, side, side, generator=torch.Generator().manual_seed(3))


def test_round_trip_is_exact(tmp_path):
    model = _model(pre_norm=True, keep_first_self_attn=True)
    model.save_pretrained(tmp_path / "m", classes=list("abcde"), img_size=96, mean=(0.5, 0.5, 0.5))
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["backbone"] == "tiny" and config["head"]["pre_norm"] is True
    assert config["preprocessing"] == {"img_size": 96, "mean": [0.5, 0.5, 0.5], "std": [0.229, 0.224, 0.225]}
    again = Query2Label.from_pretrained(tmp_path / "m")
    assert again.classes == list("abcde") and again.preprocessing["img_size"] == 96 and not again.training
    x = _images()
    assert torch.equal(again(x), model(x))
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=False):
        assert torch.equal(a, b), k


def test_custom_backbone_needs_the_module(tmp_path):
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU())
    model = Query2Label(backbone, 4, d_model=16, dim_feedforward=32).eval()
    model.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["backbone"] is None
    with pytest.raises(ValueError, match="custom backbone module.*pass backbone="):
        Query2Label.from_pretrained(tmp_path / "m")
    torch.manual_seed(1)
    again = Query2Label.from_pretrained(tmp_path / "m", backbone=nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU()))
    x = _images()
    assert torch.equal(again(x), model(x))


def _edit_config(folder, edit):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda c: c.pop("head"), "missing key 'head'"),
        (lambda c: c.update(colour="red"), "unknown key 'colour'"),
        (lambda c: c["head"].update(widht=3), "unknown key 'head.widht'"),
        (lambda c: c.update(format="timm"), "key 'format' must be"),
        (lambda c: c.update(format_version=9), "key 'format_version' 9 is not supported"),
        (lambda c: c.update(classes=["a"]), "key 'classes' must list 5 names"),
        (lambda c: c["head"].update(d_model=48), "tensor '.*' has shape"),
        (lambda c: c["head"].update(num_decoder_layers=3), "missing tensor 'head.decoder.layers.2"),
        (lambda c: c["head"].update(num_decoder_layers=1), "unexpected tensor 'head.decoder.layers.1"),
        (lambda c: c.update(backbone="resnet7"), "unknown torchvision backbone 'resnet7'"),
        # Each value is checked by its argument's validator before a tensor is built.
        (lambda c: c["head"].update(temperature=float("nan")), "key 'head': temperature must be a finite"),
        (lambda c: c["head"].update(temperature=0), "key 'head': temperature must be > 0"),
        (lambda c: c["head"].update(pre_norm="no"), "key 'head': pre_norm must be a bool, got the str 'no'"),
        (lambda c: c["head"].update(dropout="0.1"), "key 'head': dropout must be a number, got the str '0.1'"),
        (lambda c: c["head"].update(num_classes="10"), "key 'head': num_classes must be an integer, got the str '10'"),
        (lambda c: c["head"].update(nhead=3), r"key 'head': d_model \(32\) must be even and divisible by nhead"),
        (lambda c: c.update(classes=list("abcda")), r"key 'classes'\[4\]: 'a' appears twice"),
        (
            lambda c: c.update(preprocessing={"img_size": 32, "mean": [0, 0, 0], "std": [0, 0, 0]}),
            "key 'preprocessing.mean/std': normalisation std must be positive",
        ),
        (
            lambda c: c.update(preprocessing={"img_size": 32, "mean": [0, 0, 0], "std": [1, 1e999, 1]}),
            "key 'preprocessing.mean/std': normalisation std must be positive and finite",
        ),
        (
            lambda c: c.update(preprocessing={"img_size": 0, "mean": [0, 0, 0], "std": [1, 1, 1]}),
            "key 'preprocessing.img_size': Resize.size must be >= 1",
        ),
        (
            lambda c: c.update(preprocessing={"img_size": 32, "mean": [0, 0, "0"], "std": [1, 1, 1]}),
            "key 'preprocessing.mean' must be 3 numbers",
        ),
        (
            lambda c: c.update(preprocessing={"img_size": 32, "mean": [0, float("nan"), 0], "std": [1, 1, 1]}),
            "key 'preprocessing.mean/std': .*mean finite",
        ),
    ],
)
def test_bad_config_names_the_key(tmp_path, edit, message):
    _model().save_pretrained(tmp_path / "m", classes=list("abcde"))
    _edit_config(tmp_path / "m", edit)
    with pytest.raises(ValueError, match=message):
        Query2Label.from_pretrained(tmp_path / "m")


def test_deeply_nested_json_is_a_clear_error(tmp_path):
    _model().save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        Query2Label.from_pretrained(tmp_path / "m")


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model folder"):
        Query2Label.from_pretrained(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json' is missing"):
        Query2Label.from_pretrained(tmp_path / "empty")
    _model().save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json: not valid JSON"):
        Query2Label.from_pretrained(tmp_path / "m")
    _model().save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ValueError, match="model.safetensors: not a readable safetensors file"):
        Query2Label.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors' is missing"):
        Query2Label.from_pretrained(tmp_path / "m")


def test_save_pretrained_checks_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="classes has 2 names but the model has 5"):
        _model().save_pretrained(tmp_path / "m", classes=["a", "b"])
    with pytest.raises(ValueError, match=r"classes\[3\]: 'a' appears twice"):
        _model().save_pretrained(tmp_path / "m", classes=list("abcae"))
    with pytest.raises(ValueError, match="img_size must be a positive int"):
        _model().save_pretrained(tmp_path / "m", img_size=0)
    with pytest.raises(ValueError, match="normalisation std must be positive"):
        _model().save_pretrained(tmp_path / "m", img_size=32, std=[0.2, 0, 0.2])
    assert not (tmp_path / "m").exists()  # nothing written


def test_torch_version_check_names_both_versions(monkeypatch):
    from q2l import _torch_check

    monkeypatch.setattr(_torch_check, "required_torch", lambda: "2.13.0")
    _torch_check.check_torch_version("2.13.0+cu130")
    with pytest.raises(ImportError, match="built for torch 2.13.0, but torch 2.11.0 is installed"):
        _torch_check.check_torch_version("2.11.0")


# timm backbones -----------------------------------------------------------------------------

TIMM = [
    ("resnet18", 512, False),
    ("tresnet_m", 2048, False),
    ("swin_tiny_patch4_window7_224", 768, True),
    ("convnext_atto", 320, False),
]


@pytest.mark.parametrize("name,channels,nhwc", TIMM)
def test_timm_backbones_forward_and_backward(name, channels, nhwc):
    pytest.importorskip("timm")
    torch.manual_seed(0)
    model = Query2Label(f"timm:{name}", 4, d_model=32, dim_feedforward=64)
    assert model.head.in_channels == channels and model.channels_last is nhwc
    x = torch.randn(2, 3, 224, 224)
    logits = model(x)
    assert logits.shape == (2, 4)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.head.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())


def test_timm_weights_come_from_a_local_file_only(tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(1)
    source = timm.create_model("resnet18", pretrained=False, features_only=True, out_indices=(-1,))
    torch.save(source.state_dict(), tmp_path / "r18.pth")
    model = Query2Label("timm:resnet18", 3, weights=str(tmp_path / "r18.pth"), d_model=32, dim_feedforward=64)
    for k, v in source.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], v), k
    model.eval().save_pretrained(tmp_path / "m")
    again = Query2Label.from_pretrained(tmp_path / "m")
    x = torch.randn(1, 3, 96, 96)
    assert torch.equal(again(x), model(x))
    with pytest.raises(ValueError, match="unknown timm backbone 'resnet7'"):
        Query2Label("timm:resnet7", 3)


def test_tiny_backbone_by_name():
    model = Query2Label("tiny", 3, d_model=32, dim_feedforward=64)
    assert isinstance(model.backbone, TinyBackbone) and model.head.in_channels == 128
    with pytest.raises(ValueError, match="not 'tiny'"):
        Query2Label("tiny", 3, weights="x.pth")
    with pytest.raises(TypeError, match="backbone must be an nn.Module or a backbone name"):
        Query2Label(3, 3)


def test_train_with_a_timm_backbone(tmp_path):
    pytest.importorskip("timm")
    from q2l.app import resolve
    from q2l.app.train import Trainer

    cfg = resolve(
        {
            **tiny_run.TINY,
            "train_size": 16,
            "epochs": 1,
            "batch_size": 8,
            "backbone": "timm:resnet18",
            "output": str(tmp_path / "run"),
        }
    )
    trainer = Trainer(cfg, quiet=True)
    trainer.fit()
    assert 0 < trainer.history[0]["mAP"] <= 1
