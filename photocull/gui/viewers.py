"""Loupe (one photo, full window, fit or 100 %) and compare (2-4 photos, synced zoom/pan).

Each pane paints its photo's marks (flag, stars, colour label) from the item itself, so a
``refresh()`` after a mark shows it at once.  Compare has one focused pane (outlined): a
click, Tab / Shift+Tab or the arrow keys move it, and marks go to that pane's photo only."""
from __future__ import annotations

import os

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGridLayout, QVBoxLayout, QWidget

from .photomodel import PhotoItem
from .widgets import LABEL_COLOURS

FOCUS_COLOUR = QColor("#f0c040")


def marks_text(it: PhotoItem) -> str:
    """The flag and stars as the panes show them: "PICK  ★★★"."""
    flag = "PICK" if it.flag > 0 else "REJECT" if it.flag < 0 else ""
    stars = "★" * it.rating + "☆" * (5 - it.rating) if it.rating else ""
    return "  ".join(t for t in (flag, stars) if t)


class ImagePane(QWidget):
    """Paints one image fitted, or at 100 % around a centre that can be dragged."""

    panned = Signal(QPointF)  # centre in image fractions
    clicked = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.pixmap: QPixmap | None = None
        self.item: PhotoItem | None = None
        self.zoom_100 = False
        self.centre = QPointF(0.5, 0.5)
        self.focused = False  # outlined: the pane that marks go to (compare)
        self.painted_marks: tuple | None = None  # (flag, rating, label) as last painted
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

    def set_focused(self, on: bool) -> None:
        if on != self.focused:
            self.focused = on
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
        else:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            p.drawPixmap(self.target_rect(), self.pixmap, QRectF(self.pixmap.rect()))
        if self.item is not None:
            self._paint_overlay(p, self.item)
        if self.focused:
            p.setPen(QPen(FOCUS_COLOUR, 4))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(self.rect().adjusted(2, 2, -2, -2))

    def _paint_overlay(self, p: QPainter, it: PhotoItem) -> None:
        """The bottom strip: name, score, reason; then the marks (flag, stars, label)."""
        h = 26
        p.fillRect(0, self.height() - h, self.width(), h, QColor(0, 0, 0, 170))
        x = 8
        if it.label:
            p.fillRect(x, self.height() - h + 6, 14, 14, QColor(LABEL_COLOURS.get(it.label, "#999")))
            x += 20
        marks = marks_text(it)
        if marks:
            f = p.font()
            f.setBold(True)
            p.setFont(f)
            p.setPen(QColor("#ff6060") if it.flag < 0 else QColor("#f0c040"))
            p.drawText(x, self.height() - 8, marks)
            x += p.fontMetrics().horizontalAdvance(marks) + 14
            f.setBold(False)
            p.setFont(f)
        txt = it.name + (f"   {it.mean:.2f} ± {it.std:.2f}" if it.scored else "") + (f"   {it.why}" if it.why else "")
        p.setPen(QColor("#eee"))
        txt = p.fontMetrics().elidedText(txt, Qt.TextElideMode.ElideRight, self.width() - x - 8)
        p.drawText(x, self.height() - 8, txt)
        self.painted_marks = (it.flag, it.rating, it.label)

    def mousePressEvent(self, ev) -> None:
        self._drag = (ev.position(), QPointF(self.centre))
        self.clicked.emit()

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

    def item(self) -> PhotoItem | None:
        return self.pane.item

    def refresh(self) -> None:
        """Repaint the overlay (the photo's marks changed)."""
        self.pane.update()

    def set_image(self, path, image) -> None:
        self.pane.set_image(path, image)

    def toggle_zoom(self) -> None:
        self.pane.set_zoom(not self.pane.zoom_100)


class CompareView(QWidget):
    """Two to four photos side by side; zoom and pan move all of them together.  One pane
    has the focus (outlined): a click, Tab / Shift+Tab or the arrow keys move it."""

    COLS = 2
    focusMoved = Signal(object)  # the focused pane's PhotoItem

    def __init__(self, parent=None):
        super().__init__(parent)
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        self.panes: list[ImagePane] = []
        self.focus_index = 0
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setStyleSheet("CompareView{background:#111}")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)

    def show_items(self, items: list[PhotoItem], focus: int = 0) -> None:
        for pn in self.panes:
            pn.setParent(None)
            pn.deleteLater()
        self.panes = []
        for i, it in enumerate(items[:4]):
            pn = ImagePane()
            pn.set_item(it)
            pn.panned.connect(self._sync)
            pn.clicked.connect(self._on_pane_clicked)
            self.grid.addWidget(pn, i // self.COLS, i % self.COLS)
            self.panes.append(pn)
        self.focus_index = -1
        self.set_focus_index(focus)

    def items(self) -> list[PhotoItem]:
        return [pn.item for pn in self.panes]

    def focused_item(self) -> PhotoItem | None:
        return self.panes[self.focus_index].item if self.panes else None

    def set_focus_index(self, i: int) -> None:
        if not self.panes:
            return
        i = min(max(i, 0), len(self.panes) - 1)
        changed = i != self.focus_index
        self.focus_index = i
        for k, pn in enumerate(self.panes):
            pn.set_focused(k == i)
        if changed:
            self.focusMoved.emit(self.panes[i].item)

    def move_focus(self, delta: int, wrap: bool = True) -> bool:
        """Focus the pane ``delta`` places on; False when there is none (``wrap`` off)."""
        n = len(self.panes)
        if not n:
            return False
        i = self.focus_index + delta
        if not wrap and not 0 <= i < n:
            return False
        self.set_focus_index(i % n)
        return True

    def refresh(self) -> None:
        """Repaint every overlay (marks changed)."""
        for pn in self.panes:
            pn.update()

    def _on_pane_clicked(self) -> None:
        if self.sender() in self.panes:
            self.set_focus_index(self.panes.index(self.sender()))
        self.setFocus(Qt.FocusReason.MouseFocusReason)

    def focusNextPrevChild(self, forward: bool) -> bool:
        """Tab / Shift+Tab move the focused pane instead of the keyboard focus."""
        self.move_focus(1 if forward else -1)
        return True

    def keyPressEvent(self, ev) -> None:
        steps = {Qt.Key.Key_Left: -1, Qt.Key.Key_Right: 1, Qt.Key.Key_Up: -self.COLS, Qt.Key.Key_Down: self.COLS}
        step = steps.get(ev.key())
        if step is None:
            super().keyPressEvent(ev)
            return
        i = self.focus_index + step
        if 0 <= i < len(self.panes):
            self.set_focus_index(i)

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
