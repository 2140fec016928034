"""Loupe (one photo, full window, fit or 100 %) and compare (2-4 photos, synced zoom/pan)."""
from __future__ import annotations

import os

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPixmap
from PySide6.QtWidgets import QGridLayout, QVBoxLayout, QWidget

from .photomodel import PhotoItem


class ImagePane(QWidget):
    """Paints one image fitted, or at 100 % around a centre that can be dragged."""

    panned = Signal(QPointF)  # centre in image fractions

    def __init__(self, parent=None):
        super().__init__(parent)
        self.pixmap: QPixmap | None = None
        self.item: PhotoItem | None = None
        self.zoom_100 = False
        self.centre = QPointF(0.5, 0.5)
        self._drag = None
        self.setMinimumSize(200, 150)

    def set_item(self, it: PhotoItem) -> None:
        self.item, self.pixmap = it, None
        self.update()

    def set_image(self, path: str, image) -> bool:
        if self.item is None or os.path.abspath(path) != self.item.key:
            return False
        self.pixmap = QPixmap.fromImage(image)
        self.update()
        return True

    def set_zoom(self, on: bool) -> None:
        self.zoom_100 = on
        self.update()

    def set_centre(self, c: QPointF) -> None:
        self.centre = QPointF(min(max(c.x(), 0.0), 1.0), min(max(c.y(), 0.0), 1.0))
        self.update()

    def target_rect(self) -> QRectF:
        pm = self.pixmap
        if pm is None:
            return QRectF()
        w, h = pm.width(), pm.height()
        if self.zoom_100:
            return QRectF(self.width() / 2 - self.centre.x() * w, self.height() / 2 - self.centre.y() * h, w, h)
        s = min(self.width() / w, self.height() / h)
        return QRectF((self.width() - w * s) / 2, (self.height() - h * s) / 2, w * s, h * s)

    def paintEvent(self, ev) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#111"))
        if self.pixmap is None:
            p.setPen(QColor("#aaa"))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "loading…" if self.item else "")
            return
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.drawPixmap(self.target_rect(), self.pixmap, QRectF(self.pixmap.rect()))
        if self.item is not None:
            it = self.item
            txt = it.name + (f"   {it.mean:.2f} ± {it.std:.2f}" if it.scored else "") + (f"   {it.why}" if it.why else "")
            txt += "   " + ("PICK" if it.flag > 0 else "REJECT" if it.flag < 0 else "") + ("  " + "★" * it.rating if it.rating else "")
            p.fillRect(0, self.height() - 24, self.width(), 24, QColor(0, 0, 0, 160))
            p.setPen(QColor("#eee"))
            p.drawText(8, self.height() - 7, txt)

    def mousePressEvent(self, ev) -> None:
        self._drag = (ev.position(), QPointF(self.centre))

    def mouseMoveEvent(self, ev) -> None:
        if self._drag is None or not self.zoom_100 or self.pixmap is None:
            return
        start, c0 = self._drag
        d = ev.position() - start
        c = QPointF(c0.x() - d.x() / self.pixmap.width(), c0.y() - d.y() / self.pixmap.height())
        self.set_centre(c)
        self.panned.emit(self.centre)

    def mouseReleaseEvent(self, ev) -> None:
        self._drag = None


class LoupeView(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.pane = ImagePane()
        lay.addWidget(self.pane)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def show_item(self, it: PhotoItem) -> None:
        self.pane.set_item(it)

    def set_image(self, path, image) -> None:
        self.pane.set_image(path, image)

    def toggle_zoom(self) -> None:
        self.pane.set_zoom(not self.pane.zoom_100)


class CompareView(QWidget):
    """Two to four photos side by side; zoom and pan move all of them together."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        self.panes: list[ImagePane] = []

    def show_items(self, items: list[PhotoItem]) -> None:
        for pn in self.panes:
            pn.setParent(None)
        self.panes = []
        cols = 2
        for i, it in enumerate(items[:4]):
            pn = ImagePane()
            pn.set_item(it)
            pn.panned.connect(self._sync)
            self.grid.addWidget(pn, i // cols, i % cols)
            self.panes.append(pn)

    def set_image(self, path, image) -> None:
        for pn in self.panes:
            pn.set_image(path, image)

    def toggle_zoom(self) -> None:
        on = not (self.panes and self.panes[0].zoom_100)
        for pn in self.panes:
            pn.set_zoom(on)

    def _sync(self, centre: QPointF) -> None:
        for pn in self.panes:
            if pn is not self.sender():
                pn.set_centre(centre)
