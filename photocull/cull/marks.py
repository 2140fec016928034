"""Flags, stars and colour labels: kept in the catalog and in XMP sidecars.

XMP has one field for this, ``xmp:Rating``: -1 means rejected (the XMP spec, and what
Lightroom, darktable and digiKam read), 0..5 are stars.  A pick has no standard XMP
field; photocull keeps it as ``photocull:Pick`` and leaves the stars as they are.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, Sequence

from photocull.cull.catalog import Catalog, Marks, path_key
from photocull.media import sidecar

log = logging.getLogger(__name__)

LABEL_NAMES = ("Red", "Yellow", "Green", "Blue", "Purple")


def normalise_label(label: str | None) -> str | None:
    if label is None or label == "" or label.lower() == "none":
        return None
    for name in LABEL_NAMES:
        if label.lower() == name.lower():
            return name
    raise ValueError(f"unknown colour label {label!r}; use one of {', '.join(LABEL_NAMES)}")


def marks_from_sidecar(sd: sidecar.SidecarData) -> Marks:
    flag = -1 if (sd.pick == -1 or (sd.rating is not None and sd.rating < 0)) else (1 if sd.pick == 1 else 0)
    rating = sd.rating if sd.rating is not None and sd.rating > 0 else 0
    return Marks(flag, rating, sd.label)


def load_marks(paths: Sequence, catalog: Catalog) -> dict[str, Marks]:
    """Marks for each path: the catalog's, else what a sidecar (Lightroom, darktable...) says."""
    known = catalog.get_marks(paths)
    out: dict[str, Marks] = {}
    xmp_names: dict[str, set[str]] = {}  # folder -> lower-cased names of its .xmp files (one listing each)
    for p in paths:
        k = os.path.abspath(p)
        m = known.get(k)
        folder = os.path.dirname(k)
        if folder not in xmp_names:
            try:
                with os.scandir(folder) as it:
                    xmp_names[folder] = {e.name.lower() for e in it if e.name.lower().endswith(".xmp")}
            except OSError:
                xmp_names[folder] = set()
        name = os.path.basename(k).lower()
        has_sidecar = (name + ".xmp") in xmp_names[folder] or (os.path.splitext(name)[0] + ".xmp") in xmp_names[folder]
        if (m is None or m.is_empty) and has_sidecar:
            try:
                sd = sidecar.read_sidecar(Path(p))
                if sd.rating is not None or sd.label or sd.pick:
                    m = marks_from_sidecar(sd)
            except sidecar.SidecarError as exc:
                log.warning("sidecar of %s: %s", p, exc)
            except OSError as exc:
                log.warning("sidecar of %s unreadable: %s", p, exc)
        if m is not None:
            out[k] = m
    return out


def sidecar_figures(mean: float | None, std: float | None, why: str | None,
                    model_id: str | None) -> dict[str, str | None] | None:
    """photocull's own figures for a photo's sidecar (the ``photocull`` XMP namespace): its
    score (mean and std of the distribution), the id of the model that gave it and the
    reasons (``why``; an empty one removes a stale ``Why``).  None for a photo without a
    score: its sidecar keeps whatever figures it had."""
    if mean is None:
        return None
    figs: dict[str, str | None] = {"Mean": f"{mean:.4f}", "Std": f"{std:.4f}"}
    if model_id is not None:
        figs["Model"] = model_id
    figs["Why"] = why or None
    return figs


def stored_figures(catalog: Catalog, paths: Sequence, model_id: str) -> dict[str, dict[str, str | None] | None]:
    """:func:`sidecar_figures` of each path from the score the catalog holds for
    ``model_id`` (None for a photo it has no score of, or that changed since); keyed by
    :func:`~photocull.cull.catalog.path_key`."""
    stored = catalog.lookup(paths, model_id)
    out = {}
    for p in paths:
        s = stored.get(path_key(p))
        out[path_key(p)] = None if s is None else sidecar_figures(s.mean, s.std, s.why, model_id)
    return out


def write_marks_sidecar(path: Path, m: Marks, figures: dict[str, str | None] | None = None,
                        style: str = "adobe") -> Path:
    if m.flag < 0:
        return sidecar.write_sidecar(path, pick=-1, label=m.label, photocull=figures, style=style)
    return sidecar.write_sidecar(path, rating=m.rating, pick=1 if m.flag > 0 else None, label=m.label,
                                 photocull=figures, style=style)


def save_marks(catalog: Catalog, items: Iterable[tuple[Path, Marks, list[Path], dict | None]], *,
               write_sidecars: bool = True, style: str = "adobe") -> list[tuple[Path, str]]:
    """Store marks in the catalog at once and in each photo's (and companion's) sidecar.

    ``items``: (photo, marks, companions, photocull figures).  Returns the sidecar
    problems as (path, reason); the catalog is written regardless.
    """
    items = list(items)
    catalog.set_many_marks([(p, m) for p, m, _, _ in items])
    problems = []
    if write_sidecars:
        for p, m, comps, figs in items:
            for target in [Path(p), *[Path(c) for c in comps if Path(c).suffix.lower() != ".xmp"]]:
                try:
                    write_marks_sidecar(target, m, figs, style)
                except (sidecar.SidecarError, OSError, ValueError) as exc:
                    problems.append((target, str(exc)))
    return problems
