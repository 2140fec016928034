"""Decoding photos: one loader function per format, EXIF orientation, thumbnails.

No Qt here.  Every public function either returns an upright RGB ``PIL.Image`` or
raises :class:`ImageError` with a reason a person can read.
"""
from __future__ import annotations

import io
import logging
import os
import stat
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable

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


def supported_extensions() -> frozenset[str]:
    return frozenset(LOADERS)


def is_supported(path: os.PathLike | str) -> bool:
    return Path(path).suffix.lower() in LOADERS


def _to_rgb(im: Image.Image) -> Image.Image:
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


def _finish(im: Image.Image, max_side: int | None) -> Image.Image:
    im = ImageOps.exif_transpose(im)  # upright, whatever the EXIF Orientation
    im = _to_rgb(im)
    if max_side and max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return im


@register_loader(".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif")
def load_pillow(path: Path, max_side: int | None = None) -> Image.Image:
    """JPEG (reduced-size DCT decoding with ``draft``), PNG, TIFF, WebP, BMP, GIF."""
    with Image.open(path) as im:
        if max_side and im.format == "JPEG":
            # draft() picks the largest 1/2, 1/4, 1/8 DCT scale that keeps the image
            # at least this big: a 24 MP JPEG decodes 5-6x faster at 1/8.
            im.draft("RGB", (max_side, max_side))
        if getattr(im, "n_frames", 1) > 1:
            im.seek(0)  # animated GIF/WebP, MPO: the first frame is the photo
        im.load()
        return _finish(im, max_side)


def open_image(path: os.PathLike | str, max_side: int | None = None) -> Image.Image:
    """Decode ``path`` upright as RGB, no larger than ``max_side`` if given.

    Raises :class:`ImageError` with a readable reason for anything that goes wrong.
    """
    path = Path(path)
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise ImageError(f"unsupported file type {path.suffix or '(none)'}")
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageError("file not found (moved or deleted?)") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except OSError as exc:
        raise ImageError(f"cannot read file: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ImageError("not a regular file")
    if st.st_size == 0:
        raise ImageError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
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


def list_images(folder: os.PathLike | str, recursive: bool = False) -> list[Path]:
    """Photos in ``folder`` (sorted by path), optionally recursively.

    Hidden files and folders are skipped; symlinked folders are not followed (no loops);
    symlinked files are listed (a broken one fails later with a reason).  Raises
    ``NotADirectoryError``/``FileNotFoundError``/``PermissionError`` for a bad folder.
    """
    root = Path(folder).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"folder not found: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {root}")
    if not os.access(root, os.R_OK | os.X_OK):
        raise PermissionError(f"cannot read folder: {root}")
    out: list = []  # names (one folder) or Paths (recursive)
    if recursive:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=lambda e: log.warning("skipping %s", e)):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            out += [Path(dirpath) / f for f in filenames if not f.startswith(".") and is_supported(f)]
    else:
        with os.scandir(root) as it:
            for e in it:
                if e.name.startswith(".") or not is_supported(e.name):
                    continue
                try:
                    if e.is_dir():
                        continue
                except OSError:
                    pass
                out.append(e.name)
        # one folder: sorting names is sorting paths, and much cheaper than sorting Path objects
        return [root / name for name in sorted(out)]
    return sorted(out)


# --- EXIF ---------------------------------------------------------------------------

_EXIF_IFD = ExifTags.IFD.Exif


@dataclass(frozen=True)
class ExifInfo:
    capture_time: float | None = None  # seconds since the epoch (camera's local time, naive)
    exposure_bias: float | None = None
    camera: str | None = None
    width: int | None = None
    height: int | None = None


def _parse_exif_time(value, subsec) -> float | None:
    if not value:
        return None
    try:
        s = value.decode() if isinstance(value, bytes) else str(value)
        dt = datetime.strptime(s.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except (ValueError, UnicodeDecodeError):
        return None
    t = dt.timestamp() if dt.year > 1970 else None
    if t is None:
        return None
    if subsec:
        digits = "".join(ch for ch in str(subsec) if ch.isdigit())
        if digits:
            t += float("0." + digits)
    return t


def info_from_exif(exif: Image.Exif, w: int | None, h: int | None, rotate: bool = True) -> ExifInfo:
    """Capture time (DateTimeOriginal + SubSecTimeOriginal), exposure bias and camera from
    a parsed EXIF block; ``w``/``h`` as stored (swapped here for rotated orientations)."""
    try:
        sub = exif.get_ifd(_EXIF_IFD)
    except Exception:  # noqa: BLE001 - a dangling EXIF pointer: use IFD0 alone
        sub = {}
    t = _parse_exif_time(sub.get(0x9003) or exif.get(0x9003) or exif.get(0x0132),
                         sub.get(0x9291) or sub.get(0x9290))
    bias = sub.get(0x9204, exif.get(0x9204))
    try:
        bias = float(bias) if bias is not None else None
    except (TypeError, ValueError, ZeroDivisionError):
        bias = None
    make = str(exif.get(0x010F, "") or "").strip("\x00 ")
    model = str(exif.get(0x0110, "") or "").strip("\x00 ")
    cam = (model if make and model.startswith(make.split()[0]) else f"{make} {model}").strip() or None
    if rotate and w is not None and h is not None and exif.get(0x0112) in (5, 6, 7, 8):
        w, h = h, w
    return ExifInfo(t, bias, cam, w, h)


def read_exif(path: os.PathLike | str) -> ExifInfo:
    """Capture time, exposure bias and camera from EXIF; empty on any problem."""
    try:
        with Image.open(path) as im:
            return info_from_exif(im.getexif(), *im.size)
    except Exception as exc:  # noqa: BLE001 - EXIF is optional; never fail a photo for it
        log.debug("no EXIF for %s: %s", path, exc)
        return ExifInfo()


def exif_thumbnail(path: os.PathLike | str) -> Image.Image | None:
    """The JPEG thumbnail embedded in EXIF (IFD1), upright, or None.  Very fast."""
    try:
        with Image.open(path) as im:
            if im.format not in ("JPEG", "MPO"):
                return None
            exif = im.getexif()
            ifd1 = exif.get_ifd(ExifTags.IFD.IFD1)
            orientation = exif.get(0x0112, 1)
            off, length = ifd1.get(0x0201), ifd1.get(0x0202)
            if not off or not length:
                return None
            app1 = im.applist and next((d for m, d in im.applist if m == "APP1" and d[:6] == b"Exif\x00\x00"), None)
            if app1 is None:
                return None
            data = app1[6 + off: 6 + off + length]
            thumb = Image.open(io.BytesIO(data))
            thumb.load()
            if orientation in (2, 3, 4, 5, 6, 7, 8):
                thumb.getexif()[0x0112] = orientation
                thumb.info["exif"] = thumb.getexif().tobytes()
                thumb = ImageOps.exif_transpose(thumb)
            return _to_rgb(thumb)
    except Exception:  # noqa: BLE001 - a missing or broken thumbnail is not an error
        return None


def file_identity(path: os.PathLike | str) -> tuple[str, int, float]:
    """(absolute path, size, mtime): how the catalog recognises a file it has seen."""
    p = Path(path)
    st = p.stat()
    return str(p.absolute()), st.st_size, st.st_mtime


def iter_chunks(items: Iterable, n: int):
    chunk = []
    for it in items:
        chunk.append(it)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# HEIC/HEIF and camera RAW loaders register themselves (imported last: they use this module).
try:
    from . import formats  # noqa: E402,F401
except ImportError as _exc:  # pragma: no cover - optional codecs missing
    log.warning("RAW/HEIC support unavailable: %s", _exc)
