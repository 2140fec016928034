"""Painting: the thumbnail delegate and the score histogram."""
from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QModelIndex, QPointF, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QStyle, QStyledItemDelegate, QWidget


from .photomodel import ItemRole, PhotoItem, reasons_line

LABEL_COLOURS = {"Red": "#d33", "Yellow": "#db3", "Green": "#3a3", "Blue": "#36d", "Purple": "#a3c"}


def both_scores(it) -> str:
    """"A 5.6 · T 8.1" (aesthetic, technical) when both networks scored the photo; else ''."""
    if it.aesthetic_mean is None or it.technical_mean is None:
        return ""
    return f"A {it.aesthetic_mean:.1f} · T {it.technical_mean:.1f}"


EYES_CLOSED_BADGE = QColor(200, 40, 40, 230)


def score_badge(it, metrics, room: int) -> str:
    """The score badge's words that fit in ``room`` px (``metrics``: the badge font's, 10 px of
    padding): "5.07 · top 87%", else "5.07" (a small cell with a flag and a closed-eyes badge
    beside it hid the end under them)."""
    full = f"{it.mean:.2f}" + (f" · {it.top}" if it.top else "") + (" · old" if it.stale else "")
    for text in (full, f"{it.mean:.2f}" + (" · old" if it.stale else "")):
        if metrics.horizontalAdvance(text) + 10 <= room:
            return text
    return f"{it.mean:.2f}"


def eyes_closed_badge(it) -> str | None:
    """The grid badge of a photo with closed eyes: None when it has none; else the words beside
    the drawn shut eye: '' when every face has them shut, "1/3" in a group (the reason line below
    the thumbnail says it in words)."""
    faces = getattr(it, "faces", None)
    shut = faces.eyes_closed_count if faces is not None else 0
    if not shut:
        return None
    return "" if shut == faces.count else f"{shut}/{faces.count}"


def draw_closed_eye(p: QPainter, cx: float, cy: float, w: float, colour: QColor) -> None:
    """A shut eye (the lid's lower curve and three lashes below it), ``w`` px wide, centred on
    (cx, cy): drawn, so it needs no symbol font."""
    rx, ry = w / 2, w * 0.42
    ecx, ecy = cx, cy - w * 0.3  # the lid's ellipse: its lower curve sits just above the centre
    p.save()
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(QPen(colour, max(1.5, w / 8), Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.drawArc(QRectF(ecx - rx, ecy - ry, 2 * rx, 2 * ry), 200 * 16, 140 * 16)
    for deg in (235, 270, 305):  # lashes: outwards from the curve
        a = math.radians(deg)
        dx, dy = math.cos(a), -math.sin(a)
        x0, y0 = ecx + rx * dx, ecy + ry * dy
        p.drawLine(QPointF(x0, y0), QPointF(x0 + dx * w * 0.16, y0 + dy * w * 0.22))
    p.restore()


def score_colour(percentile: float | None) -> QColor:
    if percentile is None:
        return QColor("#777")
    if percentile <= 10:
        return QColor("#2e9d4a")
    if percentile <= 50:
        return QColor("#5a7fb0")
    if percentile <= 90:
        return QColor("#8a7a50")
    return QColor("#b04a3a")


class ThumbDelegate(QStyledItemDelegate):
    """Paints a cell: thumbnail, score + rank badge, flags, stars, label, reason.

    ``paint`` only reads the model's pixmap cache; a miss queues a request.  ``compact``
    (the loupe's filmstrip): a small cell, the thumbnail with its badges and marks, no text.
    """

    CELL = QSize(220, 220)
    COMPACT_CELL = QSize(132, 96)
    PAD = 6
    LABEL_W = 6  # the colour label's stripe
    TEXT = 48  # the name and reason lines under the picture

    def __init__(self, parent=None, compact: bool = False):
        super().__init__(parent)
        self.compact = compact
        if compact:
            self.CELL = self.COMPACT_CELL

    def sizeHint(self, option, index) -> QSize:
        return self.CELL

    def set_cell(self, size: QSize) -> None:
        """The cell's size (the window's thumbnail size, widened so the columns fill the grid)."""
        self.CELL = QSize(size)
        self.sizeHintChanged.emit(QModelIndex())

    def picture_size(self) -> QSize:
        """The picture area of a full cell: what the model's pixmaps are scaled to once."""
        return QSize(self.CELL.width() - 4 - 2 * self.PAD, self.CELL.height() - 4 - self.TEXT)

    def paint(self, p: QPainter, option, index) -> None:
        it: PhotoItem = index.data(ItemRole)
        if it is None:
            return
        model = index.model()
        src = model.sourceModel() if hasattr(model, "sourceModel") else model
        p.save()
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = option.rect.adjusted(2, 2, -2, -2)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        p.fillRect(r, QColor("#3d5a80") if selected else QColor("#2b2b2b"))
        if it.flag < 0:
            p.setOpacity(0.35)  # rejected photos look faded
        pad = self.PAD // 2 if self.compact else self.PAD
        high = r.height() - 2 * pad if self.compact else r.height() - self.TEXT
        area = QRect(r.left() + pad, r.top() + pad, r.width() - 2 * pad, high)
        pm = src.thumbnail(it)
        if pm is not None and not pm.isNull():
            scaled = pm.scaled(area.size(), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
            x = area.left() + (area.width() - scaled.width()) // 2
            y = area.top() + (area.height() - scaled.height()) // 2
            p.drawPixmap(x, y, scaled)
        else:
            p.setPen(QColor("#888"))
            err = it.error or src.thumbnail_error(it)
            p.drawText(area, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       f"⚠ {err}" if err else "…")
        p.setOpacity(1.0)
        # what the top-right badges take (flag, closed eyes): the score badge keeps clear of them
        bold = QFont(option.font)
        bold.setBold(True)
        p.setFont(bold)
        eyes = eyes_closed_badge(it)
        eyes_w = 28 + (p.fontMetrics().horizontalAdvance(eyes) + 4 if eyes else 0) if eyes is not None else 0
        taken = (24 if it.flag else 0) + (eyes_w + 2 if eyes is not None else 0)
        # score badge (top-left): mean and rank in the shoot, shortened where a small cell has
        # no room for all of it beside the other badges ("5.07 · top 87%", then "5.07")
        if it.scored:
            badge = score_badge(it, p.fontMetrics(), area.width() - taken)
            w = p.fontMetrics().horizontalAdvance(badge) + 10
            br = QRect(area.left(), area.top(), w, 20)
            p.fillRect(br, score_colour(None if it.stale else it.percentile))
            p.setPen(Qt.GlobalColor.white)
            p.drawText(br, Qt.AlignmentFlag.AlignCenter, badge)
            both = "" if self.compact else both_scores(it)
            if both:  # the two networks beside the overall score: "A 5.6 · T 8.1"
                p.setFont(option.font)
                w2 = p.fontMetrics().horizontalAdvance(both) + 10
                br2 = QRect(area.left(), area.top() + 21, w2, 18)
                p.fillRect(br2, QColor(0, 0, 0, 170))
                p.drawText(br2, Qt.AlignmentFlag.AlignCenter, both)
        # flags (top-right)
        if it.flag:
            fr = QRect(area.right() - 22, area.top(), 22, 20)
            p.fillRect(fr, QColor("#eee") if it.flag > 0 else QColor("#c33"))
            p.setPen(Qt.GlobalColor.black if it.flag > 0 else Qt.GlobalColor.white)
            p.drawText(fr, Qt.AlignmentFlag.AlignCenter, "⚑" if it.flag > 0 else "✕")
        # closed eyes (top-right, left of the flag): a drawn shut eye, and "1/3" in a group
        if eyes is not None:
            p.setFont(bold)
            right = area.right() - (24 if it.flag else 0)
            er = QRect(right - eyes_w, area.top(), eyes_w, 20)
            p.fillRect(er, EYES_CLOSED_BADGE)
            draw_closed_eye(p, er.left() + 14, er.top() + 10, 18, QColor("#fff"))
            if eyes:
                p.setPen(Qt.GlobalColor.white)
                p.drawText(er.adjusted(26, 0, -2, 0), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, eyes)
        if it.kind:
            p.setFont(option.font)
            kr = QRect(area.left(), area.bottom() - 18, p.fontMetrics().horizontalAdvance(it.kind) + 8, 18)
            p.fillRect(kr, QColor(0, 0, 0, 170))
            p.setPen(Qt.GlobalColor.white)
            p.drawText(kr, Qt.AlignmentFlag.AlignCenter, it.kind)
        if it.group is not None and it.group_size > 1:
            # the frame a collapsed group shows: "▣ 3"; the others, seen when it is expanded (G),
            # their place in it ("▣ 2/3", paler): where a burst ends is seen at a glance
            if it.group_cover:
                txt = f"▣ {it.group_size}" + (f" {it.group_kind}" if it.group_kind and it.group_kind != "burst" else "")
            else:
                txt = f"▣ {it.group_pos}/{it.group_size}" if it.group_pos else "▣"
            gr = QRect(area.right() - p.fontMetrics().horizontalAdvance(txt) - 10, area.bottom() - 18,
                       p.fontMetrics().horizontalAdvance(txt) + 8, 18)
            p.fillRect(gr, QColor(40, 90, 160, 210) if it.group_cover else QColor(90, 120, 170, 170))
            p.setPen(Qt.GlobalColor.white)
            p.drawText(gr, Qt.AlignmentFlag.AlignCenter, txt)
        if self.compact:  # stars and label over the thumbnail's foot
            if it.label:
                p.fillRect(QRect(r.left() + 2, r.top() + 2, 5, r.height() - 4), QColor(LABEL_COLOURS.get(it.label, "#999")))
            if it.rating:
                p.setFont(option.font)
                bottom = area.bottom() - (19 if it.kind else 0)  # above the RAW+JPEG tag
                sr = QRect(area.left(), bottom - 17, p.fontMetrics().horizontalAdvance("★" * it.rating) + 8, 18)
                p.fillRect(sr, QColor(0, 0, 0, 170))
                p.setPen(QColor("#f0c040"))
                p.drawText(sr, Qt.AlignmentFlag.AlignCenter, "★" * it.rating)
            p.restore()
            return
        # bottom lines: name, stars/label, reason
        p.setFont(option.font)
        p.setPen(QColor("#ddd"))
        inset = self.LABEL_W + 2 if it.label else 0  # (the label's stripe runs down the cell's left edge)
        line1 = QRect(r.left() + self.PAD + inset, r.bottom() - 40, r.width() - 2 * self.PAD - inset, 18)
        stars = "★" * it.rating + "☆" * (5 - it.rating) if it.rating else ""
        room = line1.width() - (p.fontMetrics().horizontalAdvance(stars) + 6 if stars else 0)
        p.drawText(line1, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                   p.fontMetrics().elidedText(it.name, Qt.TextElideMode.ElideMiddle, room))
        if stars:
            p.setPen(QColor("#f0c040"))
            p.drawText(line1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, stars)
        if it.label:
            p.fillRect(QRect(r.left() + 2, r.top() + 2, self.LABEL_W, r.height() - 4),
                       QColor(LABEL_COLOURS.get(it.label, "#999")))
        line2 = QRect(r.left() + self.PAD + inset, r.bottom() - 21, r.width() - 2 * self.PAD - inset, 18)
        why = reasons_line(it)
        if why:
            p.setPen(QColor("#e05050") if it.faults else QColor("#f0a070"))
            p.drawText(line2, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                       p.fontMetrics().elidedText(why, Qt.TextElideMode.ElideRight, line2.width()))
        elif it.error:
            p.setPen(QColor("#e66"))
            p.drawText(line2, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                       p.fontMetrics().elidedText(it.error, Qt.TextElideMode.ElideRight, line2.width()))
        p.restore()


class HistogramWidget(QWidget):
    """The 10-bucket score distribution of one photo, with mean ± std."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.probs: np.ndarray | None = None
        self.title = ""
        self.setMinimumSize(240, 150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_distribution(self, probs, title: str = "") -> None:
        self.probs = None if probs is None else np.asarray(probs, dtype=float)
        self.title = title
        self.update()

    @property
    def mean(self) -> float | None:
        return None if self.probs is None else float(self.probs @ np.arange(1, 11))

    @property
    def std(self) -> float | None:
        if self.probs is None:
            return None
        m = self.mean
        return float(np.sqrt(max(self.probs @ (np.arange(1, 11) ** 2) - m * m, 0)))

    def bar_heights(self) -> list[float]:
        """Bar heights as fractions of the tallest bar (what is drawn)."""
        if self.probs is None:
            return []
        top = float(self.probs.max()) or 1.0
        return [float(v) / top for v in self.probs]

    def paintEvent(self, ev) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = self.rect().adjusted(8, 22, -8, -20)
        p.fillRect(self.rect(), self.palette().window())
        p.setPen(self.palette().windowText().color())
        if self.probs is None:
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.title or "no score yet")
            return
        head = f"mean {self.mean:.2f} ± {self.std:.2f}"
        if self.title:
            head = f"{self.title}   {head}"
        p.drawText(QRect(8, 2, self.width() - 16, 18), Qt.AlignmentFlag.AlignLeft, head)
        bw = rect.width() / 10.0
        for i, h in enumerate(self.bar_heights()):
            bh = h * rect.height()
            bar = QRectF(rect.left() + i * bw + 2, rect.bottom() - bh, bw - 4, bh)
            p.fillRect(bar, QColor("#4a7bd0"))
            p.drawText(QRectF(rect.left() + i * bw, rect.bottom() + 2, bw, 16), Qt.AlignmentFlag.AlignCenter, str(i + 1))
        # mean marker and ±std span
        def x_of(score: float) -> float:
            return rect.left() + (score - 0.5) * bw
        m, s = self.mean, self.std
        p.setPen(QPen(QColor("#e04040"), 2))
        p.drawLine(QPointF(x_of(m), rect.top()), QPointF(x_of(m), rect.bottom()))
        p.setPen(QPen(QColor("#e04040"), 1, Qt.PenStyle.DashLine))
        y = rect.top() + 4
        p.drawLine(QPointF(x_of(max(1, m - s)), y), QPointF(x_of(min(10, m + s)), y))
