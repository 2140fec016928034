"""The grid's data: one row per photo, a proxy that sorts and filters, and a thumbnail cache."""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QImage, QPixmap

ItemRole = Qt.ItemDataRole.UserRole + 1


@dataclass
class PhotoItem:
    path: Path
    mean: float | None = None
    std: float | None = None
    probs: np.ndarray | None = None
    severities: np.ndarray | None = None
    why: str = ""
    error: str | None = None
    capture_time: float | None = None
    exposure_bias: float | None = None
    rank: int | None = None
    percentile: float | None = None
    flag: int = 0  # -1 reject, 0, 1 pick
    rating: int = 0
    label: str | None = None
    companions: list[Path] = field(default_factory=list)
    kind: str = ""  # "RAW+JPG" badge etc.
    group: int | None = None  # burst group id
    group_size: int = 1
    group_kind: str = ""
    group_best: bool = True

    @property
    def key(self) -> str:
        return os.path.abspath(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def scored(self) -> bool:
        return self.mean is not None


SORT_KEYS = {
    "score": lambda it: (it.mean is None, -(it.mean or 0.0), it.name.lower()),
    "name": lambda it: (it.name.lower(),),
    "time": lambda it: (it.capture_time is None, it.capture_time or 0.0, it.name.lower()),
    "std": lambda it: (it.std is None, it.std or 0.0, it.name.lower()),
}


class PhotoListModel(QAbstractListModel):
    thumbnailWanted = Signal(str, int)

    THUMB_SIZE = 256
    MAX_THUMBS = 3000

    def __init__(self, parent=None):
        super().__init__(parent)
        self.items: list[PhotoItem] = []
        self._row: dict[str, int] = {}
        self._thumbs: OrderedDict[str, QPixmap] = OrderedDict()
        self._requested: set[str] = set()
        self._thumb_errors: dict[str, str] = {}

    # -- Qt model API -------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.items)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self.items):
            return None
        it = self.items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return it.name
        if role == ItemRole:
            return it
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [str(it.path)]
            if it.scored:
                lines.append(f"score {it.mean:.2f} ± {it.std:.2f}" + (f"  ·  rank {it.rank}" if it.rank else ""))
            if it.why:
                lines.append(it.why)
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
        self._row = {it.key: i for i, it in enumerate(self.items)}
        self._thumbs.clear()
        self._requested.clear()
        self._thumb_errors.clear()
        self.endResetModel()
        self.recompute_ranks()

    def item_for(self, path) -> PhotoItem | None:
        r = self._row.get(os.path.abspath(path))
        return None if r is None else self.items[r]

    def row_of(self, path) -> int | None:
        return self._row.get(os.path.abspath(path))

    def update_results(self, results) -> None:
        """Apply ScoreResults (from the worker) to their rows."""
        rows = []
        for r in results:
            row = self._row.get(os.path.abspath(r.path))
            if row is None:
                continue
            it = self.items[row]
            it.probs, it.severities, it.why, it.error = r.probs, r.severities, r.why, r.error
            it.mean, it.std = r.mean, r.std
            if r.exif is not None and r.exif.capture_time is not None:
                it.capture_time = r.exif.capture_time
                it.exposure_bias = r.exif.exposure_bias
            rows.append(row)
        self.recompute_ranks()

    def recompute_ranks(self) -> None:
        scored = [it for it in self.items if it.mean is not None]
        scored.sort(key=lambda it: -it.mean)
        n = len(scored)
        for it in self.items:
            it.rank = it.percentile = None
        for rank, it in enumerate(scored, 1):
            it.rank = rank
            it.percentile = 100.0 * rank / n  # "top X %"
        if self.items:
            self.dataChanged.emit(self.index(0), self.index(len(self.items) - 1))

    def touch(self, path) -> None:
        row = self.row_of(path)
        if row is not None:
            ix = self.index(row)
            self.dataChanged.emit(ix, ix)

    # -- thumbnails ---------------------------------------------------------------
    def thumbnail(self, item: PhotoItem) -> QPixmap | None:
        """The cached pixmap, or None after queueing a request (never decodes here)."""
        pm = self._thumbs.get(item.key)
        if pm is not None:
            self._thumbs.move_to_end(item.key)
            return pm
        if item.key not in self._requested and item.key not in self._thumb_errors:
            self._requested.add(item.key)
            self.thumbnailWanted.emit(str(item.path), self.THUMB_SIZE)
        return None

    def thumbnail_error(self, item: PhotoItem) -> str | None:
        return self._thumb_errors.get(item.key)

    def set_thumbnail(self, path: str, image: QImage) -> None:
        key = os.path.abspath(path)
        if key not in self._row:
            return
        self._thumbs[key] = QPixmap.fromImage(image)
        self._requested.discard(key)
        while len(self._thumbs) > self.MAX_THUMBS:
            old, _ = self._thumbs.popitem(last=False)
        self.touch(path)

    def set_thumbnail_error(self, path: str, reason: str) -> None:
        key = os.path.abspath(path)
        self._requested.discard(key)
        self._thumb_errors[key] = reason
        it = self.item_for(path)
        if it is not None and it.error is None and not it.scored:
            it.error = reason
        self.touch(path)


@dataclass
class FilterState:
    flags: str = "all"  # all | picks | rejects | unflagged
    min_stars: int = 0
    min_score: float | None = None
    collapse_groups: bool = True
    expanded: set = field(default_factory=set)


class PhotoProxy(QSortFilterProxyModel):
    """Sorts by a key (score, name, capture time, std) and filters by flags/stars/score."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.sort_key = "score"
        self.filter = FilterState()
        self.setDynamicSortFilter(True)
        self.sort(0)

    def set_sort_key(self, key: str) -> None:
        if key not in SORT_KEYS:
            raise ValueError(key)
        self.sort_key = key
        self.invalidate()
        self.sort(0)

    def set_filter(self, **kw) -> None:
        for k, v in kw.items():
            setattr(self.filter, k, v)
        self.refilter()

    def refilter(self) -> None:
        """Re-run the filter (Qt >= 6.9 wants begin/endFilterChange)."""
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            self.endFilterChange()
        else:
            self.invalidateFilter()

    def lessThan(self, left, right) -> bool:
        m = self.sourceModel()
        key = SORT_KEYS[self.sort_key]
        return key(m.items[left.row()]) < key(m.items[right.row()])

    def filterAcceptsRow(self, row: int, parent) -> bool:
        it = self.sourceModel().items[row]
        f = self.filter
        if f.flags == "picks" and it.flag != 1:
            return False
        if f.flags == "rejects" and it.flag != -1:
            return False
        if f.flags == "unflagged" and it.flag != 0:
            return False
        if f.min_stars and it.rating < f.min_stars:
            return False
        if f.min_score is not None and (it.mean is None or it.mean < f.min_score):
            return False
        if f.collapse_groups and it.group is not None and not it.group_best and it.group not in f.expanded:
            return False
        return True

    def item(self, proxy_index) -> PhotoItem | None:
        if not proxy_index.isValid():
            return None
        return self.sourceModel().items[self.mapToSource(proxy_index).row()]

    def visible_items(self) -> list[PhotoItem]:
        m = self.sourceModel()
        return [m.items[self.mapToSource(self.index(r, 0)).row()] for r in range(self.rowCount())]
