"""Rejected photos and what travels with them (for ``photocull trash-rejects``).

A photo is rejected when the catalog flags it (-1) or its XMP sidecar says
``xmp:Rating=-1`` (Lightroom, darktable, digiKam agree).  Its companions travel with it:
the RAW or JPEG twin and the sidecars.

Links are never followed out of the folder: a rejected photo or companion that is a link is
listed as the link itself (:func:`photocull.media.fileops.trash` sends the link, never its
target, to the trash); a broken link or a link loop beside a reject is left alone.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from photocull.cull.catalog import FLAG_REJECT, Catalog, path_key
from photocull.cull.marks import load_marks
from photocull.media.listing import companions_of

log = logging.getLogger(__name__)


def find_rejects(files: list[Path], catalog: Catalog) -> list[tuple[Path, list[Path]]]:
    """(photo, companions) for every rejected photo among ``files``, in path order."""
    from photocull.media.loaders import HEIF_EXTENSIONS, JPEG_EXTENSIONS, RAW_EXTENSIONS

    marks = load_marks(files, catalog)
    in_catalog = catalog.get_marks(files)
    by_stem: dict[tuple[str, str], list[Path]] = {}
    for f in files:
        by_stem.setdefault((str(f.parent), f.stem.lower()), []).append(f)
    out = []
    for f in files:
        m = marks.get(os.path.abspath(f))
        if m is None or m.flag != FLAG_REJECT:
            continue
        known = in_catalog.get(path_key(f))
        if known is None or known.is_empty:
            # rejected by a sidecar only: ``IMG_1.xmp`` is shared by every photo named IMG_1.*;
            # when another photo (not a RAW/JPEG twin) shares the stem, whose reject is it?  Keep both.
            others = [g for g in by_stem[(str(f.parent), f.stem.lower())] if g != f
                      and f.suffix.lower() not in RAW_EXTENSIONS and g.suffix.lower() not in RAW_EXTENSIONS]
            if others:
                continue
        twins = set(RAW_EXTENSIONS) | ({*JPEG_EXTENSIONS, *HEIF_EXTENSIONS} if f.suffix.lower() in RAW_EXTENSIONS else set())
        comps = []
        for c in companions_of(f):
            if not c.exists():
                continue  # a broken link or a loop: nothing of the photo's there
            ext = c.suffix.lower()
            if ext != ".xmp" and ext not in twins:
                continue  # IMG_1.png beside IMG_1.jpg is another photo, not a companion
            own = load_marks([c], catalog).get(os.path.abspath(c)) if ext != ".xmp" else None
            if own is not None and own.flag != FLAG_REJECT and (own.flag > 0 or own.rating > 0):
                continue  # the twin was picked or starred on its own: keep it
            comps.append(c)
        out.append((f, comps))
    return out
