"""HEIC/HEIF and camera RAW loaders, RAW EXIF, and RAW+JPEG pairing.

Imported at the end of :mod:`photocull.core.images` so that the loaders register
whenever ``images`` is imported.  This module imports from ``images`` (never the other
way round at import time), so there is no import cycle.

RAW files are decoded from the camera's embedded JPEG preview (fast, and it is what
the photographer saw on the camera's screen), turned upright with LibRaw's orientation;
when a file has no usable preview, LibRaw demosaics it at half size.
"""
from __future__ import annotations

import io
import logging
import os
import struct
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pillow_heif
import rawpy
from PIL import ExifTags, Image, UnidentifiedImageError

from .images import ExifInfo, ImageError, _finish, info_from_exif, read_exif, register_loader

log = logging.getLogger(__name__)

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


# --- HEIC / HEIF ----------------------------------------------------------------------

@register_loader(*sorted(HEIF_EXTENSIONS))
def load_heif(path: Path, max_side: int | None = None) -> Image.Image:
    """HEIC/HEIF through pillow-heif (libheif); upright, RGB."""
    try:
        with Image.open(path) as im:
            if max_side and im.format == "JPEG":  # a JPEG named .heic (some exports) still decodes
                im.draft("RGB", (max_side, max_side))
            im.load()
            return _finish(im, max_side)
    except (UnidentifiedImageError, ImageError):
        raise
    except ValueError as exc:  # libheif reports corrupt/truncated data as ValueError
        raise ImageError(f"corrupt or truncated HEIF file ({str(exc).strip()})") from None
    except RuntimeError as exc:
        raise ImageError(f"cannot decode HEIF file ({str(exc).strip()})") from None


# --- camera RAW -----------------------------------------------------------------------

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
    """Make ``im`` carry ``orientation`` so that ``_finish`` (exif_transpose) applies it,
    replacing any Orientation the preview had of its own."""
    im.getexif()[_ORIENTATION] = orientation


def _raw_preview(raw: rawpy.RawPy, max_side: int | None) -> Image.Image | None:
    """The embedded preview, oriented like the RAW; None when missing or too small."""
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    except rawpy.LibRawError as exc:  # a damaged preview: the sensor data may still be fine
        log.debug("RAW preview unreadable: %s", _libraw_reason(exc))
        return None
    need = min(max_side or _PREVIEW_ENOUGH, _PREVIEW_ENOUGH) // 2
    try:
        if thumb.format == rawpy.ThumbFormat.JPEG:
            im = Image.open(io.BytesIO(thumb.data))
            if max(im.size) < need:
                return None
            if max_side and im.format == "JPEG":
                im.draft("RGB", (max_side, max_side))
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
    # any) is honoured by _finish.
    orientation = _FLIP_TO_ORIENTATION.get(raw.sizes.flip, 1)
    if orientation != 1:
        _set_orientation(im, orientation)
    return im


def _raw_demosaic(raw: rawpy.RawPy) -> Image.Image:
    # LibRaw applies the file's orientation itself when it renders.
    rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
    return Image.fromarray(np.ascontiguousarray(rgb))


@register_loader(*sorted(RAW_EXTENSIONS))
def load_raw(path: Path, max_side: int | None = None) -> Image.Image:
    """Camera RAW via LibRaw: the embedded JPEG preview, else a half-size demosaic."""
    with _open_raw(path) as raw:
        im = _raw_preview(raw, max_side)
        if im is None:
            try:
                im = _raw_demosaic(raw)
            except MemoryError:
                raise ImageError("not enough memory to decode this RAW file") from None
        return _finish(im, max_side)


# --- RAW EXIF -------------------------------------------------------------------------

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
    return ExifInfo(info.capture_time, info.exposure_bias, info.camera, w or info.width, h or info.height)


def _merge(a: ExifInfo, b: ExifInfo | None) -> ExifInfo:
    if b is None:
        return a
    return ExifInfo(*(x if x is not None else y for x, y in
                      zip((a.capture_time, a.exposure_bias, a.camera, a.width, a.height),
                          (b.capture_time, b.exposure_bias, b.camera, b.width, b.height))))


def read_any_exif(path: os.PathLike | str) -> ExifInfo:
    """:func:`read_raw_exif` for RAW files, :func:`images.read_exif` otherwise (HEIC included)."""
    if Path(path).suffix.lower() in RAW_EXTENSIONS:
        return read_raw_exif(path)
    return read_exif(path)


# --- RAW + JPEG pairs -----------------------------------------------------------------

def _label(path: Path) -> str:
    ext = path.suffix.lower()
    if ext in RAW_EXTENSIONS:
        return "RAW"
    if ext in JPEG_EXTENSIONS:
        return "JPG"
    if ext in HEIF_EXTENSIONS:
        return "HEIF"
    if ext in (".tif", ".tiff"):
        return "TIFF"
    return ext.lstrip(".").upper() or "?"


@dataclass
class Item:
    """One photo as the user culls it: the file shown, plus files that travel with it."""

    primary: Path
    companions: list[Path] = field(default_factory=list)
    kind: str = ""

    @property
    def paths(self) -> list[Path]:
        return [self.primary, *self.companions]


# Rendered files that can stand in for a RAW, best first.
_RENDERED_PREFERENCE = ("JPG", "HEIF")


def pair_raw_jpeg(paths: Iterable[os.PathLike | str]) -> list[Item]:
    """Group files that are one shot: ``IMG_1.CR2`` with ``IMG_1.JPG`` / ``img_1.jpeg``.

    Same folder, same stem (case-insensitive), any case of extension.  A RAW with a JPEG
    (or, lacking one, a HEIF) becomes one item whose primary is the JPEG, kind
    ``"RAW+JPG"``; a lonely RAW is its own item (``"RAW"``); every other file is an item
    of its own (``"JPG"``, ``"HEIF"``, ...).  Only one rendered file joins a RAW; a second
    rendered file with the same stem stays a separate item, so nothing is hidden.
    Items come out in the order of their first file in ``paths``.
    """
    paths = [Path(p) for p in paths]
    labels = [_label(p) for p in paths]
    if "RAW" not in labels:  # the common case, and a fast one for 10,000 files: nothing to pair
        return [Item(p, [], lab) for p, lab in zip(paths, labels)]
    groups: dict[tuple[str, str], list[int]] = {}
    for i, p in enumerate(paths):
        groups.setdefault((os.path.normcase(str(p.parent)), p.stem.casefold()), []).append(i)
    items: list[tuple[int, Item]] = []
    for idx in groups.values():
        raws = [i for i in idx if _label(paths[i]) == "RAW"]
        if not raws:
            items += [(i, Item(paths[i], [], _label(paths[i]))) for i in idx]
            continue
        rendered = None
        for want in _RENDERED_PREFERENCE:
            cands = [i for i in idx if _label(paths[i]) == want]
            if cands:
                # prefer the exact-case stem of a RAW, then .jpg over .jpeg, then input order
                raw_stems = {paths[r].stem for r in raws}
                rendered = min(cands, key=lambda i: (paths[i].stem not in raw_stems,
                                                     paths[i].suffix.lower() != ".jpg", i))
                break
        others = [i for i in idx if i not in raws and i != rendered]
        if rendered is not None:
            items.append((min(rendered, *raws), Item(paths[rendered], [paths[r] for r in raws],
                                                     f"RAW+{_label(paths[rendered])}")))
        else:
            first, *rest = raws
            items.append((first, Item(paths[first], [paths[r] for r in rest], "RAW")))
        items += [(i, Item(paths[i], [], _label(paths[i]))) for i in others]
    items.sort(key=lambda t: t[0])
    return [it for _, it in items]
