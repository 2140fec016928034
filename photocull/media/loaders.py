"""Decoding photos: one loader function per format, in one public registry.

No torch, no Qt.  Every loader returns an upright 8-bit RGB ``PIL.Image`` or raises
:class:`ImageError` with a reason a person can read.  Pillow reads JPEG (reduced-size DCT
decoding with ``draft``), PNG, TIFF, WebP, BMP and GIF; pillow-heif (libheif) HEIC/HEIF;
LibRaw (rawpy) camera RAW files, from the camera's embedded JPEG preview (fast, and what
the photographer saw on the camera's screen) turned upright with LibRaw's orientation, or,
when a file has no usable preview, a half-size demosaic.
"""
from __future__ import annotations

import io
import logging
import os
import stat
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pillow_heif
import rawpy
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)


# Refuse decompression bombs with a clear error instead of a warning: a 24 MP camera
# file is far below this; a forged 50000x50000 header is far above.
Image.MAX_IMAGE_PIXELS = 180_000_000
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageError(Exception):
    """A photo could not be read.  ``str(exc)`` is the reason shown to the user."""


Loader = Callable[[Path, int | None], Image.Image]
LOADERS: dict[str, Loader] = {}


def register_loader(*extensions: str):
    def deco(fn: Loader) -> Loader:
        for ext in extensions:
            LOADERS[ext.lower()] = fn
        return fn

    return deco


def is_supported(path: os.PathLike | str) -> bool:
    return os.path.splitext(os.fspath(path))[1].lower() in LOADERS


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; transparency is composited on white."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bits by the actual range of the type
        import numpy as np

        a = np.asarray(im, dtype=np.float64)
        # I;16 is 16-bit by definition (a dark frame is still 16-bit); plain I: guess from the values
        a = a / (65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0) * 255.0
        return Image.fromarray(a.clip(0, 255).astype("uint8"), "L").convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        bg = Image.new("RGB", im.size, (255, 255, 255))
        bg.paste(im, mask=im.getchannel("A"))
        return bg
    return im.convert("RGB")


# A decode's info key: the file's own (width, height) in pixels, as stored (before EXIF rotation),
# where the decode may be smaller (a JPEG's DCT scaling); absent, the decode is the file's size.
FILE_SIZE = "photocull.file_size"


def finish(im: Image.Image, max_side: int | None) -> Image.Image:
    im = ImageOps.exif_transpose(im)  # upright, whatever the EXIF Orientation
    return shrink(to_rgb(im), max_side)


def shrink(im: Image.Image, max_side: int | None) -> Image.Image:
    """``im`` no larger than ``max_side`` on its long side (in place; bilinear, as every
    decode is shrunk, so a view made from a larger decode matches a direct one closely)."""
    if max_side and max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return im


@register_loader(".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif")
def load_pillow(path: Path, max_side: int | None = None, draft: int | None = None) -> Image.Image:
    """JPEG (reduced-size DCT decoding with ``draft``), PNG, TIFF, WebP, BMP, GIF."""
    with Image.open(path) as im:
        full = im.size
        if (draft or max_side) and im.format in ("JPEG", "MPO"):  # (an iPhone JPEG is often an MPO)
            # draft() picks the largest 1/2, 1/4, 1/8 DCT scale that keeps the image
            # at least this big: a 24 MP JPEG decodes 5-6x faster at 1/8.
            im.draft("RGB", (draft or max_side,) * 2)
        # Pillow opens every multi-frame file (animated GIF/WebP, MPO, multi-page TIFF) at its
        # first frame, which is the photo.  Asking for n_frames would walk every frame
        # (a 20,000-page TIFF: seconds), so it is never asked.
        im.load()
        out = finish(im, max_side)
        out.info[FILE_SIZE] = full
        return out


def check_readable(path: os.PathLike | str) -> os.stat_result:
    """The one check made before anything opens a photo: it exists and is a non-empty
    regular file (following a symlink).  ``open()`` on a FIFO or a device named ``x.jpg``
    blocks for ever, so nothing in photocull opens a photo before this.  Raises
    :class:`ImageError` with the reason; returns the file's ``stat``."""
    try:
        st = Path(path).stat()
    except FileNotFoundError:
        raise ImageError("file not found (moved or deleted?)") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except OSError as exc:  # a symlink loop, a name too long ...
        raise ImageError(f"cannot read file: {exc.strerror or exc}") from None
    except ValueError as exc:  # a NUL in the name
        raise ImageError(f"cannot read file: {exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ImageError("not a regular file")
    if st.st_size == 0:
        raise ImageError("empty file (0 bytes)")
    return st


def open_image(path: os.PathLike | str, max_side: int | None = None, *, draft_only: bool = False) -> Image.Image:
    """Decode ``path`` upright as RGB, no larger than ``max_side`` if given.

    ``draft_only``: the decode as it comes, not shrunk (a JPEG at the smallest DCT scale
    that keeps it at least ``max_side`` on its short side; a PNG whole): ``shrink(view,
    max_side)`` of it is exactly ``open_image(path, max_side)``.

    Raises :class:`ImageError` with a readable reason for anything that goes wrong.
    """
    path = Path(path)
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise ImageError(f"unsupported file type {path.suffix or '(none)'}")
    check_readable(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if draft_only and max_side:
                return loader(path, None, draft=max_side)
            return loader(path, max_side)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("image dimensions too large (possible decompression bomb)") from None
    except UnidentifiedImageError:
        raise ImageError("not an image, or an unknown/corrupt format") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except FileNotFoundError:
        raise ImageError("file not found (moved or deleted?)") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError,
            TypeError, ZeroDivisionError, RuntimeError, MemoryError) as exc:
        msg = str(exc) or type(exc).__name__
        if "truncated" in msg.lower() or isinstance(exc, EOFError):
            raise ImageError(f"truncated or corrupt image ({msg})") from None
        raise ImageError(f"cannot decode image ({msg})") from None


HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".hif"})
RAW_EXTENSIONS = frozenset({
    ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf", ".rw2", ".dng",
    ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".erf", ".kdc", ".mrw", ".raw",
})
JPEG_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe"})


# Pillow opens HEIC/HEIF from here on (also makes images.read_exif work for them:
# pillow-heif hands Pillow the EXIF block, and applies the HEIF rotation itself while
# resetting the EXIF Orientation to 1, so nothing is rotated twice).
pillow_heif.register_heif_opener()


# A preview smaller than half of what was asked for (capped at this) is not good enough
# to judge sharpness: a 160x120 thumbnail is demosaiced instead.
_PREVIEW_ENOUGH = 1024


# LibRaw's ``sizes.flip`` (dcraw convention) -> EXIF Orientation.  dcraw maps EXIF
# orientation o to flip "50132467"[o]; this is the inverse.  0 none, 3 = 180 degrees,
# 5 = 90 degrees counter-clockwise (EXIF 8), 6 = 90 degrees clockwise (EXIF 6).
_FLIP_TO_ORIENTATION = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}
_ORIENTATION = ExifTags.Base.Orientation


@register_loader(*sorted(HEIF_EXTENSIONS))
def load_heif(path: Path, max_side: int | None = None, draft: int | None = None) -> Image.Image:
    """HEIC/HEIF through pillow-heif (libheif); upright, RGB."""
    try:
        with Image.open(path) as im:
            if (draft or max_side) and im.format == "JPEG":  # a JPEG named .heic (some exports) still decodes
                im.draft("RGB", (draft or max_side,) * 2)
            im.load()
            return finish(im, max_side)
    except (UnidentifiedImageError, ImageError):
        raise
    except ValueError as exc:  # libheif reports corrupt/truncated data as ValueError
        raise ImageError(f"corrupt or truncated HEIF file ({str(exc).strip()})") from None
    except RuntimeError as exc:
        raise ImageError(f"cannot decode HEIF file ({str(exc).strip()})") from None


def _libraw_reason(exc: BaseException) -> str:
    msg = exc.args[0] if exc.args else ""
    if isinstance(msg, bytes):
        msg = msg.decode("utf-8", "replace")
    return str(msg) or type(exc).__name__


@contextmanager
def _open_raw(path: Path) -> Iterator[rawpy.RawPy]:
    """``rawpy.imread`` with LibRaw's errors turned into :class:`ImageError`."""
    try:
        raw = rawpy.imread(str(path))
    except rawpy.LibRawError as exc:
        raise ImageError(f"unsupported or corrupt RAW file ({_libraw_reason(exc)})") from None
    try:
        yield raw
    except rawpy.LibRawError as exc:
        raise ImageError(f"unsupported or corrupt RAW file ({_libraw_reason(exc)})") from None
    finally:
        raw.close()


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return (a >> 8).astype(np.uint8)
    a = a.astype(np.float64)
    top = a.max() if a.size else 1.0
    return (a / (top or 1.0) * 255.0).clip(0, 255).astype(np.uint8)


def _set_orientation(im: Image.Image, orientation: int) -> None:
    """Make ``im`` carry ``orientation`` so that ``finish`` (exif_transpose) applies it,
    replacing any Orientation the preview had of its own."""
    im.getexif()[_ORIENTATION] = orientation


def _raw_preview(raw: rawpy.RawPy, max_side: int | None, draft: int | None = None) -> Image.Image | None:
    """The embedded preview, oriented like the RAW; None when missing or too small."""
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    except rawpy.LibRawError as exc:  # a damaged preview: the sensor data may still be fine
        log.debug("RAW preview unreadable: %s", _libraw_reason(exc))
        return None
    need = min(draft or max_side or _PREVIEW_ENOUGH, _PREVIEW_ENOUGH) // 2
    try:
        if thumb.format == rawpy.ThumbFormat.JPEG:
            im = Image.open(io.BytesIO(thumb.data))
            if max(im.size) < need:
                return None
            if (draft or max_side) and im.format in ("JPEG", "MPO"):  # (an iPhone JPEG is often an MPO)
                im.draft("RGB", (draft or max_side,) * 2)
            im.load()
        elif thumb.format == rawpy.ThumbFormat.BITMAP:
            a = _to_uint8(np.asarray(thumb.data))
            if a.ndim == 3 and a.shape[2] == 1:
                a = a[..., 0]
            if a.ndim not in (2, 3) or max(a.shape[:2]) < need:
                return None
            im = Image.fromarray(np.ascontiguousarray(a))
        else:
            return None
    except (OSError, SyntaxError, ValueError, TypeError, EOFError) as exc:
        log.debug("RAW preview undecodable: %s", exc)
        return None
    # LibRaw's flip comes from the RAW's own metadata and is the authority.  The
    # preview JPEG may carry an Orientation too (often 1, sometimes a copy of the
    # RAW's): when LibRaw knows an orientation it replaces the preview's, so the
    # image is never turned twice; when LibRaw says 0 the preview's own tag (if
    # any) is honoured by finish.
    orientation = _FLIP_TO_ORIENTATION.get(raw.sizes.flip, 1)
    if orientation != 1:
        _set_orientation(im, orientation)
    return im


def _raw_demosaic(raw: rawpy.RawPy) -> Image.Image:
    # LibRaw applies the file's orientation itself when it renders.
    rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
    return Image.fromarray(np.ascontiguousarray(rgb))


@register_loader(*sorted(RAW_EXTENSIONS))
def load_raw(path: Path, max_side: int | None = None, draft: int | None = None) -> Image.Image:
    """Camera RAW via LibRaw: the embedded JPEG preview, else a half-size demosaic."""
    with _open_raw(path) as raw:
        im = _raw_preview(raw, max_side, draft)
        if im is None:
            try:
                im = _raw_demosaic(raw)
            except MemoryError:
                raise ImageError("not enough memory to decode this RAW file") from None
        return finish(im, max_side)


# -- every pixel: the loupe at 100 % ------------------------------------------------------

# an embedded RAW preview at least this share of the sensor's long side is "full size"
# (cameras crop a few edge pixels off it); a smaller one is demosaiced instead
_FULL_PREVIEW_SHARE = 0.9


def _upright(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


def _raw_full_preview_size(raw: rawpy.RawPy) -> tuple[int, int] | None:
    """The embedded preview's size when it is full size (before orientation), else None."""
    try:
        thumb = raw.extract_thumb()
    except rawpy.LibRawError:
        return None
    try:
        if thumb.format == rawpy.ThumbFormat.JPEG:
            with Image.open(io.BytesIO(thumb.data)) as im:
                size = im.size
        elif thumb.format == rawpy.ThumbFormat.BITMAP:
            h, w = np.asarray(thumb.data).shape[:2]
            size = (w, h)
        else:
            return None
    except (OSError, SyntaxError, ValueError, TypeError, EOFError):
        return None
    sensor = max(raw.sizes.width, raw.sizes.height)
    return size if max(size) >= _FULL_PREVIEW_SHARE * sensor else None


def open_full(path: os.PathLike | str) -> Image.Image:
    """Every pixel the file has, upright RGB (what the loupe shows at 100 %): ``open_image``
    without a size limit, except a RAW whose embedded preview is smaller than its sensor
    (a NEF's or ARW's 1616 px one): that one is demosaiced at full size.  Raises
    :class:`ImageError`."""
    path = Path(path)
    if path.suffix.lower() not in RAW_EXTENSIONS:
        return open_image(path)
    check_readable(path)
    with _open_raw(path) as raw:
        if _raw_full_preview_size(raw) is not None:
            return open_image(path)
        try:
            # LibRaw applies the file's orientation itself when it renders.
            rgb = raw.postprocess(use_camera_wb=True, output_bps=8)
        except MemoryError:
            raise ImageError("not enough memory to decode this RAW file") from None
        return Image.fromarray(np.ascontiguousarray(rgb))


def full_size(path: os.PathLike | str) -> tuple[int, int] | None:
    """The upright (width, height) ``open_full`` gives, read from the headers only (no
    decode); None when the file cannot tell."""
    path = Path(path)
    try:
        if path.suffix.lower() in RAW_EXTENSIONS:
            with _open_raw(path) as raw:
                orientation = _FLIP_TO_ORIENTATION.get(raw.sizes.flip, 1)
                size = _raw_full_preview_size(raw) or (raw.sizes.width, raw.sizes.height)
                return _upright(size, orientation)
        with Image.open(path) as im:
            return _upright(im.size, im.getexif().get(_ORIENTATION, 1))
    except (ImageError, OSError, SyntaxError, ValueError, TypeError, EOFError, KeyError):
        return None
