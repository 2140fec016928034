"""Loupe (one photo, full window, fit or 100 %) and compare (2-4 photos, synced zoom/pan).

Each pane paints its photo's marks (flag, stars, colour label) from the item itself, so a
``refresh()`` after a mark shows it at once.  Compare has one focused pane (outlined): a
click, Tab / Shift+Tab or the arrow keys move it, and marks go to that pane's photo only.

Two overlays, drawn from what the scoring pipeline found (nothing is computed here), in the
photo's own rectangle, so they stay in place at fit, at 100 % and while panning:

* face boxes (**O**): green when the eyes are open, red when closed, orange when looking away,
  grey when the eyes were too small to tell;
* the focus map (**M**): the focus analysis's sharpness grid, sharp cells green and faint,
  soft ones red, cells without detail to judge hatched; the subject it judged dashed.

One is computed here, from the pixels on screen:

* highlight and shadow clipping (**J**), as in Lightroom: red where a channel is blown, blue
  where every channel is black.  Fitted (and at 100 % until the full image comes) it is the
  preview's, counted once per photo (:class:`PreviewStats`); at 100 % on the full image it is
  the full image's, one overlay pixel per image pixel, made in tiles as they come on screen
  and its percentages counted in a thread (:class:`FullClipping`).

The loupe also shows an RGB histogram in its bottom-right corner: the preview's, also at
100 % (the same ``PreviewStats``: nothing is counted at paint time; a 1280 px preview's
histogram has the full image's shape, its corner triangles may miss a few clipped pixels).

The panes say in their top-left corner what an overlay has to show ("no focus map", "no
faces found"), so an empty overlay is never mistaken for a switched-off one."""
from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QCursor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QVBoxLayout, QWidget

from .photomodel import PhotoItem
from .widgets import LABEL_COLOURS, reasons_line

FOCUS_COLOUR = QColor("#f0c040")

FACE_OPEN = QColor("#30d050")
FACE_CLOSED = QColor("#ff3030")
FACE_AWAY = QColor("#ff9a20")
FACE_UNKNOWN = QColor("#b0b0b0")

# the focus map's colours by cell sharpness (FocusReport: 1 / (1 + blur), blur the Gaussian
# sigma in the analysed view's pixels): sharp at blur <= 1 px, soft from blur >= 2.3 px
MAP_SHARP = 0.5
MAP_SOFT = 0.3
MAP_ALPHA_SHARP = 45
MAP_ALPHA_SOFT = 130


def face_colour(face) -> QColor:
    """A face box's colour: red eyes closed, orange looking away, green eyes open, grey unknown."""
    if getattr(face, "eyes_closed", False):
        return FACE_CLOSED
    if getattr(face, "looking_away", False):
        return FACE_AWAY
    if getattr(face, "eyes_open", True):
        return FACE_OPEN
    return FACE_UNKNOWN


def face_label(face) -> str:
    if getattr(face, "eyes_closed", False):
        return "eyes closed"
    if getattr(face, "looking_away", False):
        return "looking away"
    if getattr(face, "eyes_open", True):
        return "eyes open"
    return "eyes not measured"


def focus_grid(report) -> np.ndarray | None:
    """The report's sharpness grid (rows x cols, 0..1, NaN where no detail), or None when there
    is none to draw."""
    if report is None or not hasattr(report, "sharpness_map"):
        return None
    try:
        g = np.asarray(report.sharpness_map(), dtype=np.float32)
    except (TypeError, ValueError):
        return None
    if g.ndim != 2 or g.size == 0 or not np.isfinite(g).any():
        return None
    return g


def focus_map_image(grid: np.ndarray) -> QImage:
    """One pixel per cell, premultiplied ARGB: green (faint) where sharp, through yellow, to red
    (stronger) where soft; clear where the cell had no detail to judge."""
    rows, cols = grid.shape
    t = np.clip((grid - MAP_SOFT) / (MAP_SHARP - MAP_SOFT), 0.0, 1.0)  # 0 soft .. 1 sharp
    t = np.nan_to_num(t, nan=0.0)
    red = np.where(t < 0.5, 255.0, 255.0 * (1.0 - t) * 2.0)
    green = np.where(t < 0.5, 400.0 * t, 210.0)
    blue = np.full_like(t, 40.0)
    alpha = MAP_ALPHA_SOFT + (MAP_ALPHA_SHARP - MAP_ALPHA_SOFT) * t
    alpha[~np.isfinite(grid)] = 0.0
    a = alpha / 255.0
    argb = np.zeros((rows, cols, 4), np.uint8)  # Format_ARGB32_Premultiplied in memory: B, G, R, A
    argb[..., 0] = np.clip(blue * a, 0, 255)
    argb[..., 1] = np.clip(green * a, 0, 255)
    argb[..., 2] = np.clip(red * a, 0, 255)
    argb[..., 3] = np.clip(alpha, 0, 255)
    img = QImage(argb.tobytes(), cols, rows, cols * 4, QImage.Format.Format_ARGB32_Premultiplied)
    return img.copy()  # owns its pixels (the bytes above go away)


CLIP_HIGH = 254  # a channel at or above this is blown (JPEG's 255, and 254 after rounding)
CLIP_LOW = 1  # every channel at or below this is crushed black
CLIP_RED = QColor(255, 0, 0)
CLIP_BLUE = QColor(40, 90, 255)
HIST_SIZE = (256, 96)  # the loupe's histogram, in logical pixels


def qimage_rgb(image: QImage) -> np.ndarray:
    """(h, w, 3) uint8 RGB copy of a QImage."""
    im = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = im.width(), im.height(), im.bytesPerLine()
    buf = np.frombuffer(im.constBits(), np.uint8, count=bpl * h).reshape(h, bpl)
    return buf[:, : w * 3].reshape(h, w, 3).copy()


def rgb_histogram(rgb: np.ndarray) -> np.ndarray:
    """(3, 256) pixel counts per channel."""
    flat = rgb.reshape(-1, 3)
    return np.stack([np.bincount(flat[:, c], minlength=256)[:256] for c in range(3)])


def histogram_image(hist: np.ndarray, w: int = HIST_SIZE[0], h: int = HIST_SIZE[1]) -> QImage:
    """The three channels drawn over each other as Lightroom does (where they overlap they add
    up: grey where all three do), on a dark translucent ground.  The scale ignores the two end
    bins (a blown sky or black border would flatten the rest); their bars are cut at the top."""
    bins = hist.shape[1]
    cols = np.minimum((np.arange(w) * bins) // w, bins - 1)
    top = float(hist[:, 1:-1].max()) if bins > 2 else float(hist.max())
    heights = np.clip(hist[:, cols] / (top or 1.0), 0, 1) * (h - 2)  # (3, w)
    rows = np.arange(h)[::-1, None]  # 0 at the bottom
    rgb = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        rgb[..., c] += np.where(rows < heights[c][None, :], 190.0, 0.0)
    filled = rgb.max(axis=2) > 0
    alpha = np.where(filled, 235, 150).astype(np.float32)
    rgb = np.where(filled[..., None], rgb, 20.0)
    argb = np.zeros((h, w, 4), np.uint8)  # ARGB32_Premultiplied in memory: B, G, R, A
    a = alpha / 255.0
    argb[..., 0] = np.clip(rgb[..., 2] * a, 0, 255)
    argb[..., 1] = np.clip(rgb[..., 1] * a, 0, 255)
    argb[..., 2] = np.clip(rgb[..., 0] * a, 0, 255)
    argb[..., 3] = alpha
    return QImage(argb.tobytes(), w, h, w * 4, QImage.Format.Format_ARGB32_Premultiplied).copy()


def clipping_masks(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(blown, crushed): a channel at ``CLIP_HIGH`` or above; every channel at ``CLIP_LOW`` or below."""
    top = np.maximum(np.maximum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])  # (max(axis=2) is 10x slower)
    return top >= CLIP_HIGH, top <= CLIP_LOW


def clipping_image(blown: np.ndarray, crushed: np.ndarray) -> QImage:
    """Solid red on blown pixels, blue on crushed ones, clear elsewhere (premultiplied ARGB)."""
    h, w = blown.shape
    argb = np.zeros((h, w, 4), np.uint8)
    for mask, col in ((blown, CLIP_RED), (crushed, CLIP_BLUE)):
        argb[mask] = (col.blue(), col.green(), col.red(), 255)
    return QImage(argb.tobytes(), w, h, w * 4, QImage.Format.Format_ARGB32_Premultiplied).copy()


class PreviewStats:
    """What the loupe shows about a preview's pixels, counted once per image: its RGB
    histogram (drawn once into a small image) and, on first use (J), its clipping overlay."""

    def __init__(self, image: QImage):
        rgb = qimage_rgb(image)
        self.histogram = rgb_histogram(rgb)
        blown, crushed = clipping_masks(rgb)
        self.blown = float(blown.mean()) if blown.size else 0.0  # fractions of the photo
        self.crushed = float(crushed.mean()) if crushed.size else 0.0
        self._masks = (blown, crushed)
        self._histogram_image: QImage | None = None
        self._clipping_image: QImage | None = None

    def histogram_image(self) -> QImage:
        if self._histogram_image is None:
            self._histogram_image = histogram_image(self.histogram)
        return self._histogram_image

    def clipping_image(self) -> QImage:
        if self._clipping_image is None:
            self._clipping_image = clipping_image(*self._masks)
            self._masks = None
        return self._clipping_image


_BYTES_PER_PIXEL = {  # formats whose R, G, B bytes numpy can read in place (the rest are converted)
    QImage.Format.Format_RGB32: 4, QImage.Format.Format_ARGB32: 4,
    QImage.Format.Format_ARGB32_Premultiplied: 4, QImage.Format.Format_RGBX8888: 4,
    QImage.Format.Format_RGBA8888: 4, QImage.Format.Format_RGBA8888_Premultiplied: 4,
    QImage.Format.Format_RGB888: 3, QImage.Format.Format_BGR888: 3, QImage.Format.Format_Grayscale8: 1,
}


def channel_max(image: QImage, x: int, y: int, w: int, h: int) -> np.ndarray:
    """(h, w) uint8: the brightest of R, G and B of each pixel of that part of ``image``,
    read in place from the formats the loaders make (32-bit, 24-bit, grey), else from a
    converted copy of the part."""
    bpp = _BYTES_PER_PIXEL.get(image.format())
    if bpp is None:
        part = image.copy(x, y, w, h).convertToFormat(QImage.Format.Format_RGB888)
        return channel_max(part, 0, 0, w, h)
    bpl = image.bytesPerLine()
    rows = np.frombuffer(image.constBits(), np.uint8, count=bpl * image.height()).reshape(image.height(), bpl)
    px = rows[y:y + h, x * bpp:(x + w) * bpp].reshape(h, w, bpp)
    if bpp == 1:
        return px[..., 0]
    return np.maximum(np.maximum(px[..., 0], px[..., 1]), px[..., 2])  # (B, G, R or R, G, B: the same max)


_CLIP_ARGB = np.array([0, CLIP_RED.rgba(), CLIP_BLUE.rgba()], np.uint32)  # clear, blown, crushed


def clipping_tile(top: np.ndarray) -> QImage | None:
    """The clipping overlay of a block whose brightest channels are ``top``: red where
    blown, blue where crushed, clear elsewhere; None when nothing in it is clipped."""
    codes = (top >= CLIP_HIGH).view(np.uint8) | ((top <= CLIP_LOW).view(np.uint8) << 1)
    if not codes.any():
        return None
    argb = np.take(_CLIP_ARGB, codes)  # (never 3: a pixel is not both)
    h, w = argb.shape
    return QImage(argb.data, w, h, w * 4, QImage.Format.Format_ARGB32_Premultiplied).copy()  # owns its pixels


class FullClipping(QObject):
    """The clipping overlay (J) of a full-resolution image, for 100 %: one overlay pixel
    per image pixel, so it lines up with what is shown.

    The overlay is made in tiles as they first come on screen (``TILE`` px square, 0.25 to
    0.6 ms each, so a 1200 x 800 pane over a 24 MP image costs 10-30 ms once and a pan only
    the tiles it uncovers: 2-8 ms; tiles with nothing clipped cost no memory) and kept, the
    least recently drawn dropped past ``MAX_TILES``.  The whole image's blown / crushed
    fractions are counted once in a thread (30-80 ms at 24 MP), started after the first
    paint: ``counted`` says when they are in.  (Figures on a busy 2-core CPU.)"""

    TILE = 256
    MAX_TILES = 160  # ~40 MB of overlay at most (one 4K screen's worth at 100 %)
    counted = Signal()

    def __init__(self, image: QImage):
        super().__init__()
        self.image = image
        self.blown: float | None = None  # fractions of the whole image, once counted
        self.crushed: float | None = None
        self.made_tiles = 0  # tiles computed (a test's probe: cached tiles are not made again)
        self._tiles: OrderedDict[tuple[int, int], QImage | None] = OrderedDict()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._count, args=(QImage(image),), daemon=True,
                                        name="photocull-clipping-count")  # started after the first paint

    def stop(self) -> None:
        """Stop counting (the image is gone from the pane)."""
        self._stop.set()

    def _count(self, image: QImage) -> None:
        """In the thread: the fractions of blown and crushed pixels, in bands of rows (numpy
        lets the GUI thread run meanwhile); ``image`` is this thread's own shallow copy."""
        w, h = image.width(), image.height()
        blown = crushed = 0
        for y in range(0, h, self.TILE):
            if self._stop.is_set():
                return
            top = channel_max(image, 0, y, w, min(self.TILE, h - y))
            blown += int(np.count_nonzero(top >= CLIP_HIGH))
            crushed += int(np.count_nonzero(top <= CLIP_LOW))
        n = max(w * h, 1)
        self.blown, self.crushed = blown / n, crushed / n
        self.counted.emit()

    def tile(self, tx: int, ty: int) -> QImage | None:
        """The overlay of tile (tx, ty), made on first need."""
        key = (tx, ty)
        if key in self._tiles:
            self._tiles.move_to_end(key)
            return self._tiles[key]
        x, y = tx * self.TILE, ty * self.TILE
        w, h = min(self.TILE, self.image.width() - x), min(self.TILE, self.image.height() - y)
        img = clipping_tile(channel_max(self.image, x, y, w, h))
        self.made_tiles += 1
        self._tiles[key] = img
        return img

    def draw(self, p: QPainter, target: QRectF, sx: int, sy: int, sw: int, sh: int, dpr: float) -> None:
        """Paint the overlay of the image's pixels (sx, sy, sw, sh), the image laid at
        ``target`` one pixel per device pixel (its corner on a device pixel)."""
        t = self.TILE
        tiles = [(tx, ty) for ty in range(sy // t, (sy + sh - 1) // t + 1)
                 for tx in range(sx // t, (sx + sw - 1) // t + 1)]
        for tx, ty in tiles:
            img = self.tile(tx, ty)
            if img is not None:
                p.drawImage(QRectF(target.left() + tx * t / dpr, target.top() + ty * t / dpr,
                                   img.width() / dpr, img.height() / dpr), img, QRectF(img.rect()))
        while len(self._tiles) > max(self.MAX_TILES, 2 * len(tiles)):
            self._tiles.popitem(last=False)
        if self._thread.ident is None:  # the count now: not competing with the first paint
            self._thread.start()


def marks_text(it: PhotoItem) -> str:
    """The flag and stars as the panes show them: "PICK  ★★★"."""
    flag = "PICK" if it.flag > 0 else "REJECT" if it.flag < 0 else ""
    stars = "★" * it.rating + "☆" * (5 - it.rating) if it.rating else ""
    return "  ".join(t for t in (flag, stars) if t)


class ImagePane(QWidget):
    """Paints one photo fitted, or at 100 % around a centre that can be dragged.

    100 % is the file's own pixels, one per device pixel (a 2x screen shows them at half
    the logical size).  Zoomed in, the pane asks for them (``fullWanted``) and shows the
    preview scaled up to the same layout until they come (:meth:`set_full`): the layout at
    100 % is known before then from the file's headers (:meth:`set_full_size`)."""

    panned = Signal(QPointF)  # centre in image fractions
    clicked = Signal()
    zoomAt = Signal(QPointF)  # a click without a drag (loupe) or a double click (compare), here
    fullWanted = Signal(object)  # the PhotoItem: zoomed in, its full-resolution pixels missing

    CLICK_SLOP = 4  # px a press may move and still be a click

    def __init__(self, parent=None):
        super().__init__(parent)
        self.pixmap: QPixmap | None = None  # the preview (fit, and 100 % until the full image comes)
        self.full: QImage | None = None  # every pixel of the file, once decoded (72-96 MB at 24 MP)
        self.full_size: tuple[int, int] | None = None  # (w, h) of the full image, from the headers
        self.full_error = ""  # why the full image could not be read (100 % shows the preview)
        self.item: PhotoItem | None = None
        self.zoom_100 = False
        self.centre = QPointF(0.5, 0.5)
        self.click_zooms = True  # a click toggles 100 % there (loupe); else a double click (compare)
        self.painted_source = ""  # "full" or "preview": what the last paint drew
        self.focused = False  # outlined: the pane that marks go to (compare)
        self.painted_marks: tuple | None = None  # (flag, rating, label) as last painted
        self.show_faces = False  # O: face boxes
        self.show_focus = False  # M: the focus map
        self.painted_faces = 0  # face boxes drawn at the last paint
        self.painted_focus = False  # the focus map drawn at the last paint
        self._map_cache: tuple | None = None  # (report, QImage | None, grid | None)
        self.show_clipping = False  # J: blown highlights red, crushed shadows blue
        self.show_histogram = False  # the preview's RGB histogram, bottom right (the loupe)
        self.painted_clipping = False  # the clipping overlay drawn at the last paint
        self.painted_histogram = False
        self._stats: PreviewStats | None = None  # the preview's histogram and clipping (once per image)
        self._full_clip: FullClipping | None = None  # the full image's clipping (J at 100 %), once per image
        self.clipping_source = ""  # "full" or "preview": what the last painted clipping overlay came from
        self._preview_image: QImage | None = None  # the preview, until its stats are counted
        self._drag = None
        self.setMinimumSize(200, 150)

    def set_item(self, it: PhotoItem) -> None:
        """Show ``it`` (zoom and centre stay: a burst is checked at 100 % frame by frame)."""
        same = self.item is not None and it.key == self.item.key
        self.item = it
        if not same:
            self.pixmap, self.full_size, self.full_error = None, None, ""
            self._set_full_image(None)
            self._stats = self._preview_image = None
        self.update()
        self._want_full()

    def set_image(self, path: str, image) -> bool:
        if not self._is_mine(path):
            return False
        self.pixmap = QPixmap.fromImage(image)
        self._stats, self._preview_image = None, image  # counted when first needed (stats)
        self.update()
        return True

    def stats(self) -> PreviewStats | None:
        """The preview's histogram and clipping, counted on first need and kept."""
        if self._stats is None and self._preview_image is not None:
            self._stats, self._preview_image = PreviewStats(self._preview_image), None
        return self._stats

    def _is_mine(self, path: str) -> bool:
        return self.item is not None and os.path.abspath(path) == self.item.key

    # -- 100 % --------------------------------------------------------------------------------
    def set_full(self, path: str, image: QImage) -> bool:
        """The full-resolution pixels of this pane's photo: 100 % shows them from now on."""
        if not self._is_mine(path) or image.isNull():
            return False
        self._set_full_image(image)
        self.full_size, self.full_error = (image.width(), image.height()), ""
        self.update()
        return True

    def _set_full_image(self, image: QImage | None) -> None:
        if self._full_clip is not None:
            self._full_clip.stop()
            self._full_clip = None
        self.full = image

    def full_clipping(self) -> FullClipping | None:
        """The full image's clipping overlay (made on first need: J at 100 %), else None."""
        if self._full_clip is None and self.full is not None:
            self._full_clip = FullClipping(self.full)
            self._full_clip.counted.connect(self.update)
        return self._full_clip

    def set_full_size(self, path: str, w: int, h: int) -> None:
        """The full image's size, read from the headers, before its pixels are decoded."""
        if self._is_mine(path) and self.full is None and w > 0 and h > 0:
            self.full_size = (w, h)
            self.update()

    def set_full_failed(self, path: str, reason: str) -> None:
        if self._is_mine(path) and self.full is None:
            self.full_error = reason or "unreadable"
            self.update()

    def drop_full(self) -> None:
        """Let the full-resolution pixels go (the viewer is hidden)."""
        self._set_full_image(None)

    def wants_full(self) -> bool:
        return self.zoom_100 and self.item is not None and self.full is None and not self.full_error

    def _want_full(self) -> None:
        if self.wants_full():
            self.fullWanted.emit(self.item)

    def image_size(self) -> tuple[int, int] | None:
        """Pixels across and down at 100 %: the full image's (known from the headers before it
        is decoded), else the preview's."""
        if self.full_size is not None:
            return self.full_size
        if self.pixmap is not None:
            return self.pixmap.width(), self.pixmap.height()
        return None

    def set_zoom(self, on: bool, at: QPointF | None = None) -> None:
        """100 % on or off.  Turning it on with ``at`` (a point of the pane) keeps the part
        of the photo under that point where it is."""
        if on and not self.zoom_100 and at is not None:
            self.zoom_100 = True
            self.set_centre(self.centre_for(at))
        self.zoom_100 = on
        self.update()
        self._want_full()

    def centre_for(self, at: QPointF) -> QPointF:
        """The centre (image fractions) at 100 % that keeps the photo's point now under
        ``at`` under it; the current centre when there is no photo yet."""
        was = self.zoom_100
        self.zoom_100 = False
        fit = self.target_rect()
        self.zoom_100 = was
        size = self.image_size()
        if fit.isEmpty() or size is None:
            return QPointF(self.centre)
        fx = min(max((at.x() - fit.left()) / fit.width(), 0.0), 1.0)
        fy = min(max((at.y() - fit.top()) / fit.height(), 0.0), 1.0)
        dpr = self.devicePixelRatioF()
        w, h = size[0] / dpr, size[1] / dpr  # logical size at 100 %
        return QPointF(fx + (self.width() / 2 - at.x()) / w, fy + (self.height() / 2 - at.y()) / h)

    def set_overlays(self, faces: bool, focus: bool, clipping: bool = False) -> None:
        if (faces, focus, clipping) != (self.show_faces, self.show_focus, self.show_clipping):
            self.show_faces, self.show_focus, self.show_clipping = faces, focus, clipping
            self.update()

    def set_focused(self, on: bool) -> None:
        if on != self.focused:
            self.focused = on
            self.update()

    def set_centre(self, c: QPointF) -> None:
        self.centre = QPointF(min(max(c.x(), 0.0), 1.0), min(max(c.y(), 0.0), 1.0))
        self.update()

    def target_rect(self) -> QRectF:
        """Where the photo is drawn, in the pane's (logical) coordinates.  At 100 % its
        corner sits on a device pixel, so the drawing is a copy, never a resampling."""
        size = self.image_size()
        if size is None:
            return QRectF()
        if self.zoom_100:
            dpr = self.devicePixelRatioF()
            w, h = size[0] / dpr, size[1] / dpr
            left = round((self.width() / 2 - self.centre.x() * w) * dpr) / dpr
            top = round((self.height() / 2 - self.centre.y() * h) * dpr) / dpr
            return QRectF(left, top, w, h)
        w, h = size
        s = min(self.width() / w, self.height() / h)
        return QRectF((self.width() - w * s) / 2, (self.height() - h * s) / 2, w * s, h * s)

    def visible_pixels(self, target: QRectF) -> tuple[int, int, int, int] | None:
        """(x, y, w, h): the full image's pixels on screen at 100 %, None when none are."""
        dpr = self.devicePixelRatioF()
        vis = target.intersected(QRectF(self.rect()))
        if vis.isEmpty() or self.full is None:
            return None
        sx, sy = round((vis.left() - target.left()) * dpr), round((vis.top() - target.top()) * dpr)
        sw = min(math.ceil(vis.width() * dpr), self.full.width() - sx)
        sh = min(math.ceil(vis.height() * dpr), self.full.height() - sy)
        return (sx, sy, sw, sh) if sw > 0 and sh > 0 else None

    def _draw_full_1to1(self, p: QPainter, target: QRectF) -> None:
        """The visible part of the full image, one image pixel per device pixel (only the
        pixels on screen are touched: a pan repaints in a few ms at 24 MP)."""
        dpr = self.devicePixelRatioF()
        part = self.visible_pixels(target)
        if part is None:
            return
        sx, sy, sw, sh = part
        dest = QRectF(target.left() + sx / dpr, target.top() + sy / dpr, sw / dpr, sh / dpr)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        p.drawImage(dest, self.full, QRectF(sx, sy, sw, sh))

    def paintEvent(self, ev) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#111"))
        target = self.target_rect()
        self.painted_source = ""
        if self.zoom_100 and self.full is not None:
            self._draw_full_1to1(p, target)
            self.painted_source = "full"
        elif self.pixmap is not None:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            p.drawPixmap(target, self.pixmap, QRectF(self.pixmap.rect()))
            self.painted_source = "preview"
        elif self.full is not None:  # no preview (it failed): the full image, scaled
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            p.drawImage(target, self.full, QRectF(self.full.rect()))
            self.painted_source = "full"
        else:
            p.setPen(QColor("#aaa"))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "loading…" if self.item else "")
        self.painted_faces, self.painted_focus = 0, False
        self.painted_clipping = self.painted_histogram = False
        self.clipping_source = ""
        if self.item is not None and self.painted_source:
            if self.show_clipping:
                self._paint_clipping(p)
            if self.show_focus:
                self._paint_focus_map(p, self.item)
            if self.show_faces:
                self._paint_faces(p, self.item)
        if self.item is not None:
            self._paint_notes(p)
            self._paint_overlay(p, self.item)
            if self.show_histogram and self.painted_source:
                self._paint_histogram(p)
        if self.focused:
            p.setPen(QPen(FOCUS_COLOUR, 4))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(self.rect().adjusted(2, 2, -2, -2))

    # -- clipping (J: the full image's at 100 %, else the preview's) and histogram (the preview's)
    def _paint_clipping(self, p: QPainter) -> None:
        p.save()
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)  # hard edges, as Lightroom's
        if self.painted_source == "full" and self.zoom_100:
            target = self.target_rect()
            part = self.visible_pixels(target)
            if part is not None:
                self.full_clipping().draw(p, target, *part, self.devicePixelRatioF())
            self.clipping_source = "full"
        else:
            st = self.stats()
            if st is not None:
                img = st.clipping_image()
                p.drawImage(self.target_rect(), img, QRectF(img.rect()))
                self.clipping_source = "preview"
        p.restore()
        self.painted_clipping = bool(self.clipping_source)

    def histogram_rect(self) -> QRectF:
        w, h = HIST_SIZE
        return QRectF(self.width() - w - 10, self.height() - 26 - h - 10, w, h)

    def _paint_histogram(self, p: QPainter) -> None:
        st = self.stats()
        if st is None:
            return
        r = self.histogram_rect()
        p.drawImage(r, st.histogram_image())
        # Lightroom's corner triangles: lit when more than 0.1 % of the photo is clipped there
        for frac, col, left in ((st.crushed, CLIP_BLUE, True), (st.blown, CLIP_RED, False)):
            x = r.left() + 3 if left else r.right() - 13
            tri = [QPointF(x, r.top() + 13), QPointF(x + 10, r.top() + 13), QPointF(x + (0 if left else 10), r.top() + 3)]
            p.setPen(QPen(QColor("#000"), 1))
            p.setBrush(col if frac > 0.001 else QColor(90, 90, 90))
            p.drawPolygon(tri)
        self.painted_histogram = True

    # -- analyses -------------------------------------------------------------------------
    def _map_image(self, report) -> QImage | None:
        if self._map_cache is None or self._map_cache[0] is not report:
            grid = focus_grid(report)
            self._map_cache = (report, None if grid is None else focus_map_image(grid), grid)
        return self._map_cache[1]

    def _frac_rect(self, box) -> QRectF | None:
        """A box in fractions of the upright photo (x0, y0, x1, y1) in widget coordinates."""
        r = self.target_rect()
        try:
            x0, y0, x1, y1 = (float(v) for v in box)
        except (TypeError, ValueError):
            return None
        if not all(map(math.isfinite, (x0, y0, x1, y1))) or x1 <= x0 or y1 <= y0:
            return None
        return QRectF(r.left() + x0 * r.width(), r.top() + y0 * r.height(), (x1 - x0) * r.width(),
                      (y1 - y0) * r.height())

    def _paint_focus_map(self, p: QPainter, it: PhotoItem) -> None:
        img = self._map_image(it.focus)
        if img is None:
            return
        p.save()
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)  # one block per cell
        target = self.target_rect()
        p.drawImage(target, img, QRectF(img.rect()))
        grid = self._map_cache[2]
        rows, cols = grid.shape
        cw, ch = target.width() / cols, target.height() / rows
        hatch = QBrush(QColor(255, 255, 255, 70), Qt.BrushStyle.BDiagPattern)
        for r, c in zip(*np.nonzero(~np.isfinite(grid))):  # no detail to judge: hatched
            p.fillRect(QRectF(target.left() + c * cw, target.top() + r * ch, cw, ch), hatch)
        box = self._frac_rect(getattr(it.focus, "subject_box", None))
        if box is not None and tuple(getattr(it.focus, "subject_box", ())) != (0.0, 0.0, 1.0, 1.0):
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.setPen(QPen(QColor(255, 255, 255, 200), 1.5, Qt.PenStyle.DashLine))
            p.drawRect(box)
        p.restore()
        self.painted_focus = True

    def _paint_faces(self, p: QPainter, it: PhotoItem) -> None:
        faces = getattr(it.faces, "faces", None) or ()
        p.save()
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setBrush(Qt.BrushStyle.NoBrush)
        fm = p.fontMetrics()
        n = 0
        for face in faces:
            box = self._frac_rect(getattr(face, "box", None))
            if box is None:
                continue
            colour = face_colour(face)
            p.setPen(QPen(QColor(0, 0, 0, 160), 4))  # a dark rim: the box reads on light skin and sky
            p.drawRect(box)
            p.setPen(QPen(colour, 2))
            p.drawRect(box)
            if box.width() >= 36:
                text = fm.elidedText(face_label(face), Qt.TextElideMode.ElideRight, int(max(box.width(), 80)))
                tw, th = fm.horizontalAdvance(text) + 8, fm.height() + 2
                y = box.top() - th if box.top() - th >= 0 else box.bottom()
                tag = QRectF(box.left() - 1, y, tw, th)
                p.fillRect(tag, colour)
                p.setPen(QColor("#000") if colour in (FACE_OPEN, FACE_AWAY, FACE_UNKNOWN) else QColor("#fff"))
                p.drawText(tag, Qt.AlignmentFlag.AlignCenter, text)
            n += 1
        p.restore()
        self.painted_faces = n

    def overlay_notes(self) -> list[str]:
        """What the overlays switched on have to say (drawn in the top-left corner)."""
        it = self.item
        if it is None:
            return []
        notes = []
        if self.zoom_100 and self.full is None and self.painted_source:
            notes.append(f"100 % of the preview: full resolution unreadable ({self.full_error})" if self.full_error
                         else "100 %: loading full resolution…")
        if self.show_faces:
            rep = it.faces
            if rep is None:
                notes.append("faces not analysed")
            elif not rep.count:
                notes.append("no faces found")
            else:
                shut, n = rep.eyes_closed_count, rep.count
                notes.append(f"{n} face{'s' * (n != 1)}" + (f", {shut} with eyes closed" if shut else ""))
        if self.show_clipping:
            full = self._full_clip if self.zoom_100 and self.full is not None else None
            st = self.stats()
            if full is not None and full.blown is not None:
                notes.append(f"clipping: highlights {full.blown:.1%} (red) · shadows {full.crushed:.1%} (blue)"
                             "  ·  full resolution")
            elif st is None:
                notes.append("clipping: no preview yet")
            else:
                notes.append(f"clipping: highlights {st.blown:.1%} (red) · shadows {st.crushed:.1%} (blue)"
                             + ("  ·  counted on the preview" if self.zoom_100 else ""))
        if self.show_focus:
            if focus_grid(it.focus) is None:
                why = getattr(it.focus, "note", "") if it.focus is not None else ""
                notes.append("no focus map" + (f" ({why})" if why else ""))
            else:
                describe = getattr(it.focus, "describe", None)
                said = describe() if callable(describe) else (it.focus.reason() or "sharp")
                notes.append(f"focus: {said}  ·  map: green sharp, red soft, hatched no detail")
        return notes

    def _paint_notes(self, p: QPainter) -> None:
        notes = self.overlay_notes()
        if not notes:
            return
        fm = p.fontMetrics()
        y = 8
        for text in notes:
            text = fm.elidedText(text, Qt.TextElideMode.ElideRight, self.width() - 32)
            r = QRectF(8, y, fm.horizontalAdvance(text) + 12, fm.height() + 6)
            p.fillRect(r, QColor(0, 0, 0, 170))
            p.setPen(QColor("#eee"))
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, text)
            y += r.height() + 3

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
        why = reasons_line(it)  # the grid's reasons: the technical model's, the faces', the faults
        zoom = f"   100 % ({self.full.width()}×{self.full.height()})" if self.zoom_100 and self.full is not None else ""
        txt = (it.name + zoom + (f"   {it.mean:.2f} ± {it.std:.2f}" if it.scored else "")
               + (f"   {why}" if why else ""))
        p.setPen(QColor("#eee"))
        txt = p.fontMetrics().elidedText(txt, Qt.TextElideMode.ElideRight, self.width() - x - 8)
        p.drawText(x, self.height() - 8, txt)
        self.painted_marks = (it.flag, it.rating, it.label)

    def mousePressEvent(self, ev) -> None:
        self._drag = (ev.position(), QPointF(self.centre), False)
        self.clicked.emit()

    def mouseMoveEvent(self, ev) -> None:
        if self._drag is None:
            return
        start, c0, moved = self._drag
        d = ev.position() - start
        if not moved and abs(d.x()) + abs(d.y()) < self.CLICK_SLOP:
            return
        self._drag = (start, c0, True)
        size = self.image_size()
        if not self.zoom_100 or size is None:
            return
        dpr = self.devicePixelRatioF()
        self.set_centre(QPointF(c0.x() - d.x() * dpr / size[0], c0.y() - d.y() * dpr / size[1]))
        self.panned.emit(self.centre)

    def mouseReleaseEvent(self, ev) -> None:
        drag, self._drag = self._drag, None
        if drag is not None and not drag[2] and self.click_zooms and ev.button() == Qt.MouseButton.LeftButton:
            self.zoomAt.emit(ev.position())

    def mouseDoubleClickEvent(self, ev) -> None:
        if not self.click_zooms and ev.button() == Qt.MouseButton.LeftButton:
            self.zoomAt.emit(ev.position())
        else:
            super().mouseDoubleClickEvent(ev)

    def cursor_point(self) -> QPointF | None:
        """The mouse's position on the pane, None when it is elsewhere."""
        pos = self.mapFromGlobal(QCursor.pos())
        return QPointF(pos) if self.rect().contains(pos) else None


class FullPixels:
    """The full-resolution side of a viewer (loupe, compare), over its ``panes``."""

    panes: list[ImagePane]

    def wanted_full(self) -> list[PhotoItem]:
        """The photos shown at 100 % whose full-resolution pixels are still missing."""
        return [pn.item for pn in self.panes if pn.wants_full()]

    def set_full(self, path: str, image: QImage) -> bool:
        return any([pn.set_full(path, image) for pn in self.panes])

    def set_full_size(self, path: str, w: int, h: int) -> None:
        for pn in self.panes:
            pn.set_full_size(path, w, h)

    def set_full_failed(self, path: str, reason: str) -> None:
        for pn in self.panes:
            pn.set_full_failed(path, reason)

    def drop_full(self) -> None:
        for pn in self.panes:
            pn.drop_full()


class LoupeView(FullPixels, QWidget):
    """One photo, fitted or at 100 % (Z, or a click: zoomed to the point under the mouse),
    over a filmstrip of the grid's photos (the grid's model, selection and thumbnails: the
    window wires it with :meth:`show_strip`; a click on one shows it)."""

    fullWanted = Signal(object)  # a PhotoItem whose full-resolution pixels the pane needs

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.pane = ImagePane()
        self.pane.show_histogram = True
        self.pane.fullWanted.connect(self.fullWanted)
        self.pane.zoomAt.connect(self.toggle_zoom)
        lay.addWidget(self.pane, 1)
        self.strip = QListView()
        self.strip.setViewMode(QListView.ViewMode.IconMode)
        self.strip.setFlow(QListView.Flow.LeftToRight)
        self.strip.setWrapping(False)
        self.strip.setMovement(QListView.Movement.Static)
        self.strip.setUniformItemSizes(True)
        self.strip.setSpacing(1)
        self.strip.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.strip.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the keys stay with the loupe
        self.strip.setStyleSheet("QListView{background:#181818;border:0}")
        self.strip.hide()
        lay.addWidget(self.strip)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def show_strip(self, model, selection, delegate) -> None:
        """The filmstrip over ``model`` (the grid's), sharing its ``selection``."""
        self.strip.setModel(model)
        self.strip.setSelectionModel(selection)
        self.strip.setItemDelegate(delegate)
        cell = delegate.sizeHint(None, None)
        self.strip.setFixedHeight(cell.height() + self.strip.horizontalScrollBar().sizeHint().height() + 4)
        self.strip.show()
        selection.currentChanged.connect(lambda cur, _prev: self._centre_strip(cur))

    def _centre_strip(self, index=None) -> None:
        """The current photo in the middle of the filmstrip, its neighbours both sides (at an
        edge its badges were cut off)."""
        index = index if index is not None else self.strip.currentIndex()
        if index.isValid():
            self.strip.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        QTimer.singleShot(0, self._centre_strip)  # once the strip has its width

    @property
    def panes(self) -> list[ImagePane]:
        return [self.pane]

    def show_item(self, it: PhotoItem) -> None:
        self.pane.set_item(it)

    def item(self) -> PhotoItem | None:
        return self.pane.item

    def refresh(self) -> None:
        """Repaint the overlay (the photo's marks changed)."""
        self.pane.update()

    def set_image(self, path, image) -> None:
        self.pane.set_image(path, image)

    def toggle_zoom(self, at: QPointF | None = None) -> None:
        """Fit <-> 100 %; zooming in keeps the point under ``at`` (default: the mouse, if it
        is over the photo) where it is."""
        self.pane.set_zoom(not self.pane.zoom_100, at if at is not None else self.pane.cursor_point())

    def set_overlays(self, faces: bool, focus: bool, clipping: bool = False) -> None:
        """Face boxes, focus map and clipping on or off; they stay so from photo to photo."""
        self.pane.set_overlays(faces, focus, clipping)

    def show_histogram(self, on: bool) -> None:
        """The RGB histogram in the corner on or off (H)."""
        if on != self.pane.show_histogram:
            self.pane.show_histogram = on
            self.pane.update()


ASSUMED_ASPECT = 1.5  # a photo whose size is not known yet: 3:2 (landscape, as most cameras)
NEAR = 1.05  # smallest photos within 5 %: the arrangement that shows them at more equal sizes wins, then larger
TIE = 1.01  # and within 1 % of that too: the first one (rows before columns) stays


def _balanced(n: int) -> list[tuple[int, ...]]:
    """The ways to split ``n`` panes into lines (rows or columns) that hold as many panes
    each as they can, give or take one: 3 -> (3,), (2, 1), (1, 2), (1, 1, 1)."""
    out = []
    for lines in range(1, n + 1):
        small, extra = divmod(n, lines)
        if not small:
            continue
        base = [small] * lines
        seen = set()
        for start in range(lines):  # where the longer lines go: first, last, ... (each once)
            ks = list(base)
            for j in range(extra):
                ks[(start + j) % lines] += 1
            if tuple(ks) not in seen:
                seen.add(tuple(ks))
                out.append(tuple(ks))
    return out


def _split(length: int, parts: int, gap: int) -> list[tuple[int, int]]:
    """``parts`` (start, size) spans that fill ``length`` with ``gap`` between them, sizes
    within a pixel of each other."""
    edges = [round(i * (length + gap) / parts) for i in range(parts + 1)]
    return [(edges[i], edges[i + 1] - edges[i] - gap) for i in range(parts)]


def compare_layout(width: int, height: int, aspects: list[float], gap: int = 2) -> list[tuple[int, int, int, int]]:
    """Where compare's panes go in a ``width`` x ``height`` view: one (x, y, w, h) per photo
    (``aspects``: each photo's width / height), in reading order.

    The panes fill the view, no cell left empty: rows of panes (or columns of them) of
    equal height (width), each line split evenly.  Of those arrangements, the one that
    shows the smallest photo largest wins (none is shown smaller than it need be), then,
    within 5 %, the one that shows them at the most equal sizes (compared photos look
    alike side by side, as in Lightroom's Survey view), then the one that shows them all
    largest: three portraits in a wide window go in one row; three 3:2 or 4:3 landscapes
    in a 3:2 window two above and one below, all three the same size."""
    n = len(aspects)
    if n == 0 or width <= 0 or height <= 0:
        return []
    best, best_key = None, None
    for ks in _balanced(n):
        for across in (True, False):  # lines are rows (panes side by side in each) or columns
            rects = []
            long_, short = (width, height) if across else (height, width)
            for (s0, ss), k in zip(_split(short, len(ks), gap), ks):
                for l0, ls in _split(long_, k, gap):
                    rects.append((l0, s0, ls, ss) if across else (s0, l0, ss, ls))
            areas = []
            for (_, _, w, h), a in zip(rects, aspects):
                a = a if a > 0 else ASSUMED_ASPECT
                fw = min(w, h * a)  # the photo fitted in its pane
                areas.append(max(fw, 0) * max(fw, 0) / a)
            low, total = min(areas), sum(areas)
            even = low / max(areas) if max(areas) > 0 else 1.0
            if best is None or low > best_key[0] * NEAR or (low * NEAR >= best_key[0] and (
                    even > best_key[1] * NEAR or (even * NEAR >= best_key[1] and total > best_key[2] * TIE))):
                best, best_key = rects, (low, even, total)
    return best


class CompareView(FullPixels, QWidget):
    """Two to four photos side by side, laid out to fill the view (:func:`compare_layout`:
    by the view's and the photos' shapes, never an empty cell); zoom and pan move all of
    them together.  One pane has the focus (outlined): a click, Tab / Shift+Tab or the
    arrow keys (to the pane on that side) move it."""

    GAP = 2  # px between panes
    focusMoved = Signal(object)  # the focused pane's PhotoItem
    fullWanted = Signal(object)  # a PhotoItem whose full-resolution pixels a pane needs

    def __init__(self, parent=None):
        super().__init__(parent)
        self.panes: list[ImagePane] = []
        self.focus_index = 0
        self.overlays = (False, False, False)  # (face boxes, focus map, clipping), for every pane
        self._aspects: list[float] = []  # the photos' shapes the panes were laid out for
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setStyleSheet("CompareView{background:#111}")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)

    def show_items(self, items: list[PhotoItem], focus: int = 0) -> None:
        for pn in self.panes:
            pn.setParent(None)
            pn.deleteLater()
        self.panes = []
        for it in items[:4]:
            pn = ImagePane(self)
            pn.set_item(it)
            pn.set_overlays(*self.overlays)
            pn.click_zooms = False  # a click focuses a pane; a double click zooms
            pn.panned.connect(self._sync)
            pn.clicked.connect(self._on_pane_clicked)
            pn.zoomAt.connect(self._on_pane_zoom)
            pn.fullWanted.connect(self.fullWanted)
            pn.setMinimumSize(0, 0)  # the layout decides
            self.panes.append(pn)
        self._aspects = []
        self.relayout()
        for pn in self.panes:
            pn.show()
        self.focus_index = -1
        self.set_focus_index(focus)

    def aspects(self) -> list[float]:
        """Each photo's width / height, as far as known (the full image's headers, else the
        preview; 0 while neither is)."""
        out = []
        for pn in self.panes:
            size = pn.image_size()
            out.append(size[0] / size[1] if size and size[1] else 0.0)
        return out

    def relayout(self) -> None:
        """Place the panes for the view's size and the photos' shapes."""
        self._aspects = self.aspects()
        rects = compare_layout(self.width(), self.height(), self._aspects, self.GAP)
        for pn, (x, y, w, h) in zip(self.panes, rects):
            pn.setGeometry(x, y, w, h)

    def resizeEvent(self, ev) -> None:
        super().resizeEvent(ev)
        self.relayout()

    def _shapes_changed(self) -> None:
        if self.aspects() != self._aspects:  # a preview or a header told a photo's shape
            self.relayout()

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

    def pane_towards(self, i: int, dx: int, dy: int) -> int | None:
        """The pane next to pane ``i`` on the side (dx, dy) (one of them 0): the nearest
        whose span across overlaps it most, then the one whose centre is closest; None at
        the view's edge."""
        here = self.panes[i].geometry()
        best, best_key = None, None
        for k, pn in enumerate(self.panes):
            g = pn.geometry()
            if dx:
                gap = g.left() - here.right() if dx > 0 else here.left() - g.right()
                overlap = min(g.bottom(), here.bottom()) - max(g.top(), here.top())
                off = abs(g.center().y() - here.center().y())
            else:
                gap = g.top() - here.bottom() if dy > 0 else here.top() - g.bottom()
                overlap = min(g.right(), here.right()) - max(g.left(), here.left())
                off = abs(g.center().x() - here.center().x())
            if k == i or gap <= 0:
                continue
            key = (gap, overlap <= 0, off, k)
            if best_key is None or key < best_key:
                best, best_key = k, key
        return best

    def keyPressEvent(self, ev) -> None:
        steps = {Qt.Key.Key_Left: (-1, 0), Qt.Key.Key_Right: (1, 0), Qt.Key.Key_Up: (0, -1), Qt.Key.Key_Down: (0, 1)}
        step = steps.get(ev.key())
        if step is None:
            super().keyPressEvent(ev)
            return
        if self.panes:
            i = self.pane_towards(self.focus_index, *step)
            if i is not None:
                self.set_focus_index(i)

    def set_image(self, path, image) -> None:
        for pn in self.panes:
            pn.set_image(path, image)
        self._shapes_changed()

    def set_full(self, path: str, image: QImage) -> bool:
        done = super().set_full(path, image)
        self._shapes_changed()
        return done

    def set_full_size(self, path: str, w: int, h: int) -> None:
        super().set_full_size(path, w, h)
        self._shapes_changed()

    def set_overlays(self, faces: bool, focus: bool, clipping: bool = False) -> None:
        self.overlays = (faces, focus, clipping)
        for pn in self.panes:
            pn.set_overlays(faces, focus, clipping)

    def toggle_zoom(self, pane: ImagePane | None = None, at: QPointF | None = None) -> None:
        """Fit <-> 100 % for every pane, all at the same place of their photos: zooming in
        keeps the point under ``at`` on ``pane`` (default: the mouse, over whichever pane it
        is) where it is."""
        if not self.panes:
            return
        on = not self.panes[0].zoom_100
        if on and at is None:
            pane, at = next(((pn, pt) for pn in self.panes if (pt := pn.cursor_point()) is not None), (None, None))
        centre = pane.centre_for(at) if on and pane is not None and at is not None else None
        for pn in self.panes:
            if centre is not None:
                pn.set_centre(centre)
            pn.set_zoom(on)

    def _on_pane_zoom(self, at: QPointF) -> None:
        if self.sender() in self.panes:
            self.toggle_zoom(self.sender(), at)

    def _sync(self, centre: QPointF) -> None:
        for pn in self.panes:
            if pn is not self.sender():
                pn.set_centre(centre)
