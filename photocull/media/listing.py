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


def companions_of(photo: Path) -> list[Path]:
    """Files that travel with a photo: same stem, other extension (RAW/JPEG twins,
    Adobe ``IMG_1.xmp``), and darktable's ``IMG_1.JPG.xmp``."""
    photo = Path(photo)
    out = []
    try:
        entries = list(photo.parent.iterdir())
    except OSError:
        return out
    stem, name = photo.stem.lower(), photo.name.lower()
    for e in entries:
        el = e.name.lower()
        if e == photo or not e.is_file():
            continue
        if Path(el).stem == stem or el.startswith(name + "."):
            out.append(e)
    return sorted(out)
