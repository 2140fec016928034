"""Generator jobs run by GeneratorWorker: plain Python over the core (no widgets)."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from photocull.config import AppPaths
from photocull.cull.catalog import Catalog
from photocull.scoring import iter_scores, iter_scores_cached

from .photomodel import pack_thumbnail

log = logging.getLogger(__name__)


class ModelHolder:
    """Loads a model once, in whichever (worker) thread first needs it, and keeps it."""

    def __init__(self, paths: AppPaths):
        self.paths = paths
        self._lock = threading.Lock()
        self._cache: dict[str, object] = {}

    def get(self, spec: str):
        from photocull.model.registry import resolve_lazy

        with self._lock:
            if spec not in self._cache:
                self._cache[spec] = resolve_lazy(spec, self.paths)
            return self._cache[spec]

    def scorers(self, spec: str):
        """What a scoring job runs for ``spec`` (:func:`photocull.model.registry.resolve_scorers`),
        with the models this holder keeps."""
        from photocull.model.registry import AESTHETIC, DEFAULT, OVERALL, Scorers, is_personal

        if not spec or spec == OVERALL:
            return Scorers(self.get(DEFAULT), self.get(AESTHETIC))
        loaded = self.get(spec)
        return Scorers(loaded, self.get(AESTHETIC)) if is_personal(loaded) else Scorers(loaded)

    def put(self, spec: str, loaded) -> None:
        with self._lock:
            self._cache[spec] = loaded


SCREEN_WAIT_S = 1.5


def score_job(paths: list[Path], holder: ModelHolder, model_spec: str, catalog_path: Path,
              batch_size: int = 8, cancelled=lambda: False, accel_dir: Path | None = None, report=None,
              screen_settled=None):
    """Yields ("model", Scorers) once, then ("batch", BatchProgress, {path: JPEG bytes}):
    the scorer's thumbnails, packed at the grid's size (:func:`pack_thumbnail`: ~9 KB
    each, where a decoded one is 110-130 KB).  ``report(str)`` hears about slow one-off
    steps (preparing the fast CPU model).

    ``screen_settled()`` (any thread) says whether the thumbnails on screen are drawn: the
    job waits for it (at most ``SCREEN_WAIT_S``) before it decodes a photo, and holds the
    model to one lane while it says no (the user scrolled: their thumbnails come first).
    What the catalog knows is answered before that wait: reading it decodes nothing, and a
    folder scored before is sorted as soon as it can be."""
    def wait_for_screen():
        if screen_settled is not None:
            t_end = time.monotonic() + SCREEN_WAIT_S
            while not screen_settled() and time.monotonic() < t_end and not cancelled():
                time.sleep(0.01)

    scorers = holder.scorers(model_spec)
    loaded = scorers.loaded
    yield ("model", scorers)
    cat = Catalog(catalog_path)
    try:
        def decoding(todo, *a, **kw):  # the photos the catalog does not answer for
            if not todo:
                return 0
            wait_for_screen()
            return (yield from iter_scores(todo, *a, **kw))

        for prog in iter_scores_cached(paths, loaded, cat, aesthetic=scorers.aesthetic,
                                       batch_size=batch_size, cancelled=cancelled,
                                       want_thumbnails=True, accel_dir=accel_dir, status=report,
                                       nice=5,  # the thumbnails on screen come first
                                       widen=screen_settled, score=decoding):
            thumbs = {}
            for r in prog.results:
                if r.thumbnail is not None:
                    thumbs[str(r.path)] = pack_thumbnail(r.thumbnail)
                    r.thumbnail = None
            yield ("batch", prog, thumbs)
            if cancelled():
                break
    finally:
        cat.close()
    return loaded


def group_job(snapshot: list, catalog_path: Path, gap_seconds: float = 2.0, cancelled=lambda: False,
              similarity: str = "normal"):
    """Burst grouping off the GUI thread (:func:`photocull.cull.bursts.find_groups_cached`).
    ``snapshot`` holds plain copies of the items (path, capture_time, exposure_bias, mean);
    returns, per item, (group, group_size, group_kind, group_best), or None when cancelled."""
    from photocull.cull.bursts import find_groups_cached

    with Catalog(catalog_path) as cat:
        return find_groups_cached(snapshot, cat, gap_seconds, cancelled, similarity=similarity)


def embedded_marks_job(paths: list[Path], cancelled=lambda: False, chunk: int = 64):
    """The marks stated by the XMP inside JPEG/TIFF/DNG files (Lightroom, Photo Mechanic,
    a camera's own rating: :func:`photocull.cull.marks.embedded_marks`), read off the GUI
    thread after the grid is shown; yields a list of ``(abspath, Marks)`` per ``chunk``
    files that had any."""
    from photocull.cull.marks import embedded_marks

    for i in range(0, len(paths), chunk):
        if cancelled():
            return
        found = list(embedded_marks(paths[i:i + chunk]))
        if found:
            yield found
