"""Shared by the reliability tests and bench/reliability.py: hostile inputs and a fast model.

Not a test module (no ``test_`` prefix); import it as ``from reliability_helpers import ...``.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import SHARED_DATA, make_photo

EXIF_SAMPLES = SHARED_DATA / "camera" / "exif_samples"
ORIENTATION = EXIF_SAMPLES / "jpg" / "orientation"

OK, ERROR = "ok", "error"


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png(width: int, height: int, bit_depth: int, colour: int, raw_rows: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(raw_rows))
            + _png_chunk(b"IEND", b""))


def build_hostile_folder(d: Path) -> dict[str, str]:
    """Write every generated hostile case into ``d``; returns {file name: OK or ERROR}.

    File names are str; the one name that is not valid UTF-8 comes back with its
    surrogate escape (as ``os.listdir`` gives it)."""
    d.mkdir(parents=True, exist_ok=True)
    exp: dict[str, str] = {}

    def put(name: str, data: bytes, outcome: str) -> None:
        (d / name).write_bytes(data)
        exp[name] = outcome

    good = make_photo(d / "good.jpg", seed=1, size=(320, 240))
    exp["good.jpg"] = OK
    jpeg = good.read_bytes()
    rgb = Image.open(good).convert("RGB")

    put("zero-bytes.jpg", b"", ERROR)
    put("truncated.jpg", jpeg[: len(jpeg) // 2], ERROR)
    buf = io.BytesIO()
    rgb.save(buf, format="PNG")
    put("truncated.png", buf.getvalue()[: len(buf.getvalue()) // 2], ERROR)
    import pillow_heif

    pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    rgb.save(buf, format="HEIF", quality=60)
    put("whole.heic", buf.getvalue(), OK)
    put("truncated.heic", buf.getvalue()[: len(buf.getvalue()) // 2], ERROR)
    put("random-bytes.jpg", np.random.default_rng(7).bytes(6000), ERROR)
    put("error-page.jpg", b"<!DOCTYPE html>\n<html><head><title>404</title></head><body>Not Found</body></html>\n", ERROR)
    # decompression bombs: headers that claim 50000 x 50000 pixels
    put("bomb.png", _png(50000, 50000, 8, 2, b"\0" * 1000), ERROR)
    j = bytearray(jpeg)
    sof = j.find(b"\xff\xc0")
    j[sof + 5: sof + 9] = struct.pack(">HH", 50000, 50000)
    put("bomb.jpg", bytes(j), ERROR)
    # colour models and bit depths
    rgb.convert("CMYK").save(d / "cmyk.jpg", quality=90)
    exp["cmyk.jpg"] = OK
    a16 = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    Image.fromarray(a16).save(d / "grey16.png")
    Image.fromarray(a16).save(d / "grey16.tif")
    rows16 = b"".join(b"\0" + np.stack([a16[y]] * 3, -1).astype(">u2").tobytes() for y in range(48))
    put("rgb16.png", _png(64, 48, 16, 2, rows16), OK)
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.save(d / "palette-transparent.png", transparency=0)
    pal.save(d / "palette-transparent.gif", transparency=0)
    rgb.convert("L").save(d / "grey.jpg")
    rgb.convert("LA").save(d / "grey-alpha.png")
    rgb.convert("RGBA").save(d / "rgba.webp")
    frames = [Image.new("RGB", (64, 48), c) for c in ("red", "green", "blue")]
    frames[0].save(d / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    frames[0].save(d / "animated.webp", save_all=True, append_images=frames[1:], duration=100, loop=0)
    for n in ("grey16.png", "grey16.tif", "palette-transparent.png", "palette-transparent.gif", "grey.jpg",
              "grey-alpha.png", "rgba.webp", "animated.gif", "animated.webp"):
        exp[n] = OK
    # broken EXIF: an APP1 "Exif" block whose IFD is garbage
    app1 = b"Exif\0\0MM\0\x2a\0\0\0\x08\xff\xff" + np.random.default_rng(3).bytes(60)
    put("broken-exif.jpg", jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:], OK)
    for o in range(1, 9):
        ex = Image.Exif()
        ex[0x0112] = o
        rgb.save(d / f"orientation-{o}.jpg", exif=ex.tobytes(), quality=90)
        exp[f"orientation-{o}.jpg"] = OK
    # names
    for name in ("ünïcödé 😀 写真.jpg", "L" * 251 + ".jpg", "é" * 125 + ".jpg"):
        assert len(name.encode()) <= 255
        make_photo(d / name, seed=len(name), size=(64, 48))
        exp[name] = OK
    raw_name = os.fsdecode(b"caf\xe9-latin1.jpg")  # not UTF-8: what an old camera card may hold
    (d / raw_name).write_bytes(jpeg)
    exp[raw_name] = OK
    # links
    os.symlink("loop-b.jpg", d / "loop-a.jpg")
    os.symlink("loop-a.jpg", d / "loop-b.jpg")
    os.symlink("nowhere.jpg", d / "dangling.jpg")
    exp.update({"loop-a.jpg": ERROR, "loop-b.jpg": ERROR, "dangling.jpg": ERROR})
    # unreadable: root reads it anyway (the PermissionError path is tested with monkeypatch)
    make_photo(d / "unreadable.jpg", seed=5, size=(64, 48))
    os.chmod(d / "unreadable.jpg", 0)
    exp["unreadable.jpg"] = OK if os.geteuid() == 0 else ERROR
    (d / "folder.jpg").mkdir()  # a directory with a photo's name: not listed
    return exp


def corpus_files() -> list[Path]:
    """Every file of the shared EXIF sample corpus (READMEs included: they must be refused cleanly)."""
    if not EXIF_SAMPLES.is_dir():
        return []
    return sorted(p for p in EXIF_SAMPLES.rglob("*") if p.is_file())


def similarity(a: Image.Image, b: Image.Image, side: int = 32) -> float:
    """Pearson correlation of two images' grey, downscaled pixels (1.0: same picture),
    -1.0 when their orientations (landscape / portrait) differ."""
    if (a.width > a.height) != (b.width > b.height):
        return -1.0
    size = (side, side * 3 // 4) if a.width >= a.height else (side * 3 // 4, side)
    x = np.asarray(a.convert("L").resize(size, Image.Resampling.BILINEAR), dtype=float).ravel()
    y = np.asarray(b.convert("L").resize(size, Image.Resampling.BILINEAR), dtype=float).ravel()
    return float(np.corrcoef(x, y)[0, 1])


def fast_model(input_size: int = 64):
    """A LoadedModel with the NIMA interface (``forward_all -> probs, severities, features``)
    and a tiny conv net: for tests about files, not about scores."""
    import torch
    from torch import nn

    from photocull.model.nima import LoadedModel
    from photocull.model.spec import ModelConfig

    class FastNet(nn.Module):
        def __init__(self, cfg: ModelConfig):
            super().__init__()
            self.cfg = cfg
            self.conv = nn.Conv2d(3, 16, 5, stride=4, padding=2)
            self.score = nn.Linear(16, 10)
            self.severity = nn.Linear(16, len(cfg.families))

        def forward_all(self, x):
            f = torch.relu(self.conv(x)).mean(dim=(2, 3))
            return torch.softmax(self.score(f), dim=1), torch.sigmoid(self.severity(f)), f

        def forward(self, x):
            return self.forward_all(x)[0]

    torch.manual_seed(0)
    net = FastNet(ModelConfig(input_size=input_size)).eval()
    return LoadedModel(net, f"fast-test-{input_size}", "fast test", trained=False, meta={"kind": "test"})
