"""Which files are photos, and which files travel together.

Listing a folder (hidden files skipped, symlinked folders not followed), RAW+JPEG pairs
shown as one item, and a photo's companions (RAW/JPEG twins, XMP sidecars).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from photocull.media.loaders import (
    HEIF_EXTENSIONS,
    JPEG_EXTENSIONS,
    RAW_EXTENSIONS,
    is_supported,
)

log = logging.getLogger(__name__)


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
    paths = [p if isinstance(p, Path) else Path(p) for p in paths]
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


def _travels(e: os.DirEntry) -> bool:
    """A regular file, or a link that is not a link to a folder (a broken link, a loop, a
    link out of the folder: the caller decides, and says why it does not copy it)."""
    try:
        if e.is_symlink():
            try:
                return not e.is_dir()
            except OSError:  # a loop
                return True
        return e.is_file(follow_symlinks=False)
    except OSError:
        return False


def _is_rendered(name: str) -> bool:
    """A photo that is not a RAW: JPEG, HEIF, PNG, TIFF..."""
    return is_supported(name) and _label(Path(name)) != "RAW"


def _owns(photo_name: str, name: str) -> bool:
    """Whether ``name`` goes with ``photo_name`` letter for letter (case included)."""
    return Path(name).stem == Path(photo_name).stem or name.startswith(photo_name + ".")


def companions_of(photo: Path) -> list[Path]:
    """Files that travel with a photo: same stem, other extension (RAW/JPEG twins,
    Adobe ``IMG_1.xmp``), and darktable's ``IMG_1.JPG.xmp``; stems match in any case.

    Another rendered photo never travels with a rendered photo (``IMG_1.png`` or, on a
    case-sensitive file system, ``IMG_1.JPG`` beside ``img_1.jpg`` is a photo of its own);
    a RAW twin and the sidecars do.  When such case twins share a folder, a file whose name
    matches one of them letter for letter (``IMG_1.JPG.xmp``, ``IMG_1.CR2``) goes with that
    one only.  Links are listed as they are, unresolved, unless they lead to a folder: a
    link may point anywhere, and the caller decides (an export refuses one that leads out
    of its source folder, see :func:`photocull.media.fileops.outside_reason`)."""
    photo = Path(photo)
    out = []
    stem, name = photo.stem.lower(), photo.name.lower()
    try:
        with os.scandir(photo.parent) as it:
            same = [e for e in it if e.name != photo.name
                    and (Path(e.name.lower()).stem == stem or e.name.lower().startswith(name + "."))]
    except OSError:
        return out
    twins = [e.name for e in same if _is_rendered(e.name)] if _is_rendered(photo.name) else []
    for e in same:
        if e.name in twins or not _travels(e):
            continue
        if any(_owns(t, e.name) for t in twins) and not _owns(photo.name, e.name):
            continue  # a case twin's own sidecar or RAW
        out.append(photo.parent / e.name)
    return sorted(out)
