"""Photograph-like JPEGs for the loader benchmark, made on the spot (nothing is downloaded).

What makes a JPEG slow or fast to decode is how much detail the entropy coder has to carry,
so the images copy the statistics of photographs, not their content: a background whose
spectrum falls as ``1/f`` (the power law of natural images), a dozen objects with hard edges
and their own textures (stripes, checks, fine noise), soft shading, and sensor noise, saved as
COCO's files are (4:2:0, quality 85-95, about one in four progressive).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Quality range and share of progressive files.
QUALITY = (85, 95)
PROGRESSIVE = 0.25


def _pink_noise(rng: np.random.Generator, height: int, width: int, channels: int = 3) -> np.ndarray:
    """Noise whose amplitude spectrum falls as ``1 / f``, scaled to unit standard deviation."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    amplitude = 1.0 / f
    amplitude[0, 0] = 0.0
    out = np.empty((height, width, channels), np.float32)
    # The channels share most of their structure, as the colour channels of a photo do.
    shared = rng.standard_normal((height, width // 2 + 1)) + 1j * rng.standard_normal((height, width // 2 + 1))
    for c in range(channels):
        own = rng.standard_normal(shared.shape) + 1j * rng.standard_normal(shared.shape)
        field = np.fft.irfft2((0.8 * shared + 0.6 * own) * amplitude, s=(height, width))
        out[..., c] = field / (field.std() + 1e-9)
    return out


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """One object's texture in [-1, 1]: stripes, checks or fine noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    kind = rng.integers(3)
    if kind == 0:
        angle, period = rng.uniform(0, np.pi), rng.uniform(3, 24)
        t = np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period)
    elif kind == 1:
        period = rng.uniform(4, 32)
        t = np.sign(np.sin(np.pi * x / period) * np.sin(np.pi * y / period))
    else:
        t = np.clip(rng.standard_normal((height, width)) / 2, -1, 1)
    return t[..., None]


def photo(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """One ``height x width x 3`` uint8 image with a photograph's statistics."""
    from PIL import Image, ImageDraw

    base = rng.uniform(60, 190, 3).astype(np.float32)
    img = base + 38 * _pink_noise(rng, height, width)
    # Soft light falling across the scene.
    gy, gx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    img += (25 * ((gx / width - 0.5) * np.cos(angle) + (gy / height - 0.5) * np.sin(angle)))[..., None]
    for _ in range(int(rng.integers(6, 16))):
        w, h = (int(rng.uniform(0.08, 0.45) * s) for s in (width, height))
        x0, y0 = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        mask = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(mask)
        if rng.random() < 0.5:
            draw.ellipse((0, 0, w - 1, h - 1), fill=255)
        else:
            points = [(float(rng.uniform(0, w)), float(rng.uniform(0, h))) for _ in range(int(rng.integers(3, 7)))]
            draw.polygon(points, fill=255)
        m = (np.asarray(mask, np.float32) / 255)[..., None]
        colour = rng.uniform(0, 255, 3).astype(np.float32)
        shade = 1 + 0.25 * (gy[:h, :w] / h - 0.5)[..., None]
        obj = colour * shade + rng.uniform(10, 45) * _texture(rng, h, w)
        region = img[y0 : y0 + h, x0 : x0 + w]
        region[:] = region * (1 - m) + obj * m
    img += rng.normal(0, rng.uniform(2, 6), img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_photos(folder: Path, n: int, width: int, height: int, seed: int = 0) -> list[str]:
    """Writes ``n`` photograph-like JPEGs of ``width x height`` to ``folder``; returns their paths."""
    from PIL import Image

    rng = np.random.default_rng([seed, width, height])
    paths = []
    for i in range(n):
        p = folder / f"photo-{width}x{height}-{i:05d}.jpg"
        Image.fromarray(photo(rng, width, height)).save(
            p,
            quality=int(rng.integers(QUALITY[0], QUALITY[1] + 1)),
            subsampling=2,
            progressive=bool(rng.random() < PROGRESSIVE),
        )
        paths.append(str(p))
    return paths
