"""Build (and cache) benchmark shoots for bench/speed.py.

A "camera" shoot: 6000x4000 (24 MP) JPEGs, quality 92, made from the pristine photos in
../shared/data/pristine (upscaled, plus fine detail and grain so that they compress like
camera files, 8-12 MB each), with real EXIF: Make/Model, DateTimeOriginal, exposure bias
and a 160x120 JPEG thumbnail in IFD1, as a camera writes it.

A "small" shoot: the same, at 640x427 (for the 1,000-photo grid and the 10,000-photo
folder; thumbnails and EXIF the same).

Files are cached under bench/out/ and only missing ones are made (both cores).
"""
from __future__ import annotations

import io
import os
import struct
from datetime import datetime, timedelta
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
PRISTINE = ROOT.parent / "shared" / "data" / "pristine"
OUT = ROOT / "bench" / "out"
SRC_EXT = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}


def sources() -> list[Path]:
    return sorted(p for p in PRISTINE.rglob("*") if p.suffix.lower() in SRC_EXT)


# --- EXIF with an IFD1 thumbnail ------------------------------------------------------

def _tiff(ifd0: list, exif_ifd: list, ifd1: list, thumb: bytes) -> bytes:
    """Little-endian TIFF: IFD0 (+ pointer to the Exif IFD) -> IFD1 (+ JPEG thumbnail).

    Entries are (tag, type, count, payload bytes); payloads > 4 bytes go after the IFD."""
    def ifd_size(entries):
        return 2 + 12 * len(entries) + 4 + sum(len(p) + (len(p) & 1) for *_, p in entries if len(p) > 4)

    ifd0 = ifd0 + [(0x8769, 4, 1, b"\0" * 4)]  # Exif IFD pointer, patched below
    off0 = 8
    off_exif = off0 + ifd_size(ifd0)
    off1 = off_exif + ifd_size(exif_ifd)
    ifd1 = ifd1 + [(0x0201, 4, 1, b"\0" * 4), (0x0202, 4, 1, struct.pack("<I", len(thumb)))]
    off_thumb = off1 + ifd_size(ifd1)
    ifd0[-1] = (0x8769, 4, 1, struct.pack("<I", off_exif))
    ifd1[-2] = (0x0201, 4, 1, struct.pack("<I", off_thumb))

    def build(entries, start, next_off):
        entries = sorted(entries)
        data_off = start + 2 + 12 * len(entries) + 4
        head, tail = struct.pack("<H", len(entries)), b""
        for tag, typ, count, payload in entries:
            if len(payload) <= 4:
                head += struct.pack("<HHI", tag, typ, count) + payload.ljust(4, b"\0")
            else:
                head += struct.pack("<HHII", tag, typ, count, data_off + len(tail))
                tail += payload + b"\0" * (len(payload) & 1)
        return head + struct.pack("<I", next_off) + tail

    body = build(ifd0, off0, off1) + build(exif_ifd, off_exif, 0) + build(ifd1, off1, 0)
    return b"Exif\0\0" + b"II*\0" + struct.pack("<I", off0) + body + thumb


def _ascii(tag, s: str):
    b = s.encode() + b"\0"
    return (tag, 2, len(b), b)


def camera_exif(i: int, thumb_jpeg: bytes) -> bytes:
    t = datetime(2024, 5, 7, 10, 0, 0) + timedelta(seconds=i * 0.5)
    stamp = t.strftime("%Y:%m:%d %H:%M:%S")
    ifd0 = [_ascii(0x010F, "Canon"), _ascii(0x0110, "Canon EOS 90D"), (0x0112, 3, 1, struct.pack("<H", 1)),
            _ascii(0x0132, stamp)]
    bias = [0, -1, 1][i % 3]
    exif_ifd = [_ascii(0x9003, stamp), (0x9204, 10, 1, struct.pack("<ii", bias, 3)),
                _ascii(0x9291, f"{(i % 2) * 50:02d}")]
    ifd1 = [(0x0103, 3, 1, struct.pack("<H", 6))]
    return _tiff(ifd0, exif_ifd, ifd1, thumb_jpeg)


# --- pictures -------------------------------------------------------------------------

_GRAIN: np.ndarray | None = None


def _grain(h: int, w: int) -> np.ndarray:
    """A per-process field of fine grain (int16), bigger than the frame: windows of it
    at random offsets give every photo its own grain without drawing 72 M numbers."""
    global _GRAIN
    if _GRAIN is None or _GRAIN.shape[0] < h + 64 or _GRAIN.shape[1] < w + 64:
        rng = np.random.default_rng(os.getpid())
        lum = rng.normal(0, 7.0, (h + 64, w + 64)).astype(np.float32)
        chroma = rng.normal(0, 3.0, (h + 64, w + 64, 3)).astype(np.float32)
        _GRAIN = np.clip(lum[..., None] + chroma, -40, 40).astype(np.int16)
    return _GRAIN


def make_photo(args) -> tuple[str, int]:
    src, dest, i, size, quality = args
    w, h = size
    with Image.open(src) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
    if im.height > im.width:
        im = im.rotate(90, expand=True)
    im = ImageOps.fit(im, (w, h), Image.Resampling.BICUBIC)
    g = _grain(h, w)
    rng = np.random.default_rng(i)
    y, x = rng.integers(0, 64, 2)
    arr = np.asarray(im, dtype=np.int16) + g[y:y + h, x:x + w]
    im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    th = ImageOps.pad(im.reduce(max(1, w // 640)), (160, 120), Image.Resampling.BILINEAR, color=(0, 0, 0))
    buf = io.BytesIO()
    th.save(buf, "JPEG", quality=85)
    tmp = dest.with_name(dest.name + ".tmp")
    im.save(tmp, "JPEG", quality=quality, exif=camera_exif(i, buf.getvalue()))
    os.replace(tmp, dest)
    return str(dest), dest.stat().st_size


def _with_new_exif(jpeg: bytes, exif: bytes) -> bytes:
    """The same JPEG (byte-identical scan data) with its APP1 Exif segment replaced."""
    assert jpeg[:2] == b"\xff\xd8"
    pos, out = 2, [b"\xff\xd8"]
    while True:
        marker, length = jpeg[pos + 1], struct.unpack(">H", jpeg[pos + 2:pos + 4])[0]
        seg = jpeg[pos:pos + 2 + length]
        if marker == 0xE1 and seg[4:10] == b"Exif\0\0":
            out.append(b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif)
            out.append(jpeg[pos + 2 + length:])
            return b"".join(out)
        out.append(seg)
        pos += 2 + length
        if marker == 0xDA:
            raise ValueError("no Exif segment")


def make_variant(args) -> tuple[str, int]:
    """Photo ``i`` from base photo ``base``: its own EXIF (time, bias, thumbnail), the base's
    pixels.  Decoding costs exactly what the base costs; making it costs a file copy."""
    base, dest, i = args
    data = base.read_bytes()
    with Image.open(base) as im:
        th = im.getexif().get_ifd(0x8769)  # noqa: F841 - (parsed only to check it is there)
        app1 = next(d for m, d in im.applist if m == "APP1" and d[:6] == b"Exif\0\0")
    thumb = app1[app1.index(b"\xff\xd8\xff"):]  # the IFD1 thumbnail is the last thing in APP1
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(_with_new_exif(data, camera_exif(i, thumb)))
    os.replace(tmp, dest)
    return str(dest), dest.stat().st_size


def build_shoot(name: str, n: int, size: tuple[int, int], quality: int = 92, procs: int = 2,
                unique: int | None = None, log=print) -> list[Path]:
    """``n`` photos in bench/out/<name>/ (made if missing); returns their paths.

    With ``unique`` = U, photos 0..U-1 are rendered and photo i >= U reuses the pixels of
    photo i % U with its own EXIF (rendering 500 24 MP photos takes ~25 CPU-minutes)."""
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    srcs = sources()
    if not srcs:
        raise SystemExit(f"no pristine photos under {PRISTINE}")
    paths = [folder / f"IMG_{i:05d}.JPG" for i in range(n)]
    u = min(n, unique or n)
    todo = [(srcs[(i * 7) % len(srcs)], p, i, size, quality) for i, p in enumerate(paths[:u]) if not p.exists()]
    if todo:
        log(f"building {len(todo)} of {n} photos ({size[0]}x{size[1]}) in {folder} ...")
        with Pool(procs) as pool:
            for k, _ in enumerate(pool.imap_unordered(make_photo, todo, chunksize=4 if size[0] < 2000 else 1), 1):
                if k % max(1, len(todo) // 10) == 0:
                    log(f"  {k}/{len(todo)}")
    variants = [(paths[i % u], p, i) for i, p in enumerate(paths) if i >= u and not p.exists()]
    if variants:
        log(f"writing {len(variants)} EXIF variants in {folder} ...")
        with Pool(procs) as pool:
            for _ in pool.imap_unordered(make_variant, variants, chunksize=8):
                pass
    return paths
