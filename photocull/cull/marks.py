"""Flags, stars and colour labels: kept in the catalog and in XMP sidecars.

XMP has one field for this, ``xmp:Rating``: -1 means rejected (the XMP spec, and what
Lightroom, darktable and digiKam read), 0..5 are stars.  A pick has no standard XMP
field; photocull keeps it as ``photocull:Pick`` and leaves the stars as they are.

Every consumer reads marks through :func:`load_marks` and writes them through
:func:`save_marks`, so the window, ``photocull rate``, ``export --picks`` and
``trash-rejects`` always agree.

Which one wins when catalog and sidecar disagree
------------------------------------------------
:func:`save_marks` writes in this order, holding the catalog's lock
(:meth:`~photocull.cull.catalog.Catalog.exclusive`): (1) the catalog, marked "sidecar
pending"; (2) the sidecars; (3) the catalog again, "sidecar written".  A save killed at
any point leaves either nothing new, or new marks in the catalog still marked pending.
:func:`load_marks` then reads, for each photo:

1. the catalog's marks when its sidecar is pending (even "no marks": un-rating a photo
   is a mark too); the photo's next save writes its sidecar again;
2. else the catalog's marks when there are any;
3. else what the sidecar says (Lightroom, darktable, digiKam, a rebuilt catalog);
4. else, for a photo the catalog has never held marks for, what the XMP *inside* a JPEG,
   TIFF or DNG says (Lightroom, Photo Mechanic and digiKam write ratings there for these
   files; :func:`embedded_marks`).  The window reads these in a thread once the catalog's
   scores are in (they cost a header read per file); the CLI reads them here.

So after a crash the photo shows what was last saved, on every open, whatever was left
in the sidecar.  A photo that is not there when its marks are saved (moved or removed
meanwhile, e.g. by ``export --move``) gets neither a catalog row nor a sidecar: it is
reported as a problem, never saved beside a photo that has gone.  Stale temporary files
of interrupted sidecar saves are swept from the folders written to
(:mod:`photocull.cull.leftovers`).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from photocull.cull import leftovers
from photocull.cull.catalog import Catalog, CatalogError, Marks, abspath, path_key
from photocull.media import sidecar

log = logging.getLogger(__name__)

# what reading or writing one sidecar may raise: a per-file problem, never the end of the work
SIDECAR_PROBLEMS = (sidecar.SidecarError, OSError, ValueError, LookupError, RecursionError, MemoryError)

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


def _marks_said(sd: sidecar.SidecarData) -> Marks | None:
    """The marks an XMP packet states (None when it says nothing about them)."""
    return marks_from_sidecar(sd) if (sd.rating is not None or sd.label or sd.pick) else None


def load_marks(paths: Sequence, catalog: Catalog, *, embedded: bool = True) -> dict[str, Marks]:
    """Marks for each path, keyed by ``os.path.abspath``: the catalog's, else what a sidecar
    (Lightroom, darktable...) says, else (with ``embedded``) the XMP inside the file; the
    rule is in the module's docstring."""
    stored = catalog.stored_marks(paths)
    out: dict[str, Marks] = {}
    xmp_names: dict[str, set[str]] = {}  # folder -> lower-cased names of its .xmp files (one listing each)
    for p in paths:
        k = abspath(p)
        ck = path_key(p)
        m, pending = stored.get(ck, (None, False))
        if not pending and (m is None or m.is_empty) and _has_sidecar(k, xmp_names):
            try:
                m = _marks_said(sidecar.read_sidecar(Path(p))) or m
            except SIDECAR_PROBLEMS as exc:
                log.warning("sidecar of %s: %s", p, _reason(exc))
        if m is not None:
            out[k] = m
    if embedded:
        out.update(embedded_marks(p for p in paths if abspath(p) not in out))
    return out


def embedded_marks(paths: Iterable) -> Iterator[tuple[str, Marks]]:
    """``(os.path.abspath, marks)`` for each of ``paths`` whose embedded XMP (JPEG, TIFF,
    DNG) holds a rating, a reject, a pick or a colour label; files of other kinds, without
    XMP or with an unreadable one are passed over (a warning for the last)."""
    from photocull.media import embedded

    for p in paths:
        if not embedded.can_embed(p) or not embedded.may_hold_xmp(p):
            continue
        try:
            sd = embedded.read_embedded(p)
        except (embedded.EmbedError, *SIDECAR_PROBLEMS) as exc:
            log.warning("XMP inside %s: %s", p, _reason(exc))
            continue
        m = _marks_said(sd)
        if m is not None and not m.is_empty:  # a camera's "Rating 0" is no mark
            yield os.path.abspath(p), m


def _has_sidecar(k: str, xmp_names: dict[str, set[str]]) -> bool:
    folder = os.path.dirname(k)
    if folder not in xmp_names:
        try:
            with os.scandir(folder) as it:
                xmp_names[folder] = {e.name.lower() for e in it if e.name.lower().endswith(".xmp")}
        except OSError:
            xmp_names[folder] = set()
    name = os.path.basename(k).lower()
    return (name + ".xmp") in xmp_names[folder] or (os.path.splitext(name)[0] + ".xmp") in xmp_names[folder]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, LookupError):
        return f"unreadable ({exc})"
    if isinstance(exc, RecursionError):
        return "nested too deeply to read"
    if isinstance(exc, MemoryError):
        return "too big to read"
    return str(exc)


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
    """Store marks in the catalog and in each photo's (and companion's) sidecar.

    ``items``: (photo, marks, companions, photocull figures).  Returns the problems as
    (path, reason): a photo that is not there (its marks are not saved anywhere), a
    sidecar that could not be written (the catalog keeps the marks, pending: they win).
    The order of the writes and the rule that reads them back are in the module's
    docstring.  Raises :class:`~photocull.cull.catalog.CatalogError` before writing any
    sidecar when the catalog cannot store the marks.
    """
    items = list(items)
    problems: list[tuple[Path, str]] = []
    with catalog.exclusive():  # export --move waits: no photo leaves between the check and the write
        present = []
        for it in items:
            if os.path.isfile(it[0]):
                present.append(it)
            else:
                problems.append((Path(it[0]), "not found (moved or removed meanwhile?): its marks were not saved"))
        if not present:
            return problems
        catalog.set_many_marks([(p, m) for p, m, _, _ in present], sidecar_pending=write_sidecars)
        if not write_sidecars:
            return problems
        for folder in sorted({os.path.dirname(os.path.abspath(p)) for p, _, _, _ in present}):
            leftovers.sweep_once_in_a_while(folder, leftovers.SIDECAR_TEMP)
        written = []
        for p, m, comps, figs in present:
            ok = True
            for target in [Path(p), *[Path(c) for c in comps if Path(c).suffix.lower() != ".xmp"]]:
                if target != Path(p) and not os.path.isfile(target):
                    continue  # a companion that has gone: no sidecar beside nothing
                try:
                    write_marks_sidecar(target, m, figs, style)
                except SIDECAR_PROBLEMS as exc:
                    problems.append((target, _reason(exc)))
                    ok = False
            if ok:
                written.append(p)
        try:
            catalog.sidecars_written(written)
        except CatalogError as exc:  # the sidecars hold the marks; the catalog says pending: same marks win
            log.warning("%s", exc)
    return problems


def embed_marks(catalog: Catalog, items: Iterable[tuple[Path, Marks, list[Path]]], pick_as="none"):
    """Write marks into the XMP inside the photos (and companions) that can hold it (JPEG,
    TIFF, DNG; :func:`photocull.media.embedded.embed_many`), keeping what the catalog
    stored for them: the pixels are untouched, so their scores stay valid under the new
    size and mtime (:meth:`Catalog.carry_identity`).  Returns the :class:`EmbedReport`."""
    from photocull.media import embedded

    items = list(items)
    targets = {Path(t) for p, _, comps in items for t in [p, *comps]}
    for folder in sorted({os.path.dirname(os.path.abspath(t)) for t in targets}):
        leftovers.sweep_once_in_a_while(folder, embedded.TEMP_NAME)
    before = {}
    for t in targets:
        try:
            st = os.stat(t)
        except OSError:
            continue
        before[t] = (st.st_size, st.st_mtime)
    rep = embedded.embed_many([(p, m.flag, m.rating, m.label, comps) for p, m, comps in items], pick_as=pick_as)
    carried = [(p, before[p]) for p in rep.written if p in before]
    if carried:
        try:
            catalog.carry_identity(carried)
        except CatalogError as exc:  # the marks are in the files; the scores will be computed again
            log.warning("%s", exc)
    return rep
