"""A demo shoot built from scikit-image's bundled sample photos (no download).

Clean photos plus blurred, shaken, noisy, dark, blown-out and JPEG-crushed versions
of some of them, with EXIF capture times so that a burst shows up as a group.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

SAMPLES = ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle", "hubble_deep_field", "retina")


def _sample(name: str) -> Image.Image:
    from skimage import data  # the demo extra; bundled files, nothing is downloaded

    a = getattr(data, name)()
    if isinstance(a, tuple):  # stereo pairs: the left frame
        a = a[0]
    if a.ndim == 2:
        a = np.stack([a] * 3, -1)
    return Image.fromarray(a[..., :3].astype(np.uint8))


def _save(im: Image.Image, path: Path, when: datetime, quality: int = 92) -> None:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "photocull", "demo camera"
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = when.strftime("%Y:%m:%d %H:%M:%S")
    sub[0x9291] = f"{when.microsecond // 10000:02d}"
    im.save(path, "JPEG", quality=quality, exif=exif.tobytes())


def _motion(im: Image.Image, n: int = 15) -> Image.Image:
    """Horizontal camera shake: a box filter along rows (running sum)."""
    a = np.asarray(im, dtype=np.float32)
    c = np.cumsum(np.pad(a, ((0, 0), (n // 2 + 1, n - n // 2 - 1), (0, 0)), mode="edge"), axis=1)
    return Image.fromarray(((c[:, n:] - c[:, :-n]) / n).clip(0, 255).astype(np.uint8))


def make_demo(folder: Path, seed: int = 0) -> list[Path]:
    """Write the demo shoot into ``folder`` (created); returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = datetime(2024, 6, 1, 10, 0, 0)
    out = []

    def put(name, im, dt, **kw):
        p = folder / name
        _save(im, p, dt, **kw)
        out.append(p)

    for i, name in enumerate(SAMPLES):
        im = _sample(name)
        base_t = t + timedelta(minutes=5 * i)
        put(f"{i + 1:02d}_{name}.jpg", im, base_t)
        if i < 3:
            put(f"{i + 1:02d}_{name}_blurred.jpg", im.filter(ImageFilter.GaussianBlur(4)), base_t + timedelta(milliseconds=400))
            put(f"{i + 1:02d}_{name}_shaken.jpg", _motion(im, 17), base_t + timedelta(milliseconds=800))
            a = np.asarray(im, dtype=np.float32)
            noisy = (a + rng.normal(0, 28, a.shape)).clip(0, 255).astype(np.uint8)
            put(f"{i + 1:02d}_{name}_noisy.jpg", Image.fromarray(noisy), base_t + timedelta(milliseconds=1200))
            put(f"{i + 1:02d}_{name}_dark.jpg", Image.fromarray((a * 0.18).astype(np.uint8)), base_t + timedelta(milliseconds=1600))
            put(f"{i + 1:02d}_{name}_crushed.jpg", im, base_t + timedelta(milliseconds=2000), quality=4)
        if i == 0:
            # a burst: three frames a fraction of a second apart, slightly shifted
            for k in range(1, 4):
                shifted = im.transform(im.size, Image.Transform.AFFINE, (1, 0, 3 * k, 0, 1, 2 * k))
                put(f"{i + 1:02d}_{name}_burst{k}.jpg", shifted, base_t + timedelta(seconds=90, milliseconds=250 * k))
    return out
