"""Every head from the command line: ``q2l train --head ml-decoder [--num-groups G]
[--label-embeddings FILE]``, then ``predict`` / ``evaluate`` / ``export`` / ``--resume`` on
what it wrote; zero-shot labels at inference; the model folders of each head."""

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

import tiny_run
from q2l import MLDecoder, Query2Label, data, load_pretrained
from q2l.app import checkpoint as ckpt_io
from q2l.app import commands, resolve
from q2l.app.cli import main
from q2l.app.train import Trainer

FLAGS = tiny_run.flags({**tiny_run.TINY, "epochs": 1})
NUM_CLASSES = 10  # the generated scenes' classes
WIDTH = 16  # of the test's label embeddings


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Label embeddings for the scenes' classes and for three unseen labels, and images."""
    tmp = tmp_path_factory.mktemp("heads")
    rng = np.random.default_rng(0)
    np.save(tmp / "train.npy", rng.normal(size=(NUM_CLASSES, WIDTH)).astype(np.float32))
    unseen = torch.from_numpy(rng.normal(size=(3, WIDTH)).astype(np.float32))
    from safetensors.torch import save_file

    save_file({"embeddings": unseen}, str(tmp / "unseen.safetensors"))
    (tmp / "unseen.txt").write_text("cat\ndog\nboat\n")
    val = data.Dataset.scenes(n=2, size=32, split="val")
    images = []
    for i in range(2):
        path = tmp / f"scene{i}.png"
        Image.fromarray(val[i][0].permute(1, 2, 0).numpy()).save(path)
        images.append(str(path))
    return tmp, images


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    out = tmp_path_factory.mktemp("grouped") / "run"
    assert main(["train", *FLAGS, "--head", "ml-decoder", "--num-groups", "4", "--output", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def zero_shot(tmp_path_factory, files):
    tmp, _ = files
    out = tmp_path_factory.mktemp("zsl") / "run"
    args = ["train", *FLAGS, "--head", "ml-decoder", "--label-embeddings", str(tmp / "train.npy")]
    assert main([*args, "--output", str(out)]) == 0
    return out


def test_grouped_ml_decoder_serves_every_command(grouped, files, tmp_path, capsys):
    _, images = files
    best = ckpt_io.load(str(grouped / "best.pt"))
    assert best["config"]["head"] == "ml-decoder" and best["config"]["num_groups"] == 4
    loaded = commands.load_model(str(grouped / "best.pt"))
    assert isinstance(loaded.model, MLDecoder) and loaded.model.head.num_groups == 4
    assert loaded.model.head.num_classes == NUM_CLASSES
    from_ckpt = commands.predict(str(grouped / "best.pt"), images, threshold=0.0)
    assert len(from_ckpt[0]["scores"]) == NUM_CLASSES
    capsys.readouterr()
    assert main(["evaluate", str(grouped / "best.pt")]) == 0
    assert abs(json.loads(capsys.readouterr().out)["mAP"] - best["best"]["mAP"]) < 1e-9
    folder = tmp_path / "folder"
    assert main(["export", str(grouped / "best.pt"), "--format", "safetensors", "--output", str(folder)]) == 0
    assert json.loads((folder / "config.json").read_text())["head_type"] == "ml-decoder"
    assert commands.predict(str(folder), images, threshold=0.0) == from_ckpt
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    assert commands.export(str(folder), str(tmp_path / "m.onnx"))["max_abs_difference"] < 1e-3
    with pytest.raises(ValueError, match="visualize draws a query2label head's attention maps; .* 'ml-decoder'"):
        commands.visualize(str(grouped / "best.pt"), images, str(tmp_path / "vis"))


def test_zero_shot_predicts_labels_never_trained_on(zero_shot, files, tmp_path):
    tmp, images = files
    run = str(zero_shot / "best.pt")
    loaded = commands.load_model(run)
    assert isinstance(loaded.model, MLDecoder) and loaded.model.head.zsl
    trained = torch.from_numpy(np.load(tmp / "train.npy"))
    assert torch.equal(loaded.model.label_embeddings, trained)  # kept in the checkpoint
    unseen = dict(label_names=str(tmp / "unseen.txt"), label_embeddings=str(tmp / "unseen.safetensors"))
    results = commands.predict(run, images, threshold=0.0, **unseen)
    assert list(results[0]["scores"]) == ["cat", "dog", "boat"]
    assert {x["label"] for x in results[0]["labels"]} == {"cat", "dog", "boat"}
    # The training labels, given as files, score as the model's own labels do.
    (tmp_path / "classes.txt").write_text("\n".join(loaded.classes) + "\n")
    again = commands.predict(
        run, images, threshold=0.0, label_names=str(tmp_path / "classes.txt"), label_embeddings=str(tmp / "train.npy")
    )
    assert again == commands.predict(run, images, threshold=0.0)
    # The model folder keeps the embeddings and scores unseen labels the same way.
    folder = tmp_path / "folder"
    commands.export(run, str(folder), fmt="safetensors")
    assert commands.predict(str(folder), images, threshold=0.0, **unseen) == results
    model = load_pretrained(folder)
    assert isinstance(model, MLDecoder) and torch.equal(model.label_embeddings, trained)
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    assert commands.export(run, str(tmp_path / "z.onnx"))["max_abs_difference"] < 1e-3


def test_zero_shot_resume_continues_the_run(zero_shot, files, tmp_path):
    tmp, _ = files
    base = {**tiny_run.TINY, "head": "ml-decoder", "label_embeddings": str(tmp / "train.npy")}
    first = Trainer(resolve({**base, "epochs": 2, "output": str(tmp_path / "r")}), quiet=True)
    first.fit(stop_after=1)
    resumed = Trainer(
        resolve({**base, "epochs": 2, "output": str(tmp_path / "r"), "resume": str(tmp_path / "r" / "last.pt")}),
        quiet=True,
    )
    assert resumed.epoch == 1 and resumed.fit()["epoch"] in (1, 2)
    with pytest.raises(ValueError, match="different architecture.*head: checkpoint 'ml-decoder' vs requested"):
        Trainer(resolve({**tiny_run.TINY, "epochs": 2, "resume": str(tmp_path / "r" / "last.pt")}), quiet=True)


def test_checkpoints_of_the_old_head_name_still_load(tmp_path):
    cfg = resolve({**tiny_run.TINY, "epochs": 1, "output": str(tmp_path / "run")})
    Trainer(cfg, quiet=True).fit()
    path = tmp_path / "run" / "best.pt"
    ckpt = ckpt_io.load(str(path))
    ckpt["config"]["head"] = "q2l"
    ckpt["architecture"]["head"] = "q2l"
    ckpt_io.save(path, ckpt)
    assert isinstance(commands.load_model(str(path)).model, Query2Label)
    resumed = resolve({**tiny_run.TINY, "epochs": 1, "output": str(tmp_path / "run"), "resume": str(path)})
    assert Trainer(resumed, quiet=True).epoch == 1


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--head", "ml-decoder", "--label-embeddings", "{tmp}/unseen.safetensors"],
            "has 3 rows but the dataset has 10",
        ),
        (["--head", "linear", "--num-groups", "2"], "num_groups is for the query2label and ml-decoder heads"),
        (["--label-embeddings", "{tmp}/train.npy"], "label_embeddings make a zero-shot ML-Decoder: use --head"),
        (
            ["--head", "ml-decoder", "--label-embeddings", "{tmp}/train.npy", "--num-groups", "2"],
            "a zero-shot head .* queries with one embedding per label",
        ),
        (["--head", "ml-decoder", "--label-embeddings", "{tmp}/none.npy"], "no label embeddings at"),
        (["--head", "ml-decoder", "--label-embeddings", "{tmp}/unseen.txt"], "must be a .npy, .pt, .pth or"),
        (["--head", "mlp"], "head must be one of query2label, ml-decoder, linear"),
        (["--head", "ml-decoder", "--num-groups", "11"], "num_groups"),
    ],
)
def test_train_head_errors_name_the_option(files, tmp_path, capsys, flags, message):
    tmp, _ = files
    flags = [f.format(tmp=tmp) for f in flags]
    assert main(["train", *FLAGS, *flags, "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err


def test_predict_label_errors_name_both_files(zero_shot, grouped, files, tmp_path, capsys):
    tmp, images = files
    run = str(zero_shot / "best.pt")
    np.save(tmp_path / "wide.npy", np.zeros((3, WIDTH + 1), np.float32))
    np.save(tmp_path / "nan.npy", np.array([[0.0] * WIDTH, [np.nan] * WIDTH, [0.0] * WIDTH], np.float32))
    names = str(tmp / "unseen.txt")
    cases = [
        (run, ["--label-names", names], "--label-names and --label-embeddings go together"),
        (run, ["--label-names", names, "--label-embeddings", str(tmp / "train.npy")], "has 10 rows but --label-names"),
        (run, ["--label-names", names, "--label-embeddings", str(tmp_path / "wide.npy")], "has width 17 but the model"),
        (run, ["--label-names", names, "--label-embeddings", str(tmp_path / "nan.npy")], r"\[1, 0\] is nan"),
        (
            str(grouped / "best.pt"),
            ["--label-names", names, "--label-embeddings", str(tmp / "unseen.safetensors")],
            "needs a zero-shot model",
        ),
    ]
    for model, flags, message in cases:
        assert main(["predict", model, images[0], *flags]) == 2
        err = capsys.readouterr().err
        assert re.search(message, err), err


def test_model_folders_hold_every_head(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    for model in (
        MLDecoder("tiny", 5, d_model=32, dim_feedforward=64, nhead=4, num_groups=2),
        MLDecoder("tiny", label_embeddings=torch.randn(5, 8), d_model=32, dim_feedforward=64, nhead=4),
    ):
        model.eval().save_pretrained(tmp_path / "m", classes=list("abcde"))
        again = load_pretrained(tmp_path / "m")
        assert type(again) is MLDecoder and torch.equal(again(x), model(x))
        assert torch.equal(MLDecoder.from_pretrained(tmp_path / "m")(x), model(x))
        with pytest.raises(ValueError, match="holds a model of head_type 'ml-decoder' .*load_pretrained"):
            Query2Label.from_pretrained(tmp_path / "m")
    # A folder written before head_type existed holds a Query2Label.
    Query2Label("tiny", 5, d_model=32, dim_feedforward=64).save_pretrained(tmp_path / "q")
    config = json.loads((tmp_path / "q" / "config.json").read_text())
    del config["head_type"]
    (tmp_path / "q" / "config.json").write_text(json.dumps(config))
    assert type(load_pretrained(tmp_path / "q")) is Query2Label


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.update(head_type="mlp"), "key 'head_type' must be one of"),
        (lambda c: c["head"].update(num_layers=0), "key 'head': num_layers must be"),
        (lambda c: c["head"].update(num_groups=9), "key 'head': num_groups"),
        (lambda c: c["head"].update(temperature=1.0), "unknown key 'head.temperature'"),
        (lambda c: c["head"].pop("num_classes"), "missing key 'head.num_classes'"),
        (lambda c: c["head"].update(num_classes=2**40, zsl=True, embedding_dim=2**20), "would hold"),
    ],
)
def test_bad_ml_decoder_config_names_the_key(tmp_path, edit, message):
    MLDecoder("tiny", 5, d_model=32, dim_feedforward=64, nhead=4).save_pretrained(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    if config["head"].get("zsl"):
        config["head"].pop("num_groups", None)
    path.write_text(json.dumps(config))
    with pytest.raises((ValueError, MemoryError), match=message):
        load_pretrained(tmp_path / "m")


def test_ml_decoder_model_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    for model in (
        MLDecoder("tiny", 5, d_model=32, dim_feedforward=64, nhead=4, num_groups=2, dropout=0.0),
        MLDecoder("tiny", label_embeddings=torch.randn(5, 8), d_model=32, dim_feedforward=64, nhead=4, dropout=0.0),
    ):
        model(torch.randn(2, 3, 32, 32)).sum().backward()
        for name, p in model.named_parameters():
            if p.requires_grad:
                assert p.grad is not None and p.grad.abs().sum() > 0, name
    with pytest.raises(ValueError, match="num_classes is 4 but label_embeddings has 5 rows"):
        MLDecoder("tiny", 4, label_embeddings=torch.randn(5, 8))
    with pytest.raises(ValueError, match="zsl follows from label_embeddings"):
        MLDecoder("tiny", 4, zsl=True)
    with pytest.raises(ValueError, match="needs num_classes, or label_embeddings"):
        MLDecoder("tiny")
    fixed = MLDecoder("tiny", 4, d_model=32, dim_feedforward=64, nhead=4)
    with pytest.raises(ValueError, match="label_embeddings are for zero-shot models"):
        fixed(torch.randn(1, 3, 32, 32), torch.randn(2, 8))


def test_grouped_ml_decoder_on_the_fashion_many_label_demo(tmp_path, files, capsys):
    """The issue's command: 20 group queries need more than 20 labels; the fashion scenes'
    cell labels give 40 (a label per class and cell of the 2x2 grid)."""
    if not data.FASHION_MNIST_ROOT.exists():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    _, images = files
    run = tmp_path / "run"
    sizes = {**tiny_run.TINY, "epochs": 1, "img_size": 64}
    args = ["--dataset", "fashion", "--cell-labels", "--head", "ml-decoder", "--num-groups", "20"]
    assert main(["train", *tiny_run.flags(sizes), *args, "--output", str(run)]) == 0
    loaded = commands.load_model(str(run / "best.pt"))
    assert loaded.model.head.num_groups == 20 and len(loaded.classes) == 40
    assert loaded.classes[0].endswith("@ r0c0")
    capsys.readouterr()
    folder = tmp_path / "folder"
    assert main(["export", str(run / "best.pt"), "--format", "safetensors", "--output", str(folder)]) == 0
    assert len(commands.predict(str(folder), images[:1], threshold=0.0)[0]["scores"]) == 40
    capsys.readouterr()
    assert main(["evaluate", str(folder), "--dataset", "fashion", "--cell-labels", "--val-size", "32"]) == 0
    best = ckpt_io.load(str(run / "best.pt"))["best"]
    assert abs(json.loads(capsys.readouterr().out)["mAP"] - best["mAP"]) < 1e-9
    with pytest.raises(ValueError, match="cell_labels makes the fashion scenes' many-label set"):
        resolve({"cell_labels": True})
