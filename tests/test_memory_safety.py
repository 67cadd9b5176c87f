"""Sizes that come from a file or an option: each gives a Python exception naming the size, and
the interpreter goes on working. Every case runs in a fresh interpreter whose exit status is
checked, since what these guard against (a heap overrun, an allocation that aborts, building
layers until the machine runs out of memory) kills the process rather than failing a test.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import q2l

#: The fuzz targets' seed corpus; image seeds start with 8 window bytes (fuzz/fuzz_targets/window.rs).
SEEDS = Path(__file__).resolve().parents[1] / "fuzz" / "corpus"


def run_isolated(code: str) -> str:
    """Runs ``code`` in a new interpreter, asserts that it exited normally, returns its stdout."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"exit status {proc.returncode}\n{proc.stderr[-4000:]}"
    return proc.stdout


#: Appended to each case: the interpreter still computes after the error.
ALIVE = "print('alive', float(torch.ones(3).sum()))\n"


def error_in_fresh_interpreter(statement: str, imports: str) -> str:
    """Runs ``statement`` after ``imports`` in a new interpreter; returns ``"Class message"`` of
    the q2l error it raised, after checking that the interpreter went on computing."""
    out = run_isolated(
        f"import torch, q2l\n{imports}\ntry:\n    {statement}\nexcept q2l.Q2LError as err:\n"
        f"    print(type(err).__name__, err)\nelse:\n    print('no error')\n" + ALIVE
    )
    *lines, alive = out.strip().splitlines()
    assert alive == "alive 3.0", out
    return "\n".join(lines)


def seed_image(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_bytes((SEEDS / "jpeg" / name).read_bytes()[8:])
    return str(path)


def test_resize_to_a_huge_size_is_an_error(tmp_path):
    from PIL import Image

    path = tmp_path / "small.jpg"
    Image.new("RGB", (40, 30), (10, 200, 30)).save(path)
    out = error_in_fresh_interpreter(
        f'T.Compose([T.Resize(100000)], output="uint8").augment({str(path)!r})',
        "from q2l.data import transforms as T",
    )
    assert "InvalidArgumentError" in out and "100000x100000" in out and "limit" in out, out


def test_model_folder_with_a_huge_image_size_is_an_error(tmp_path):
    from q2l.models import Query2Label

    Query2Label("tiny", 3, d_model=16, dim_feedforward=32).save_pretrained(tmp_path / "m", img_size=64)
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    config["preprocessing"]["img_size"] = 1_000_000
    config_path.write_text(json.dumps(config))
    out = error_in_fresh_interpreter(
        f"Query2Label.from_pretrained({str(tmp_path / 'm')!r})", "from q2l.models import Query2Label"
    )
    assert "preprocessing.img_size" in out and "1000000" in out and "config.json" in out, out


def test_a_npy_header_claiming_more_rows_than_the_file_holds_is_an_error(tmp_path):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, 4), }"
    (tmp_path / "e.npy").write_bytes(
        b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + bytes(16)
    )
    out = error_in_fresh_interpreter(
        f"load_label_embeddings({str(tmp_path / 'e.npy')!r})", "from q2l.heads import load_label_embeddings"
    )
    assert "e.npy" in out and "100000000000" in out and "16 bytes" in out, out


def test_a_billion_encoder_layers_is_an_error_before_anything_is_built(tmp_path):
    from q2l.models import Query2Label

    Query2Label("tiny", 3, d_model=16, dim_feedforward=32).save_pretrained(tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    config["head"]["num_encoder_layers"] = 10**9
    config_path.write_text(json.dumps(config))
    out = run_isolated(
        f"""
        import torch, q2l
        from q2l import MLDecoderHead, Query2LabelHead
        from q2l.models import Query2Label
        for build in (
            lambda: Query2LabelHead(num_encoder_layers=10**9),
            lambda: MLDecoderHead(num_classes=80, num_layers=10**9),
            lambda: Query2Label.from_pretrained({str(tmp_path / "m")!r}),
        ):
            try:
                build()
            except MemoryError as err:
                print(type(err).__name__, isinstance(err, q2l.Q2LError), err)
        """
        + ALIVE
    )
    lines = out.splitlines()
    assert len(lines) == 4, out
    assert all(line.startswith("OutOfMemoryError True") for line in lines[:3]), out
    assert "num_encoder_layers=1000000000" in lines[0] and "num_layers=1000000000" in lines[1], out
    assert "config.json" in lines[2] and "num_encoder_layers=1000000000" in lines[2], out
    assert lines[3] == "alive 3.0"


@pytest.mark.parametrize("name", ["lossless.jpg", "lossless-12bit.jpg", "lossless-16bit.jpg", "12bit.jpg"])
def test_files_turbojpeg_cannot_scale_or_crop_decode_through_any_window(tmp_path, name):
    # The report: a lossless JPEG through a Resize small enough for DCT scaling corrupted the
    # heap (TurboJPEG wrote the full-size image into a buffer sized for the scaled one).
    path = seed_image(tmp_path, name)
    out = run_isolated(
        f"""
        import torch
        from q2l import data
        from q2l.data import transforms as T
        full = data.decode_image({path!r}).permute(1, 2, 0).contiguous()
        for op in (T.Resize(4), T.Resize((3, 5)), T.RandomResizedCrop(4), T.MultiScaleCrop(4)):
            tf = T.Compose([op], output="uint8")
            for seed in range(3):
                ours, ref = tf.augment({path!r}, seed), tf.augment(full, seed)
                lossless = {"lossless" in name}
                diff = (ours.int() - ref.int()).abs().float().mean().item()
                print(op, seed, diff, torch.equal(ours, ref) if lossless else diff < 4.0)
        """
        + ALIVE
    )
    lines = out.splitlines()
    assert lines[-1] == "alive 3.0" and len(lines) == 13, out
    assert all(line.endswith("True") for line in lines[:-1]), out


def test_cmyk_without_an_adobe_segment_decodes_as_pil_decodes_it(tmp_path):
    from PIL import Image

    from q2l import data

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (24, 40, 4), dtype=np.uint8)
    Image.fromarray(pixels, "CMYK").save(tmp_path / "adobe.jpg", quality=95)
    raw = (tmp_path / "adobe.jpg").read_bytes()
    # Drop the APP14 "Adobe" segment that libjpeg writes for CMYK.
    at = raw.index(b"Adobe") - 4
    assert raw[at : at + 2] == b"\xff\xee"
    length = int.from_bytes(raw[at + 2 : at + 4], "big")
    (tmp_path / "plain.jpg").write_bytes(raw[:at] + raw[at + 2 + length :])
    assert b"Adobe" not in (tmp_path / "plain.jpg").read_bytes()
    for name in ("adobe.jpg", "plain.jpg"):
        with Image.open(tmp_path / name) as im:
            ref = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)
        assert torch.equal(data.decode_image(tmp_path / name), ref), name


def test_loader_sizes_are_bounded_before_anything_is_allocated():
    ds = q2l.data.Dataset.scenes(n=16, size=16)
    with pytest.raises(q2l.errors.InvalidArgumentError, match="prefetch must be <= 1024, got 4611686018427387904"):
        q2l.data.Loader(ds, q2l.data.eval_transform(16), prefetch=2**62)
    with pytest.raises(q2l.errors.InvalidArgumentError, match="num_threads must be <= 1024, got 100000"):
        q2l.data.Loader(ds, q2l.data.eval_transform(16), num_threads=100_000)
    # 16 float32 images of 3 x 13000 x 13000 (each under the pixel limit) are 121 GiB a batch.
    with pytest.raises(q2l.errors.OutOfMemoryError, match=r"batches of 16 images of 3x13000x13000 .* batch_size 64"):
        q2l.data.Loader(ds, q2l.data.eval_transform(13000))
