"""The q2l application end to end on tiny configurations (seconds each)."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

import tiny_run
from q2l import data
from q2l.app import PAPER, TrainConfig, commands, resolve
from q2l.app import checkpoint as ckpt_io
from q2l.app.cli import main
from q2l.app.train import Trainer, TrainingError

# One epoch, attention figures on: the in-process runs' configuration.
TINY = {**tiny_run.TINY, "epochs": 2, "attention_images": 1}
TINY_FLAGS = tiny_run.flags({**tiny_run.TINY, "epochs": 1})


def tiny(tmp_path, name="run", **kw):
    return resolve({**TINY, "output": str(tmp_path / name), **kw})


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_config_defaults_round_trip_and_errors(tmp_path):
    demo = resolve({})
    assert demo.dataset == "scenes" and demo.backbone == "tiny" and demo.img_size == 64
    coco = resolve({"dataset": "coco", "root": "/data/coco"})
    assert {k: getattr(coco, k) for k in PAPER} == PAPER
    assert coco.lr == 1e-4  # not the official script's 0.1 default
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"epochs": 3, "lr": 3e-4}))
    cfg = resolve({"lr": 5e-4}, str(path))
    assert (cfg.epochs, cfg.lr) == (3, 5e-4)
    assert TrainConfig(**json.loads(cfg.to_json())) == cfg
    (tmp_path / "bad.json").write_text('{"epoch": 3}')
    with pytest.raises(ValueError, match="unknown option 'epoch'"):
        resolve({}, str(tmp_path / "bad.json"))
    (tmp_path / "typed.json").write_text('{"epochs": "3"}')
    with pytest.raises(ValueError, match="typed.json: option 'epochs' must be int, got '3'"):
        resolve({}, str(tmp_path / "typed.json"))
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object of options, got list"):
        resolve({}, str(tmp_path / "list.json"))
    with pytest.raises(ValueError, match="unknown dataset"):
        resolve({"dataset": "imagenet"})
    with pytest.raises(ValueError, match="--root is needed"):
        resolve({"dataset": "voc"})
    with pytest.raises(ValueError, match="divisible by nhead"):
        resolve({"d_model": 30, "nhead": 4})
    with pytest.raises(FileNotFoundError):
        resolve({}, str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="loss must be"):
        resolve({"loss": "focal"})


def test_bce_ignores_unknown_labels():
    from q2l.app.train import masked_bce

    logits = torch.randn(4, 3, dtype=torch.float64)
    targets = torch.tensor([[1.0, 0, -1], [0, -1, 1], [1, 1, 1], [-1, -1, 0]], dtype=torch.float64)
    known = targets >= 0
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[known], targets[known])
    torch.testing.assert_close(masked_bce(logits, targets), expected)


def test_train_writes_every_output_and_resume_equals_an_uninterrupted_run(tmp_path):
    full = Trainer(tiny(tmp_path, "full"), quiet=True)
    full.fit()
    out = tmp_path / "full"
    for name in ("config.json", "last.pt", "best.pt", "metrics.jsonl", "curves.png", "attention/val_000.png"):
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and all(0 <= r["mAP"] <= 1 for r in rows)

    first = Trainer(tiny(tmp_path, "split"), quiet=True)
    first.fit(stop_after=1)
    second = Trainer(tiny(tmp_path, "split", resume=str(tmp_path / "split" / "last.pt")), quiet=True)
    assert second.epoch == 1
    second.fit()
    for (k, a), b in zip(weights(full.model).items(), weights(second.model).values(), strict=False):
        assert torch.equal(a, b), k
    assert [r["mAP"] for r in second.history] == [r["mAP"] for r in full.history]


def test_resume_refuses_another_architecture(tmp_path):
    Trainer(tiny(tmp_path, "a"), quiet=True).fit(stop_after=1)
    with pytest.raises(ValueError, match="different architecture.*d_model: checkpoint 32 vs requested 64"):
        Trainer(tiny(tmp_path, "b", d_model=64, resume=str(tmp_path / "a" / "last.pt")), quiet=True)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pt' is not a readable PyTorch file"):
        Trainer(tiny(tmp_path, "c", resume=str(tmp_path / "junk.pt")), quiet=True)


def test_group_decoding_trains_and_is_part_of_the_architecture(tmp_path):
    trainer = Trainer(tiny(tmp_path, "g", num_groups=3, epochs=1), quiet=True)
    trainer.fit()
    head = trainer.model.head
    assert head.num_groups == 3 and head.query_embed.weight.shape[0] == 3 and head.fc.bias.shape[0] > 3
    assert 0 <= trainer.history[-1]["mAP"] <= 1
    with pytest.raises(ValueError, match="num_groups: checkpoint 3 vs requested None"):
        Trainer(tiny(tmp_path, "h", resume=str(tmp_path / "g" / "last.pt")), quiet=True)
    with pytest.raises(ValueError, match="num_groups must be at least 1"):
        tiny(tmp_path, "i", num_groups=0)


def test_partial_label_modes_train(tmp_path):
    cfg = tiny(tmp_path, "p", partial_labels="selective", hide_annotations=0.5, epochs=1)
    trainer = Trainer(cfg, quiet=True)
    assert trainer.criterion.mode == "selective"
    # Half of the training annotations are hidden, none of the validation ones.
    train = trainer.train_set.targets
    assert (train == -1).sum().item() == round(0.5 * train.numel())
    assert (trainer.val_set.targets >= 0).all()
    trainer.fit()
    assert 0 <= trainer.history[-1]["mAP"] <= 1
    with pytest.raises(ValueError, match="partial_labels must be one of negative, ignore"):
        tiny(tmp_path, "q", partial_labels="unknown")
    with pytest.raises(ValueError, match=r"hide_annotations must be in \[0, 1\), got 1.0"):
        tiny(tmp_path, "q", hide_annotations=1.0)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(tiny(tmp_path), quiet=True)
    trainer.fit(stop_after=1)
    last = tmp_path / "run" / "last.pt"
    before = last.read_bytes()
    trainer.criterion = lambda logits, targets: logits.sum() * float("nan")
    with pytest.raises(TrainingError, match="loss became nan at epoch 2.*last.pt"):
        trainer.fit()
    assert last.read_bytes() == before
    assert ckpt_io.load(str(last))["epoch"] == 1


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trained")
    trainer = Trainer(resolve({**TINY, "output": str(tmp / "run"), "epochs": 1}), quiet=True)
    trainer.fit()
    images = []
    val = data.Dataset.scenes(n=3, size=32, split="val")
    for i in range(3):
        path = tmp / f"scene {i}.png"
        Image.fromarray(val[i][0].permute(1, 2, 0).numpy()).save(path)
        images.append(str(path))
    return tmp, trainer, images


def test_evaluate_matches_training_evaluation(trained, capsys):
    tmp, trainer, _ = trained
    assert main(["evaluate", str(tmp / "run" / "last.pt"), "--which", "model", "--output", str(tmp / "r.json")]) == 0
    report = json.loads((tmp / "r.json").read_text())
    assert report["images"] == 32 and len(report["classes"]) == 10
    assert abs(report["mAP"] - trainer.history[-1]["mAP"]) < 1e-12
    assert {"CF1", "OF1", "CP", "OR", "top3"} <= set(report)


def test_predict_formats_and_thresholds(trained, capsys):
    tmp, _trainer, images = trained
    results = commands.predict(str(tmp / "run" / "best.pt"), images, threshold=0.0)
    assert len(results) == 3 and len(results[0]["labels"]) == 10
    assert commands.predict(str(tmp / "run" / "best.pt"), images[:1], threshold=1.01)[0]["labels"] == []
    per_class = tmp / "t.json"
    per_class.write_text(json.dumps({"circle": 0.0}))
    only = commands.predict(str(tmp / "run" / "best.pt"), images[:1], threshold=1.01, thresholds_file=str(per_class))
    assert [x["label"] for x in only[0]["labels"]] == ["circle"]
    assert main(["predict", str(tmp / "run" / "best.pt"), *images, "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert main(["predict", str(tmp / "run" / "best.pt"), images[0]]) == 0
    assert "scene 0.png" in capsys.readouterr().out
    per_class.write_text(json.dumps({"unicorn": 0.1}))
    assert main(["predict", str(tmp / "run" / "best.pt"), images[0], "--thresholds", str(per_class)]) == 2
    assert "unknown classes ['unicorn']" in capsys.readouterr().err
    assert main(["predict", str(tmp / "run" / "best.pt"), str(tmp / "nope.png")]) == 2


def test_visualize_and_export(trained):
    tmp, _, images = trained
    written = commands.visualize(str(tmp / "run" / "best.pt"), images[:2], str(tmp / "vis"), labels=3)
    assert len(written) == 2 and all(os.path.getsize(p) > 1000 for p in written)
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    result = commands.export(str(tmp / "run" / "best.pt"), str(tmp / "m.onnx"))
    assert result["max_abs_difference"] < 1e-3 and (tmp / "m.onnx").stat().st_size > 10_000


def test_version_is_the_package_version(capsys):
    import q2l

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.split() == ["q2l", q2l.__version__]


def test_cli_errors_name_the_problem(tmp_path, capsys):
    assert main(["train", "--backbone", "resnet7", "--output", str(tmp_path / "x"), "--epochs", "1"]) == 2
    assert "unknown torchvision backbone 'resnet7'" in capsys.readouterr().err
    assert main(["train", "--backbone", "resnet18", "--weights", str(tmp_path / "none.pth")]) == 2
    assert "no weights file" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing.pt")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_a_killed_run_loses_nothing_written_before(tmp_path):
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "q2l",
        "train",
        "--output",
        str(out),
        *tiny_run.flags({**tiny_run.TINY, "epochs": 40}),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert len(rows) >= 2
    saved = ckpt_io.load(str(out / "last.pt"))
    assert saved["epoch"] in (len(rows) - 1, len(rows))
    resumed = Trainer(resolve({**TINY, "output": str(out), "epochs": 40, "resume": str(out / "last.pt")}), quiet=True)
    assert resumed.epoch == saved["epoch"]


def test_model_folder_serves_every_command(trained, capsys):
    tmp, _trainer, images = trained
    folder = tmp / "folder"
    assert main(["export", str(tmp / "run" / "best.pt"), "--format", "safetensors", "--output", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    from_ckpt = commands.predict(str(tmp / "run" / "best.pt"), images, threshold=0.0)
    from_folder = commands.predict(str(folder), images, threshold=0.0)
    assert from_folder == from_ckpt
    capsys.readouterr()
    assert main(["evaluate", str(folder), "--val-size", "32"]) == 0
    report = json.loads(capsys.readouterr().out)
    best = ckpt_io.load(str(tmp / "run" / "best.pt"))["best"]
    assert abs(report["mAP"] - best["mAP"]) < 1e-9
    assert len(commands.visualize(str(folder), images[:1], str(tmp / "vis2"))) == 1


class _Payload:
    """Unpickling this creates a file: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _malicious(tmp_path, name="evil.pt"):
    marker = tmp_path / "pwned"
    path = tmp_path / name
    torch.save({"format": "q2l-train-checkpoint/1", "payload": _Payload(str(marker))}, path)
    return path, marker


def test_malicious_checkpoints_are_refused_everywhere(tmp_path, trained, capsys):
    _tmp, _, images = trained
    path, marker = _malicious(tmp_path)
    calls = [
        ["evaluate", str(path)],
        ["predict", str(path), images[0]],
        ["visualize", str(path), images[0], "--output", str(tmp_path / "v")],
        ["export", str(path), "--output", str(tmp_path / "m.onnx")],
        ["export", str(path), "--format", "safetensors", "--output", str(tmp_path / "f")],
        ["train", *TINY_FLAGS, "--output", str(tmp_path / "r"), "--resume", str(path)],
    ]
    for argv in calls:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "refusing to load" in err and "evil.pt" in err, (argv, err)
        assert not marker.exists()
    from q2l.models import Query2Label, head_from_official

    with pytest.raises(ValueError, match="refusing to load"):
        head_from_official(str(path))
    with pytest.raises(ValueError, match="refusing to load"):
        Query2Label("resnet18", 3, weights=str(path))
    assert not marker.exists()


def test_checkpoints_load_with_weights_only(trained):
    tmp, _, _ = trained
    raw = torch.load(tmp / "run" / "last.pt", weights_only=True)
    assert raw["format"] == "q2l-train-checkpoint/1" and isinstance(raw["rng"]["numpy"]["keys"], torch.Tensor)


def test_damaged_checkpoints_name_the_key(tmp_path, trained, capsys):
    tmp, _, images = trained
    good = torch.load(tmp / "run" / "best.pt", weights_only=True)
    cases = {
        "nokey": ({k: v for k, v in good.items() if k != "classes"}, "missing key 'classes'"),
        "badcfg": ({**good, "config": {**good["config"], "colour": 1}}, "unknown option 'colour'"),
        "typecfg": ({**good, "config": {**good["config"], "epochs": "3"}}, "option 'epochs' must be int"),
        "shape": (
            {
                **good,
                "model": {**good["model"], "head.fc.b": torch.zeros(1, 3)},
                "ema": {**good["ema"], "head.fc.b": torch.zeros(1, 3)},
            },
            "tensor 'head.fc.b' has shape \\[1, 3\\]",
        ),
    }
    for name, (state, message) in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.save(state, path)
        assert main(["predict", str(path), images[0]]) == 2
        err = capsys.readouterr().err
        assert err.startswith("q2l predict: error: ") and f"{name}.pt" in err, err
        assert re.search(message, err), (message, err)
        assert len(err.strip().splitlines()) == 1


def test_csv_lists_train_without_root(tmp_path, capsys):
    """Relative image paths of a csv list start at the list's folder when --root is not given;
    classes absent from validation are named and left out of its mAP, never a NaN."""
    folder = tmp_path / "data"
    (folder / "img").mkdir(parents=True)
    scenes = data.Dataset.scenes(n=24, size=32, split="train")
    rows = []
    for i in range(len(scenes)):
        image, target = scenes[i]
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / "img" / f"{i}.png")
        names = [scenes.classes[k] for k in target.nonzero().flatten().tolist()]
        rows.append(f"img/{i}.png,{';'.join(names)}")
    (folder / "train.csv").write_text("image,labels\n" + "\n".join(rows[:16]) + "\n")
    (folder / "val.csv").write_text("image,labels\n" + "\n".join(rows[16:]) + "\n")
    flags = tiny_run.flags({**tiny_run.TINY, "epochs": 1, "batch_size": 8})
    flags += ["--dataset", "csv", "--train-list", str(folder / "train.csv"), "--val-list", str(folder / "val.csv")]
    assert main(["train", *flags, "--output", str(tmp_path / "run")]) == 0, capsys.readouterr().err
    # 8 validation scenes lack some classes: they are named, and mAP is over the others.
    table = data.Dataset.from_list(folder / "train.csv").classes
    absent = int(((data.Dataset.from_list(folder / "val.csv", classes=table).targets == 1).sum(0) == 0).sum())
    out = capsys.readouterr().out
    assert absent > 0 and f"the validation set has no positive of {absent} classes" in out
    best = ckpt_io.load(str(tmp_path / "run" / "best.pt"))["best"]
    assert best["epoch"] == 1 and 0 < best["mAP"] <= 1
