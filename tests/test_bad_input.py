"""Bad input by kind: numbers of the wrong type or sign, damaged and non-regular files, meta
tensors, and the CLI's one-line errors. Each case checks the exception type and that the
message names the argument or the file."""

import json
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import q2l
from q2l import data
from q2l.data import transforms as T
from q2l.metrics import MultilabelMetrics


def _scenes(n=8):
    return data.Dataset.scenes(n=n, size=32)


# Numbers ------------------------------------------------------------------------------------

NUMBER_CASES = [
    (lambda v: data.Loader(_scenes(), data.eval_transform(32), batch_size=v), "batch_size", [0, -1, 2.5, True]),
    (lambda v: data.Loader(_scenes(), data.eval_transform(32), num_threads=v), "num_threads", [0, -1, 1.5]),
    (lambda v: data.Loader(_scenes(), data.eval_transform(32), prefetch=v), "prefetch", [0, -3]),
    (lambda v: data.Loader(_scenes(), data.eval_transform(32), seed=v), "seed", [-1, 0.5, 2**64]),
    (lambda v: data.Loader(_scenes(), data.eval_transform(32), rank=v, world_size=2), "rank", [-1, 2]),
    (lambda v: data.Loader(_scenes(), data.eval_transform(32)).set_epoch(v), "epoch", [-1, 1.5]),
    (lambda v: T.Resize(v), "Resize.size", [-5, 0, 2.5]),
    (lambda v: T.Resize((8, v)), "Resize.size[1]", [-5, 0]),
    (lambda v: T.CenterCrop(v), "CenterCrop.size", [-1]),
    (lambda v: T.RandomResizedCrop(v), "RandomResizedCrop.size", [-1]),
    (lambda v: T.MultiScaleCrop(8, max_distort=v), "MultiScaleCrop.max_distort", [-1]),
    (lambda v: T.Cutout(holes=v), "Cutout.holes", [-1, 0, 1.5]),
    (lambda v: T.Cutout(fill=(v, 0, 0)), "Cutout.fill[0]", [300, -1]),
    (lambda v: T.RandAugment(num_ops=v), "RandAugment.num_ops", [-1]),
    (lambda v: T.RandAugment(magnitude=v), "RandAugment.magnitude", [-1, 2.5]),
    (lambda v: T.RandAugment(fill=(0, v, 0)), "RandAugment.fill[1]", [256]),
    (lambda v: data.Dataset.scenes(n=v), "n", [-1]),
    (lambda v: data.Dataset.scenes(size=v), "size", [-1, 8.5]),
    (lambda v: data.Dataset.scenes(seed=v), "seed", [-1]),
    (lambda v: _scenes().with_max_pixels(v), "max_pixels", [-1, 0]),
    (lambda v: _scenes()[v], "index", [1.5]),
    (lambda v: data.decode_image("x.jpg", max_pixels=v), "max_pixels", [0, -2]),
    (lambda v: MultilabelMetrics(k=v), "k", [0, -1, 1.5]),
    (lambda v: MultilabelMetrics(threshold=v), "threshold", [math.nan, math.inf]),
]


@pytest.mark.parametrize("build,name,values", NUMBER_CASES, ids=[c[1] for c in NUMBER_CASES])
def test_numbers_of_the_wrong_type_or_range_name_the_argument(build, name, values):
    for value in values:
        with pytest.raises((ValueError, TypeError)) as info:
            build(value)
        assert name in str(info.value), (value, str(info.value))
        assert not isinstance(info.value, OverflowError)


def test_index_out_of_range_reports_the_index_given():
    with pytest.raises(IndexError, match="index -9 out of range for 8 images"):
        _scenes()[-9]


def test_normalize_names_the_argument():
    with pytest.raises(ValueError, match="normalize: mean must be 3 numbers"):
        data.Compose([T.Resize(8)], normalize=((0.5, 0.5), (0.5, 0.5, 0.5)))
    with pytest.raises(ValueError, match="normalize: std must be 3 numbers"):
        data.Compose([T.Resize(8)], normalize=((0.5, 0.5, 0.5), 2))


# Files --------------------------------------------------------------------------------------


def _jpeg(path, side=64, quality=90, **kw):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(path, quality=quality, **kw)
    return path


def test_corrupt_jpeg_headers_are_refused(tmp_path):
    good = _jpeg(tmp_path / "good.jpg").read_bytes()
    sof = good.index(b"\xff\xc0")
    bad = bytearray(good)
    bad[sof + 9] = 7  # seven components: no JPEG colour space has that many
    (tmp_path / "bad.jpg").write_bytes(bytes(bad))
    with pytest.raises(data.ImageError, match="bad.jpg: corrupt JPEG"):
        data.decode_image(tmp_path / "bad.jpg")


@pytest.mark.parametrize("progressive", [False, True])
def test_mutated_jpegs_decode_or_raise_never_crash(tmp_path, progressive):
    # libjpeg-turbo is C: every damaged byte must end as pixels or an ImageError, through the
    # full decode and through a cropped, DCT-scaled window, never as a crash.
    good = _jpeg(tmp_path / "good.jpg", progressive=progressive).read_bytes()
    rng = np.random.default_rng(int(progressive))
    crop = data.transforms.Compose([data.transforms.RandomResizedCrop(16)], output="uint8")
    for i in range(150):
        bad = bytearray(good)
        for at in rng.integers(2, len(bad), size=int(rng.integers(1, 6))):
            bad[at] = int(rng.integers(256))
        path = tmp_path / f"m{i}.jpg"
        path.write_bytes(bytes(bad))
        for decode in (data.decode_image, lambda p: crop.augment(p, i)):
            try:
                decode(path)
            except data.ImageError as e:
                assert f"m{i}.jpg" in str(e)


@pytest.mark.parametrize("progressive", [False, True])
def test_truncated_jpegs_are_refused_unless_lenient(tmp_path, progressive):
    full = _jpeg(tmp_path / "full.jpg", progressive=progressive)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(OSError, match="truncated"):
        Image.open(cut).load()  # PIL refuses it too
    with pytest.raises(data.ImageError, match="cut.jpg: truncated JPEG"):
        data.decode_image(cut)
    with pytest.warns(data.RepairedImageWarning, match="cut.jpg: truncated JPEG decoded leniently"):
        image = data.decode_image(cut, strict=False)
    assert image.shape == (3, 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(data.decode_image(full), data.decode_image(full, strict=False))


def test_the_loader_counts_truncated_images(tmp_path):
    full = _jpeg(tmp_path / "a.jpg")
    (tmp_path / "b.jpg").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    (tmp_path / "list.csv").write_text("image,labels\na.jpg,x\nb.jpg,y\n")
    ds = data.Dataset.from_list(tmp_path / "list.csv")
    strict = data.Loader(ds, data.eval_transform(32), batch_size=2, on_error="skip", num_threads=1)
    with pytest.warns(UserWarning, match="skipped image 1: .*b.jpg: truncated JPEG"):
        ((images, _),) = list(strict)
    assert images.shape[0] == 1 and [i for i, _ in strict.skipped] == [1]
    lenient = data.Loader(ds.with_decoding(strict=False), data.eval_transform(32), batch_size=2, num_threads=1)
    with pytest.warns(data.RepairedImageWarning, match="image 1: .*b.jpg: truncated JPEG"):
        ((images, _),) = list(lenient)
    assert images.shape[0] == 2 and [i for i, _ in lenient.repaired] == [1] and lenient.skipped == []


def _run_with_timeout(code, timeout=20):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)


def test_non_regular_files_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)
    out = _run_with_timeout(
        f"import q2l\ntry:\n q2l.data.decode_image({str(fifo)!r})\n"
        f"except q2l.data.ImageError as e:\n print('ImageError', e)"
    )
    assert "ImageError" in out.stdout and "not a regular file" in out.stdout, out
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        data.decode_image(tmp_path)
    for name, reader in (
        ("ann.json", "coco(p, '.')"),
        ("list.csv", "from_list(p)"),
        ("labels.csv", "open_images(p, '.')"),
    ):
        os.mkfifo(tmp_path / name)
        out = _run_with_timeout(
            f"import q2l\np = {str(tmp_path / name)!r}\ntry:\n q2l.data.Dataset.{reader}\n"
            f"except ValueError as e:\n print('ValueError', e)"
        )
        assert "not a regular file" in out.stdout, (reader, out)


@pytest.mark.parametrize(
    "payload,message",
    [
        (b"", "empty file"),
        (b"GIF89a\x01\x00", "not a JPEG or PNG"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "truncated JPEG"),
    ],
)
def test_empty_garbage_and_wrong_format_files(tmp_path, payload, message):
    path = tmp_path / "bad.jpg"
    path.write_bytes(payload)
    with pytest.raises(data.ImageError, match=f"bad.jpg: {message}"):
        data.decode_image(path)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.jpg"):
        data.decode_image(tmp_path / "nowhere.jpg")
    if os.geteuid() == 0:
        pytest.skip("root reads files without permission")
    path = _jpeg(tmp_path / "locked.jpg")
    path.chmod(0)
    with pytest.raises(PermissionError, match="locked.jpg"):
        data.decode_image(path)


def test_label_present_and_unknown_is_refused(tmp_path):
    (tmp_path / "list.csv").write_text("image,labels,unknown\na.jpg,cat,cat\n")
    with pytest.raises(ValueError, match=r"list.csv:2: label \"cat\" is listed both as present and as unknown"):
        data.Dataset.from_list(tmp_path / "list.csv")


# Devices ------------------------------------------------------------------------------------


def test_meta_tensors_are_named_meta():
    scores = torch.rand(4, 3)
    with pytest.raises(ValueError, match="targets is a meta tensor"):
        q2l.asymmetric_loss(scores, torch.empty(4, 3, device="meta"))
    with pytest.raises(ValueError, match="targets is on cpu but logits is on meta"):
        q2l.asymmetric_loss(torch.empty(4, 3, device="meta"), scores)
    with pytest.raises(ValueError, match=r"targets must have shape \[4, 3\]"):
        q2l.asymmetric_loss(torch.empty(4, 3, device="meta"), torch.empty(4, 2, device="meta"))
    with pytest.raises(ValueError, match="scores are on meta but targets are on cpu"):
        q2l.metrics.mean_average_precision(torch.empty(4, 3, device="meta"), torch.ones(4, 3))
    with pytest.raises(ValueError, match="scores is a meta tensor"):
        q2l.metrics.mean_average_precision(torch.empty(4, 3, device="meta"), torch.empty(4, 3, device="meta"))


# The CLI ------------------------------------------------------------------------------------


def _cli(*args, cwd=None):
    proc = subprocess.run(
        [sys.executable, "-m", "q2l", *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd
    )
    return proc.returncode, proc.stderr.strip()


CLI_CASES = [
    (["train", "--workers", "-1"], "q2l train: error: workers must be >= 0"),
    (["train", "--epochs", "x"], "q2l train: error: argument --epochs: invalid int value: 'x'"),
    (["train", "--lr", "nan"], "q2l train: error: lr must be a finite number"),
    (["train", "--no-such-option"], "q2l: error: unrecognized arguments: --no-such-option"),
    (["evaluate", "missing.pt"], "q2l evaluate: error: no checkpoint at 'missing.pt'"),
    (["predict", "missing-folder/", "a.jpg"], "q2l predict: error: no checkpoint at 'missing-folder/'"),
]


@pytest.mark.parametrize("argv,start", CLI_CASES, ids=[" ".join(c[0]) for c in CLI_CASES])
def test_cli_failures_are_one_line(tmp_path, argv, start):
    code, err = _cli(*argv, cwd=tmp_path)
    assert code == 2, err
    assert err.startswith(start), err
    assert len(err.splitlines()) == 1, err


def test_cli_config_and_debug(tmp_path):
    (tmp_path / "typed.json").write_text(json.dumps({"epochs": "3"}))
    code, err = _cli("train", "--config", tmp_path / "typed.json")
    assert code == 2 and err == f"q2l train: error: {tmp_path / 'typed.json'}: option 'epochs' must be int, got '3'"
    (tmp_path / "list.json").write_text("[1, 2]")
    code, err = _cli("train", "--config", tmp_path / "list.json")
    assert code == 2 and "expected a JSON object of options, got list" in err
    code, err = _cli("train", "--config", tmp_path / "typed.json", "--debug")
    assert code == 1 and "Traceback" in err


# One base class -----------------------------------------------------------------------------


def _q2l_error_cases(tmp_path):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not a jpeg")
    head = q2l.Query2LabelHead(num_classes=3, in_channels=8, d_model=8, nhead=2, dim_feedforward=16)
    return [
        # (what raises it, the built-in it must also be)
        ("Rust: shape", lambda: q2l.asymmetric_loss(torch.randn(2, 3), torch.ones(2, 4)), ValueError),
        ("Rust: head weights", lambda: head(torch.randn(1, 5, 2, 2)), ValueError),
        ("Rust: missing file", lambda: data.decode_image(tmp_path / "missing.jpg"), FileNotFoundError),
        ("Rust: directory", lambda: data.decode_image(tmp_path), IsADirectoryError),
        ("Rust: image", lambda: data.decode_image(garbage), data.ImageError),
        ("Rust: option", lambda: data.Loader(_scenes(), data.eval_transform(32), on_error="ignore"), ValueError),
        (
            "Rust: metric",
            lambda: q2l.metrics.mean_average_precision(torch.rand(2, 2), torch.ones(2, 2), empty="x"),
            ValueError,
        ),
        ("Python: number", lambda: data.Loader(_scenes(), data.eval_transform(32), batch_size=-1), ValueError),
        ("Python: type", lambda: head("features"), TypeError),
        ("Python: file", lambda: q2l.Query2Label.from_pretrained(tmp_path / "none"), FileNotFoundError),
    ]


def test_every_error_is_a_q2l_error_and_its_builtin(tmp_path):
    for what, call, builtin in _q2l_error_cases(tmp_path):
        with pytest.raises(q2l.Q2LError) as info:
            call()
        assert isinstance(info.value, builtin), (what, type(info.value).__mro__)
    assert issubclass(q2l.errors.ImageError, OSError)
    assert issubclass(q2l.errors.InternalError, RuntimeError)


def test_exception_classes_are_bound_at_import(monkeypatch):
    # Rust looks the classes up once, when q2l._native is imported; raising never imports,
    # so a class replaced afterwards does not change what is raised.
    original = q2l.errors.InvalidArgumentError

    class Stand(Exception):
        pass

    monkeypatch.setattr(q2l.errors, "InvalidArgumentError", Stand)
    with pytest.raises(original):
        q2l.asymmetric_loss(torch.zeros(2, 3), torch.zeros(2, 4))


def test_negative_stride_and_strided_numpy_arrays_work_like_any_other():
    from q2l import data
    from q2l.metrics import MultilabelMetrics

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    tf = data.eval_transform(16, output="uint8")
    for view in (np.flip(image, 1), image[::2, ::-1], np.asfortranarray(image)):
        assert torch.equal(tf.augment(view, 3), tf.augment(torch.from_numpy(view.copy()), 3))
    weights = np.arange(1.0, 5.0, dtype=np.float32)[::-1]
    logits, targets = torch.randn(3, 4), (torch.rand(3, 4) < 0.5).float()
    flipped = q2l.AsymmetricLoss(class_weight=weights)(logits, targets)
    assert torch.equal(flipped, q2l.AsymmetricLoss(class_weight=torch.tensor(weights.copy()))(logits, targets))
    scores, labels = rng.random((6, 4))[::-1], (rng.random((6, 4)) < 0.5).astype(np.int64)[:, ::-1]
    labels[0] = 1
    acc = MultilabelMetrics()
    acc.update(scores, labels)
    assert acc.compute()["mAP"] == q2l.metrics.mean_average_precision(scores.copy(), labels.copy())
