"""Compare lays its panes out to fill the view: no empty cell (three photos used to leave a
quarter of the window black), the arrangement chosen by the view's and the photos' shapes;
the focused pane, its marks, the synced zoom and the overlays as before."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
from PySide6.QtCore import QPointF, QRect, Qt  # noqa: E402
from PySide6.QtGui import QColor, QImage  # noqa: E402

from photocull.gui.viewers import compare_layout  # noqa: E402

GAP = 2


def assert_fills(rects: list[tuple[int, int, int, int]], width: int, height: int, gap: int = GAP) -> None:
    """The panes cover the view but for the gaps between them: none overlaps another or
    leaves the view, and every point of the view is within a gap of a pane (no empty cell)."""
    cover = np.zeros((height, width), np.int32)
    for x, y, w, h in rects:
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= width and y + h <= height
        cover[y:y + h, x:x + w] += 1
    assert cover.max() == 1, "panes overlap"
    empty = cover == 0
    # what no pane covers is only the gaps: lines at most `gap` thick
    near = np.zeros_like(empty)
    for x, y, w, h in rects:
        near[max(0, y - gap):y + h + gap, max(0, x - gap):x + w + gap] = True
    assert not (empty & ~near).any(), "part of the view is in no pane"
    assert empty.sum() <= gap * (width + height) * len(rects)


def layout_kind(rects):
    """(panes per row, top to bottom) of a layout."""
    rows: dict[int, int] = {}
    for x, y, w, h in rects:
        rows[y] = rows.get(y, 0) + 1
    return [rows[y] for y in sorted(rows)]


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("view", [(1372, 800), (1200, 722), (900, 1300), (2400, 700)])
@pytest.mark.parametrize("aspect", [1.5, 4 / 3, 0.75, 2 / 3])
def test_every_layout_fills_the_view(n, view, aspect):
    rects = compare_layout(*view, [aspect] * n, GAP)
    assert len(rects) == n
    assert_fills(rects, *view)


def test_the_layout_follows_the_view_and_the_photos_shapes():
    # two photos: side by side in a wide view, one above the other in a tall one
    assert layout_kind(compare_layout(1400, 800, [1.5, 1.5])) == [2]
    assert layout_kind(compare_layout(800, 1400, [1.5, 1.5])) == [1, 1]
    # three portraits in a wide window: one row of three (each 456 px wide, the full height)
    rects = compare_layout(1372, 800, [0.75] * 3)
    assert rects == [(0, 0, 456, 800), (458, 0, 456, 800), (916, 0, 456, 800)]
    # three landscapes in a 3:2 window: two above, one across below (each photo as large as
    # the 2 x 2 grid gave them, without its empty quarter)
    assert compare_layout(1200, 800, [1.5] * 3) == [(0, 0, 599, 399), (601, 0, 599, 399), (0, 401, 1200, 399)]
    # three 4:3 photos in a 3:2 window: the same, all three shown at one size (not two small
    # ones stacked beside a larger third: compared frames look alike side by side)
    rects = compare_layout(1372, 800, [4 / 3] * 3)
    assert layout_kind(rects) == [2, 1]
    fitted = {round(min(w, h * 4 / 3)) for _, _, w, h in rects}
    assert len(fitted) == 1
    # three landscapes in a very wide window: one row
    assert layout_kind(compare_layout(2400, 700, [1.5] * 3)) == [3]
    # four landscapes: 2 x 2; four portraits in a wide window: one row
    assert layout_kind(compare_layout(1200, 800, [1.5] * 4)) == [2, 2]
    assert layout_kind(compare_layout(1600, 800, [0.66] * 4)) == [4]


def test_the_smallest_photo_is_shown_as_large_as_the_view_allows():
    """Of every way to split the view into rows or columns of panes, the chosen one shows
    the smallest photo largest (brute force over rows x columns grids with an empty cell
    allowed: never better by more than the 5 % tie margin)."""
    for view in [(1372, 800), (1200, 722), (900, 1300), (2400, 700)]:
        for aspects in ([1.5] * 3, [0.75] * 3, [1.5, 0.66, 1.5], [1.33] * 4):
            def smallest(rects):
                return min(min(w, h * a) ** 2 / a for (_, _, w, h), a in zip(rects, aspects))
            chosen = smallest(compare_layout(*view, aspects))
            n = len(aspects)
            for cols in range(1, n + 1):
                rows = -(-n // cols)
                w, h = (view[0] - (cols - 1) * GAP) / cols, (view[1] - (rows - 1) * GAP) / rows
                grid = [(0, 0, w, h)] * n
                assert smallest(grid) <= chosen * 1.05, (view, aspects, cols)


def _image(w, h, colour="#8ab") -> QImage:
    img = QImage(w, h, QImage.Format.Format_RGB32)
    img.fill(QColor(colour))
    return img


@pytest.fixture
def compare(qtbot):
    from photocull.gui.photomodel import PhotoItem
    from photocull.gui.viewers import CompareView

    view = CompareView()
    qtbot.addWidget(view)
    view.resize(1372, 800)
    view.show()
    qtbot.waitExposed(view)
    items = [PhotoItem(Path(f"/shoot/IMG_{i}.jpg")) for i in range(3)]
    view.show_items(items, focus=1)
    return view, items


def test_three_panes_fill_the_view_with_no_empty_cell(qtbot, compare):
    view, items = compare
    for it in items:  # three portraits (3000 x 4000) arrive
        view.set_full_size(str(it.path), 3000, 4000)
        view.set_image(str(it.path), _image(960, 1280))
    geo = [p.geometry() for p in view.panes]
    rects = [(g.x(), g.y(), g.width(), g.height()) for g in geo]
    assert_fills(rects, view.width(), view.height())
    assert layout_kind(rects) == [3]  # one row of three
    bounds = QRect(geo[0])
    for g in geo[1:]:
        bounds = bounds.united(g)
    assert bounds == view.rect()
    # the photos are shown large: each fills its pane's width (456 x 608, where the 2 x 2
    # grid showed them 300 x 400 and left a quarter of the view black)
    for p in view.panes:
        p.repaint()
        assert p.target_rect().width() == pytest.approx(p.width()) and p.target_rect().height() > 600

    # the focused pane is outlined, and only it
    assert view.focused_item() is items[1]
    assert [p.focused for p in view.panes] == [False, True, False]
    shot = view.panes[1].grab().toImage()
    assert shot.pixelColor(3, shot.height() // 2).name() == "#f0c040"  # FOCUS_COLOUR
    shot = view.panes[0].grab().toImage()
    assert shot.pixelColor(3, shot.height() // 2).name() != "#f0c040"
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert view.focused_item() is items[2]
    qtbot.keyClick(view, Qt.Key.Key_Down)  # one row: nothing below
    assert view.focused_item() is items[2]

    # zoom and pan stay synced, in any layout
    view.toggle_zoom()
    view.panes[2].panned.emit(QPointF(0.3, 0.6))
    assert all(p.zoom_100 for p in view.panes)
    assert all(abs(p.centre.x() - 0.3) < 1e-9 and abs(p.centre.y() - 0.6) < 1e-9 for p in view.panes[:2])


def test_the_layout_changes_with_the_window_and_when_the_photos_shapes_come(qtbot, compare):
    view, items = compare
    for it in items:  # landscapes this time
        view.set_image(str(it.path), _image(1280, 853))
    view.resize(1200, 800)
    qtbot.waitUntil(lambda: view.panes[2].width() == 1200)  # two above, one across below
    assert layout_kind([(g.x(), g.y(), g.width(), g.height()) for g in (p.geometry() for p in view.panes)]) == [2, 1]
    qtbot.keyClick(view, Qt.Key.Key_Down)  # from the top right pane to the one below
    assert view.focused_item() is items[2]
    view.resize(2400, 700)
    qtbot.waitUntil(lambda: view.panes[2].x() > 1500)  # a very wide window: one row
    rects = [(g.x(), g.y(), g.width(), g.height()) for g in (p.geometry() for p in view.panes)]
    assert layout_kind(rects) == [3] and rects[2][0] + rects[2][2] == 2400
    assert_fills(rects, 2400, 700)
    # the third photo turns out to be a portrait: the layout is chosen again for the new shapes
    view.resize(1200, 800)
    view.set_full_size(str(items[2].path), 3000, 4500)
    rects = [(g.x(), g.y(), g.width(), g.height()) for g in (p.geometry() for p in view.panes)]
    assert rects == compare_layout(1200, 800, view.aspects(), GAP)
    assert_fills(rects, 1200, 800)


def test_overlays_and_marks_reach_every_pane_in_the_new_layout(qtbot, compare):
    view, items = compare
    items[0].flag, items[2].rating = 1, 4
    view.set_overlays(False, False, True)  # J on every pane
    for it in items:
        view.set_image(str(it.path), _image(960, 1280, "#ffffff"))  # all blown
    for p in view.panes:
        p.repaint()
    assert all(p.painted_clipping and p.clipping_source == "preview" for p in view.panes)
    assert [p.painted_marks for p in view.panes] == [(1, 0, None), (0, 0, None), (0, 4, None)]
