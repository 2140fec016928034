"""EXIF: capture time, exposure bias, camera, upright size and the shooting settings (lens,
focal length, shutter, aperture, ISO); the embedded thumbnail.

Best effort everywhere: a photo never fails because of its EXIF.  RAW files are read from
their TIFF IFDs, else from the embedded preview's EXIF, else LibRaw's own timestamp.  Every
reader makes :func:`~photocull.media.loaders.check_readable`'s check before opening the file
(a FIFO named ``x.jpg`` must not block a loader thread) and gives its empty answer if it fails.
"""
from __future__ import annotations

import io
import logging
import os
import struct
from dataclasses import dataclass, fields, replace
from datetime import datetime
from pathlib import Path

import rawpy
from PIL import ExifTags, Image, ImageOps

from photocull.media.loaders import RAW_EXTENSIONS, ImageError, check_readable, to_rgb

log = logging.getLogger(__name__)


_EXIF_IFD = ExifTags.IFD.Exif


@dataclass(frozen=True)
class ExifInfo:
    capture_time: float | None = None  # seconds since the epoch (camera's local time, naive)
    exposure_bias: float | None = None
    camera: str | None = None
    width: int | None = None
    height: int | None = None
    lens: str | None = None
    focal_length: float | None = None  # mm, as the lens says it (not the 35 mm equivalent)
    exposure_time: float | None = None  # seconds
    f_number: float | None = None
    iso: int | None = None

    def has_shooting(self) -> bool:
        """Whether any shooting setting (lens, focal length, shutter, aperture, ISO) was found."""
        return any(v is not None for v in (self.lens, self.focal_length, self.exposure_time, self.f_number, self.iso))


def _num(value) -> float | None:
    """A positive finite EXIF number (rationals, ints, a one-element tuple), else None."""
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    try:
        v = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return v if v > 0 and v == v and v != float("inf") else None


def _text(value) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    s = str(value or "").strip("\x00 ")
    return s or None


def format_shutter(seconds: float) -> str:
    """1/250 s, 1/3 s, 0.8 s, 2 s, 30 s: as a camera shows it."""
    if seconds >= 0.3:
        return f"{seconds:.1f}".rstrip("0").rstrip(".") + " s"
    return f"1/{round(1 / seconds)} s"


def shooting_lines(info: ExifInfo) -> list[str]:
    """The shooting settings in words: camera, lens, then "50 mm · 1/250 s · f/2.8 · ISO 400 · +0.7 EV"
    (what is missing is left out)."""
    lens = info.lens
    if lens and info.camera and lens.startswith(info.camera + " "):  # "Apple iPhone XS Max back camera ..."
        lens = lens[len(info.camera):].strip()
    lines = [x for x in (info.camera, lens) if x]
    parts = []
    if info.focal_length:
        fl = info.focal_length
        parts.append(f"{fl:.0f} mm" if fl >= 10 else f"{fl:.2f}".rstrip("0").rstrip(".") + " mm")
    if info.exposure_time:
        parts.append(format_shutter(info.exposure_time))
    if info.f_number:
        parts.append(f"f/{info.f_number:.1f}".replace(".0", "") if info.f_number < 10 else f"f/{info.f_number:.0f}")
    if info.iso:
        parts.append(f"ISO {info.iso}")
    if info.exposure_bias is not None and (parts or info.exposure_bias):
        ev = info.exposure_bias
        parts.append("0 EV" if abs(ev) < 0.05 else f"{ev:+.1f} EV")
    if parts:
        lines.append(" · ".join(parts))
    return lines


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
    lens = _text(sub.get(0xA434) or exif.get(0xA434))  # LensModel
    lens_make = _text(sub.get(0xA433))
    if lens and lens_make and not lens.lower().startswith(lens_make.split()[0].lower()):
        lens = f"{lens_make} {lens}"
    iso = _num(sub.get(0x8827, exif.get(0x8827)))  # ISOSpeedRatings / PhotographicSensitivity
    return ExifInfo(t, bias, cam, w, h, lens=lens, focal_length=_num(sub.get(0x920A, exif.get(0x920A))),
                    exposure_time=_num(sub.get(0x829A, exif.get(0x829A))),
                    f_number=_num(sub.get(0x829D, exif.get(0x829D))), iso=int(iso) if iso else None)


def read_exif(path: os.PathLike | str) -> ExifInfo:
    """Capture time, exposure bias and camera from EXIF; empty on any problem."""
    try:
        check_readable(path)
        with Image.open(path) as im:
            return info_from_exif(im.getexif(), *im.size)
    except Exception as exc:  # noqa: BLE001 - EXIF is optional; never fail a photo for it
        log.debug("no EXIF for %s: %s", path, exc)
        return ExifInfo()


def exif_thumbnail(path: os.PathLike | str) -> Image.Image | None:
    """The JPEG thumbnail embedded in EXIF (IFD1), upright, or None.  Very fast."""
    try:
        check_readable(path)
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
            return to_rgb(thumb)
    except Exception:  # noqa: BLE001 - a missing or broken thumbnail is not an error
        return None


def _info_from_exif(exif: Image.Exif, w: int | None, h: int | None) -> ExifInfo:
    """As :func:`images.info_from_exif`; sizes from LibRaw are already upright."""
    return info_from_exif(exif, w, h, rotate=False)


def _tiff_exif(path: Path) -> ExifInfo | None:
    """EXIF of a TIFF-structured RAW (DNG, CR2, NEF, ARW, PEF, ORF, RW2, ...), read
    straight from the file's IFDs without loading the image data."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8 or head[:2] not in (b"II", b"MM"):
            return None
        endian = "<" if head[:2] == b"II" else ">"
        (ifd0,) = struct.unpack(endian + "I", head[4:8])
        exif = Image.Exif()
        exif.endian = endian
        exif.bigtiff = False
        # ORF ("IIRO"), RW2 ("IIU\0") use their own magic numbers; given an offset
        # Pillow takes the byte order only and does not check the magic.
        exif.load_from_fp(f, ifd0)
        info = _info_from_exif(exif, None, None)
    return info


def _thumb_exif(raw: rawpy.RawPy) -> ExifInfo | None:
    """EXIF of the embedded JPEG preview (RAF, CR3, RW2 previews carry one)."""
    try:
        thumb = raw.extract_thumb()
    except rawpy.LibRawError:
        return None
    if thumb.format != rawpy.ThumbFormat.JPEG:
        return None
    with Image.open(io.BytesIO(thumb.data)) as im:
        return _info_from_exif(im.getexif(), None, None)


def read_raw_exif(path: os.PathLike | str) -> ExifInfo:
    """Capture time, exposure bias, camera and upright size of a RAW; best effort.

    TIFF-based RAWs are read from their IFDs; others from the embedded preview's EXIF;
    LibRaw's own (whole-second) timestamp is the last resort.  Empty on any problem.
    """
    path = Path(path)
    try:
        check_readable(path)
    except ImageError as exc:
        log.debug("no EXIF for %s: %s", path, exc)
        return ExifInfo()
    info: ExifInfo | None = None
    try:
        info = _tiff_exif(path)
    except Exception as exc:  # noqa: BLE001 - EXIF is optional; never fail a photo for it
        log.debug("no TIFF EXIF in %s: %s", path, exc)
    w = h = None
    try:
        with rawpy.imread(str(path)) as raw:
            s = raw.sizes
            w, h = (s.height, s.width) if s.flip in (4, 5, 6, 7) else (s.width, s.height)
            if info is None or info.capture_time is None:
                try:
                    info = _thumb_exif(raw) if info is None else _merge(info, _thumb_exif(raw))
                except Exception as exc:  # noqa: BLE001
                    log.debug("no preview EXIF in %s: %s", path, exc)
            if info is None or info.capture_time is None:
                ts = raw.other.timestamp  # whole seconds; LibRaw's reading of the same tag
                if ts is not None and ts.year > 1970:
                    info = _merge(info or ExifInfo(), ExifInfo(capture_time=ts.timestamp()))
    except Exception as exc:  # noqa: BLE001 - rawpy errors and anything else: best effort
        log.debug("LibRaw cannot read %s: %s", path, exc)
    info = info or ExifInfo()
    return replace(info, width=w or info.width, height=h or info.height)


def _merge(a: ExifInfo, b: ExifInfo | None) -> ExifInfo:
    if b is None:
        return a
    return ExifInfo(**{f.name: getattr(a, f.name) if getattr(a, f.name) is not None else getattr(b, f.name)
                       for f in fields(ExifInfo)})


def read_any_exif(path: os.PathLike | str) -> ExifInfo:
    """:func:`read_raw_exif` for RAW files, :func:`images.read_exif` otherwise (HEIC included)."""
    if Path(path).suffix.lower() in RAW_EXTENSIONS:
        return read_raw_exif(path)
    return read_exif(path)
