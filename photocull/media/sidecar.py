"""XMP sidecars: read and write ratings, colour labels and our figures, keep the rest.

Naming
------
Two conventions live side by side (both found, as Photini does):

* Adobe (Lightroom, Bridge, Capture One, exiftool's usual): ``IMG_1.JPG`` -> ``IMG_1.xmp``
* darktable (also digiKam's option, Photini's alternative): ``IMG_1.JPG`` -> ``IMG_1.JPG.xmp``

The extension may be spelled ``.xmp``, ``.XMP`` or ``.Xmp``; the spelling on disk is
kept.  When **both** sidecars exist, the darktable one (``IMG_1.JPG.xmp``) wins, for
reading and writing.  Its name belongs to exactly this photo, while ``IMG_1.xmp`` is
shared by every photo with that stem: in a RAW+JPEG pair it is the raw's sidecar.
We choose by name and not by mtime: mtimes change whenever a program touches a file,
so "the newer one" could flip between two runs.  Only one sidecar is ever read or
written; the other is left exactly as it is.  When neither exists,
:func:`write_sidecar` creates the ``style`` one (``"adobe"`` by default).

Ratings, rejects and picks
--------------------------
XMP has one standard field for this, ``xmp:Rating``: ``-1`` means rejected, ``0``
unrated, ``1..5`` stars (Lightroom, darktable, digiKam, Bridge and exiftool agree).
Lightroom keeps its pick flag in the catalog only, never in XMP.  So:

* a reject is ``xmp:Rating="-1"``; any sidecar with ``xmp:Rating=-1``, whoever wrote
  it, reads back as rejected (``pick == -1``);
* stars are ``xmp:Rating="N"``;
* a pick is ``photocull:Pick="1"`` in our own namespace; the rating is left alone,
  so a picked photo can keep its stars.  Picking (or unflagging) a rejected photo
  un-rejects it: its rating becomes ``0`` unless a rating is given too.
* a rating that is not a number, or out of range, reads as ``None``.

The colour label is ``xmp:Label`` (text, e.g. ``"Red"``).  Our own figures (score
mean, std, model id, reason ...) are simple properties in the namespace
``http://ns.photocull.org/1.0/`` (prefix ``photocull``).

Keeping what others wrote
-------------------------
The file is parsed into a tree; only our properties are changed, where they already
live (an attribute of an ``rdf:Description`` or a child element, e.g. exiftool's
``<xmp:Rating>3</xmp:Rating>``), new ones becoming attributes of the first
``rdf:Description``.  Everything else (Lightroom's ``crs:*``, darktable's history,
keywords, comments, unknown namespaces with their own prefixes) is written back.
Namespace declarations end up on the root element and attribute layout changes;
names, prefixes and values do not.  The ``<?xpacket?>`` wrapper and an XML
declaration are kept if they were there (padding whitespace is dropped).

Writes are atomic (temporary file in the same folder, fsync, ``os.replace``) and
checked: the saved file is parsed again and must hold the new values and every
foreign element and attribute of the old one, else :class:`SidecarError`.

Parsing uses defusedxml with DTDs forbidden: entity bombs ("billion laughs") and
external entities are refused with :class:`SidecarError`, and so is anything that is
not well-formed XMP.  So are, before any tree is built, a sidecar larger than
:data:`MAX_SIDECAR_BYTES`, nested deeper than :data:`MAX_SIDECAR_DEPTH` or holding more
than :data:`MAX_SIDECAR_ELEMENTS` elements (counted by a streaming pass, without
recursion), and one in an encoding Python cannot decode.  Every
problem reading or parsing a sidecar is a :class:`SidecarError` with the reason (one
message per file for the caller).  A sidecar we cannot read or parse is never overwritten.
"""
from __future__ import annotations

import io
import logging
import math
import os
import re
import stat
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import defusedxml
import defusedxml.ElementTree as DET

from photocull.media.fileops import atomic_write

log = logging.getLogger(__name__)

NS_X = "adobe:ns:meta/"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_XMP = "http://ns.adobe.com/xap/1.0/"
NS_PHOTOCULL = "http://ns.photocull.org/1.0/"

#: Prefixes we want to see in files we write (ElementTree would say ns0, ns1 ...).
COMMON_PREFIXES: dict[str, str] = {
    "x": NS_X,
    "rdf": NS_RDF,
    "xmp": NS_XMP,
    "dc": "http://purl.org/dc/elements/1.1/",
    "crs": "http://ns.adobe.com/camera-raw-settings/1.0/",
    "darktable": "http://darktable.sf.net/",
    "digiKam": "http://www.digikam.org/ns/1.0/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "aux": "http://ns.adobe.com/exif/1.0/aux/",
    "tiff": "http://ns.adobe.com/tiff/1.0/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "xmpMM": "http://ns.adobe.com/xap/1.0/mm/",
    "stEvt": "http://ns.adobe.com/xap/1.0/sType/ResourceEvent#",
    "stRef": "http://ns.adobe.com/xap/1.0/sType/ResourceRef#",
    "photocull": NS_PHOTOCULL,
}

SIDECAR_EXTS = (".xmp", ".XMP", ".Xmp")
STYLES = ("adobe", "darktable")
# darktable keeps its whole edit history (and one copy of every mask per history step) in
# the sidecar, as attributes of flat rdf:li items: heavy edits make a few hundred KB, a few
# MB at most.  Lightroom's are tens of KB.  A 16 MB sidecar of darktable's shape rates in
# ~2.5 s with ~100 MB; the 48.7 MB one took 50 s and 1.8 GB.
MAX_SIDECAR_BYTES = 16 * 1024 * 1024
# xmpmeta > RDF > Description > darktable:history > Seq > li is 6 levels; Lightroom's
# deepest structures (crs:Look > crs:Parameters ...) stay under 15.  ElementTree serialises
# recursively: 1000 levels is a RecursionError.
MAX_SIDECAR_DEPTH = 64
# Parsing (defusedxml's parser calls Python per element), checking and writing back cost
# ~17 us and ~300 bytes per element: 3 million tiny elements in 15 MB took 50 s.  darktable
# writes one rdf:li per history step and mask form: thousands for the heaviest edits.
MAX_SIDECAR_ELEMENTS = 100_000

_RATING = f"{{{NS_XMP}}}Rating"
_LABEL = f"{{{NS_XMP}}}Label"
_PICK = f"{{{NS_PHOTOCULL}}}Pick"
_RDF = f"{{{NS_RDF}}}RDF"
_DESC = f"{{{NS_RDF}}}Description"
_ABOUT = f"{{{NS_RDF}}}about"
_LI = f"{{{NS_RDF}}}li"
_XMPMETA = (f"{{{NS_X}}}xmpmeta", f"{{{NS_X}}}xapmeta")

_NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_BAD_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_PROLOG = re.compile(
    rb"\A(?:\xef\xbb\xbf)?\s*(?P<decl><\?xml\s[^>]*\?>)?\s*(?P<begin><\?xpacket\s+begin=[^>]*\?>)?"
)
_PACKET_END = re.compile(rb"<\?xpacket\s+end=[^>]*\?>\s*\Z")
_NEW_PACKET_BEGIN = b"<?xpacket begin='\xef\xbb\xbf' id='W5M0MpCehiHzreSzNTczkc9d'?>"
_NEW_PACKET_END = b"<?xpacket end='w'?>"

# ET.register_namespace is process-wide; register + serialise under one lock.
_ns_lock = threading.Lock()


class _Keep:
    """Sentinel: leave this value as it is in the sidecar."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()


class SidecarError(Exception):
    """A sidecar that is unsafe, unparseable or not XMP, or a write that did not land."""


@dataclass
class SidecarData:
    rating: int | None = None  # xmp:Rating: -1 rejected, 0 unrated, 1..5 stars
    label: str | None = None  # xmp:Label, e.g. "Red"
    pick: int | None = None  # 1 picked, -1 rejected (xmp:Rating=-1), None unflagged
    photocull: dict[str, str] = field(default_factory=dict)  # our figures, without Pick
    path: Path | None = None  # the sidecar read, None if there is none


# --------------------------------------------------------------------------- naming

def _is_file(p: Path) -> bool:
    try:
        return p.is_file()
    except OSError:  # a name too long for the file system cannot exist
        return False


def _existing_variant(base: str) -> Path | None:
    for ext in SIDECAR_EXTS:
        p = Path(base + ext)
        if _is_file(p):
            return p
    return None


def sidecar_candidates(photo: Path) -> list[Path]:
    """``[adobe, darktable]`` sidecar paths of ``photo`` (``IMG_1.xmp``, ``IMG_1.JPG.xmp``).

    Each is the spelling that exists on disk (``IMG_1.XMP`` ...) or else ``.xmp``.
    One path only when the photo has no extension (both conventions coincide).
    """
    photo = Path(photo)
    out: list[Path] = []
    for base in (str(photo.with_suffix("")), str(photo)):
        p = _existing_variant(base) or Path(base + ".xmp")
        if p not in out:
            out.append(p)
    return out


def find_sidecar(photo: Path) -> Path | None:
    """The sidecar of ``photo`` that exists; the darktable name wins if both do."""
    existing = [p for p in sidecar_candidates(photo) if _is_file(p)]
    return existing[-1] if existing else None


def _true_case(path: Path) -> Path:
    """The spelling on disk of an existing ``path`` (differs on case-insensitive file systems)."""
    try:
        names = os.listdir(path.parent)
    except OSError:
        return path
    if path.name in names:
        return path
    low = path.name.lower()
    for name in names:
        if name.lower() == low:
            return path.with_name(name)
    return path


# --------------------------------------------------------------------------- parsing

def _load_bytes(path: Path) -> bytes:
    """The sidecar's bytes, refused before reading when it is not a regular file (a FIFO
    would block) or larger than :data:`MAX_SIDECAR_BYTES`."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise SidecarError(f"{path}: refused, not a regular file")
        if st.st_size > MAX_SIDECAR_BYTES:
            raise SidecarError(f"{path}: refused, {st.st_size} bytes is far larger than an XMP sidecar "
                               f"(at most {MAX_SIDECAR_BYTES})")
        with open(path, "rb") as f:
            data = f.read(MAX_SIDECAR_BYTES + 1)  # it may have grown since stat
    except OSError as e:
        raise SidecarError(f"cannot read sidecar {path}: {e.strerror or e}") from e
    if len(data) > MAX_SIDECAR_BYTES:
        raise SidecarError(f"{path}: refused, larger than an XMP sidecar (over {MAX_SIDECAR_BYTES} bytes)")
    return data


def _namespaces_within_limits(data: bytes, where: Path) -> list[tuple[str, str]]:
    """The file's (prefix, uri) declarations, from a streaming pass that also refuses
    elements nested deeper than :data:`MAX_SIDECAR_DEPTH` (a counter, no recursion) or more
    than :data:`MAX_SIDECAR_ELEMENTS` of them; it stops at the first one over a limit."""
    ns: list[tuple[str, str]] = []
    depth = count = 0
    for event, item in DET.iterparse(io.BytesIO(data), events=("start", "end", "start-ns"), forbid_dtd=True):
        if event == "start":
            depth += 1
            count += 1
            if depth > MAX_SIDECAR_DEPTH:
                raise SidecarError(f"{where}: refused, elements nested more than {MAX_SIDECAR_DEPTH} deep "
                                   f"(real XMP stays under 15)")
            if count > MAX_SIDECAR_ELEMENTS:
                raise SidecarError(f"{where}: refused, more than {MAX_SIDECAR_ELEMENTS} elements "
                                   f"(a heavy darktable history has a few thousand)")
        elif event == "end":
            depth -= 1
        else:
            ns.append(item)
    return ns


def _parse(data: bytes, where: Path) -> tuple[ET.Element, list[tuple[str, str]]]:
    """Tree (comments and PIs inside the root kept) and the file's (prefix, uri) declarations.

    The one place a sidecar is parsed: whatever goes wrong becomes a :class:`SidecarError`
    saying why (unsafe, too deep, not well-formed, an unknown encoding, not XMP)."""
    try:
        # First a streaming pass: the prefixes, and depth and count checked before the tree is built.
        ns = _namespaces_within_limits(data, where)
        parser = DET.DefusedXMLParser(
            target=ET.TreeBuilder(insert_comments=True, insert_pis=True), forbid_dtd=True
        )
        parser.feed(data)
        root = parser.close()
    except defusedxml.DTDForbidden as e:
        raise SidecarError(
            f"{where}: refused, XMP has no business declaring a DTD "
            f"(entity expansion / external entity attacks are blocked): {e}"
        ) from e
    except (defusedxml.EntitiesForbidden, defusedxml.ExternalReferenceForbidden) as e:
        raise SidecarError(f"{where}: refused, it declares XML entities: {e}") from e
    except defusedxml.DefusedXmlException as e:
        raise SidecarError(f"{where}: refused unsafe XML: {e}") from e
    except ET.ParseError as e:
        raise SidecarError(f"{where}: not well-formed XML: {e}") from e
    except LookupError as e:  # <?xml encoding="x-klingon"?>
        raise SidecarError(f"{where}: unreadable, it declares a text encoding Python does not know ({e})") from e
    except ValueError as e:  # UnicodeError included; "multi-byte encodings are not supported"
        raise SidecarError(f"{where}: unreadable text ({e})") from e
    except RecursionError as e:  # not expected within the depth limit; never a traceback
        raise SidecarError(f"{where}: refused, nested too deeply to read") from e
    if root.tag != _RDF and root.tag not in _XMPMETA:
        raise SidecarError(f"{where}: not an XMP packet (root element {root.tag!r})")
    return root, ns


def _rdf(root: ET.Element) -> ET.Element | None:
    return root if root.tag == _RDF else root.find(f".//{_RDF}")


def _descriptions(root: ET.Element) -> list[ET.Element]:
    rdf = _rdf(root)
    return [] if rdf is None else rdf.findall(_DESC)


def _element_text(el: ET.Element) -> str:
    if len(el):  # e.g. a language alternative <rdf:Alt><rdf:li xml:lang=..>
        li = el.find(f".//{_LI}")
        return (li.text or "") if li is not None else ""
    return el.text or ""


def _get(descs: list[ET.Element], tag: str) -> str | None:
    for d in descs:
        if tag in d.attrib:
            return d.attrib[tag]
        child = d.find(tag)
        if child is not None:
            return _element_text(child)
    return None


def _parse_rating(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    if value == -1:
        return -1
    if 0 <= value <= 5:  # the spec allows reals; round half up
        return int(math.floor(value + 0.5))
    return None


def _photocull_props(descs: list[ET.Element]) -> dict[str, str]:
    out: dict[str, str] = {}
    prefix = f"{{{NS_PHOTOCULL}}}"
    for d in descs:
        for k, v in d.attrib.items():
            if k.startswith(prefix):
                out.setdefault(k[len(prefix):], v)
        for child in d:
            if isinstance(child.tag, str) and child.tag.startswith(prefix):
                out.setdefault(child.tag[len(prefix):], _element_text(child))
    return out


def _data_from_tree(root: ET.Element, path: Path | None) -> SidecarData:
    descs = _descriptions(root)
    rating = _parse_rating(_get(descs, _RATING))
    label = (_get(descs, _LABEL) or "").strip() or None
    figures = _photocull_props(descs)
    flag = figures.pop("Pick", "").strip()
    if rating == -1:
        pick = -1
    elif flag == "1":
        pick = 1
    else:
        pick = None
    return SidecarData(rating=rating, label=label, pick=pick, photocull=figures, path=path)


def read_sidecar_file(path: Path) -> SidecarData:
    """Read one sidecar file (no naming rules applied)."""
    path = Path(path)
    data = _load_bytes(path)
    if not data.strip():
        return SidecarData(path=path)
    root, _ = _parse(data, path)
    return _data_from_tree(root, path)


def read_sidecar(photo: Path) -> SidecarData:
    """What the sidecar of ``photo`` says; an empty :class:`SidecarData` if it has none.

    Raises :class:`SidecarError` for a sidecar that is unsafe or not XMP.
    """
    path = find_sidecar(Path(photo))
    if path is None:
        return SidecarData()
    return read_sidecar_file(path)


# --------------------------------------------------------------------------- writing

def _check_text(value: str, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if _BAD_XML_CHARS.search(value):
        raise ValueError(f"{what} {value!r} holds characters XML cannot store")
    return value


def _set(descs: list[ET.Element], tag: str, value: str | None) -> None:
    """Set (or with None remove) a simple property wherever it lives; else add it to descs[0]."""
    found = False
    for d in descs:
        if tag in d.attrib:
            found = True
            if value is None:
                del d.attrib[tag]
            else:
                d.attrib[tag] = value
        for child in d.findall(tag):
            found = True
            if value is None:
                d.remove(child)
            else:
                for sub in list(child):
                    child.remove(sub)
                child.attrib.pop(f"{{{NS_RDF}}}parseType", None)
                child.text = value
    if not found and value is not None:
        descs[0].set(tag, value)


def _skeleton() -> ET.Element:
    root = ET.Element(f"{{{NS_X}}}xmpmeta", {f"{{{NS_X}}}xmptk": "photocull"})
    root.text = "\n "
    rdf = ET.SubElement(root, _RDF)
    rdf.text = "\n  "
    rdf.tail = "\n"
    desc = ET.SubElement(rdf, _DESC, {_ABOUT: ""})
    desc.tail = "\n "
    return root


def _ensure_description(root: ET.Element) -> list[ET.Element]:
    rdf = _rdf(root)
    if rdf is None:  # an x:xmpmeta without rdf:RDF
        rdf = ET.SubElement(root, _RDF)
    descs = rdf.findall(_DESC)
    if not descs:
        descs = [ET.SubElement(rdf, _DESC, {_ABOUT: ""})]
    return descs


def _register(file_ns: list[tuple[str, str]]) -> None:
    for prefix, uri in COMMON_PREFIXES.items():
        ET.register_namespace(prefix, uri)
    for prefix, uri in file_ns:  # the file's own prefixes win for its namespaces
        if not prefix or prefix.lower().startswith("xml"):
            continue
        try:
            ET.register_namespace(prefix, uri)
        except ValueError:  # "ns0"-style prefixes are reserved by ElementTree
            pass


def _serialize(root: ET.Element, file_ns: list[tuple[str, str]], old: bytes | None) -> bytes:
    with _ns_lock:
        _register(file_ns)
        body = ET.tostring(root, encoding="unicode").encode("utf-8")
    if old is None:  # a new file: wrap it like exiftool and Adobe do
        return _NEW_PACKET_BEGIN + b"\n" + body + b"\n" + _NEW_PACKET_END + b"\n"
    m = _PROLOG.match(old)
    parts = []
    if m and m.group("decl"):
        parts.append(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    if m and m.group("begin"):
        parts.append(m.group("begin") + b"\n")
    parts.append(body + b"\n")
    end = _PACKET_END.search(old.rstrip()[-256:])
    if end:
        parts.append(end.group(0).rstrip() + b"\n")
    return b"".join(parts)


def _fingerprint(root: ET.Element, managed: set[str]) -> Counter:
    """Every element and attribute other programs own, as a multiset (managed subtrees skipped)."""
    out: Counter = Counter()
    stack = [root]
    while stack:
        el = stack.pop()
        if el.tag in managed:
            continue
        tag = el.tag if isinstance(el.tag, str) else repr(el.tag)
        attrs = tuple(sorted((k, v) for k, v in el.attrib.items() if k not in managed))
        out[(tag, attrs, (el.text or "").strip())] += 1
        stack.extend(el)
    return out


def _resolve_rating_pick(cur: SidecarData, rating, pick) -> tuple[object, object]:
    """New (rating, pick flag) as KEEP / None / value, following the module's rules."""
    if rating is not KEEP and rating is not None:
        if isinstance(rating, bool) or not isinstance(rating, int) or not -1 <= rating <= 5:
            raise ValueError(f"rating must be -1 (reject) or 0..5, not {rating!r}")
    if pick is KEEP:
        if rating == -1:
            return -1, None  # a reject drops our pick flag
        return rating, KEEP
    if pick not in (None, 0, 1, -1) or isinstance(pick, bool):
        raise ValueError(f"pick must be 1, 0/None or -1, not {pick!r}")
    if pick == -1:
        if rating is not KEEP and rating != -1:
            raise ValueError(f"pick=-1 is a reject, it cannot go with rating={rating!r}")
        return -1, None
    if rating == -1:
        raise ValueError(f"rating=-1 is a reject, it cannot go with pick={pick!r}")
    if rating is KEEP and cur.rating == -1:
        rating = 0  # picking or unflagging a rejected photo un-rejects it
    return rating, ("1" if pick == 1 else None)


@dataclass(frozen=True)
class PacketUpdate:
    """An XMP packet with our values set (:func:`build_packet`) and what it must read back as."""

    data: bytes  # the new packet, UTF-8
    expected: SidecarData  # its rating, label, pick and figures
    managed: frozenset  # the properties we set (Clark notation)
    others: Counter  # every element and attribute other programs own, as a multiset


def _checked_figures(photocull: dict[str, str | None] | None) -> dict[str, str | None]:
    figures: dict[str, str | None] = {}
    for k, v in (photocull or {}).items():
        if not isinstance(k, str) or not _NCNAME.match(k):
            raise ValueError(f"photocull key {k!r} is not a valid XML name")
        if k == "Pick":
            raise ValueError("use pick= for the pick flag, not photocull['Pick']")
        if v is not None and not isinstance(v, str):
            v = str(v)
        figures[k] = None if v is None else _check_text(v, f"photocull[{k!r}]")
    return figures


def build_packet(
    old: bytes | None,
    where: Path | str,
    *,
    rating: int | None | _Keep = KEEP,
    label: str | None | _Keep = KEEP,
    pick: int | None | _Keep = KEEP,
    photocull: dict[str, str | None] | None = None,
) -> PacketUpdate:
    """``old`` (an XMP packet, from a sidecar or from inside a photo; None or blank: a new
    one) with our values set as :func:`write_sidecar` describes, everything else kept.

    The one XMP writer: sidecars and embedded XMP (:mod:`photocull.media.embedded`) both
    go through it.  ``where`` names the packet in messages.  Raises :class:`SidecarError`
    for a packet that is unsafe or not XMP, ValueError / TypeError for bad values."""
    where = Path(where)
    if label is not KEEP and label is not None:
        label = _check_text(label, "label").strip() or None
    figures = _checked_figures(photocull)
    if old is not None and len(old) > MAX_SIDECAR_BYTES:
        raise SidecarError(f"{where}: refused, {len(old)} bytes of XMP is far more than real XMP holds "
                           f"(at most {MAX_SIDECAR_BYTES})")
    if old is not None and old.strip():
        root, file_ns = _parse(old, where)
    else:
        root, file_ns, old = _skeleton(), [], None  # an empty file: write a fresh packet
    cur = _data_from_tree(root, where)
    new_rating, new_flag = _resolve_rating_pick(cur, rating, pick)

    managed = frozenset({_RATING, _LABEL, _PICK} | {f"{{{NS_PHOTOCULL}}}{k}" for k in figures})
    descs = _ensure_description(root)
    others = _fingerprint(root, managed)
    if new_rating is not KEEP:
        _set(descs, _RATING, None if new_rating is None else str(new_rating))
    if label is not KEEP:
        _set(descs, _LABEL, label)
    if new_flag is not KEEP:
        _set(descs, _PICK, new_flag)
    for k, v in figures.items():
        _set(descs, f"{{{NS_PHOTOCULL}}}{k}", v)
    data = _serialize(root, file_ns, old)
    if len(data) > MAX_SIDECAR_BYTES:  # what we would write must read back
        raise SidecarError(f"{where}: refused, the updated XMP would be {len(data)} bytes, "
                           f"over the {MAX_SIDECAR_BYTES} an XMP packet may have here")
    return PacketUpdate(data, _data_from_tree(root, where), managed, others)


def check_packet(saved: bytes, update: PacketUpdate, where: Path | str) -> SidecarData:
    """Parse ``saved`` (the packet as read back from disk) and check, as Photini does, that
    it holds ``update``'s values and every element and attribute other programs had put in
    the old packet; raises :class:`SidecarError` ("save did not land") otherwise."""
    where = Path(where)
    saved_root, _ = _parse(saved, where)
    got = _data_from_tree(saved_root, where)
    want = update.expected
    problems = []
    if (got.rating, got.label, got.pick, got.photocull) != (want.rating, want.label, want.pick, want.photocull):
        problems.append(f"read back {got!r}, expected {want!r}")
    if _fingerprint(saved_root, set(update.managed)) != update.others:
        problems.append("other programs' metadata did not survive")
    if problems:
        raise SidecarError(f"{where}: save did not land: " + "; ".join(problems))
    return got


def read_packet(data: bytes, where: Path | str) -> SidecarData:
    """What an XMP packet (a sidecar's bytes, or the XMP inside a photo) says; ``path`` is
    left None.  Raises :class:`SidecarError` for one that is unsafe or not XMP."""
    if not data.strip():
        return SidecarData()
    if len(data) > MAX_SIDECAR_BYTES:
        raise SidecarError(f"{where}: refused, {len(data)} bytes of XMP (at most {MAX_SIDECAR_BYTES})")
    root, _ = _parse(data, Path(where))
    return _data_from_tree(root, None)


def write_sidecar(
    photo: Path,
    *,
    rating: int | None | _Keep = KEEP,
    label: str | None | _Keep = KEEP,
    pick: int | None | _Keep = KEEP,
    photocull: dict[str, str | None] | None = None,
    style: str = "adobe",
) -> Path:
    """Update the sidecar of ``photo`` and return its path.

    Arguments left at ``KEEP`` are not touched; ``None`` removes the value.
    ``rating``: -1 reject, 0..5.  ``pick``: 1 pick, 0/None unflag, -1 reject.
    ``photocull``: merged into our figures (a ``None`` value removes that key).
    Writes into the existing sidecar of either convention, else creates the
    ``style`` one (``"adobe"``: ``IMG_1.xmp``, ``"darktable"``: ``IMG_1.JPG.xmp``).
    Raises :class:`SidecarError` if the existing sidecar is unsafe or not XMP (it is
    then left alone), or if the save fails or does not read back as written.
    """
    photo = Path(photo)
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, not {style!r}")
    if label is not KEEP and label is not None:
        _check_text(label, "label")
    _checked_figures(photocull)  # bad values are refused before any file is looked at

    path = find_sidecar(photo)
    if path is not None:
        path = _true_case(path)
        before = path.stat()
        old = _load_bytes(path)
    else:
        cands = sidecar_candidates(photo)
        path = cands[0] if style == "adobe" else cands[-1]
        if os.path.lexists(path):  # a FIFO, a folder, a dangling link: not ours to replace
            raise SidecarError(f"{path}: refused, it exists and is not a regular file")
        before = None
        old = None

    update = build_packet(old, path, rating=rating, label=label, pick=pick, photocull=photocull)

    if before is not None:
        now = path.stat()
        if (now.st_mtime_ns, now.st_size) != (before.st_mtime_ns, before.st_size):
            raise SidecarError(f"{path} changed on disk while photocull was updating it; try again")
    try:
        atomic_write(path, update.data)
    except OSError as e:
        raise SidecarError(f"could not save sidecar {path}: {e}") from e

    # Read it back, as Photini does: our values landed and nothing else was lost.
    got = check_packet(_load_bytes(path), update, path)
    log.debug("wrote %s (rating=%r label=%r pick=%r)", path, got.rating, got.label, got.pick)
    return path
