"""XMP inside the photo: ratings, colour labels and rejects written into JPEG, TIFF and DNG.

Why
---
Lightroom Classic reads XMP sidecars only for proprietary RAW files (CR2, NEF, ARW ...).
For JPEG, TIFF and DNG (also PSD and PNG) it reads, and with "Automatically write changes
into XMP" writes, the XMP packet *inside* the file; an ``IMG_1.xmp`` beside an
``IMG_1.JPG`` is ignored.  Photo Mechanic, Bridge and digiKam do the same (digiKam and
darktable read sidecars too).  So a rating made in photocull reaches Lightroom for these
files only when it is written into them.  This is an option, off by default: it changes
the original file (its metadata, never its pixels).

HEIC / HEIF are not written here: their XMP lives in a ``mime`` item of the ISO-BMFF box
tree (``meta``/``iinf``/``iloc``), and adding or growing one means rewriting item offsets
throughout the file.  Lightroom Classic does not write into HEIC files either: it keeps
their metadata in an ``IMG.xmp`` sidecar, as for camera RAW.  It writes into files through
Adobe's XMP Toolkit file handlers, and the toolkit has none for HEIC (a request for one,
adobe/XMP-Toolkit-SDK#32, is open since 2021).  PNG, WebP and proprietary RAW files are
not written to either: the sidecar is where Lightroom looks for RAW, and photocull's
sidecar stays the record for the others.

What is written
---------------
The same values as in the sidecar (:mod:`photocull.media.sidecar`, whose packet builder
this module uses: one XMP writer): ``xmp:Rating`` (-1 reject, 0..5), ``xmp:Label`` and
``photocull:Pick``; everything else in the packet (Lightroom's develop settings, keywords,
other programs' namespaces) is kept.  :func:`xmp_marks` maps a photocull mark to them,
with the ``pick_as`` setting (:func:`parse_pick_as`) for programs that cannot see
``photocull:Pick``, and with ``photocull:RatingBeforeReject`` so that a reject, which must
be ``xmp:Rating=-1`` for everyone else, does not lose the stars in the file.

How, losslessly
---------------
* JPEG: the standard XMP APP1 segment (``http://ns.adobe.com/xap/1.0/\\0`` + packet) is
  replaced, or inserted after the leading APP0 (JFIF) / APP1 (Exif) segments.  Every other
  segment and the entropy-coded data (from the first SOS to the end of the file) are
  copied byte for byte.  The packet must fit in one segment (:data:`MAX_JPEG_PACKET`);
  Extended XMP segments are kept as they are.  A multi-picture JPEG (MPO, Ultra HDR) finds
  its other images at offsets counted from its MPF segment: a new packet goes before that
  segment (everything after it moves together), and one that already sits after it keeps
  its size (padded; refused if it would grow).
* TIFF and DNG: XMP is tag 700 (type BYTE or UNDEFINED) of IFD0.  Nothing in the file
  moves: the new packet is written over the old one when it fits, else where the old one
  ended the file, else appended at the end, and the tag's count and offset are patched.
  When IFD0 has no tag 700, a copy of IFD0 with it (entries sorted by tag) is appended
  and the header points at it.  Both byte orders; BigTIFF is refused.

Safety
------
The new file is written to a hidden temporary file in the photo's folder
(``.IMG_1.JPG.1a2b3c4d.embed.tmp``: no photo extension, so never listed as a photo; a
killed writer's leftovers match :data:`TEMP_NAME` and are swept by the callers), fsynced,
read back and checked (its bytes hash to what was meant; its structure parses again with
every other segment / IFD0 entry unchanged; its XMP holds the new values and all the
foreign metadata of the old packet), and only then moved over the original with
``os.replace``: a kill at any moment leaves the original or the complete new file, never
a damaged one.  A photo that changed on disk meanwhile is left alone.  The permissions
are kept.  The modification time is *not*: the file did change, and Lightroom compares it
to notice "metadata changed on disk", as backup tools do (Lightroom itself updates it when
it writes XMP into a file).  A link is followed: the file it points to is changed.
Nothing is written when the packet already holds the values.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from photocull.media import sidecar
from photocull.media.fileops import discard_temp, fit_stem, fsync_folder, sha256_of
from photocull.media.sidecar import KEEP, SidecarData, SidecarError

log = logging.getLogger(__name__)

JPEG_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe"})
TIFF_EXTENSIONS = frozenset({".tif", ".tiff", ".dng"})
EMBED_EXTENSIONS = JPEG_EXTENSIONS | TIFF_EXTENSIONS

JPEG_XMP_ID = b"http://ns.adobe.com/xap/1.0/\x00"
# An APP1 segment holds at most 65533 bytes after its length field; less the 29-byte
# namespace that is 65504.  We keep under 65502, the figure some tools quote (a margin).
MAX_JPEG_PACKET = 65501
XMP_TAG = 700
TEMP_SUFFIX = ".embed.tmp"
#: Names of the temporary files this module writes (for the leftovers sweep).
TEMP_NAME = re.compile(r"\.[^/\\]+\.[0-9a-f]{8}" + re.escape(TEMP_SUFFIX), re.S)
COPY_CHUNK = 1 << 20
MAX_HEADER_SEGMENTS = 4096  # segments before the image data; real JPEGs have a dozen

_XMP_TYPES = {1, 7}  # BYTE, UNDEFINED
MAX_IFD_ENTRIES = 4096


class EmbedError(Exception):
    """A photo whose XMP could not be written (refused, or the write did not verify); the
    photo is then exactly as it was.  ``str(exc)`` is the reason, one line."""


def can_embed(photo: os.PathLike | str) -> bool:
    """Whether photocull writes XMP into this kind of file (by its extension)."""
    return os.path.splitext(os.fspath(photo))[1].lower() in EMBED_EXTENSIONS


def why_not_embedded(photo: os.PathLike | str) -> str | None:
    """None for a file photocull can write XMP into, else why not (a short phrase)."""
    ext = Path(photo).suffix.lower()
    if ext in EMBED_EXTENSIONS:
        return None
    if ext in (".heic", ".heif", ".hif"):
        return "HEIC/HEIF: XMP is not written into these (Lightroom keeps theirs in a sidecar too)"
    from photocull.media.loaders import RAW_EXTENSIONS

    if ext in RAW_EXTENSIONS:
        return "RAW: other programs read its XMP sidecar, never XMP inside it"
    return f"{ext[1:].upper() or 'no extension'}: photocull does not write XMP into these"


# --------------------------------------------------------------------------- marks -> XMP

@dataclass(frozen=True)
class PickAs:
    """How a pick is shown to programs that cannot read ``photocull:Pick``."""

    label: str | None = None  # a colour label for picks without one
    stars: int = 0  # a star floor: a pick with fewer stars gets this many

    def __str__(self) -> str:
        return f"label:{self.label}" if self.label else f"stars:{self.stars}" if self.stars else "none"


_LABEL_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9 _-]{0,31}")
PICK_AS_HELP = ('"none" (photocull:Pick only), "label:COLOUR" (a pick without a colour label gets COLOUR, '
                'e.g. label:Green) or "stars:N" (a pick with fewer than N stars gets N, 1..5)')


def parse_pick_as(text: str) -> PickAs:
    """``"none"``, ``"label:Green"`` or ``"stars:3"`` (case-insensitive); ValueError otherwise."""
    t = (text or "").strip()
    kind, _, value = t.partition(":")
    kind, value = kind.strip().lower(), value.strip()
    if kind == "none" and not value:
        return PickAs()
    if kind == "label" and _LABEL_TEXT.fullmatch(value):
        return PickAs(label=value[:1].upper() + value[1:].lower() if value.isalpha() else value)
    if kind == "stars" and value.isdigit() and 1 <= int(value) <= 5:
        return PickAs(stars=int(value))
    raise ValueError(f"pick_as must be {PICK_AS_HELP}; not {text!r}")


def xmp_marks(flag: int, rating: int, label: str | None, pick_as: PickAs | str = "none") -> dict:
    """The XMP values of a photocull mark, as keyword arguments of :func:`write_embedded`
    (or :func:`~photocull.media.sidecar.write_sidecar`).

    ``flag``: 1 pick, 0 none, -1 reject; ``rating``: 0..5, the stars (a rejected photo keeps
    them in the catalog).  A reject is ``xmp:Rating=-1`` (what every program reads) with the
    stars kept as ``photocull:RatingBeforeReject``; a pick is ``photocull:Pick="1"`` and,
    with ``pick_as``, also a colour label (only when the photo has none: a label the user
    chose is never overwritten) or a star floor.  Un-picking writes the photo's own stars
    and label back."""
    pa = parse_pick_as(pick_as) if isinstance(pick_as, str) else pick_as
    if flag < 0:
        return dict(rating=-1, pick=-1, label=label,
                    photocull={"RatingBeforeReject": str(rating) if rating > 0 else None})
    if flag > 0:
        if pa.stars:
            rating = max(rating, pa.stars)
        if pa.label and not label:
            label = pa.label
    return dict(rating=rating, pick=1 if flag > 0 else None, label=label, photocull={"RatingBeforeReject": None})


def marks_of(sd: SidecarData) -> tuple[int, int, str | None]:
    """(flag, stars, label) from XMP that :func:`xmp_marks` wrote (or another program did):
    a reject gets back the stars it had (``photocull:RatingBeforeReject``)."""
    if sd.pick == -1 or (sd.rating is not None and sd.rating < 0):
        try:
            stars = int(sd.photocull.get("RatingBeforeReject", "0"))
        except ValueError:
            stars = 0
        return -1, stars if 0 <= stars <= 5 else 0, sd.label
    return (1 if sd.pick == 1 else 0), max(sd.rating or 0, 0), sd.label


# --------------------------------------------------------------------------- file layouts

# A new file is described as pieces: bytes to write, or (offset, length) of the original.


def _read_at(f: BinaryIO, offset: int, n: int) -> bytes:
    f.seek(offset)
    b = f.read(n)
    if len(b) != n:
        raise EmbedError(f"truncated: {n} bytes expected at offset {offset}")
    return b


@dataclass
class _Jpeg:
    """The segments before the first SOS (raw bytes, fill bytes included) and where the
    image data starts; ``xmp``: index of the standard XMP APP1 segment, or None."""

    segments: list[tuple[int, bytes]]  # (marker, raw bytes)
    scan_start: int
    size: int
    xmp: int | None = None

    @property
    def packet(self) -> bytes | None:
        if self.xmp is None:
            return None
        raw = self.segments[self.xmp][1]
        return raw[raw.index(JPEG_XMP_ID) + len(JPEG_XMP_ID):]

    def others(self) -> list[tuple[int, bytes]]:
        return [s for i, s in enumerate(self.segments) if i != self.xmp]


def _jpeg_layout(f: BinaryIO, size: int) -> _Jpeg:
    if _read_at(f, 0, 2) != b"\xff\xd8":
        raise EmbedError("not a JPEG (no start-of-image marker)")
    segments: list[tuple[int, bytes]] = []
    pos = 2
    xmp = None
    while True:
        if len(segments) >= MAX_HEADER_SEGMENTS:
            raise EmbedError(f"more than {MAX_HEADER_SEGMENTS} segments before the image data: refused")
        start = pos
        f.seek(pos)
        b = f.read(1)
        if b != b"\xff":
            raise EmbedError(f"not a well-formed JPEG (no marker at offset {pos})")
        while b == b"\xff":  # fill bytes
            b = f.read(1)
            pos += 1
        if not b:
            raise EmbedError("truncated JPEG: no image data")
        marker = b[0]
        pos += 1
        if marker == 0xDA:  # start of scan: from here on, copied byte for byte
            return _Jpeg(segments, start, size, xmp)
        if marker == 0xD9:
            raise EmbedError("not a well-formed JPEG (end of image before any image data)")
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone markers (no length)
            segments.append((marker, _read_at(f, start, pos - start)))
            continue
        (length,) = struct.unpack(">H", _read_at(f, pos, 2))
        if length < 2 or pos + length > size:
            raise EmbedError(f"not a well-formed JPEG (bad segment length at offset {pos})")
        pos += length
        raw = _read_at(f, start, pos - start)
        if marker == 0xE1 and raw[len(raw) - length + 2:].startswith(JPEG_XMP_ID):
            if xmp is not None:
                raise EmbedError("two XMP segments in one JPEG: which one counts is unclear, refused")
            xmp = len(segments)
        segments.append((marker, raw))


def _mpf_before(lay: _Jpeg, index: int) -> bool:
    """Whether a multi-picture index (APP2 ``MPF``) comes before segment ``index``."""
    return any(m == 0xE2 and raw.split(b"\xe2", 1)[1][2:6] == b"MPF\x00" for m, raw in lay.segments[:index])


def _jpeg_pieces(lay: _Jpeg, packet: bytes) -> list:
    if len(packet) > MAX_JPEG_PACKET:
        raise EmbedError(f"the XMP would be {len(packet)} bytes, more than one JPEG segment holds "
                         f"({MAX_JPEG_PACKET}): not written")
    raws = [raw for _, raw in lay.segments]
    if lay.xmp is not None and _mpf_before(lay, lay.xmp):
        # A multi-picture JPEG (MPO, Ultra HDR...) finds its other images at offsets counted from
        # its MPF segment: nothing between that segment and them may change size.
        old = len(lay.packet)
        if len(packet) > old:
            raise EmbedError(f"its XMP sits after the multi-picture (MPF) index and would grow from {old} to "
                             f"{len(packet)} bytes, which would break the index: not written")
        packet = _padded(packet, old)
    body = JPEG_XMP_ID + packet
    seg = b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    if lay.xmp is not None:
        raws[lay.xmp] = seg
    else:
        at = 0
        while at < len(lay.segments) and lay.segments[at][0] in (0xE0, 0xE1):
            at += 1  # after JFIF (APP0) and Exif (APP1), where other programs put it
        raws.insert(at, seg)
    return [b"\xff\xd8" + b"".join(raws), (lay.scan_start, lay.size - lay.scan_start)]


@dataclass
class _Tiff:
    bo: str  # "<" (II) or ">" (MM)
    ifd0: int
    entries: list[tuple[int, int, int, bytes]]  # (tag, type, count, 4-byte value field)
    next_ifd: int
    size: int
    xmp: int | None = None  # index in entries
    packet: bytes | None = None
    packet_at: int | None = None  # file offset of the packet (None when inline or absent)


def _tiff_layout(f: BinaryIO, size: int) -> _Tiff:
    head = _read_at(f, 0, 8) if size >= 8 else b""
    if head[:4] in (b"II+\x00", b"MM\x00+"):
        raise EmbedError("BigTIFF: photocull does not write XMP into these (the sidecar has the marks)")
    if head[:4] == b"II*\x00":
        bo = "<"
    elif head[:4] == b"MM\x00*":
        bo = ">"
    else:
        raise EmbedError("not a TIFF/DNG file (bad header)")
    (ifd0,) = struct.unpack(bo + "I", head[4:8])
    if ifd0 < 8 or ifd0 + 2 > size:
        raise EmbedError("not a well-formed TIFF (IFD0 outside the file)")
    (n,) = struct.unpack(bo + "H", _read_at(f, ifd0, 2))
    if not 0 < n <= MAX_IFD_ENTRIES or ifd0 + 2 + 12 * n + 4 > size:
        raise EmbedError("not a well-formed TIFF (IFD0 has a bad entry count)")
    raw = _read_at(f, ifd0 + 2, 12 * n + 4)
    entries = []
    xmp = None
    for i in range(n):
        tag, typ, count = struct.unpack(bo + "HHI", raw[12 * i:12 * i + 8])
        entries.append((tag, typ, count, raw[12 * i + 8:12 * i + 12]))
        if tag == XMP_TAG:
            if xmp is not None:
                raise EmbedError("two XMP tags in IFD0: which one counts is unclear, refused")
            if typ not in _XMP_TYPES:
                raise EmbedError(f"its XMP tag has type {typ}, not BYTE or UNDEFINED: refused")
            xmp = i
    (next_ifd,) = struct.unpack(bo + "I", raw[12 * n:])
    lay = _Tiff(bo, ifd0, entries, next_ifd, size, xmp)
    if xmp is not None:
        _, _, count, value = entries[xmp]
        if count <= 4:
            lay.packet = value[:count]
        else:
            (off,) = struct.unpack(bo + "I", value)
            if off + count > size or count > sidecar.MAX_SIDECAR_BYTES:
                raise EmbedError("its XMP tag points outside the file: refused")
            lay.packet, lay.packet_at = _read_at(f, off, count), off
    return lay


def _entry(bo: str, tag: int, typ: int, count: int, offset: int) -> bytes:
    return struct.pack(bo + "HHII", tag, typ, count, offset)


def _padded(packet: bytes, size: int) -> bytes:
    """``packet`` grown to ``size`` bytes with the whitespace the XMP packet wrapper allows
    before its ``<?xpacket end?>`` (after the packet when it has no wrapper)."""
    pad = b" " * (size - len(packet))
    m = re.search(rb"<\?xpacket\s+end=[^>]*\?>\s*\Z", packet)
    return packet[:m.start()] + pad + packet[m.start():] if m else packet + pad


def _tiff_pieces(lay: _Tiff, packet: bytes) -> list:
    bo, n = lay.bo, len(lay.entries)
    patches: list[tuple[int, bytes]] = []  # (offset, bytes) over the original
    cut = lay.size  # the original is kept up to here
    tail = b""
    if lay.xmp is not None:
        tag, typ, count, _ = lay.entries[lay.xmp]
        at = lay.packet_at
        if at is not None and len(packet) <= count:  # over the old packet, padded to its size
            off = at
            packet = _padded(packet, count)
            patches.append((at, packet))
        elif at is not None and at + count == lay.size and at % 2 == 0:  # the old one ended the file: ours does
            off, cut, tail = at, at, packet
        else:
            pad = lay.size % 2  # TIFF offsets are word-aligned
            off = lay.size + pad
            tail = b"\x00" * pad + packet
        patches.append((lay.ifd0 + 2 + 12 * lay.xmp, _entry(bo, tag, typ, len(packet), off)))
    else:
        pad = lay.size % 2
        new_ifd = lay.size + pad
        ifd_len = 2 + 12 * (n + 1) + 4
        off = new_ifd + ifd_len
        entries = [(t, ty, c, v) for t, ty, c, v in lay.entries]
        entries.append((XMP_TAG, 1, len(packet), struct.pack(bo + "I", off)))
        entries.sort(key=lambda e: e[0])  # stable: equal tags keep their order
        ifd = (struct.pack(bo + "H", n + 1)
               + b"".join(struct.pack(bo + "HHI", t, ty, c) + v for t, ty, c, v in entries)
               + struct.pack(bo + "I", lay.next_ifd))
        tail = b"\x00" * pad + ifd + packet
        patches.append((4, struct.pack(bo + "I", new_ifd)))
    if cut + len(tail) >= 1 << 32:
        raise EmbedError("the file would pass 4 GB, more than a (non-Big) TIFF can address: refused")
    pieces: list = []
    pos = 0
    for at, data in sorted(patches):
        if at > pos:
            pieces.append((pos, at - pos))
        pieces.append(data)
        pos = at + len(data)
    if cut > pos:
        pieces.append((pos, cut - pos))
    if tail:
        pieces.append(tail)
    return pieces


def _layout(f: BinaryIO, size: int, ext: str):
    try:
        return _jpeg_layout(f, size) if ext in JPEG_EXTENSIONS else _tiff_layout(f, size)
    except struct.error as exc:
        raise EmbedError(f"not a well-formed {'JPEG' if ext in JPEG_EXTENSIONS else 'TIFF'} ({exc})") from None


def _other_entries(lay: _Tiff) -> list[tuple[int, int, int, bytes]]:
    return sorted(e for i, e in enumerate(lay.entries) if i != lay.xmp)


def _same_structure(old, new, ext: str) -> str | None:
    """Why ``new`` (a layout of the written file) is not ``old`` with only its XMP changed."""
    if ext in JPEG_EXTENSIONS:
        if old.others() != new.others():
            return "a segment other than the XMP changed"
        if new.xmp is None:
            return "no XMP segment"
        return None
    if (old.bo, old.next_ifd) != (new.bo, new.next_ifd):
        return "the TIFF header or IFD chain changed"
    if new.xmp is None:
        return "no XMP tag"
    if _other_entries(old) != _other_entries(new):
        return "an IFD0 entry other than the XMP changed"
    return None


def _range_hash(f: BinaryIO, offset: int, length: int) -> str:
    h = hashlib.sha256()
    f.seek(offset)
    while length > 0:
        b = f.read(min(COPY_CHUNK, length))
        if not b:
            break
        h.update(b)
        length -= len(b)
    return h.hexdigest()


# --------------------------------------------------------------------------- reading

def read_embedded_packet(photo: os.PathLike | str) -> bytes | None:
    """The raw XMP packet inside a JPEG, TIFF or DNG (None when it has none); EmbedError
    for a file that cannot be read as one of these."""
    p = Path(photo)
    ext = p.suffix.lower()
    if ext not in EMBED_EXTENSIONS:
        raise EmbedError(why_not_embedded(p))
    try:
        with open(p, "rb") as f:
            return _layout(f, os.fstat(f.fileno()).st_size, ext).packet
    except OSError as exc:
        raise EmbedError(f"cannot read: {exc.strerror or exc}") from exc


HEAD_READ = 4096  # bytes read at a time by :func:`may_hold_xmp`


def may_hold_xmp(photo: os.PathLike | str) -> bool:
    """A quick look at a JPEG's segment headers (a few small reads) for whether it can
    hold an XMP packet: False only when its headers reach the image data without the XMP
    segment's identifier; True for anything else (then :func:`read_embedded_packet` reads
    properly).  Opening a 10,000-photo shoot looks at every JPEG this way (~36 us each)."""
    if os.path.splitext(os.fspath(photo))[1].lower() not in JPEG_EXTENSIONS:
        return True
    try:
        with open(photo, "rb", buffering=0) as f:
            buf, base = f.read(HEAD_READ), 0

            def at(pos: int, n: int) -> bytes:
                nonlocal buf, base
                if pos < base or pos + n > base + len(buf):
                    f.seek(pos)
                    buf, base = f.read(max(n, HEAD_READ)), pos
                return buf[pos - base:pos - base + n]

            if at(0, 2) != b"\xff\xd8":
                return True
            pos = 2
            for _ in range(MAX_HEADER_SEGMENTS):
                h = at(pos, 4)
                if len(h) < 2 or h[0] != 0xFF:
                    return True
                marker = h[1]
                if marker == 0xFF:  # a fill byte
                    pos += 1
                elif marker == 0xDA:
                    return False  # the image data: the headers held no XMP
                elif marker == 0x01 or 0xD0 <= marker <= 0xD7:
                    pos += 2
                elif len(h) < 4:
                    return True
                elif marker == 0xE1 and at(pos + 4, len(JPEG_XMP_ID)) == JPEG_XMP_ID:
                    return True
                else:
                    pos += 2 + struct.unpack(">H", h[2:4])[0]
    except OSError:
        pass
    return True


def _clean(packet: bytes | None) -> bytes | None:
    # some writers end the packet with NULs (a C string)
    return None if packet is None else packet.rstrip(b"\x00")


def read_embedded(photo: os.PathLike | str) -> SidecarData:
    """What the XMP inside ``photo`` says (empty without one).  EmbedError / SidecarError
    for a file or packet that cannot be read."""
    packet = _clean(read_embedded_packet(photo))
    return SidecarData() if packet is None else sidecar.read_packet(packet, Path(photo))


# --------------------------------------------------------------------------- writing

def _write_chunk(out: BinaryIO, data: bytes) -> None:
    """Every byte of the new file goes through here (the kill tests slow it down)."""
    out.write(data)


def _temp_beside(path: Path) -> tuple[Path, int]:
    stem = fit_stem(path.name, [".01234567" + TEMP_SUFFIX], "", 254)
    for _ in range(100):
        tmp = path.with_name(f".{stem}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        except FileExistsError:
            continue
    raise OSError(f"no free temporary name beside {path}")


def _replace_verified(path: Path, before: os.stat_result, pieces: list, verify: Callable[[Path], None]) -> None:
    """Write ``pieces`` (of ``path`` as ``before`` saw it) to a temporary file beside it,
    fsync, check it (its bytes are the ones meant, then ``verify``), then ``os.replace`` it
    over ``path`` (both files closed by then: Windows cannot replace an open file)."""
    tmp, fd = _temp_beside(path)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
            fd = -1
            for piece in pieces:
                if isinstance(piece, bytes):
                    _write_chunk(out, piece)
                    h.update(piece)
                    continue
                offset, length = piece
                src.seek(offset)
                while length > 0:
                    b = src.read(min(COPY_CHUNK, length))
                    if not b:
                        raise EmbedError("the file got shorter while being read: left as it was")
                    _write_chunk(out, b)
                    h.update(b)
                    length -= len(b)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, stat.S_IMODE(before.st_mode))
        if sha256_of(tmp) != h.hexdigest():
            raise EmbedError("the written copy does not read back as written: the original was left as it was")
        verify(tmp)
        now = os.stat(path)
        if (now.st_mtime_ns, now.st_size, now.st_ino) != (before.st_mtime_ns, before.st_size, before.st_ino):
            raise EmbedError("the file changed on disk meanwhile: left as it was; try again")
        os.replace(tmp, path)
        tmp = None
    finally:
        discard_temp(fd, tmp)
    fsync_folder(path)


def write_embedded(
    photo: os.PathLike | str,
    *,
    rating=KEEP,
    label=KEEP,
    pick=KEEP,
    photocull: dict[str, str | None] | None = None,
) -> bool:
    """Set XMP values inside a JPEG, TIFF or DNG, as :func:`~photocull.media.sidecar.write_sidecar`
    does in a sidecar (same arguments and rules; the rest of the packet is kept).

    Returns True when the file was rewritten, False when its XMP already held the values
    (the file is not touched).  Raises :class:`EmbedError` (refused, or the write did not
    verify: the photo is as it was) or :class:`~photocull.media.sidecar.SidecarError`
    (its packet is unsafe or not XMP: left alone)."""
    given = Path(photo)
    ext = given.suffix.lower()
    if ext not in EMBED_EXTENSIONS:
        raise EmbedError(why_not_embedded(given))
    path = Path(os.path.realpath(given))  # a link stays a link: the file it points to changes
    try:
        before = os.stat(path)
        if not stat.S_ISREG(before.st_mode):
            raise EmbedError("not a regular file: refused")
        with open(path, "rb") as f:
            old = _layout(f, before.st_size, ext)
            old_packet = _clean(old.packet)
            update = sidecar.build_packet(old_packet, given, rating=rating, label=label, pick=pick,
                                          photocull=photocull)
            want = update.expected
            if old_packet is not None:
                cur = sidecar.read_packet(old_packet, given)
                if (cur.rating, cur.label, cur.pick, cur.photocull) == (want.rating, want.label, want.pick,
                                                                      want.photocull):
                    return False
            elif not (want.rating or want.label or want.pick or any(want.photocull.values())):
                return False  # no XMP and nothing to say: the photo is not touched
            if ext in JPEG_EXTENSIONS:
                pieces = _jpeg_pieces(old, update.data)
                tail_hash = _range_hash(f, old.scan_start, old.size - old.scan_start)
            else:
                pieces = _tiff_pieces(old, update.data)

        def verify(tmp: Path) -> None:
            with open(tmp, "rb") as g:
                new = _layout(g, os.fstat(g.fileno()).st_size, ext)
                why = _same_structure(old, new, ext)
                if why is None and ext in JPEG_EXTENSIONS and \
                        _range_hash(g, new.scan_start, new.size - new.scan_start) != tail_hash:
                    why = "the image data changed"
            if why is not None:
                raise EmbedError(f"the written copy failed its check ({why}): the original was left as it was")
            sidecar.check_packet(new.packet, update, given)

        _replace_verified(path, before, pieces, verify)
    except OSError as exc:
        raise EmbedError(f"could not write its XMP: {exc.strerror or exc}") from exc
    log.debug("wrote XMP into %s (rating=%r label=%r pick=%r)", given, update.expected.rating,
              update.expected.label, update.expected.pick)
    return True


def embed_marks(photo: os.PathLike | str, flag: int, rating: int, label: str | None, *,
                pick_as: PickAs | str = "none") -> bool:
    """Write a photocull mark (``flag`` 1/0/-1, ``rating`` 0..5, ``label``) into the XMP
    inside ``photo``, mapped by :func:`xmp_marks`.  Same returns and errors as
    :func:`write_embedded`."""
    return write_embedded(photo, **xmp_marks(flag, rating, label, pick_as))


@dataclass
class EmbedReport:
    written: list[Path] = field(default_factory=list)  # rewritten with the new values
    unchanged: list[Path] = field(default_factory=list)  # already held them: not touched
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # cannot hold embedded XMP: the sidecar only
    problems: list[tuple[Path, str]] = field(default_factory=list)  # refused or failed: left as they were


# what writing into one photo may raise: a per-file problem, never the end of the work
EMBED_PROBLEMS = (EmbedError, SidecarError, OSError, ValueError, LookupError, RecursionError, MemoryError)


def embed_many(items: Iterable[tuple[os.PathLike | str, int, int, str | None, Iterable[os.PathLike | str]]], *,
               pick_as: PickAs | str = "none") -> EmbedReport:
    """:func:`embed_marks` for each (photo, flag, rating, label, companions): the photo and
    its companions that can hold XMP (a DNG or TIFF twin); the others are ``skipped``, to
    be covered by their sidecar.  Companions that are sidecars are ignored."""
    pa = parse_pick_as(pick_as) if isinstance(pick_as, str) else pick_as
    rep = EmbedReport()
    for photo, flag, rating, label, comps in items:
        for target in [Path(photo), *(Path(c) for c in comps if Path(c).suffix.lower() != ".xmp")]:
            why = why_not_embedded(target)
            if why is not None:
                rep.skipped.append((target, why))
                continue
            try:
                (rep.written if embed_marks(target, flag, rating, label, pick_as=pa) else rep.unchanged).append(target)
            except EMBED_PROBLEMS as exc:
                rep.problems.append((target, str(exc) or type(exc).__name__))
    return rep
