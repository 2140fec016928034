"""HEIC/HEIF and camera RAW decoding, RAW EXIF, RAW+JPEG pairing."""
from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

rawpy = pytest.importorskip("rawpy")
pytest.importorskip("pillow_heif")
pytest.importorskip("pidng")

from photocull.media import loaders  # noqa: E402
from photocull.media import exif as media_exif  # noqa: E402
from photocull.media import listing  # noqa: E402
from photocull.media.loaders import ImageError, open_image  # noqa: E402

from conftest import SHARED_DATA  # noqa: E402


def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()  # 512x512 RGB


def write_dng(path: Path, rgb: np.ndarray, orientation: int = 1, bpp: int = 12,
              when: str | None = None) -> Path:
    """A Bayer-mosaiced (RGGB) linear DNG made from an sRGB-ish uint8 photo."""
    from pidng.core import RAW2DNG, DNGTags, Tag
    from pidng.defs import CalibrationIlluminant, CFAPattern, DNGVersion, PhotometricInterpretation

    h, w, _ = rgb.shape
    top = (1 << bpp) - 1
    lin = (rgb / 255.0) ** 2.2 * top
    bayer = np.empty((h, w), np.uint16)
    bayer[0::2, 0::2] = lin[0::2, 0::2, 0]
    bayer[0::2, 1::2] = lin[0::2, 1::2, 1]
    bayer[1::2, 0::2] = lin[1::2, 0::2, 1]
    bayer[1::2, 1::2] = lin[1::2, 1::2, 2]
    t = DNGTags()
    t.set(Tag.ImageWidth, w)
    t.set(Tag.ImageLength, h)
    t.set(Tag.TileWidth, w)
    t.set(Tag.TileLength, h)
    t.set(Tag.Orientation, orientation)
    t.set(Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array)
    t.set(Tag.SamplesPerPixel, 1)
    t.set(Tag.BitsPerSample, bpp)
    t.set(Tag.CFARepeatPatternDim, [2, 2])
    t.set(Tag.CFAPattern, CFAPattern.RGGB)
    t.set(Tag.BlackLevel, 0)
    t.set(Tag.WhiteLevel, top)
    t.set(Tag.ColorMatrix1, [[1, 1], [0, 1], [0, 1], [0, 1], [1, 1], [0, 1], [0, 1], [0, 1], [1, 1]])
    t.set(Tag.CalibrationIlluminant1, CalibrationIlluminant.D65)
    t.set(Tag.AsShotNeutral, [[1, 1], [1, 1], [1, 1]])
    t.set(Tag.Make, "Photocull")
    t.set(Tag.Model, "Photocull Test Camera")
    if when:
        t.set(Tag.DateTime, when)
    t.set(Tag.DNGVersion, DNGVersion.V1_4)
    t.set(Tag.DNGBackwardVersion, DNGVersion.V1_2)
    r = RAW2DNG()
    r.options(t, path=str(path.parent), compress=False)
    written = Path(r.convert(bayer, filename=path.stem))  # pidng names it <stem>.dng
    return written.rename(path)


def channel_corr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over R, G, B of the correlation between two same-size images."""
    return float(np.mean([np.corrcoef(a[..., c].ravel().astype(float), b[..., c].ravel().astype(float))[0, 1]
                          for c in range(3)]))


def resized(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))


# --- camera RAW: demosaic ---------------------------------------------------------------

def test_dng_without_preview_is_demosaiced(tmp_path):
    src = astronaut()
    p = write_dng(tmp_path / "IMG_0001.dng", src)
    with rawpy.imread(str(p)) as raw, pytest.raises(rawpy.LibRawNoThumbnailError):
        raw.extract_thumb()  # the fallback is what this test exercises
    im = open_image(p)
    assert im.mode == "RGB" and im.size == (256, 256)  # half-size demosaic
    assert channel_corr(np.asarray(im), resized(src, im.size)) > 0.8
    small = open_image(p, max_side=100)
    assert max(small.size) == 100
    assert channel_corr(np.asarray(small), resized(src, small.size)) > 0.8


def test_dng_orientation_is_applied_by_demosaic(tmp_path):
    src = np.ascontiguousarray(astronaut()[:384, :])  # 512 wide, 384 high
    p = write_dng(tmp_path / "rot.dng", src, orientation=6)  # rotate 90 degrees clockwise to view
    im = open_image(p)
    assert im.size == (192, 256)  # upright: portrait
    upright = np.rot90(src, k=-1)  # clockwise
    assert channel_corr(np.asarray(im), resized(np.ascontiguousarray(upright), im.size)) > 0.8


def test_raw_exif_from_dng(tmp_path):
    p = write_dng(tmp_path / "IMG_0002.DNG", astronaut()[:256, :384], orientation=6, when="2023:05:06 07:08:09")
    info = media_exif.read_raw_exif(p)
    assert info.camera == "Photocull Test Camera"
    assert (info.width, info.height) == (256, 384)  # upright size
    assert info.capture_time == pytest.approx(
        datetime(2023, 5, 6, 7, 8, 9).timestamp())
    assert media_exif.read_any_exif(p) == info


# --- camera RAW: the embedded preview ----------------------------------------------------

class _FakeRaw:
    """A real RawPy with a chosen preview and orientation (rawpy's type is read-only)."""

    def __init__(self, real, thumb, flip):
        self._real, self._thumb, self._flip = real, thumb, flip
        self.calls = []

    @property
    def sizes(self):
        return self._real.sizes._replace(flip=self._flip)

    def extract_thumb(self):
        if isinstance(self._thumb, BaseException):
            raise self._thumb
        return self._thumb

    def postprocess(self, **kw):
        self.calls.append("postprocess")
        return self._real.postprocess(**kw)

    def close(self):
        self._real.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def marker_photo(w=600, h=400) -> Image.Image:
    """Grey with a red top-left corner and a blue top-right corner."""
    a = np.full((h, w, 3), 128, np.uint8)
    a[: h // 3, : w // 3] = (230, 20, 20)
    a[: h // 3, -w // 3:] = (20, 20, 230)
    return Image.fromarray(a)


def jpeg_bytes(im: Image.Image, orientation: int | None = None) -> bytes:
    buf = io.BytesIO()
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    im.save(buf, "JPEG", quality=92, exif=exif.tobytes())
    return buf.getvalue()


def corner_colours(im: Image.Image) -> dict[str, str]:
    a = np.asarray(im).astype(int)
    h, w, _ = a.shape
    out = {}
    for name, (y, x) in {"tl": (h // 12, w // 12), "tr": (h // 12, w - 1 - w // 12),
                         "bl": (h - 1 - h // 12, w // 12), "br": (h - 1 - h // 12, w - 1 - w // 12)}.items():
        r, g, b = a[y, x]
        out[name] = "red" if r > 180 and b < 80 else "blue" if b > 180 and r < 80 else "grey"
    return out


@pytest.fixture
def fake_raw(tmp_path, monkeypatch):
    """Make rawpy.imread hand out a DNG with the given preview and LibRaw flip."""
    dng = write_dng(tmp_path / "IMG_0003.dng", astronaut()[:256, :384])
    made = []
    real_imread = rawpy.imread

    def use(thumb, flip=0):
        def imread(path, *a, **kw):  # whatever the path, LibRaw reads the DNG
            fr = _FakeRaw(real_imread(str(dng), *a, **kw), thumb, flip)
            made.append(fr)
            return fr

        monkeypatch.setattr(rawpy, "imread", imread)
        return dng

    use.made = made
    return use


@pytest.mark.parametrize("flip, expect_size, expect", [
    (0, (600, 400), {"tl": "red", "tr": "blue"}),
    (3, (600, 400), {"br": "red", "bl": "blue"}),   # 180 degrees
    (6, (400, 600), {"tr": "red", "br": "blue"}),   # 90 degrees clockwise
    (5, (400, 600), {"bl": "red", "tl": "blue"}),   # 90 degrees counter-clockwise
])
def test_jpeg_preview_is_used_and_turned_upright(fake_raw, flip, expect_size, expect):
    p = fake_raw(rawpy.Thumbnail(rawpy.ThumbFormat.JPEG, jpeg_bytes(marker_photo())), flip)
    im = open_image(p)
    assert im.size == expect_size
    got = corner_colours(im)
    assert {k: got[k] for k in expect} == expect
    assert fake_raw.made[-1].calls == []  # no demosaic


def test_preview_orientation_is_not_applied_twice(fake_raw):
    # The preview carries a copy of the RAW's orientation: turn once, not twice.
    p = fake_raw(rawpy.Thumbnail(rawpy.ThumbFormat.JPEG, jpeg_bytes(marker_photo(), orientation=6)), 6)
    im = open_image(p)
    assert im.size == (400, 600) and corner_colours(im)["tr"] == "red"


def test_preview_own_orientation_is_honoured_when_libraw_has_none(fake_raw):
    p = fake_raw(rawpy.Thumbnail(rawpy.ThumbFormat.JPEG, jpeg_bytes(marker_photo(), orientation=6)), 0)
    im = open_image(p)
    assert im.size == (400, 600) and corner_colours(im)["tr"] == "red"


def test_jpeg_preview_respects_max_side(fake_raw):
    big = marker_photo(1600, 1200)
    p = fake_raw(rawpy.Thumbnail(rawpy.ThumbFormat.JPEG, jpeg_bytes(big)), 6)
    im = open_image(p, max_side=256)
    assert im.size == (192, 256) and corner_colours(im)["tr"] == "red"


def test_bitmap_preview(fake_raw):
    a = np.asarray(marker_photo())
    p = fake_raw(rawpy.Thumbnail(rawpy.ThumbFormat.BITMAP, a), 3)
    im = open_image(p)
    assert im.size == (600, 400) and corner_colours(im)["br"] == "red"


@pytest.mark.parametrize("thumb", [
    rawpy.LibRawNoThumbnailError(b"No thumbnail in file"),
    rawpy.LibRawUnsupportedThumbnailError(b"Unsupported thumbnail format"),
    "garbage",   # preview bytes that are not a JPEG
    "tiny",      # a 160x120 preview is too small to judge a photo by
])
def test_unusable_preview_falls_back_to_demosaic(fake_raw, thumb):
    if thumb == "garbage":
        thumb = rawpy.Thumbnail(rawpy.ThumbFormat.JPEG, b"\xff\xd8 not really a jpeg")
    elif thumb == "tiny":
        thumb = rawpy.Thumbnail(rawpy.ThumbFormat.JPEG, jpeg_bytes(marker_photo(160, 120)))
    p = fake_raw(thumb, 0)
    im = open_image(p, max_side=448)
    assert im.size == (192, 128)  # the half-size demosaic of the 384x256 DNG
    assert fake_raw.made[-1].calls == ["postprocess"]


def test_raw_exif_from_preview_of_a_non_tiff_raw(fake_raw, tmp_path):
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Fujifilm", "X-T5"
    exif.get_ifd(0x8769)[0x9003] = "2024:01:02 03:04:05"
    exif.get_ifd(0x8769)[0x9291] = "25"
    exif.get_ifd(0x8769)[0x9204] = -1.0
    buf = io.BytesIO()
    marker_photo().save(buf, "JPEG", exif=exif.tobytes())
    fake_raw(rawpy.Thumbnail(rawpy.ThumbFormat.JPEG, buf.getvalue()), 0)
    raf = tmp_path / "DSCF0001.RAF"
    raf.write_bytes(b"FUJIFILMCCD-RAW 0201FF383501" + bytes(100))  # not a TIFF
    info = media_exif.read_raw_exif(raf)
    assert info.camera == "Fujifilm X-T5"
    assert info.exposure_bias == -1.0
    assert info.capture_time == pytest.approx(
        datetime(2024, 1, 2, 3, 4, 5).timestamp() + 0.25)


# --- HEIC / HEIF ------------------------------------------------------------------------

def test_heic_round_trip(tmp_path):
    import pillow_heif

    src = astronaut()
    p = tmp_path / "IMG_0004.HEIC"
    pillow_heif.from_pillow(Image.fromarray(src)).save(p, quality=80)
    assert loaders.is_supported(p) and p.suffix.lower() in loaders.HEIF_EXTENSIONS
    im = open_image(p)
    assert im.mode == "RGB" and im.size == (512, 512)
    assert channel_corr(np.asarray(im), src) > 0.95
    assert max(open_image(p, max_side=128).size) == 128


def test_heic_exif_and_orientation(tmp_path):
    src = np.ascontiguousarray(astronaut()[:256, :384])
    exif = Image.Exif()
    exif[0x0110] = "Phone"
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[0x9003] = "2022:02:03 04:05:06"
    p = tmp_path / "IMG_0005.heif"
    Image.fromarray(src).save(p, format="HEIF", quality=80, exif=exif.tobytes())
    im = open_image(p)
    assert im.size == (256, 384)  # upright, turned once
    info = media_exif.read_exif(p)
    assert info.camera == "Phone"
    assert info.capture_time == pytest.approx(datetime(2022, 2, 3, 4, 5, 6).timestamp())
    assert (info.width, info.height) == im.size


HEIC_SAMPLES = SHARED_DATA / "camera" / "exif_samples" / "heic"


@pytest.mark.skipif(not HEIC_SAMPLES.is_dir(), reason="no HEIC samples")
def test_every_heic_sample_decodes():
    files = [p for p in HEIC_SAMPLES.rglob("*") if p.suffix.lower() in loaders.HEIF_EXTENSIONS]
    assert files
    for p in files:
        im = open_image(p, max_side=256)
        assert im.mode == "RGB" and max(im.size) == 256, p
        info = media_exif.read_exif(p)
        w, h = info.width, info.height
        assert (w > h) == (im.size[0] > im.size[1]), p  # EXIF size agrees with the upright image


# --- broken files -------------------------------------------------------------------------

def test_corrupt_raw_gives_a_reason(tmp_path):
    p = tmp_path / "IMG_0006.CR2"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ImageError, match="RAW"):
        open_image(p)
    assert media_exif.read_raw_exif(p) == media_exif.ExifInfo()


def test_truncated_dng_gives_a_reason(tmp_path):
    p = write_dng(tmp_path / "IMG_0007.dng", astronaut())
    p.write_bytes(p.read_bytes()[:5000])
    with pytest.raises(ImageError, match="RAW"):
        open_image(p)


def test_truncated_heic_gives_a_reason(tmp_path):
    p = tmp_path / "IMG_0008.heic"
    Image.fromarray(astronaut()).save(p, format="HEIF", quality=80)
    data = p.read_bytes()
    for n in (len(data) // 2, 40):
        p.write_bytes(data[:n])
        with pytest.raises(ImageError) as e:
            open_image(p)
        assert str(e.value) and "\n" not in str(e.value)


# --- RAW + JPEG pairs ------------------------------------------------------------------------

def test_pair_raw_jpeg(tmp_path):
    d, e = tmp_path / "a", tmp_path / "b"
    names = [d / "IMG_1.CR2", d / "IMG_1.JPG",           # classic pair
             d / "img_2.jpeg", d / "IMG_2.nef",          # case-insensitive stem and extension
             d / "IMG_3.ARW",                            # lonely RAW
             d / "IMG_4.jpg",                            # lonely JPEG
             e / "IMG_1.cr2",                            # same stem, other folder: not a pair
             d / "IMG_5.HEIC", d / "IMG_5.dng",          # RAW+HEIF
             d / "IMG_6.png"]
    items = listing.pair_raw_jpeg(names)
    got = [(it.primary.relative_to(tmp_path).as_posix(), [c.name for c in it.companions], it.kind) for it in items]
    assert got == [
        ("a/IMG_1.JPG", ["IMG_1.CR2"], "RAW+JPG"),
        ("a/img_2.jpeg", ["IMG_2.nef"], "RAW+JPG"),
        ("a/IMG_3.ARW", [], "RAW"),
        ("a/IMG_4.jpg", [], "JPG"),
        ("b/IMG_1.cr2", [], "RAW"),
        ("a/IMG_5.HEIC", ["IMG_5.dng"], "RAW+HEIF"),
        ("a/IMG_6.png", [], "PNG"),
    ]
    assert sum(len(it.paths) for it in items) == len(names)  # nothing lost


def test_pair_prefers_one_jpeg_and_keeps_the_other_visible(tmp_path):
    names = [tmp_path / "IMG_1.CR2", tmp_path / "img_1.jpeg", tmp_path / "IMG_1.JPG"]
    items = listing.pair_raw_jpeg(names)
    assert [(it.primary.name, it.kind) for it in items] == [("IMG_1.JPG", "RAW+JPG"), ("img_1.jpeg", "JPG")]


def test_pairing_with_list_images(tmp_path):
    from conftest import make_photo

    make_photo(tmp_path / "IMG_9.JPG")
    write_dng(tmp_path / "IMG_9.DNG", astronaut()[:64, :64])
    items = listing.pair_raw_jpeg(listing.list_images(tmp_path))
    assert [(it.primary.name, [c.name for c in it.companions]) for it in items] == [("IMG_9.JPG", ["IMG_9.DNG"])]


def test_an_mpo_jpeg_is_decoded_at_reduced_size(tmp_path):
    """iPhone photos are often MPO (a JPEG with a second image after it): Pillow names them
    "MPO", and they get the same DCT-scaled decode as any JPEG (it was a full decode)."""
    from PIL import Image

    from photocull.media.loaders import open_image

    big = Image.new("RGB", (2400, 1600), (120, 90, 60))
    small = Image.new("RGB", (320, 240), (10, 20, 30))
    p = tmp_path / "IMG_0001.JPG"
    big.save(p, "MPO", save_all=True, append_images=[small])
    with Image.open(p) as im:
        assert im.format == "MPO"
    assert open_image(p, 448, draft_only=True).size == (1200, 800)  # 1/2: the DCT scale keeping 448 px
    assert open_image(p, 448).size == (448, 299)
