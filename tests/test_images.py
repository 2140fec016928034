"""Decoding photos: formats, EXIF orientation, readable errors, listing folders, EXIF."""
from __future__ import annotations

import io
import os
import struct
import threading
import zlib
from datetime import datetime

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from conftest import make_photo
from photocull.media.loaders import ImageError, open_image
from photocull.media.exif import read_exif
from photocull.media.exif import ExifInfo, exif_thumbnail
from photocull.media.listing import list_images


def _assert_rgb(im, size=None):
    assert isinstance(im, Image.Image)
    assert im.mode == "RGB"
    if size is not None:
        assert im.size == size


# --- formats ------------------------------------------------------------------------

@pytest.mark.parametrize("ext", [".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".JPG"])
def test_common_formats_open_as_rgb(tmp_path, ext):
    p = make_photo(tmp_path / f"a{ext}", size=(96, 64))
    im = open_image(p)
    _assert_rgb(im, (96, 64))
    ref = np.asarray(Image.open(make_photo(tmp_path / "ref.png", size=(96, 64))).convert("RGB"), dtype=float)
    assert np.abs(np.asarray(im, dtype=float) - ref).mean() < 8  # same picture (lossy formats allowed)


def test_16_bit_png_is_scaled_to_8_bits(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (16, 1))
    p = tmp_path / "deep.png"
    Image.fromarray(ramp).save(p)
    assert Image.open(p).mode.startswith("I")
    a = np.asarray(open_image(p))
    assert a.shape == (16, 64, 3) and a.dtype == np.uint8
    assert a[:, 0].max() <= 2 and a[:, -1].min() >= 250  # full range, not clipped to white
    assert (np.diff(a[0, :, 0].astype(int)) >= 0).all()


def test_palette_with_transparency_is_composited_on_white(tmp_path):
    im = Image.new("P", (20, 10), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
    im.paste(1, (10, 0, 20, 10))  # right half red, left half index 0 = transparent
    p = tmp_path / "pal.png"
    im.save(p, transparency=0)
    a = np.asarray(open_image(p))
    assert tuple(a[5, 2]) == (255, 255, 255)
    assert tuple(a[5, 15]) == (255, 0, 0)


def test_rgba_png_is_composited_on_white(tmp_path):
    a = np.zeros((10, 10, 4), np.uint8)
    a[..., 2] = 255
    a[:, 5:, 3] = 255
    p = tmp_path / "rgba.png"
    Image.fromarray(a, "RGBA").save(p)
    out = np.asarray(open_image(p))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[0, 9]) == (0, 0, 255)


def test_grayscale_jpeg_becomes_rgb(tmp_path):
    p = tmp_path / "grey.jpg"
    Image.new("L", (30, 20), 128).save(p)
    a = np.asarray(open_image(p))
    assert a.shape == (20, 30, 3)
    assert np.abs(a.astype(int) - 128).max() <= 2


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (30, 20), (0, 255, 255, 0)).save(p, quality=95)  # pure red in CMYK
    assert Image.open(p).mode == "CMYK"
    a = np.asarray(open_image(p)).astype(int)
    assert a.shape == (20, 30, 3)
    r, g, b = a[10, 15]
    assert r > 200 and g < 60 and b < 60


def test_animated_gif_gives_first_frame_rgb(tmp_path):
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(p).n_frames == 3
    a = np.asarray(open_image(p)).astype(int)
    assert a.shape == (16, 16, 3)
    assert a[8, 8, 0] > 200 and a[8, 8, 2] < 60  # red: the first frame


def test_max_side_is_respected_and_keeps_aspect(tmp_path):
    p = make_photo(tmp_path / "a.png", size=(400, 200))
    im = open_image(p, max_side=100)
    _assert_rgb(im)
    assert max(im.size) <= 100 and im.size[0] == pytest.approx(2 * im.size[1], abs=1)
    assert open_image(p, max_side=1000).size == (400, 200)  # never enlarged


def test_big_jpeg_is_decoded_reduced_with_draft(tmp_path, monkeypatch):
    # 3000x2000 JPEG built from a small smooth picture (fast to make)
    small = Image.open(make_photo(tmp_path / "s.png", size=(300, 200)))
    p = tmp_path / "big.jpg"
    small.resize((3000, 2000), Image.Resampling.BILINEAR).save(p, quality=85)
    calls = []
    real = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        res = real(self, mode, size)
        calls.append((size, self.size))
        return res

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    im = open_image(p, max_side=448)
    _assert_rgb(im)
    assert max(im.size) <= 448 and max(im.size) >= 440
    assert calls, "draft() was not used for a reduced JPEG decode"
    assert max(calls[0][1]) < 3000, "draft() did not reduce the DCT decode"


# --- EXIF orientation -----------------------------------------------------------------

def _upright() -> Image.Image:
    """120x80, four distinct quadrant colours: any flip or rotation is visible."""
    a = np.zeros((80, 120, 3), np.uint8)
    a[:40, :60] = (230, 30, 30)
    a[:40, 60:] = (30, 230, 30)
    a[40:, :60] = (30, 30, 230)
    a[40:, 60:] = (240, 240, 240)
    return Image.fromarray(a)


T = Image.Transpose
# How the camera stored the pixels for each Orientation value (EXIF 2.3, Orientation):
# the inverse of what the viewer must do to show the picture upright.
STORED = {
    1: None,
    2: T.FLIP_LEFT_RIGHT,
    3: T.ROTATE_180,
    4: T.FLIP_TOP_BOTTOM,
    5: T.TRANSPOSE,
    6: T.ROTATE_90,   # viewer rotates 90 deg clockwise
    7: T.TRANSVERSE,
    8: T.ROTATE_270,  # viewer rotates 90 deg counter-clockwise
}


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("max_side", [None, 60])
def test_every_exif_orientation_is_shown_upright(tmp_path, orientation, max_side):
    up = _upright()
    stored = up if STORED[orientation] is None else up.transpose(STORED[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / f"o{orientation}.jpg"
    stored.save(p, quality=95, exif=exif.tobytes())
    im = open_image(p, max_side=max_side)
    _assert_rgb(im)
    ref = up if max_side is None else up.resize(im.size, Image.Resampling.BILINEAR)
    assert im.size == ref.size == ((120, 80) if max_side is None else (60, 40))
    diff = np.abs(np.asarray(im, float) - np.asarray(ref, float)).mean()
    assert diff < 12, f"orientation {orientation} not upright (mean abs diff {diff:.1f})"
    # the check can fail: a mirrored picture is far away
    assert np.abs(np.asarray(im, float) - np.asarray(ref.transpose(T.FLIP_LEFT_RIGHT), float)).mean() > 50


# --- errors -------------------------------------------------------------------------

def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb_png() -> bytes:
    """A PNG header claiming 50000 x 50000 pixels (2.5 gigapixels); tiny on disk."""
    ihdr = struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))


def _truncated_jpeg(tmp_path) -> bytes:
    data = make_photo(tmp_path / "whole.jpg", size=(200, 150)).read_bytes()
    return data[: len(data) // 2]


@pytest.mark.parametrize("case,words", [
    ("empty", ["empty"]),
    ("random", ["not an image", "corrupt", "decode"]),
    ("html", ["not an image"]),
    ("truncated", ["truncated", "corrupt"]),
    ("missing", ["not found"]),
    ("directory", ["not a regular file"]),
    ("bomb", ["too large", "decompression bomb"]),
    ("unsupported", ["unsupported"]),
])
def test_unreadable_files_raise_image_error_with_reason(tmp_path, case, words):
    p = tmp_path / ("x.txt" if case == "unsupported" else "x.jpg" if case != "bomb" else "x.png")
    if case == "empty":
        p.write_bytes(b"")
    elif case == "random":
        p.write_bytes(np.random.default_rng(0).bytes(5000))
    elif case == "html":
        p.write_bytes(b"<!DOCTYPE html><html><head><title>404</title></head><body>Not found</body></html>")
    elif case == "truncated":
        p.write_bytes(_truncated_jpeg(tmp_path))
    elif case == "directory":
        p.mkdir()
    elif case == "bomb":
        p.write_bytes(_bomb_png())
        assert p.stat().st_size < 200
    elif case == "unsupported":
        p.write_text("hello")
    with pytest.raises(ImageError) as ei:
        open_image(p, max_side=448)
    msg = str(ei.value)
    assert msg and "Traceback" not in msg and len(msg) < 300
    assert any(w in msg.lower() for w in words), msg


# --- listing folders -------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path):
    d = tmp_path / "shoot"
    for name in ("b.jpg", "a.JPG", "c.png", "notes.txt", ".hidden.jpg", "z.webp"):
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    for name in ("sub/d.jpg", "sub/deeper/e.tif", ".hiddendir/f.jpg", "sub/.g.jpg"):
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    (d / "folder.jpg").mkdir()  # a directory with a photo-like name
    return d


def test_list_images_sorted_non_recursive(tree):
    got = list_images(tree)
    assert [p.name for p in got] == ["a.JPG", "b.jpg", "c.png", "z.webp"]
    assert got == sorted(got)


def test_list_images_recursive_skips_hidden(tree):
    got = [p.relative_to(tree).as_posix() for p in list_images(tree, recursive=True)]
    assert got == sorted(got)
    assert set(got) == {"a.JPG", "b.jpg", "c.png", "z.webp", "sub/d.jpg", "sub/deeper/e.tif"}


def _finishes(fn, timeout=20.0):
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("v", fn()), daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "listing did not finish (symlink loop?)"
    return out["v"]


def test_symlink_loop_does_not_hang(tree):
    os.symlink(tree, tree / "sub" / "loop")
    os.symlink(tree / "sub", tree / "sub" / "deeper" / "up.jpg")  # a link to a folder, photo-like name
    got = _finishes(lambda: list_images(tree, recursive=True))
    assert len(got) == 6
    assert len(_finishes(lambda: list_images(tree / "sub"))) == 1


def test_broken_symlink_is_listed_and_fails_later_with_reason(tree):
    os.symlink(tree / "gone.jpg", tree / "dangling.jpg")
    got = list_images(tree)
    assert tree / "dangling.jpg" in got
    with pytest.raises(ImageError, match="not found"):
        open_image(tree / "dangling.jpg")


def test_list_images_bad_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "nope")
    f = tmp_path / "file.jpg"
    f.write_bytes(b"x")
    with pytest.raises(NotADirectoryError):
        list_images(f)


def test_list_images_empty_folder(tmp_path):
    assert list_images(tmp_path) == []


# --- EXIF ---------------------------------------------------------------------------

def test_read_exif_capture_time_subseconds_and_bias(tmp_path):
    from PIL.TiffImagePlugin import IFDRational

    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "Canon EOS R6"
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2024:06:01 10:20:30"
    sub[0x9291] = "25"
    sub[0x9204] = IFDRational(-2, 3)
    p = tmp_path / "e.jpg"
    Image.new("RGB", (40, 30), (100, 100, 100)).save(p, exif=exif.tobytes())
    info = read_exif(p)
    assert info.capture_time == pytest.approx(datetime(2024, 6, 1, 10, 20, 30).timestamp() + 0.25, abs=1e-6)
    assert info.exposure_bias == pytest.approx(-2 / 3, abs=1e-6)
    assert info.camera == "Canon EOS R6"  # make not repeated
    assert (info.width, info.height) == (40, 30)


def test_read_exif_orders_burst_frames_by_subseconds(tmp_path):
    times = []
    for i, ss in enumerate(("10", "35", "90")):
        exif = Image.Exif()
        sub = exif.get_ifd(0x8769)
        sub[0x9003] = "2024:06:01 10:20:30"
        sub[0x9291] = ss
        p = tmp_path / f"b{i}.jpg"
        Image.new("RGB", (8, 8)).save(p, exif=exif.tobytes())
        times.append(read_exif(p).capture_time)
    assert times == sorted(times) and times[2] - times[0] == pytest.approx(0.8, abs=1e-6)


def test_read_exif_rotated_dimensions_and_missing_exif(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "r.jpg"
    Image.new("RGB", (40, 30)).save(p, exif=exif.tobytes())
    info = read_exif(p)
    assert (info.width, info.height) == (30, 40)
    plain = make_photo(tmp_path / "plain.png", size=(20, 10))
    none = read_exif(plain)
    assert none.capture_time is None and none.exposure_bias is None and none.camera is None
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"nope")
    assert read_exif(broken) == ExifInfo()  # never raises


def _exif_with_thumbnail(thumb_jpeg: bytes, orientation: int = 1) -> bytes:
    """A little-endian TIFF/EXIF block: IFD0 (Orientation) -> IFD1 (JPEG thumbnail)."""
    def entry(tag, typ, count, value):
        return struct.pack("<HHI", tag, typ, count) + struct.pack("<I", value)

    ifd0_off = 8
    ifd0 = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)
    ifd1_off = ifd0_off + len(ifd0) + 4
    ifd1_len = 2 + 2 * 12 + 4
    thumb_off = ifd1_off + ifd1_len
    ifd0 += struct.pack("<I", ifd1_off)
    ifd1 = (struct.pack("<H", 2) + entry(0x0201, 4, 1, thumb_off) + entry(0x0202, 4, 1, len(thumb_jpeg))
            + struct.pack("<I", 0))
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", ifd0_off) + ifd0 + ifd1 + thumb_jpeg


def test_exif_thumbnail_is_returned_when_embedded(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (0, 200, 0)).save(buf, "JPEG", quality=90)
    p = tmp_path / "with-thumb.jpg"
    Image.new("RGB", (320, 240), (200, 0, 0)).save(p, quality=90, exif=_exif_with_thumbnail(buf.getvalue()))
    th = exif_thumbnail(p)
    assert th is not None
    _assert_rgb(th, (32, 24))
    r, g, b = np.asarray(th)[12, 16].astype(int)
    assert g > 150 and r < 60  # the green thumbnail, not the red photo
    # the main picture still decodes normally
    assert open_image(p).size == (320, 240)


def test_exif_thumbnail_follows_orientation(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (0, 200, 0)).save(buf, "JPEG")
    p = tmp_path / "rot-thumb.jpg"
    Image.new("RGB", (320, 240)).save(p, exif=_exif_with_thumbnail(buf.getvalue(), orientation=6))
    th = exif_thumbnail(p)
    assert th is not None and th.size == (24, 32)


def test_exif_thumbnail_absent_is_none(tmp_path):
    assert exif_thumbnail(make_photo(tmp_path / "a.jpg", size=(64, 48))) is None
    assert exif_thumbnail(make_photo(tmp_path / "a.png", size=(64, 48))) is None
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8garbage")
    assert exif_thumbnail(bad) is None
    assert exif_thumbnail(tmp_path / "missing.jpg") is None


def test_dark_16_bit_png_stays_dark(tmp_path):
    # a 16-bit frame whose brightest pixel is 200/65535 is black, not 200/255 grey
    a = np.full((8, 8), 200, np.uint16)
    p = tmp_path / "dark16.png"
    Image.fromarray(a).save(p)
    assert Image.open(p).mode == "I;16"
    assert np.asarray(open_image(p)).max() <= 2
