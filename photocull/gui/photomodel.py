"""The grid's data: one row per photo, in sorted order; a proxy that filters; a thumbnail cache.

Thumbnails are kept two ways, both bounded: decoded pixmaps for what is (or was just)
on screen (``MAX_THUMBS``, LRU), and the scorer's thumbnails as small JPEGs
(``PACKED_BYTES``, LRU, ~9 KB each) for the rest of the folder, decoded when their
cell is painted.  A 10,000-photo folder used to make a pixmap of every photo's
thumbnail as it was scored.

Sorting happens here in Python (one ``list.sort`` with a key: ~10 ms for 10,000 photos),
not in ``QSortFilterProxyModel`` (a Python ``lessThan`` per comparison: seconds for
10,000 rows, and it ran again on every batch of 8 scores).  ``items`` stays in the order
it was given (file order); the model's rows present ``items`` through ``_order``.
While scores stream in, ranks and order are refreshed at most every
``REFRESH_MS`` (a coalescing timer), so the grid never stalls.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QImage, QPixmap

from photocull.cull import ranking
from photocull.cull.catalog import abspath
from photocull.cull.overall import overall_scores, own_faults, reason_words
from photocull.model.losses import mean_of, std_of

ItemRole = Qt.ItemDataRole.UserRole + 1


@dataclass
class PhotoItem:
    path: Path
    mean: float | None = None  # the overall score the grid sorts by (cull.overall), or the one model's mean
    std: float | None = None   # the taste distribution's (aesthetic or personal), or the one model's
    probs: np.ndarray | None = None  # the first model's distribution (technical, personal, or the one model)
    severities: np.ndarray | None = None
    why: str = ""
    aesthetic: np.ndarray | None = None  # the aesthetic network's distribution, when it ran beside
    aesthetic_mean: float | None = None  # its mean
    taste_mean: float | None = None      # what the overall rule ranks sound frames by
    technical_mean: float | None = None  # the technical model's mean (None when it did not run)
    technical_faults: tuple = ()         # the technical model's faults (reasons.faults)
    faults: tuple = ()                   # every fault that pulled the overall score down
    faces: object | None = None          # photocull.analysis.faces.FaceReport (None: not analysed)
    focus: object | None = None          # photocull.analysis.focus.FocusReport (None: not analysed)
    exposure: object | None = None       # photocull.analysis.exposure.ExposureReport (the reasons' evidence)
    error: str | None = None
    stale: bool = False  # its scores are from before a rescore (another model): greyed until replaced
    exif: object | None = None  # photocull.media.exif.ExifInfo: the scorer's read, or the loader's for the selection
    capture_time: float | None = None
    exposure_bias: float | None = None
    rank: int | None = None
    percentile: float | None = None  # "top X %" (cull.ranking.top_percent)
    top: str = ""  # the same in words, as the command line says it: "top 5%"
    flag: int = 0  # -1 reject, 0, 1 pick
    rating: int = 0
    label: str | None = None
    companions: list[Path] = field(default_factory=list)
    kind: str = ""  # "RAW+JPG" badge etc.
    group: int | None = None  # burst group id
    group_size: int = 1
    group_kind: str = ""
    group_best: bool = True   # its group's best frame by the score
    group_cover: bool = True  # the frame a collapsed group shows (PhotoListModel.update_covers)
    group_lead: int | None = None  # the best rank in its group: a group's frames sort together
    group_pos: int = 0  # its place in its group by rank (1: the best), for the "2/3" badge of an expanded group

    # key and name are read for every row at every sort: computed once per path
    @property
    def key(self) -> str:
        c = self.__dict__.get("_key")
        if c is None or c[0] is not self.path:
            c = self.__dict__["_key"] = (self.path, abspath(self.path))
        return c[1]

    @property
    def name(self) -> str:
        c = self.__dict__.get("_name")
        if c is None or c[0] is not self.path:
            c = self.__dict__["_name"] = (self.path, self.path.name, self.path.name.lower())
        return c[1]

    @property
    def sort_name(self) -> str:
        self.name  # noqa: B018 - fills the cache
        return self.__dict__["_name"][2]

    @property
    def scored(self) -> bool:
        return self.mean is not None

    @property
    def eyes_closed_count(self) -> int:
        """Faces found with an eye shut (0 when none, or when faces were not analysed)."""
        return self.faces.eyes_closed_count if self.faces is not None else 0

    @property
    def face_sharpness(self) -> float | None:
        """The softest face's sharpness (a group frame is as good as its softest face); None without faces."""
        return self.faces.sharpness if self.faces is not None else None


def reasons_line(it: PhotoItem) -> str:
    """Every reason of a photo, once, as the grid, the tooltip, the loupe and the detail panel
    say them (:func:`photocull.cull.overall.reason_words`)."""
    return reason_words(it.why, it.faces, it.focus, it.faults)


def _by_face_sharpness(it: PhotoItem) -> tuple:
    return ranking.by_face_sharpness(it.face_sharpness, it.rank, it.sort_name)


SORT_KEYS = {
    # cull.ranking's order, a group's frames together after its best (an expanded burst side by side)
    "score": lambda it: (it.rank is None, it.group_lead or it.rank or 0, it.rank or 0, it.sort_name),
    "name": lambda it: (it.sort_name,),
    "time": lambda it: (it.capture_time is None, it.capture_time or 0.0, it.sort_name),
    "std": lambda it: (it.std is None, it.std or 0.0, it.sort_name),
    "face_sharpness": _by_face_sharpness,
}


class PhotoListModel(QAbstractListModel):
    thumbnailWanted = Signal(str, int)
    refreshed = Signal()  # ranks (and order) were recomputed after new scores

    THUMB_SIZE = 256
    MAX_THUMBS = 400  # decoded, ~110 KB each at DISPLAY_SIZE: ~45 MB; a screen shows 20-60 cells
    PACKED_BYTES = 40 << 20  # the scorer's thumbnails as JPEGs (~9 KB each): ~4,500 photos
    PACKED_QUALITY = 85
    REFRESH_MS = 400
    # ThumbDelegate's picture area (220 px cell, 2 px margin, 6 px padding, 48 px of text):
    # pixmaps are stored at that size so that painting a cell never rescales (Qt returns
    # the pixmap itself when the size already fits); if the delegate changes, it rescales.
    DISPLAY_SIZE = QSize(204, 168)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.items: list[PhotoItem] = []  # in the order given (file order)
        self._order: list[int] = []  # row -> index in items (the sorted order)
        self._row: dict[str, int] = {}  # key -> row
        self._thumbs: OrderedDict[str, QPixmap] = OrderedDict()
        self._packed: OrderedDict[str, bytes] = OrderedDict()
        self._packed_bytes = 0
        self._requested: set[str] = set()
        self._resized: set[str] = set()  # pixmaps made for an earlier display size (set_display_size)
        self.thumbnails_asked = False  # a cell has asked for its thumbnail since set_items
        self._thumb_errors: dict[str, str] = {}
        self.sort_key = "score"
        self.mode, self.families = "single", ()  # set_mode: how the overall score is made
        self._dirty = False
        self._refresh = QTimer(self)
        self._refresh.setSingleShot(True)
        self._refresh.setInterval(self.REFRESH_MS)
        self._refresh.timeout.connect(self._apply)

    def item_at(self, row: int) -> PhotoItem:
        return self.items[self._order[row]]

    # -- Qt model API -------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.items)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self.items):
            return None
        it = self.items[self._order[index.row()]]
        if role == Qt.ItemDataRole.DisplayRole:
            return it.name
        if role == ItemRole:
            return it
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [str(it.path)]
            if it.scored:
                lines.append(f"score {it.mean:.2f} ± {it.std:.2f}" + (f"  ·  rank {it.rank}" if it.rank else ""))
            why = reasons_line(it)
            if why:
                lines.append(why)
            if it.faces is not None and it.faces.count:
                n, shut = it.faces.count, it.faces.eyes_closed_count
                lines.append(f"{n} face{'s' * (n != 1)}" + (f", {shut} with eyes closed" if shut else ""))
            err = it.error or self._thumb_errors.get(it.key)
            if err:
                lines.append(f"cannot use this file: {err}")
            return "\n".join(lines)
        return None

    def flags(self, index):
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    # -- content ------------------------------------------------------------------
    def set_items(self, items: list[PhotoItem]) -> None:
        self.beginResetModel()
        self.items = list(items)
        self._ranks()
        self._order = self._sorted_order()
        self._row = {self.items[i].key: r for r, i in enumerate(self._order)}
        self._thumbs.clear()
        self._resized.clear()
        self._packed.clear()
        self._packed_bytes = 0
        self._requested.clear()
        self.thumbnails_asked = False  # no cell painted yet
        self._thumb_errors.clear()
        self._refresh.stop()
        self._dirty = False
        self.endResetModel()

    # -- order --------------------------------------------------------------------
    def _sorted_order(self) -> list[int]:
        key = SORT_KEYS[self.sort_key]
        items = self.items
        return sorted(range(len(items)), key=lambda i: key(items[i]))

    def set_sort_key(self, key: str) -> None:
        if key not in SORT_KEYS:
            raise ValueError(key)
        self.sort_key = key
        self.resort()

    def resort(self) -> None:
        """Put the rows in ``sort_key`` order (a layout change: selection and current
        photo follow their items)."""
        new = self._sorted_order()
        if new == self._order:
            return
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        held = [self._order[ix.row()] if 0 <= ix.row() < len(self._order) else None for ix in persistent]
        self._order = new
        self._row = {self.items[i].key: r for r, i in enumerate(new)}
        pos = {i: r for r, i in enumerate(new)} if persistent else {}
        self.changePersistentIndexList(persistent, [self.index(pos[i]) if i is not None else QModelIndex()
                                                    for i in held])
        self.layoutChanged.emit()

    def flush(self) -> None:
        """Apply what the coalescing timer is waiting for (ranks, order) now."""
        self._refresh.stop()
        self._apply()

    def _apply(self) -> None:
        if self._dirty:
            self._dirty = False
            self.recompute_ranks()
            self.resort()
            self.refreshed.emit()

    def _schedule(self) -> None:
        """Ranks and order need refreshing: now if nothing was refreshed in the last
        ``REFRESH_MS``, else when that period ends (one refresh for many batches)."""
        self._dirty = True
        if not self._refresh.isActive():
            self._apply()
            self._refresh.start()

    def item_for(self, path) -> PhotoItem | None:
        r = self._row.get(abspath(path))
        return None if r is None else self.items[self._order[r]]

    def row_of(self, path) -> int | None:
        return self._row.get(abspath(path))

    def update_results(self, results, immediate: bool | None = None) -> None:
        """Apply ScoreResults (from the worker) to their rows.

        The changed cells repaint at once; ranks and order follow within ``REFRESH_MS``
        (at once for a big batch, e.g. the catalog's answer, or with ``immediate``)."""
        rows = []
        for r in results:
            row = self._row.get(abspath(r.path))
            if row is None:
                continue
            it = self.items[self._order[row]]
            it.probs, it.severities, it.why, it.error = r.probs, r.severities, r.why, r.error
            it.stale = False
            it.aesthetic = getattr(r, "aesthetic", None)
            it.faces = getattr(r, "faces", None)
            it.focus = getattr(r, "focus", None)
            it.exposure = getattr(r, "exposure", None)
            self._judge_one(it)
            if r.exif is not None and (it.exif is None or not it.exif.has_shooting()):
                it.exif = r.exif  # (the catalog's answer has no shooting settings: the loader reads them)
            if r.exif is not None and r.exif.capture_time is not None:
                it.capture_time = r.exif.capture_time
                it.exposure_bias = r.exif.exposure_bias
            rows.append(row)
        if immediate or (immediate is None and len(rows) > 64):
            self._dirty = True
            self.flush()
            return
        for row in rows:
            ix = self.index(row)
            self.dataChanged.emit(ix, ix)
        self._schedule()

    def set_mode(self, mode: str, families) -> None:
        """How scores become the overall score: ``Scorers.mode`` ("overall", "personal",
        "single") and the first model's severity families (its faults)."""
        self.mode, self.families = mode, tuple(families)
        for it in self.items:
            if it.probs is not None or it.aesthetic is not None:  # (an unscored photo has nothing to judge)
                self._judge_one(it)
        self.recompute_ranks()

    def _judge_one(self, it: PhotoItem) -> None:
        """The item's own figures (the overall score itself needs the whole shoot: ``_ranks``)."""
        own = mean_of(it.probs)
        it.aesthetic_mean = mean_of(it.aesthetic)
        if self.mode == "single":
            it.taste_mean, it.technical_mean, it.technical_faults = own, None, ()
            it.std = std_of(it.probs)
        else:
            taste = it.aesthetic if self.mode == "overall" else it.probs
            it.taste_mean = None if it.probs is None else (it.aesthetic_mean if self.mode == "overall" else own)
            it.std = std_of(taste)
            it.technical_mean = own if self.mode == "overall" else None
            it.technical_faults = own_faults(it, self.families)
        if self.mode == "single" or it.taste_mean is None:
            it.mean, it.faults = it.taste_mean, ()

    def spread(self) -> tuple[float, float] | None:
        """The 10th and 90th percentiles of the scores the grid sorts by (None: fewer than 2)."""
        means = [it.mean for it in self.items if ranking.is_scored(it.mean)]
        if len(means) < 2:
            return None
        lo, hi = np.percentile(means, [10, 90])
        return float(lo), float(hi)

    def recompute_ranks(self) -> None:
        self._ranks()
        if self.items:
            self.dataChanged.emit(self.index(0), self.index(len(self.items) - 1))

    def _ranks(self) -> None:
        if self.mode != "single":  # the overall rule, over the whole shoot (burst groups as found so far)
            items = self.items
            groups = [it.group for it in items]
            judged = overall_scores([it.taste_mean for it in items], [it.technical_faults for it in items],
                                    [it.technical_mean for it in items], groups,
                                    [it.severities for it in items], self.families,
                                    faces=[it.faces for it in items])
            for it, j in zip(items, judged):
                it.mean, it.faults = j.score, j.faults
        ranks, n = ranking.rank_items(self.items)  # the command line's ranks and words
        if self.mode != "single":  # a group's best frame is its best by the overall score
            best: dict[int, tuple[int, PhotoItem]] = {}
            for it, r in zip(self.items, ranks):
                if it.group is not None and r is not None and (it.group not in best or r < best[it.group][0]):
                    best[it.group] = (r, it)
            for it in self.items:
                if it.group is not None and it.group in best:
                    it.group_best = best[it.group][1] is it
        for it, r in zip(self.items, ranks):
            it.rank = r
            it.percentile = None if r is None else ranking.top_percent(r, n)
            it.top = "" if r is None else ranking.top_label(r, n)
        self.update_covers()

    def update_covers(self) -> None:
        """Each group's cover, the frame it shows collapsed: the user's pick (the best-ranked
        if several), else its best frame that is not rejected, else its best; and each frame's
        ``group_lead``, the group's best rank, by which its frames sort together.  Done with
        the ranks and when the grid is filtered again (not on each key press: a frame does not
        vanish under the cursor when it is rejected)."""
        members: dict[int, list[PhotoItem]] = {}
        for it in self.items:
            if it.group is None:
                it.group_cover, it.group_lead, it.group_pos = True, None, 0
            else:
                members.setdefault(it.group, []).append(it)
        for group in members.values():
            cover = min(group, key=lambda m: (m.flag != 1, m.flag == -1, m.rank is None, m.rank or 0, m.sort_name))
            lead = min((m.rank for m in group if m.rank is not None), default=None)
            for pos, m in enumerate(sorted(group, key=lambda m: (m.rank is None, m.rank or 0, m.sort_name)), 1):
                m.group_cover, m.group_lead, m.group_pos = m is cover, lead, pos

    def touch(self, path) -> None:
        row = self.row_of(path)
        if row is not None:
            ix = self.index(row)
            self.dataChanged.emit(ix, ix)

    # -- thumbnails ---------------------------------------------------------------
    def thumbnail(self, item: PhotoItem) -> QPixmap | None:
        """The cached pixmap, or None after queueing a request.  Never reads a file: a
        thumbnail kept packed (a few KB of JPEG, from the scorer) is unpacked (~0.3 ms)."""
        pm = self._thumbs.get(item.key)
        if pm is not None and item.key in self._resized:
            pm = self._refit(item, pm)
        if pm is not None:
            self._thumbs.move_to_end(item.key)
            self.thumbnails_asked = True
            return pm
        data = self._packed.get(item.key)
        if data is not None:
            self._packed.move_to_end(item.key)
            image = QImage.fromData(data, "JPEG")
            if not image.isNull():
                self.thumbnails_asked = True
                return self._store_pixmap(item.key, image)
        if item.key not in self._requested and item.key not in self._thumb_errors:
            self._requested.add(item.key)
            self.thumbnailWanted.emit(str(item.path), self.THUMB_SIZE)
        self.thumbnails_asked = True  # (after the request is queued: see MainWindow.screen_settled)
        return None

    def thumbnail_error(self, item: PhotoItem) -> str | None:
        return self._thumb_errors.get(item.key)

    def set_thumbnail(self, path: str, image: QImage) -> None:
        """A decoded thumbnail (from the image loader): shown now, kept in the LRU."""
        key = abspath(path)
        if key not in self._row:
            return
        self._requested.discard(key)
        data = self._packed.get(key)
        if data is not None:  # the scorer's came first: made from the photo itself, not an EXIF thumbnail
            packed = QImage.fromData(data, "JPEG")
            if not packed.isNull():
                image = packed
        self._store_pixmap(key, image)
        self.touch(path)

    def set_packed_thumbnail(self, path: str, data: bytes) -> None:
        """A thumbnail as JPEG bytes (from the scorer, made with :func:`pack_thumbnail`).
        Kept packed; decoded at once only when its cell is on screen (already showing a
        thumbnail, or waiting for one), else when it is next painted."""
        key = abspath(path)
        if key not in self._row or not data:
            return
        old = self._packed.pop(key, None)
        if old is not None:
            self._packed_bytes -= len(old)
        self._packed[key] = data
        self._packed_bytes += len(data)
        while self._packed_bytes > self.PACKED_BYTES and len(self._packed) > 1:
            _, gone = self._packed.popitem(last=False)
            self._packed_bytes -= len(gone)
        if key in self._thumbs or key in self._requested:
            image = QImage.fromData(data, "JPEG")
            if not image.isNull():
                self._store_pixmap(key, image)
                self.touch(path)

    def set_display_size(self, size: QSize) -> None:
        """The grid's picture size changed (thumbnail size, window width): each pixmap kept is
        fitted to the new size as its cell is painted (:meth:`_refit`), never left blank while
        the file is read again (a smaller size took 1-3 s of "…" cells on 43 photos)."""
        if size == self.DISPLAY_SIZE or size.isEmpty():
            return
        self.DISPLAY_SIZE = QSize(size)
        self._resized = set(self._thumbs)

    def _refit(self, item: PhotoItem, pm: QPixmap) -> QPixmap:
        """A pixmap made for another display size: smaller ones are scaled down at once; for
        a larger size it is shown scaled up while a sharper one is made (from the scorer's
        packed thumbnail at once, else asked of the image loader)."""
        key = item.key
        self._resized.discard(key)
        fit = pm.size().scaled(self.DISPLAY_SIZE, Qt.AspectRatioMode.KeepAspectRatio)
        if fit.width() <= pm.width() and fit.height() <= pm.height():
            return self._store_pixmap(key, pm.toImage())
        data = self._packed.get(key)
        if data is not None:
            image = QImage.fromData(data, "JPEG")
            if not image.isNull():
                return self._store_pixmap(key, image)
        if key not in self._requested:
            self._requested.add(key)
            self.thumbnailWanted.emit(str(item.path), self.THUMB_SIZE)
        return pm

    def _store_pixmap(self, key: str, image: QImage) -> QPixmap:
        pm = QPixmap.fromImage(image)
        fit = pm.size().scaled(self.DISPLAY_SIZE, Qt.AspectRatioMode.KeepAspectRatio)
        if not pm.isNull() and fit != pm.size():
            pm = pm.scaled(fit, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation)
        self._thumbs[key] = pm
        self._thumbs.move_to_end(key)
        self._resized.discard(key)
        while len(self._thumbs) > self.MAX_THUMBS:
            self._thumbs.popitem(last=False)
        return pm

    def set_thumbnail_error(self, path: str, reason: str) -> None:
        key = abspath(path)
        self._requested.discard(key)
        self._thumb_errors[key] = reason
        it = self.item_for(path)
        if it is not None and it.error is None and not it.scored:
            it.error = reason
        self.touch(path)


def pack_thumbnail(im, size: QSize = PhotoListModel.DISPLAY_SIZE, quality: int = PhotoListModel.PACKED_QUALITY) -> bytes:
    """A PIL thumbnail as JPEG bytes at the grid's picture size (for
    :meth:`PhotoListModel.set_packed_thumbnail`; any thread)."""
    import io

    from PIL import Image

    im = im if im.mode == "RGB" else im.convert("RGB")
    if im.width > size.width() or im.height > size.height():
        fit = QSize(im.width, im.height).scaled(size, Qt.AspectRatioMode.KeepAspectRatio)  # as the model stores it
        # BILINEAR: PIL filters over the whole footprint when shrinking (0.2 ms; LANCZOS 0.75 ms)
        im = im.resize((max(1, fit.width()), max(1, fit.height())), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@dataclass
class FilterState:
    flags: str = "all"  # all | picks | rejects | unflagged
    min_stars: int = 0
    label: str = "all"  # all | none | a colour label's name ("Red")
    min_score: float | None = None
    eyes_closed: bool = False  # only photos with at least one face whose eyes are closed
    collapse_groups: bool = True
    expanded: set = field(default_factory=set)

    @property
    def narrowing(self) -> bool:
        """Whether a filter is on (collapsed bursts are not one: they are all there, stacked)."""
        return (self.flags != "all" or bool(self.min_stars) or self.label != "all" or self.min_score is not None
                or self.eyes_closed)


class PhotoProxy(QSortFilterProxyModel):
    """Filters by flags/stars/colour label/score/closed eyes.  The order (score, name, capture time,
    std, face sharpness) is the source model's: ``set_sort_key`` passes the key on; the proxy
    itself never sorts (no Python ``lessThan`` per comparison).

    The "eyes closed" filter shows every such frame, collapsed bursts included: the blink is
    rarely a burst's best frame, and it is the frame this filter is looking for."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.sort_key = "score"
        self.filter = FilterState()
        # Not dynamic: a dataChanged over all rows (new ranks) would re-run the Python
        # filter for every row.  Filters are re-run when they change, on the source's
        # layout changes (re-sorts), and after new scores if a score filter is on.
        self.setDynamicSortFilter(False)

    def setSourceModel(self, model) -> None:
        super().setSourceModel(model)
        if hasattr(model, "set_sort_key"):
            model.set_sort_key(self.sort_key)
            model.refreshed.connect(self._on_refreshed)

    def _on_refreshed(self) -> None:
        if self.filter.min_score is not None or self.filter.eyes_closed:
            self.refilter()

    def set_sort_key(self, key: str) -> None:
        if key not in SORT_KEYS:
            raise ValueError(key)
        self.sort_key = key
        m = self.sourceModel()
        if m is not None:
            m.set_sort_key(key)

    def set_filter(self, **kw) -> None:
        for k, v in kw.items():
            setattr(self.filter, k, v)
        self.refilter()

    def refilter(self) -> None:
        """Re-run the filter (Qt >= 6.9 wants begin/endFilterChange), with the groups'
        covers as the marks now say."""
        m = self.sourceModel()
        if hasattr(m, "update_covers"):
            m.update_covers()
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            self.endFilterChange()
        else:
            self.invalidateFilter()

    def lessThan(self, left, right) -> bool:
        return left.row() < right.row()  # the source rows are in order already

    def filterAcceptsRow(self, row: int, parent) -> bool:
        it = self.sourceModel().item_at(row)
        f = self.filter
        if f.flags == "picks" and it.flag != 1:
            return False
        if f.flags == "rejects" and it.flag != -1:
            return False
        if f.flags == "unflagged" and it.flag != 0:
            return False
        if f.min_stars and it.rating < f.min_stars:
            return False
        if f.label != "all" and (it.label or "none") != f.label:
            return False
        if f.min_score is not None and (it.mean is None or it.mean < f.min_score):
            return False
        if f.eyes_closed:
            return it.eyes_closed_count > 0
        if f.collapse_groups and it.group is not None and not it.group_cover and it.group not in f.expanded:
            return False
        return True

    def item(self, proxy_index) -> PhotoItem | None:
        if not proxy_index.isValid():
            return None
        return self.sourceModel().item_at(self.mapToSource(proxy_index).row())

    def visible_items(self) -> list[PhotoItem]:
        """The photos shown, in order (after any pending re-sort)."""
        m = self.sourceModel()
        m.flush()
        return [m.item_at(self.mapToSource(self.index(r, 0)).row()) for r in range(self.rowCount())]
