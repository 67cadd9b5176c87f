"""Decoding (real photos and generated JPEG/PNG variants) and transform parity with PIL/torchvision."""

import struct
import zlib

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from q2l import _native, data
from q2l.data import transforms as T


def photo(name="china.jpg"):
    from sklearn.datasets import load_sample_image

    return load_sample_image(name)  # real photos shipped with scikit-learn (HWC uint8)


def pil_rgb(path):
    with Image.open(path) as im:
        return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)


def mean_abs(a, b):
    return (a.int() - b.int()).abs().float().mean().item()


# Decoding --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["china.jpg", "flower.jpg"])
def test_decode_real_photos_like_pil(name):
    import sklearn.datasets

    path = f"{sklearn.datasets.__path__[0]}/images/{name}"
    ours = data.decode_image(path)
    assert ours.shape == (3, 427, 640)
    # libjpeg-turbo on both sides, same IDCT and chroma upsampling: the same pixels.
    assert torch.equal(ours, pil_rgb(path))


JPEG_VARIANTS = {
    "4:4:4": dict(subsampling=0),
    "4:2:2": dict(subsampling=1),
    "4:2:0": dict(subsampling=2),
    "progressive": dict(progressive=True),
    "progressive 4:4:4": dict(progressive=True, subsampling=0),
    "restart markers": dict(restart_marker_blocks=5),
    "restart rows": dict(restart_marker_rows=1, subsampling=0),
    "quality 50": dict(quality=50),
    "gray": dict(mode="L"),
    "cmyk": dict(mode="CMYK"),
}


def write_variant(path, variant, size=(301, 203)):
    opts = dict(JPEG_VARIANTS[variant])
    im = Image.fromarray(photo()[: size[1], : size[0]]).convert(opts.pop("mode", "RGB"))
    im.save(path, **{"quality": 90, **opts})
    return path


@pytest.mark.parametrize("variant", list(JPEG_VARIANTS))
def test_decode_jpeg_variants_like_pil(tmp_path, variant):
    path = write_variant(tmp_path / "v.jpg", variant)
    ours = data.decode_image(path)
    assert ours.shape == (3, 203, 301)
    assert torch.equal(ours, pil_rgb(path))


def pil_hwc(path):
    return pil_rgb(path).permute(1, 2, 0).contiguous()


# A file goes through the loader's route (decoding only the window the first operation keeps,
# DCT-scaled when its output is at most half the window); a tensor is decoded in full first.
# Same seed, same crop: without DCT scaling the two are equal.
@pytest.mark.parametrize("variant", ["4:2:0", "4:2:2", "4:4:4", "progressive", "gray", "cmyk"])
@pytest.mark.parametrize("op", [T.RandomResizedCrop((150, 210)), T.MultiScaleCrop(160), T.Resize((150, 110))])
def test_cropped_decode_equals_a_full_decode(tmp_path, variant, op):
    path = write_variant(tmp_path / "v.jpg", variant, size=(640, 427))
    tf = data.transforms.Compose([op, T.HorizontalFlip()], output="uint8")
    full = pil_hwc(path)
    for seed in range(8):
        assert torch.equal(tf.augment(path, seed, dct_scaling=False), tf.augment(full, seed)), seed


@pytest.mark.parametrize("variant", ["4:2:0", "4:2:2", "4:4:4", "progressive", "gray", "cmyk"])
@pytest.mark.parametrize("size", [(200, 300), (100, 100), (40, 60), (150, 110)])
def test_dct_scaled_decode_equals_pils_draft_mode(tmp_path, variant, size):
    # PIL's own scaled decoding: Image.draft picks the same scale (the largest 1/d with the
    # image at least d times the output on both sides), then the resize maps the box
    # [0, W/d] x [0, H/d] of the scaled image onto the output.
    path = write_variant(tmp_path / "v.jpg", variant, size=(640, 427))
    out_h, out_w = size
    with Image.open(path) as im:
        im.draft(im.mode, (out_w, out_h))
        d = 640 // im.size[0]
        box = (0, 0, 640 / d, 427 / d)
        ref = np.array(im.convert("RGB").resize((out_w, out_h), Image.BILINEAR, box=box))
    ours = data.transforms.Compose([T.Resize(size)], output="uint8").augment(path)
    assert torch.equal(hwc(ours), torch.from_numpy(ref)), d


#: DCT-scaled decoding against a full decode followed by the same crop and resize: the largest
#: mean absolute difference (levels of 255), and the largest share of pixels more than 8 levels
#: apart, measured on the sample photo (largest when the window is just over twice the output,
#: where the resize after the scaled IDCT filters least).
SCALED_MEAN_TOLERANCE = 4.0
SCALED_FAR_SHARE = 0.2


@pytest.mark.parametrize("variant", ["4:2:0", "4:4:4", "progressive", "gray", "cmyk"])
@pytest.mark.parametrize("op", [T.Resize((200, 300)), T.Resize(100), T.RandomResizedCrop(64), T.MultiScaleCrop(160)])
def test_dct_scaled_decode_within_tolerance(tmp_path, variant, op):
    path = write_variant(tmp_path / "v.jpg", variant, size=(640, 427))
    tf = data.transforms.Compose([op], output="uint8")
    full = pil_hwc(path)
    for seed in range(6):
        ours, ref = tf.augment(path, seed).int(), tf.augment(full, seed).int()
        diff = (ours - ref).abs().float()
        assert diff.mean() < SCALED_MEAN_TOLERANCE, (seed, diff.mean())
        assert (diff > 8).float().mean() < SCALED_FAR_SHARE, (seed, (diff > 8).float().mean())


def test_loader_decodes_files_through_the_window(tmp_path):
    paths = [write_variant(tmp_path / f"{i}.jpg", v, size=(640, 427)) for i, v in enumerate(["4:2:0", "gray"])]
    (tmp_path / "list.csv").write_text("image,labels\n0.jpg,a\n1.jpg,b\n")
    ds = data.Dataset.from_list(tmp_path / "list.csv", classes=["a", "b"])
    tf = data.transforms.Compose([T.Resize(100)], output="uint8")
    ref = torch.stack([tf.augment(pil_hwc(p)) for p in paths])
    ((exact, _),) = list(data.Loader(ds.with_decoding(dct_scaling=False), tf, batch_size=2, num_threads=1))
    assert torch.equal(exact, ref)
    ((scaled, _),) = list(data.Loader(ds, tf, batch_size=2, num_threads=1))
    assert mean_abs(scaled, ref) < SCALED_MEAN_TOLERANCE and not torch.equal(scaled, ref)
    with pytest.raises(TypeError, match="dct_scaling must be a bool"):
        ds.with_decoding(dct_scaling=1)


def test_random_resized_crop_statistics_on_files(tmp_path):
    # The ramp test below, through files decoded at 1/2 and 1/4 scale: same crop statistics.
    ramp = np.tile(np.arange(200, dtype=np.uint8), (100, 1))[..., None].repeat(3, 2)
    Image.fromarray(ramp).save(tmp_path / "ramp.jpg", quality=100, subsampling=0)
    tf = data.transforms.Compose([T.RandomResizedCrop(20, scale=(0.25, 0.5), ratio=(1.0, 1.0))])
    widths = []
    for s in range(300):
        out = tf.augment(tmp_path / "ramp.jpg", s)[0].float()
        widths.append(out[:, -1].mean().item() - out[:, 0].mean().item())
    area = (np.array(widths) * 20 / 19) ** 2 / (100 * 200)
    assert area.min() > 0.22 and area.max() < 0.53
    assert 0.33 < np.mean(area) < 0.42


def png_bytes(width, height, color_type, bit_depth, raw_rows, palette=None):
    """A minimal PNG writer (for 16-bit RGB, which PIL cannot write)."""

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0))
    if palette is not None:
        out += chunk(b"PLTE", palette)
    out += chunk(b"IDAT", zlib.compress(b"".join(b"\x00" + r for r in raw_rows)))
    return out + chunk(b"IEND", b"")


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1"])
def test_decode_png_modes(tmp_path, mode):
    im = Image.fromarray(photo("flower.jpg")[100:160, 200:290])
    im = im.convert(mode) if mode != "P" else im.quantize(64)
    path = tmp_path / f"{mode}.png"
    im.save(path)
    ours = data.decode_image(path)
    assert ours.shape == (3, 60, 90)
    assert torch.equal(ours, pil_rgb(path))


def test_decode_png_16_bit_keeps_the_high_byte(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.integers(0, 65535, (5, 7, 3), dtype=np.uint16)
    path = tmp_path / "deep.png"
    path.write_bytes(png_bytes(7, 5, 2, 16, [row.astype(">u2").tobytes() for row in values]))
    ours = data.decode_image(path)
    assert torch.equal(ours, torch.from_numpy((values >> 8).astype(np.uint8)).permute(2, 0, 1))


def test_bad_images_raise_naming_the_file(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(photo()[:64, :64]).save(good, quality=90)
    blob = good.read_bytes()
    cases = {
        "truncated.jpg": blob[: len(blob) // 3],
        "garbage.jpg": b"\xff\xd8\xff" + bytes(range(256)) * 4,
        "text.png": b"hello",
        "empty.jpg": b"",
        "cut.png": png_bytes(4, 4, 2, 8, [b"\x00" * 12] * 4)[:40],
    }
    for name, payload in cases.items():
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(data.ImageError, match=name):
            data.decode_image(tmp_path / name)
    assert issubclass(data.ImageError, OSError)
    with pytest.raises(FileNotFoundError, match="nowhere.jpg"):
        data.decode_image(tmp_path / "nowhere.jpg")


def test_decompression_bomb_limit(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 200)).save(path)
    ds = data.Dataset.from_list(_list(tmp_path, ["big.png"]), classes=["x"])
    assert ds[0][0].shape == (3, 200, 300)
    with pytest.raises(data.ImageError, match="decompression bomb"):
        ds.with_max_pixels(50_000)[0]


def _list(folder, names):
    path = folder / "list.csv"
    path.write_text("image,labels\n" + "".join(f"{n},x\n" for n in names))
    return path


# Transforms: parity where deterministic --------------------------------------------------


def hwc(t):
    return t.permute(1, 2, 0).contiguous()


@settings(max_examples=25, deadline=None)
@given(
    w=st.integers(1, 70), h=st.integers(1, 70), ow=st.integers(1, 90), oh=st.integers(1, 90), seed=st.integers(0, 2**16)
)
def test_resize_matches_pil_bilinear(w, h, ow, oh, seed):
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ours = _native.resize_image(image=torch.from_numpy(img), width=ow, height=oh)
    ref = torch.from_numpy(np.asarray(Image.fromarray(img).resize((ow, oh), Image.BILINEAR))).permute(2, 0, 1)
    # Same filter and fixed-point coefficients; Pillow 13 sometimes orders the two passes
    # differently, which moves a few values by one level.
    assert (ours.int() - ref.int()).abs().max() <= 1
    assert mean_abs(ours, ref) < 0.3


@pytest.mark.parametrize("size", [(448, 448), (224, 300), (640, 960)])
def test_resize_real_photo_matches_torchvision(size):
    img = photo()
    ours = _native.resize_image(image=torch.from_numpy(img), width=size[1], height=size[0])
    ref = torch.from_numpy(np.asarray(TF.resize(Image.fromarray(img), list(size)))).permute(2, 0, 1)
    assert mean_abs(ours, ref) < 0.02


def test_eval_transform_matches_torchvision_to_tensor_normalize():
    img = photo("flower.jpg")
    tf = data.eval_transform(96)
    ds = data.Dataset.from_arrays(img[None], [[1]], ["x"])
    ((batch, _),) = list(data.Loader(ds, tf, batch_size=1))
    ref = TF.normalize(TF.to_tensor(TF.resize(Image.fromarray(img), [96, 96])), T.IMAGENET_MEAN, T.IMAGENET_STD)
    assert torch.allclose(batch[0], ref, atol=1e-5)
    raw = data.transforms.Compose([T.Resize(96)], normalize=None)
    ((batch, _),) = list(data.Loader(ds, raw, batch_size=1))
    assert torch.allclose(batch[0], TF.to_tensor(TF.resize(Image.fromarray(img), [96, 96])), atol=1e-6)
    u8 = data.transforms.Compose([T.Resize(96)], output="uint8")
    ((batch, _),) = list(data.Loader(ds, u8, batch_size=1))
    assert batch.dtype == torch.uint8
    assert torch.allclose(T.normalize_on_device(batch)[0], ref, atol=1e-5)


PIL_OPS = {
    "ShearX": lambda im, m: TF.affine(im, 0.0, [0, 0], 1.0, [np.degrees(np.arctan(m)), 0.0], center=[0, 0]),
    "ShearY": lambda im, m: TF.affine(im, 0.0, [0, 0], 1.0, [0.0, np.degrees(np.arctan(m))], center=[0, 0]),
    "TranslateX": lambda im, m: TF.affine(im, 0.0, [int(m), 0], 1.0, [0.0, 0.0]),
    "TranslateY": lambda im, m: TF.affine(im, 0.0, [0, int(m)], 1.0, [0.0, 0.0]),
    "Rotate": lambda im, m: TF.rotate(im, m),
    "Brightness": lambda im, m: TF.adjust_brightness(im, 1.0 + m),
    "Color": lambda im, m: TF.adjust_saturation(im, 1.0 + m),
    "Contrast": lambda im, m: TF.adjust_contrast(im, 1.0 + m),
    "Sharpness": lambda im, m: TF.adjust_sharpness(im, 1.0 + m),
    "Posterize": lambda im, m: TF.posterize(im, int(m)),
    "Solarize": lambda im, m: TF.solarize(im, m),
    "AutoContrast": lambda im, m: TF.autocontrast(im),
    "Equalize": lambda im, m: TF.equalize(im),
}
MAGNITUDES = {
    "ShearX": [0.09, -0.3],
    "ShearY": [0.2, -0.05],
    "TranslateX": [40.7, -13.0],
    "TranslateY": [-22.2, 7.0],
    "Rotate": [9.0, -30.0],
    "Brightness": [0.27, -0.9],
    "Color": [0.5, -0.27],
    "Contrast": [0.27, -0.6],
    "Sharpness": [0.9, -0.27],
    "Posterize": [7, 2],
    "Solarize": [178.5, 0.0],
    "AutoContrast": [0],
    "Equalize": [0],
}


@pytest.mark.parametrize("op", sorted(PIL_OPS))
def test_randaugment_operations_match_torchvision(op):
    img = photo()[50:250, 100:340]
    for m in MAGNITUDES[op]:
        ours = _native.randaugment_op(image=torch.from_numpy(img), name=op, magnitude=float(m), fill=[0, 0, 0])
        ref = torch.from_numpy(np.asarray(PIL_OPS[op](Image.fromarray(img), m))).permute(2, 0, 1)
        diff = (ours.int() - ref.int()).abs()
        # Geometric ops sample the same pixels; colour ops may differ by rounding only.
        assert diff.float().mean() < 0.05, (op, m, diff.float().mean())
        assert (diff > 1).float().mean() < 0.002, (op, m)


def test_horizontal_flip_and_center_crop_match_torchvision():
    img = photo("flower.jpg")[:100, :120]
    tf = data.transforms.Compose([T.Resize((100, 120)), T.HorizontalFlip(p=1.0), T.CenterCrop((50, 61))])
    ours = tf.augment(torch.from_numpy(img))
    ref = TF.center_crop(TF.hflip(Image.fromarray(img)), [50, 61])
    assert torch.equal(ours, torch.from_numpy(np.asarray(ref)).permute(2, 0, 1))


# Transforms: statistics of the random ones -----------------------------------------------


def test_flip_and_cutout_probabilities():
    img = torch.from_numpy(np.random.default_rng(0).integers(0, 200, (32, 32, 3), dtype=np.uint8))
    flip = data.transforms.Compose([T.Resize(32), T.HorizontalFlip(p=0.3)])
    flipped = sum(torch.equal(flip.augment(img, s), img.flip(1).permute(2, 0, 1)) for s in range(2000))
    assert 0.26 < flipped / 2000 < 0.34
    cut = data.transforms.Compose([T.Resize(32), T.Cutout(factor=0.25, fill=(255, 255, 255), p=0.6)])
    holes = [(cut.augment(img, s) == 255).all(0).sum().item() for s in range(2000)]
    applied = [h for h in holes if h > 0]
    assert 0.56 < len(applied) / 2000 < 0.64
    assert max(applied) == 64  # an 8x8 hole away from the border
    assert np.mean(applied) > 40  # clipped at the border sometimes, not usually


def test_random_resized_crop_statistics():
    # A horizontal ramp: the crop's left edge and width show up in the output's first/last columns.
    ramp = torch.arange(200).repeat(100, 1).to(torch.uint8)[..., None].expand(100, 200, 3).contiguous()
    tf = data.transforms.Compose([T.RandomResizedCrop(20, scale=(0.25, 0.5), ratio=(1.0, 1.0))])
    widths = []
    for s in range(500):
        out = tf.augment(ramp, s)[0].float()
        widths.append(out[:, -1].mean().item() - out[:, 0].mean().item())
    widths = np.array(widths) * 20 / 19  # first to last column centre
    area = widths**2 / (100 * 200)
    assert area.min() > 0.22 and area.max() < 0.53
    assert 0.33 < np.mean(area) < 0.42


def test_multi_scale_crop_positions_and_sizes():
    # A ramp along x: the first output column shows the crop's left edge.
    ramp = torch.arange(200).repeat(100, 1).to(torch.uint8)[..., None].expand(100, 200, 3).contiguous()
    fixed = data.transforms.Compose([T.MultiScaleCrop(50, scales=(1.0, 0.5), max_distort=0)])
    lefts = {int(fixed.augment(ramp, s)[0, 0, 0]) for s in range(300)}
    # Crops of 100 or 50 pixels, left edges at multiples of (200 - w) // 4 = 25 or 37; the
    # 100-pixel crops are halved, so their first column averages the ramp from the edge (+1).
    assert lefts <= {1, 26, 51, 76, 101, 0, 37, 74, 111, 148} and len(lefts) >= 8
    free = data.transforms.Compose([T.MultiScaleCrop(50, scales=(0.5,), fix_crop=False)])
    assert len({int(free.augment(ramp, s)[0, 0, 0]) for s in range(300)}) > 50
    with pytest.raises(ValueError, match="scales must be in"):
        data.transforms.Compose([T.MultiScaleCrop(50, scales=(1.5,))])


def test_randaugment_changes_images_and_is_deterministic_per_seed():
    img = torch.from_numpy(photo()[:64, :64].copy())
    tf = data.transforms.Compose([T.Resize(64), T.RandAugment(num_ops=2, magnitude=9)])
    outs = [tf.augment(img, s) for s in range(200)]
    assert torch.equal(outs[3], tf.augment(img, 3))
    unchanged = sum(torch.equal(o, img.permute(2, 0, 1)) for o in outs)
    assert unchanged < 20  # identity twice is 1/196, a few ops leave some images as they are


def test_pipeline_validation():
    with pytest.raises(ValueError, match="first transform must be Resize"):
        data.transforms.Compose([T.HorizontalFlip(), T.Resize(8)])
    with pytest.raises(ValueError, match="needs an operation that fixes the size"):
        data.transforms.Compose([])
    with pytest.raises(ValueError, match="does not fit"):
        data.transforms.Compose([T.Resize(8), T.CenterCrop(9)])
    with pytest.raises(ValueError, match="magnitude must be below"):
        data.transforms.Compose([T.Resize(8), T.RandAugment(magnitude=31)])
    with pytest.raises(ValueError, match="Cutout needs"):
        data.transforms.Compose([T.Resize(8), T.Cutout(factor=1.5)])
    with pytest.raises(ValueError, match="probability"):
        data.transforms.Compose([T.Resize(8), T.HorizontalFlip(p=2)])
    with pytest.raises(ValueError, match="scale"):
        data.transforms.Compose([T.RandomResizedCrop(8, scale=(0.5, 0.1))])
    with pytest.raises(ValueError, match="normalize"):
        data.transforms.Compose([T.Resize(8)], normalize="cifar")
    with pytest.raises(ValueError, match="std must be positive"):
        data.transforms.Compose([T.Resize(8)], normalize=((0, 0, 0), (1, 0, 1)))
    with pytest.raises(ValueError, match="not a q2l"):
        data.transforms.Compose([T.Resize(8), lambda x: x])
    assert data.train_transform(64).shape == (3, 64, 64)
